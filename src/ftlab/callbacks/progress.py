"""Lightning's Rich progress bar without a host synchronisation per training step."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar

from ftlab.module import is_logging_step


class ProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``, reading the logged metrics only when they change.

    Lightning converts every progress-bar metric to a Python number after every training
    batch. The training loss is a CUDA tensor on a GPU, so each conversion waits for the
    step's kernels to finish: the GPU idles while the next step is launched, a few per
    cent of a ViT-B step. So the module logs ``train/loss`` without ``prog_bar=True``,
    every ``log_every_n_steps``, and this bar reads it from the trainer's callback metrics
    then (and every metric outside training), showing the last values in between.
    """

    SHOWN = ("train/loss",)  # logged for the loggers, shown here

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: dict[str, Any] | None = None
        self._read_at = -1

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        step = trainer.global_step
        stale = step != self._read_at and is_logging_step(trainer, step)
        if self._shown is None or not trainer.training or stale:
            shown = super().get_metrics(trainer, pl_module)
            for name in self.SHOWN:
                value = trainer.callback_metrics.get(name)
                if value is not None:
                    shown[name] = float(value)  # the one read, every log_every_n_steps
            self._shown = shown
            self._read_at = step
        return self._shown
