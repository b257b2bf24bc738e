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
    python experiments/benchmarks/parity.py --gpu   # ViT-B/16 and ResNet-50, 224 px, bf16

With ``--gpu`` both sides run what ``ftlab-train trainer=gpu`` runs on CUDA: bf16 autocast,
fused AdamW, channels-last CNNs, and (rows marked compiled) ``torch.compile`` of the
backbone (``module.compile=true`` on the ftlab side, ``backbone.compile()`` on the plain
one). The clock is read after a CUDA synchronisation at both ends of the timed steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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

from ftlab.callbacks import CostMetrics, EpochSeed, ProgressBar  # noqa: E402
from ftlab.train import build  # noqa: E402

WARMUP = 5
CPU = {
    "device": "cpu",
    "precision": "32-true",
    "image_size": 64,
    "batch_size": 32,
    "per_class": 100,
}
GPU = {
    "device": "cuda",
    "precision": "bf16-mixed",
    "image_size": 224,
    "batch_size": 128,
    "per_class": 400,
}
MODELS = {
    "efficientnet_lite0 (CNN)": ["model=timm", "model.name=tf_efficientnet_lite0"],
    "vit_tiny (ViT)": ["model=vit_tiny", "+model.model_kwargs.img_size=64"],
    "vit_base (ViT-B/16)": ["model=vit_base"],
    "resnet50 (CNN)": ["model=timm", "model.name=resnet50"],
}
# (model, method, variant): "compiled" compiles the backbone on both sides; "progress bar"
# adds ftlab-train's progress bar (drawn to /dev/null as if to a terminal) on the ftlab side
CPU_ROWS = [("efficientnet_lite0 (CNN)", m, "") for m in ("full", "linear_probe", "lora")]
CPU_ROWS += [("vit_tiny (ViT)", m, "") for m in ("full", "linear_probe", "lora", "adapter")]
CPU_ROWS += [("vit_tiny (ViT)", "prefix", "")]
GPU_ROWS = [("vit_base (ViT-B/16)", m, "") for m in ("full", "lora", "adapter", "linear_probe")]
GPU_ROWS += [("resnet50 (CNN)", "full", ""), ("vit_base (ViT-B/16)", "full", "progress bar")]
GPU_ROWS += [("vit_base (ViT-B/16)", "full", "compiled")]
SETTING = dict(CPU)  # set once by main(): --gpu switches to GPU


def data_overrides() -> list[str]:
    return [
        "data=fashion_mnist", f"data.samples_per_class={SETTING['per_class']}",
        f"data.image_size={SETTING['image_size']}", f"data.batch_size={SETTING['batch_size']}",
        "data.val_samples=16", "data.test_samples=16", "logger=none", "callbacks=none",
        "print_config=false", "feature_cache=false",
    ]  # fmt: skip


def cuda() -> bool:
    return SETTING["device"] == "cuda"


def sync() -> None:
    if cuda():
        torch.cuda.synchronize()


class StepClock(pl.Callback):
    def __init__(self) -> None:
        self.start = self.end = 0.0
        self.samples = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == WARMUP:
            sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= WARMUP:
            self.samples += len(batch["labels"])
            if batch_idx == trainer.num_training_batches - 1:
                sync()
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


def fresh(model: str, method: str, compiled: bool = False):
    cfg = compose(
        [*MODELS[model], "model.pretrained=false", f"method={method}", *data_overrides()]
        + (["module.compile=true"] if compiled else []),
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
        if cuda():  # in GPU memory before either side starts: neither pays for the copy
            batch = {k: v.cuda(non_blocking=True) for k, v in batch.items()}
        batches.append(batch)
        if len(batches) == steps:
            return batches
    raise SystemExit(f"only {len(batches)} batches; lower --steps")


def ftlab_run(model: str, method: str, variant: str, batches: list[dict]) -> float:
    cfg, _, module, callback = fresh(model, method, variant == "compiled")
    clock = StepClock()
    callbacks = [EpochSeed(cfg.seed), callback, CostMetrics(), clock]
    if variant == "progress bar":
        devnull = open(os.devnull, "w")  # noqa: SIM115 (closed below)
        callbacks.append(ProgressBar(console_kwargs={"file": devnull, "force_terminal": True}))
    trainer = pl.Trainer(
        accelerator="gpu" if cuda() else "cpu", devices=1, precision=SETTING["precision"],
        max_steps=len(batches), max_epochs=1, logger=False,
        callbacks=callbacks, enable_checkpointing=False,
        enable_progress_bar=variant == "progress bar", enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=Batches(batches))
    if variant == "progress bar":
        devnull.close()
    return clock.samples / (clock.end - clock.start)


def plain_run(model: str, method: str, variant: str, batches: list[dict]) -> float:
    cfg, _, module, _ = fresh(model, method)
    device = SETTING["device"]
    module.to(device)
    if cuda() and module.backbone.anatomy.family == "cnn":
        module.backbone.to(memory_format=torch.channels_last)
    if variant == "compiled":
        module.backbone.compile()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=float(cfg.method.lr), weight_decay=0.01, fused=cuda() or None
    )
    total = len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total))
    )
    module.train()
    samples, start = 0, 0.0
    for i, batch in enumerate(batches):
        if i == WARMUP:
            sync()
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda()):
            logits = module.head(module.backbone(batch))
        loss = F.cross_entropy(logits.float(), batch["labels"])
        loss.backward()
        optimizer.step()
        scheduler.step()
        if i >= WARMUP:
            samples += len(batch["labels"])
    sync()
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--gpu", action="store_true", help="ViT-B/16 and ResNet-50 on CUDA")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "parity")
    args = parser.parse_args()
    SETTING.update(GPU if args.gpu else CPU)
    torch.set_float32_matmul_precision("high")
    if args.gpu:
        machine = f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    else:
        machine = f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    out = {
        "machine": machine,
        "batch_size": SETTING["batch_size"],
        "image_size": SETTING["image_size"],
        "precision": SETTING["precision"],
        "timed_steps": args.steps - WARMUP,
        "repeats": args.repeats,
        "rows": [],
    }
    for model, method, variant in GPU_ROWS if args.gpu else CPU_ROWS:
        batches = in_memory_batches(model, method, args.steps)
        ftlab, plain = [], []
        try:
            for _ in range(args.repeats):
                ftlab.append(ftlab_run(model, method, variant, batches))
                plain.append(plain_run(model, method, variant, batches))
        except Exception as err:  # one failure must not lose the other rows
            print(f"{model} {method} {variant}: {err!r}"[:400], flush=True)
            continue
        row = {
            "model": model,
            "method": method + (f" ({variant})" if variant else ""),
            "ftlab_samples_per_s": statistics.median(ftlab),
            "plain_samples_per_s": statistics.median(plain),
            "ftlab_runs": ftlab,
            "plain_runs": plain,
        }
        row["ratio"] = row["ftlab_samples_per_s"] / row["plain_samples_per_s"]
        out["rows"].append(row)
        print(f"{model:26s} {row['method']:24s} ftlab {row['ftlab_samples_per_s']:8.1f}  "
              f"plain {row['plain_samples_per_s']:8.1f}  ratio {row['ratio']:.3f}", flush=True)  # fmt: skip
        # written after every row: a run cut short keeps what it measured
        args.out.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
        del batches
        if args.gpu:
            torch.cuda.empty_cache()
    lines = [
        f"ftlab vs a plain PyTorch loop, training samples/s ({machine}; batch "
        f"{SETTING['batch_size']}, {SETTING['image_size']} px, {SETTING['precision']}, "
        f"median of {args.repeats} alternating runs of {args.steps - WARMUP} timed steps)",
        "",
        "| model | method | ftlab | plain loop | ratio |",
        "|:--|:--|---:|---:|---:|",
        *(
            f"| {r['model']} | {r['method']} | {r['ftlab_samples_per_s']:.1f} | "
            f"{r['plain_samples_per_s']:.1f} | {r['ratio']:.3f} |"
            for r in out["rows"]
        ),
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
