"""What each fine-tuning method costs on the two Transformer families.

For MiniLM (the packaged real weights) and ViT-B/16 (random init: counts and speed do not
depend on the weights): trainable parameters and % of total, checkpoint bytes (what
ftlab saves: the trainable state), CPU training samples/s relative to `full` (fwd + bwd +
AdamW step on a fixed batch, after warm-up, all methods measured in this one process).
Accuracy after the same short budget comes from the transformer_peft study.

    .venv/bin/python experiments/peft_costs/measure.py
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.conftest import compose  # noqa: E402  (the same composition as ftlab-train)

METHODS = [
    "linear_probe", "last_n", "full", "lora", "adapter", "adapter_pfeiffer",
    "prompt", "prompt_deep", "prefix",
]  # fmt: skip
MODELS = {
    "minilm": (["model=minilm", "data=rotten_tomatoes"], 32),
    "vit_base": (["model=vit_base", "model.pretrained=false"], 4),
}


def cost(model: str, method: str, out: Path) -> dict:
    overrides, batch_size = MODELS[model]
    cfg = compose([*overrides, f"method={method}"], out / "cfg")
    torch.manual_seed(0)
    backbone = instantiate(cfg.model)
    module = instantiate(cfg.module, backbone=backbone, num_classes=2)
    instantiate(cfg.method).apply(module)
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    buffer = io.BytesIO()
    torch.save(module.trainable_state_dict(), buffer)

    batch = (
        backbone.example_batch(batch_size, 224)
        if backbone.modality == "image"
        else backbone.example_batch(batch_size, 64)
    )
    batch["labels"] = torch.randint(0, 2, (batch_size,))
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    module.train()
    times = []
    for step in range(5):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(module(batch), batch["labels"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    return {
        "model": model,
        "method": method,
        "params/trainable": trainable,
        "params/total": total,
        "params/trainable_pct": 100 * trainable / total,
        "checkpoint/bytes": buffer.getbuffer().nbytes,
        "speed/train_samples_per_s": batch_size / (sum(times) / len(times)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(REPO / "logs" / "peft_costs"))
    args = parser.parse_args()
    out = Path(args.out)
    torch.set_num_threads(torch.get_num_threads())
    rows = [cost(model, method, out) for model in MODELS for method in METHODS]
    for model in MODELS:
        full = next(r for r in rows if r["model"] == model and r["method"] == "full")
        for r in rows:
            if r["model"] == model:
                r["speed/relative_to_full"] = (
                    r["speed/train_samples_per_s"] / full["speed/train_samples_per_s"]
                )
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    here = Path(__file__).parent
    (here / "results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    lines = [
        f"Machine: {machine}.",
        "",
        "| model | method | trainable | % of total | checkpoint | samples/s vs full |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['method']} | {r['params/trainable']:,} | "
            f"{r['params/trainable_pct']:.2f}% | {r['checkpoint/bytes'] / 2**20:.2f} MiB | "
            f"{r['speed/relative_to_full']:.2f}x |"
        )
    (here / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
