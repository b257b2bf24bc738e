"""The frozen-part feature cache on and off: epoch time after the first.

Linear probe (the whole backbone cached) and the default job's last_n(n=2) (stem and
blocks 1..5 of 7 cached), each with and without the cache, in one process one after the
other, on the default job's data (EfficientNet-Lite0, 100 Fashion-MNIST images per class
at 96 px); epoch time is measured from one train-epoch start to the next (validation
included), so the first epoch (where the cache is filled) is reported separately.

    .venv/bin/python experiments/benchmarks/feature_cache.py
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.conftest import compose  # noqa: E402

from ftlab.callbacks import FeatureCache  # noqa: E402
from ftlab.train import build  # noqa: E402


class EpochClock(pl.Callback):
    def __init__(self):
        self.starts = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module):
        self.starts.append(time.perf_counter())


def run(method: str, cache: bool, epochs: int = 4) -> dict:
    cfg = compose([f"method={method}", "logger=none"], REPO / "logs" / "bench_cache")
    pl.seed_everything(0)
    datamodule, _, module, callback = build(cfg)
    clock, feature_cache = EpochClock(), FeatureCache(cache)
    trainer = pl.Trainer(
        max_epochs=epochs, callbacks=[callback, feature_cache, clock], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, accelerator="cpu",
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    epochs_s = [b - a for a, b in zip(clock.starts, clock.starts[1:])]
    return {
        "method": method,
        "cache": cache,
        "cached": feature_cache.kind,
        "cache_fill_s": feature_cache.seconds,
        "first_epoch_s": epochs_s[0],
        "later_epoch_s": sum(epochs_s[1:]) / len(epochs_s[1:]),
        "fit_s": time.perf_counter() - start,
        "val_acc": float(trainer.callback_metrics["val/acc"]),
    }


def main():
    rows, speedup = [], {}
    for method in ("linear_probe", "last_n"):
        off, on = run(method, False), run(method, True)
        rows += [off, on]
        speedup[method] = off["later_epoch_s"] / on["later_epoch_s"]
    out = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "rows": rows,
        "later_epoch_speedup": speedup,
    }
    Path(__file__).with_name("feature_cache.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
