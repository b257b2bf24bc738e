"""ftlab's own prompt and prefix tuning against Hugging Face peft's, on the same BERT-type
encoder (the packaged all-MiniLM-L6-v2): training samples/s and activation memory.

Both sides: the same weights, 10 virtual tokens, a fresh linear head on mean-pooled
features, AdamW over what trains, the same fixed batch (32 snippets x 64 tokens).
ftlab: ``model=minilm method=prompt|prefix`` built as ``ftlab-train`` builds it (frozen
sub-modules stay in eval mode, so the frozen encoder's dropout is off). peft:
``get_peft_model(AutoModel, PromptTuningConfig | PrefixTuningConfig)`` with
``task_type=FEATURE_EXTRACTION``, as a user would train it (``model.train()``: dropout on
in the frozen encoder), and again with the encoder kept in eval mode, like for like. Speed: median over alternating repeats of timed steps
(forward + backward + AdamW) after warm-up, side by side in one process. Memory: the bytes
of the tensors autograd saves for the backward pass (counted with
``torch.autograd.graph.saved_tensors_hooks``, parameters excluded), which is what a
method's activation memory is, on any device; CPU peak RSS would be too coarse.

    .venv/bin/python experiments/benchmarks/native_vs_peft.py
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.conftest import compose  # noqa: E402

BATCH, TOKENS, VIRTUAL, WARMUP, TIMED, REPEATS = 32, 64, 10, 3, 10, 3


def ftlab_model(method: str):
    cfg = compose(["model=minilm", "data=rotten_tomatoes", f"method={method}",
                   f"method.num_tokens={VIRTUAL}"], REPO / "logs" / "bench_native")  # fmt: skip
    torch.manual_seed(0)
    backbone = instantiate(cfg.model)
    module = instantiate(cfg.module, backbone=backbone, num_classes=2)
    instantiate(cfg.method).apply(module)
    return module, module


class PeftClassifier(nn.Module):
    """peft's wrapped encoder + mean pooling over every position + a linear head.
    ``frozen_eval``: keep the (frozen) encoder in eval mode while training, as ftlab keeps
    frozen sub-modules, so its dropout neither runs nor saves masks."""

    def __init__(self, peft_model: nn.Module, width: int, frozen_eval: bool = False) -> None:
        super().__init__()
        self.encoder = peft_model
        self.head = nn.Linear(width, 2)
        self.frozen_eval = frozen_eval

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_eval:
            self.encoder.eval()
        return self

    def forward(self, batch):
        out = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return self.head(out.last_hidden_state.mean(dim=1))


def peft_model(method: str, frozen_eval: bool = False):
    from peft import PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModel

    from ftlab.backbones.assets import minilm_path

    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(str(minilm_path()), add_pooling_layer=False)
    config = (PromptTuningConfig if method == "prompt" else PrefixTuningConfig)(
        task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=VIRTUAL
    )
    width = encoder.config.hidden_size
    model = PeftClassifier(get_peft_model(encoder, config), width, frozen_eval)
    return model, model


def token_batch() -> dict[str, torch.Tensor]:
    """One fixed batch of real-tokenizer ids, the same for both sides."""
    from ftlab.backbones import HFBackbone
    from ftlab.backbones.assets import minilm_path

    return HFBackbone(str(minilm_path())).example_batch(BATCH, TOKENS)


def saved_activation_bytes(model: nn.Module, step, batch) -> int:
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(step(batch), torch.zeros(BATCH, dtype=torch.long))
    loss.backward()
    return sum(seen.values())


def samples_per_s(model: nn.Module, step, batch) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    labels = torch.zeros(BATCH, dtype=torch.long)
    for i in range(WARMUP + TIMED):
        if i == WARMUP:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(step(batch), labels).backward()
        opt.step()
    return BATCH * TIMED / (time.perf_counter() - start)


def main() -> None:
    rows, batch = [], token_batch()
    for method in ("prompt", "prefix"):
        built = {}
        sides = (
            ("ftlab", ftlab_model),
            ("peft", peft_model),
            ("peft, encoder in eval mode", lambda m: peft_model(m, frozen_eval=True)),
        )
        for side, make in sides:
            try:
                model, step = make(method)
                built[side] = (model, step, batch)
                with torch.no_grad():
                    step(batch)  # a forward that fails is reported, not timed
            except Exception as err:  # peft's prefix tuning needs a KV-cache API
                built[side] = None
                rows.append({"method": method, "side": side, "error":
                             f"{type(err).__name__}: {str(err).splitlines()[0][:200]}",
                             "trace": traceback.format_exc(limit=3)})  # fmt: skip
        speeds = {side: [] for side, b in built.items() if b}
        for _ in range(REPEATS):
            for side in speeds:
                speeds[side].append(samples_per_s(*built[side]))
        for side in speeds:
            model, step, _ = built[side]
            rows.append({
                "method": method, "side": side,
                "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "samples_per_s": statistics.median(speeds[side]), "runs": speeds[side],
                "saved_activation_bytes": saved_activation_bytes(model, step, batch),
            })  # fmt: skip
        for row in (r for r in rows if r["method"] == method):
            print(json.dumps({k: v for k, v in row.items() if k != "trace"}), flush=True)
    import peft
    import transformers

    machine = (
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"peft {peft.__version__}, transformers {transformers.__version__}"
    )
    here = Path(__file__).parent
    out = {"machine": machine, "batch": BATCH, "tokens": TOKENS, "virtual_tokens": VIRTUAL,
           "timed_steps": TIMED, "repeats": REPEATS, "rows": rows}  # fmt: skip
    (here / "native_vs_peft.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"ftlab's prompt/prefix vs peft's on all-MiniLM-L6-v2 ({machine}; batch {BATCH} x "
        f"{TOKENS} tokens, {VIRTUAL} virtual tokens, median of {REPEATS} alternating runs of "
        f"{TIMED} steps)",
        "",
        "| method | implementation | trainable | samples/s | saved activations |",
        "|:--|:--|--:|--:|--:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['side']} | | fails: {r['error']} | |")
        else:
            lines.append(
                f"| {r['method']} | {r['side']} | {r['trainable']:,} | {r['samples_per_s']:.1f} | "
                f"{r['saved_activation_bytes'] / 2**20:.1f} MiB |"
            )
    (here / "native_vs_peft.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
