"""Measuring instruments for real runs, added on the command line as Lightning callbacks:

ftlab-train ... +callbacks.trace._target_=tests.probes.LossTrace +callbacks.trace.path=F
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from pathlib import Path

import lightning.pytorch as pl
import torch


class LossTrace(pl.Callback):
    """Write the training loss of every step, averaged over the ranks (so the loss of the
    global batch when ranks hold equal shares), to a JSON list."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"].detach()
        self.losses.append(float(trainer.strategy.reduce(loss, reduce_op="mean")))

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.path.write_text(json.dumps(self.losses))


class HostReads(pl.Callback):
    """Record every tensor value read back on the host (``.item()``, ``.tolist()``,
    ``bool()``, ``float()``, ``int()``) while training runs, with the global step it
    happened at. On a GPU each one waits for the queued kernels: a read every step leaves
    the GPU idle between steps. torch's optimizers and timm's constructors are left out
    (on the CPU they read step counters that live on the GPU as tensors no one reads)."""

    READS: list[tuple[int, str]] = []  # (global step, where); the last run's
    METHODS = ("item", "tolist", "__bool__", "__float__", "__int__")

    def on_train_start(self, trainer, pl_module) -> None:
        HostReads.READS = reads = []
        self._originals = {name: getattr(torch.Tensor, name) for name in self.METHODS}

        def counting(name, original):
            def read(tensor, *args, **kwargs):
                frames = traceback.extract_stack(limit=14)[:-1]
                if not any("/torch/optim/" in f.filename for f in frames):
                    where = f"{name} <- {frames[-1].filename}:{frames[-1].lineno}"
                    reads.append((trainer.global_step, where))
                return original(tensor, *args, **kwargs)

            return read

        for name, original in self._originals.items():
            setattr(torch.Tensor, name, counting(name, original))

    def on_train_end(self, trainer, pl_module) -> None:
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)


class SampleIds(pl.Callback):
    """Write the ``sample_id``s of every training batch this rank reads, one JSON line per
    step (``{"step", "epoch", "ids"}``), to ``<path>.rank<R>.jsonl``, flushed as it goes;
    those of validation batches (not the sanity check's) to ``<path>.val.rank<R>.jsonl``.

    With ``$FTLAB_TEST_KILL_AT_STEP`` set, the run's whole process group (every rank) is
    SIGKILLed when that step is about to start, as a preempted node dies: nothing is saved
    and no hook runs. The variable lives outside the config, so the resumed run's config is
    the one the killed run recorded."""

    def __init__(self, path: str) -> None:
        self.path = path
        kill = os.environ.get("FTLAB_TEST_KILL_AT_STEP")
        self.kill_at_step = int(kill) if kill else None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.kill_at_step:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        self._write(trainer, batch, "")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._write(trainer, batch, ".val")

    def _write(self, trainer, batch, split: str) -> None:
        line = {"step": trainer.global_step, "epoch": trainer.current_epoch,
                "ids": batch["sample_id"].tolist()}  # fmt: skip
        with open(f"{self.path}{split}.rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
