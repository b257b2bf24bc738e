"""Measuring instruments for real runs, added on the command line as Lightning callbacks:

ftlab-train ... +callbacks.trace._target_=tests.probes.LossTrace +callbacks.trace.path=F
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl


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
