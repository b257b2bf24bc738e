"""Faults injected into real runs, as Lightning callbacks a test adds from the command line:

    ftlab-train ... +callbacks.fault._target_=tests.faults.KillAt +callbacks.fault.step=10

Each acts at one global step, so where the run breaks is deterministic.
"""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl
import torch


class _AtStep(pl.Callback):
    """Fire at one global step, on every rank or (``rank=N``) on one rank of a DDP run."""

    def __init__(self, step: int, rank: int | None = None) -> None:
        self.step = step
        self.rank = rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and self.rank in (None, trainer.global_rank):
            self.fire(pl_module)

    def fire(self, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError


class KillAt(_AtStep):
    """SIGKILL this process: no handler, no cleanup, like a preempted or OOM-killed job."""

    def fire(self, pl_module):
        os.kill(os.getpid(), signal.SIGKILL)


class PoisonAt(_AtStep):
    """Turn one trainable weight to inf, as a diverging update would."""

    def fire(self, pl_module):
        with torch.no_grad():
            next(p for p in pl_module.parameters() if p.requires_grad).fill_(float("inf"))


class OutOfMemoryAt(_AtStep):
    """Raise the error the CUDA caching allocator raises when an allocation fails."""

    def fire(self, pl_module):
        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
            "79.10 GiB of which 1.02 GiB is free."
        )


class KillAtTest(pl.Callback):
    """SIGKILL this process when testing starts: training and its last checkpoint are done,
    the results are not."""

    def on_test_start(self, trainer, pl_module) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class OrphanParameter(pl.Callback):
    """After the method has set what trains, add a trainable parameter nothing uses (what a
    buggy method would do)."""

    def setup(self, trainer, pl_module, stage) -> None:
        orphan = torch.nn.Parameter(torch.zeros(3))
        pl_module.backbone.register_parameter("orphan", orphan)
