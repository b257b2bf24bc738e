"""The loss watchdog: a run whose training loss becomes NaN or infinite stops, naming the
first bad step, and no checkpoint holds the weights that loss has reached.

Every run has one (``ftlab-train`` adds it whatever ``callbacks=`` says: it is a safety
net, not an option); ``module.loss_check`` chooses how it reads the loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch

from ftlab.errors import ConfigError, TrainingDiverged
from ftlab.module import is_logging_step

CHECKS = ("auto", "step", "deferred")


class LossWatchdog(pl.Callback):
    """Stop on a non-finite training loss, taken from what ``training_step`` returned (the
    loss that trains, a method's regulariser included).

    ``check="step"`` reads the loss after every batch. On an accelerator that read is a
    host synchronisation that stalls the GPU every step, and under DDP a rank that stops
    alone breaks the others' gradient all-reduce (gloo) or leaves them waiting in it
    (NCCL). So ``deferred`` (what ``auto`` does off the CPU and under DDP, chosen when
    training starts) records the first non-finite step on the device and reads it every
    ``trainer.log_every_n_steps`` (when the loggers read the loss anyway), before
    validation, at the epoch's end and before any checkpoint is written: every rank stops
    at the same check. The error names the step where the loss went non-finite either
    way, the learning rate, the precision and the last good checkpoint.

    Lightning runs checkpoint callbacks after all others, so a check at a batch's end
    comes before a checkpoint written at that batch's end. The last good checkpoint is the
    newest one a check let through: a checkpoint callback names its next file before the
    refused write, so its state would name a file that never appears.
    """

    def __init__(self, check: str = "auto") -> None:
        if check not in CHECKS:
            raise ConfigError(f"module.loss_check={check!r} is not one of {', '.join(CHECKS)}.")
        self.check = check
        self._step = 0  # the global step of the batch in flight (it moves at the update)
        # deferred: the first non-finite (step, epoch, loss), on the device; None: step
        self._nonfinite: tuple[torch.Tensor, ...] | None = None
        self._good = ""  # the newest checkpoint written with a finite loss

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        deferred = self.check == "deferred" or (
            self.check == "auto" and (pl_module.device.type != "cpu" or trainer.world_size > 1)
        )
        self._nonfinite = (
            tuple(
                torch.full((), -1.0, dtype=torch.float64, device=pl_module.device) for _ in range(3)
            )
            if deferred
            else None
        )
        self._good = latest_checkpoint(trainer)  # a resumed run's, restored by now

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None:  # None: training_step skipped the batch
            self._watch(trainer, loss.detach())
        if is_logging_step(trainer, trainer.global_step):
            self._read(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._read(trainer)  # before validation, and the checkpoint that follows it

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._read(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._read(trainer)  # never write weights that a non-finite loss has reached
        self._good = latest_checkpoint(trainer)  # its path is set: the one being written

    def _watch(self, trainer: pl.Trainer, loss: torch.Tensor) -> None:
        if self._nonfinite is None:
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    self._message(trainer, loss.item(), self._step, trainer.current_epoch)
                )
            return
        step, epoch, value = self._nonfinite
        first = ~torch.isfinite(loss) & (step < 0)
        self._nonfinite = (
            torch.where(first, float(self._step), step),
            torch.where(first, float(trainer.current_epoch), epoch),
            torch.where(first, loss.double(), value),
        )

    def _read(self, trainer: pl.Trainer) -> None:
        if self._nonfinite is None:
            return
        step, epoch, value = torch.stack(self._nonfinite).tolist()  # the one host sync
        if step >= 0:
            raise TrainingDiverged(self._message(trainer, value, int(step), int(epoch)))

    def _message(self, trainer: pl.Trainer, loss: float, step: int, epoch: int) -> str:
        """What went non-finite where, the likely causes, and the checkpoint to go back to."""
        lrs = [g["lr"] for opt in trainer.optimizers for g in opt.param_groups]
        kept = (
            f" The last good checkpoint is {self._good}."
            if self._good
            else " No checkpoint was saved yet."
        )
        return (
            f"non-finite training loss ({loss}) at step {step} "
            f"(epoch {epoch}), learning rate up to {max(lrs, default=0):.3g}, "
            f"precision {trainer.precision}. Likely causes: a learning rate too high (lower "
            "method.lr) or fp16 overflow (use trainer.precision=bf16-mixed or 32-true)." + kept
        )


def latest_checkpoint(trainer: pl.Trainer) -> str:
    """The newest path the trainer's checkpoint callbacks hold ('' when none)."""
    saved = trainer.checkpoint_callbacks  # the newest first: an unmonitored one's latest
    latest = [c.best_model_path for c in saved if getattr(c, "monitor", "") is None]
    newest = [*latest, *(getattr(c, "last_model_path", "") for c in saved)]
    return next((p for p in [*newest, *(c.best_model_path for c in saved)] if p), "")
