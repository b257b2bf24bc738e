"""What a run costs: parameters, throughput, peak memory, fit time.

Throughput counts every training batch after the first few (warm-up, compilation) over
windows of consecutive steps: a window opens at an epoch's first step and closes when
validation starts or the epoch ends, so data loading is included and validation is not.
On CUDA the device is synchronised only where a window opens or closes (and once at the
end of warm-up), never per step, so measuring does not stall the launch queue.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn


def count_parameters(module: nn.Module) -> dict[str, int]:
    params = {id(p): p for p in module.parameters()}.values()
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"params/trainable": trainable, "params/total": total}


def reset_peak_rss() -> bool:
    """Start a new peak resident-set measurement for this process: Linux resets its
    high-water mark (VmHWM) when "5" is written to /proc/self/clear_refs. Without it, the
    peak of a job run inside a sweep's process would be the largest of every job before
    it. False where the system cannot reset it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """This process's peak resident set since the last :func:`reset_peak_rss` (Linux's
    VmHWM), else since it started (getrusage)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


class CostMetrics(pl.Callback):
    def __init__(self, warmup_batches: int = 3) -> None:
        self.warmup_batches = warmup_batches
        self.reset()

    def reset(self) -> None:
        self.samples = self.all_samples = 0
        self.seconds = self.all_seconds = 0.0
        self.seen = 0
        self._start: float | None = None  # the open window's start
        self._pending = 0  # samples in the open window
        self._fit_start = 0.0
        self.fit_seconds = 0.0
        self.params: dict[str, int] = {}
        self.peak: tuple[int, str] | None = None

    def _now(self, pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.reset()
        self.params = count_parameters(pl_module)
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        else:
            reset_peak_rss()
        self._fit_start = time.perf_counter()
        for logger in trainer.loggers:
            logger.log_hyperparams({**self.params, "params/trainable_pct": self.trainable_pct})

    @property
    def trainable_pct(self) -> float:
        total = self.params.get("params/total", 0)
        return 100.0 * self.params.get("params/trainable", 0) / total if total else 0.0

    def _close_window(self, pl_module: pl.LightningModule) -> None:
        if self._start is None:
            return
        elapsed = self._now(pl_module) - self._start
        self.all_samples += self._pending
        self.all_seconds += elapsed
        if self.seen > self.warmup_batches:  # the window holds post-warm-up steps only
            self.samples += self._pending
            self.seconds += elapsed
        self._start, self._pending = None, 0

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if self._start is None:  # an epoch's first step, or the first after warm-up
            self._start = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        self.seen += 1
        self._pending += _batch_size(batch) * trainer.world_size
        if self.seen == self.warmup_batches:  # warm-up steps count in all_* only
            self._close_window(pl_module)

    def on_test_start(self, trainer, pl_module) -> None:
        if not self.params:  # tested without a fit (method=zero_shot trains nothing)
            self.params = count_parameters(pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not self.params:
            self.params = count_parameters(pl_module)
        self._close_window(pl_module)  # validation time is not training time

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._close_window(pl_module)

    @property
    def samples_per_s(self) -> float | None:
        """After warm-up; a run too short to have any falls back to every batch."""
        if self.seconds:
            return self.samples / self.seconds
        return self.all_samples / self.all_seconds if self.all_seconds else None

    def on_fit_end(self, trainer, pl_module) -> None:
        self._close_window(pl_module)
        self.fit_seconds = time.perf_counter() - self._fit_start

    def on_train_end(self, trainer, pl_module) -> None:
        self._close_window(pl_module)
        # read here: by on_fit_end Lightning has moved the module back to the CPU
        if pl_module.device.type == "cuda":
            self.peak = (int(torch.cuda.max_memory_allocated(pl_module.device)), "cuda_allocated")
        else:
            self.peak = (peak_rss_bytes(), "process_rss")

    def summary(self) -> dict[str, Any]:
        peak, kind = self.peak or (peak_rss_bytes(), "process_rss")
        return {
            **self.params,
            "params/trainable_pct": self.trainable_pct,
            "speed/train_samples_per_s": self.samples_per_s,
            "memory/peak_bytes": peak,
            "memory/kind": kind,
            "time/fit_s": self.fit_seconds,
        }


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        return int(batch["labels"].shape[0])
    return int(batch[0].shape[0])
