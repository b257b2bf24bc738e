"""Supervised fine-tuning speed on the packaged SmolLM2-135M-Instruct (LoRA r=8 on q/v), side
by side in one process, median over alternating repeats after a warm-up:

1. packing against padding: the same examples (ASDiv, Alpaca demo) as right-padded batches
   of 8 and as packed rows (``task.packing=true``), one training pass each; real (not pad)
   tokens per second, and the loss of both layouts on the same weights (equal up to float
   rounding: packed sequences do not see each other);
2. one ftlab SFT step (the module's ``training_step``: ``lm_forward`` + the masked token
   loss, backward, AdamW) against a plain transformers + peft loop (``get_peft_model`` on
   ``AutoModelForCausalLM``, ``model(..., labels=...)``) on the same weights and batch;
3. greedy decoding with the key/value cache: a left-padded batch of 16 prompts against the
   same prompts one at a time (samples/s).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/benchmarks/sft.py   # writes sft.json
"""

from __future__ import annotations

import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.conftest import compose  # noqa: E402

from ftlab.config import register_resolvers  # noqa: E402
from ftlab.tasks.generate import greedy  # noqa: E402
from ftlab.tasks.lm_data import IGNORE, SFTCollate  # noqa: E402
from ftlab.train import build  # noqa: E402

EXAMPLES, BATCH, WARMUP, REPEATS, PROMPTS, NEW_TOKENS = 32, 8, 1, 2, 16, 32


def built(data: str, packing: bool, max_length: int):
    register_resolvers()
    cfg = compose(
        ["model=smollm2", "task=sft", f"data={data}", "method=lora", "task.forgetting=null",
         f"task.packing={str(packing).lower()}", f"task.max_length={max_length}",
         f"data.train_samples={EXAMPLES}", "logger=none"],
        REPO / "logs" / "bench_sft",
    )  # fmt: skip
    torch.manual_seed(0)
    datamodule, backbone, module, method = build(cfg)
    method.apply(module)
    return datamodule, module


def batches(datamodule, packing: bool) -> list[dict]:
    dataset = datamodule._dataset("train").dataset
    collate = SFTCollate(datamodule.pipeline.formatter.tokenizer.pad_token_id)
    size = 2 if packing else BATCH  # rows of up to max_length tokens hold ~4 examples
    items = [dataset[i] for i in range(len(dataset))]
    return [collate(items[i : i + size]) for i in range(0, len(items), size)]


def train_pass(module, steps: list[dict]) -> float:
    """Seconds for one training pass over ``steps`` (forward, backward, AdamW)."""
    params = [p for _, p in module.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    module.train()
    start = time.perf_counter()
    for batch in steps:
        optimizer.zero_grad()
        module.task.training_step(module, batch).backward()
        optimizer.step()
    return time.perf_counter() - start


@torch.no_grad()
def mean_loss(module, steps: list[dict]) -> float:
    module.eval()
    total = count = 0.0
    for batch in steps:
        loss, n = module.task.lm_loss(module, batch)
        total, count = total + float(loss), count + float(n)
    return total / count


def packing(data: str, max_length: int) -> dict:
    datamodule, module = built(data, packing=False, max_length=max_length)
    padded = batches(datamodule, packing=False)
    packed_dm, _ = built(data, packing=True, max_length=max_length)
    packed = batches(packed_dm, packing=True)
    tokens = sum(int((b["labels"] != IGNORE).sum()) for b in padded)
    assert tokens == sum(int((b["labels"] != IGNORE).sum()) for b in packed)
    loss = {"padded": mean_loss(module, padded), "packed": mean_loss(module, packed)}
    real = sum(int(b["attention_mask"].sum()) for b in padded)  # the same tokens as packed
    times = {"padded": [], "packed": []}
    for steps in (padded, packed):  # warm-up
        train_pass(copy.deepcopy(module), steps[:WARMUP])
    for _ in range(REPEATS):
        for layout, steps in (("padded", padded), ("packed", packed)):
            times[layout].append(train_pass(copy.deepcopy(module), steps))
    speed = {k: real / statistics.median(v) for k, v in times.items()}
    pad_share = 1 - real / sum(int(b["input_ids"].numel()) for b in padded)
    return {
        "data": data, "examples": EXAMPLES, "max_length": max_length,
        "padded_batches": len(padded), "packed_rows": sum(len(b["input_ids"]) for b in packed),
        "padding_share_of_padded_tokens": round(pad_share, 3),
        "tokens_per_s": {k: round(v, 1) for k, v in speed.items()},
        "packed_over_padded": round(speed["packed"] / speed["padded"], 3),
        "mean_loss": loss, "loss_difference": abs(loss["packed"] - loss["padded"]),
    }  # fmt: skip


def against_plain_loop() -> dict:
    """ftlab's SFT step vs transformers + peft, the same weights, targets and batch."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftlab.asset_registry import asset_path

    datamodule, module = built("asdiv", packing=False, max_length=256)
    batch = batches(datamodule, packing=False)[0]
    lm = AutoModelForCausalLM.from_pretrained(asset_path("smollm2"), dtype=torch.float32)
    method = module.method
    plain = get_peft_model(
        lm,
        LoraConfig(
            r=method.r,
            lora_alpha=method.alpha,
            target_modules=method.target_modules(module.backbone),
        ),
    )
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}

    def ftlab_step(opt):
        opt.zero_grad()
        module.task.training_step(module, batch).backward()
        opt.step()

    def plain_step(opt):
        opt.zero_grad()
        plain(**inputs).loss.backward()
        opt.step()

    module.train()
    plain.train()
    runs = {
        "ftlab": (ftlab_step, torch.optim.AdamW([p for _, p in module.trainable_parameters()])),
        "transformers+peft": (plain_step, torch.optim.AdamW([p for p in plain.parameters() if p.requires_grad])),
    }  # fmt: skip
    times = {k: [] for k in runs}
    for step, opt in runs.values():
        step(opt)
    for _ in range(REPEATS * 2):
        for name, (step, opt) in runs.items():
            start = time.perf_counter()
            step(opt)
            times[name].append(time.perf_counter() - start)
    tokens = int(batch["attention_mask"].sum())
    speed = {k: tokens / statistics.median(v) for k, v in times.items()}
    return {
        "batch": list(batch["input_ids"].shape), "real_tokens": tokens,
        "tokens_per_s": {k: round(v, 1) for k, v in speed.items()},
        "ftlab_over_plain": round(speed["ftlab"] / speed["transformers+peft"], 3),
    }  # fmt: skip


def generation() -> dict:
    datamodule, module = built("asdiv", packing=False, max_length=256)
    module.eval()
    backbone = module.backbone
    dataset = datamodule._dataset("test").dataset
    rows = [dataset[i] for i in range(PROMPTS)]
    collate = SFTCollate(backbone.tokenizer.pad_token_id)
    whole = collate(rows)
    singles = [collate([row]) for row in rows]
    pad = backbone.tokenizer.pad_token_id

    def decode(batch):
        return greedy(
            backbone, batch["gen_input_ids"], batch["gen_attention_mask"], NEW_TOKENS, [10**9], pad
        )

    times = {"batched": [], "one_at_a_time": []}
    decode(singles[0])
    for _ in range(REPEATS):
        start = time.perf_counter()
        together = decode(whole)
        times["batched"].append(time.perf_counter() - start)
        start = time.perf_counter()
        alone = [decode(s) for s in singles]
        times["one_at_a_time"].append(time.perf_counter() - start)
    same = all(torch.equal(together[i], alone[i][0]) for i in range(PROMPTS))
    speed = {k: PROMPTS / statistics.median(v) for k, v in times.items()}
    return {
        "prompts": PROMPTS, "new_tokens": NEW_TOKENS,
        "samples_per_s": {k: round(v, 2) for k, v in speed.items()},
        "batched_over_one_at_a_time": round(speed["batched"] / speed["one_at_a_time"], 2),
        "same_tokens": same,
    }  # fmt: skip


def main() -> None:
    started = time.time()
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "packing": [packing("asdiv", 256), packing("alpaca_demo", 512)],
        "ftlab_vs_plain_loop": against_plain_loop(),
        "generation": generation(),
    }  # fmt: skip
    out["seconds"] = round(time.time() - started)
    path = Path(__file__).with_name("sft.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
