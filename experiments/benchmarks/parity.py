"""ftlab (Lightning, the ``ftlab-train`` path) against a plain PyTorch loop: training
samples/s, for the same model, method, batch, precision and data.

Both sides get the model from ftlab's own ``build`` (backbone + method applied + head),
freshly seeded for every run, and train on the same list of batches collated once into
memory (so neither pays for data loading). The ftlab side is ``Trainer.fit`` with the
callbacks ``ftlab-train`` adds (method, per-epoch seeding, cost accounting), the module's
training step (metrics, logging) and its optimizer (AdamW param groups + warm-up/cosine
schedule); the plain side is ``zero_grad / forward / cross_entropy / backward / step``
with AdamW and a LambdaLR over the trainable parameters. Runs alternate
(ftlab, plain, ftlab, plain, ...) and each side reports its median, so a busy shared CPU
slows both alike; the ratio is the figure to read.

    .venv/bin/python experiments/benchmarks/parity.py [--repeats 3] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.conftest import compose  # noqa: E402

from ftlab.callbacks import CostMetrics, EpochSeed  # noqa: E402
from ftlab.train import build  # noqa: E402

WARMUP = 5
DATA = [
    "data=fashion_mnist", "data.samples_per_class=100", "data.image_size=64",
    "data.batch_size=32", "data.val_samples=16", "data.test_samples=16",
    "logger=none", "callbacks=none", "print_config=false", "feature_cache=false",
]  # fmt: skip
MODELS = {
    "efficientnet_lite0 (CNN)": ["model=timm", "model.name=tf_efficientnet_lite0"],
    "vit_tiny (ViT)": ["model=vit_tiny", "+model.model_kwargs.img_size=64"],
}
METHODS = {
    "efficientnet_lite0 (CNN)": ["full", "linear_probe", "lora"],
    "vit_tiny (ViT)": ["full", "linear_probe", "lora", "adapter", "prefix"],
}


class StepClock(pl.Callback):
    def __init__(self) -> None:
        self.start = self.end = 0.0
        self.samples = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == WARMUP:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= WARMUP:
            self.samples += len(batch["labels"])
            self.end = time.perf_counter()


class Batches:
    """The same in-memory batches, as the one dataloader Lightning iterates (a plain list
    would read as a list of dataloaders)."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def fresh(model: str, method: str):
    cfg = compose(
        [*MODELS[model], "model.pretrained=false", f"method={method}", *DATA],
        REPO / "logs" / "bench_parity",
    )
    pl.seed_everything(0, verbose=False)
    datamodule, _, module, callback = build(cfg)
    callback.apply(module)
    return cfg, datamodule, module, callback


def in_memory_batches(model: str, method: str, steps: int) -> list[dict]:
    _, datamodule, _, _ = fresh(model, method)
    datamodule.setup("fit")
    batches = []
    for batch in datamodule.train_dataloader():
        batches.append(batch)
        if len(batches) == steps:
            return batches
    raise SystemExit(f"only {len(batches)} batches; lower --steps")


def ftlab_run(model: str, method: str, batches: list[dict]) -> float:
    cfg, _, module, callback = fresh(model, method)
    clock = StepClock()
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=len(batches), max_epochs=1, logger=False,
        callbacks=[EpochSeed(cfg.seed), callback, CostMetrics(), clock],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=Batches(batches))
    return clock.samples / (clock.end - clock.start)


def plain_run(model: str, method: str, batches: list[dict]) -> float:
    cfg, _, module, _ = fresh(model, method)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(cfg.method.lr), weight_decay=0.01)
    total = len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total))
    )
    module.train()
    samples, start = 0, 0.0
    for i, batch in enumerate(batches):
        if i == WARMUP:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits = module.head(module.backbone(batch))
        loss = F.cross_entropy(logits.float(), batch["labels"])
        loss.backward()
        optimizer.step()
        scheduler.step()
        if i >= WARMUP:
            samples += len(batch["labels"])
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_float32_matmul_precision("high")
    rows = []
    for model, methods in METHODS.items():
        for method in methods:
            batches = in_memory_batches(model, method, args.steps)
            ftlab, plain = [], []
            for _ in range(args.repeats):
                ftlab.append(ftlab_run(model, method, batches))
                plain.append(plain_run(model, method, batches))
            row = {
                "model": model,
                "method": method,
                "ftlab_samples_per_s": statistics.median(ftlab),
                "plain_samples_per_s": statistics.median(plain),
                "ftlab_runs": ftlab,
                "plain_runs": plain,
            }
            row["ratio"] = row["ftlab_samples_per_s"] / row["plain_samples_per_s"]
            rows.append(row)
            print(f"{model:26s} {method:13s} ftlab {row['ftlab_samples_per_s']:7.1f}  "
                  f"plain {row['plain_samples_per_s']:7.1f}  ratio {row['ratio']:.3f}", flush=True)  # fmt: skip
    machine = (
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    out = {
        "machine": machine,
        "batch_size": 32,
        "image_size": 64,
        "precision": "32-true",
        "timed_steps": args.steps - WARMUP,
        "repeats": args.repeats,
        "rows": rows,
    }
    here = Path(__file__).parent
    (here / "parity.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"ftlab vs a plain PyTorch loop, training samples/s ({machine}; batch 32, 64 px, fp32, "
        f"median of {args.repeats} alternating runs of {args.steps - WARMUP} timed steps)",
        "",
        "| model | method | ftlab | plain loop | ratio |",
        "|:--|:--|---:|---:|---:|",
        *(
            f"| {r['model']} | {r['method']} | {r['ftlab_samples_per_s']:.1f} | "
            f"{r['plain_samples_per_s']:.1f} | {r['ratio']:.3f} |"
            for r in rows
        ),
    ]
    (here / "parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
