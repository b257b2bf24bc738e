"""The LightningModule: backbone + fresh head + loss + metrics + optimizer.

What trains is decided by the method callback (see :mod:`ftlab.methods`); this module
builds its optimizer from whatever is trainable when ``configure_optimizers`` runs
(groups and schedule: :mod:`ftlab.optim`), and saves only that state in checkpoints
(:mod:`ftlab.trainable_state`). A non-finite loss is the loss watchdog's
(:mod:`ftlab.callbacks.loss_watchdog`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from ftlab import optim, trainable_state
from ftlab.backbones.anatomy import Capability
from ftlab.backbones.base import Backbone
from ftlab.errors import ConfigError
from ftlab.hardware import fused_optimizer_kwargs
from ftlab.settings import check_types
from ftlab.tasks import Classify, Task

COMPILE_MODES = (
    False,
    True,
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)


def is_logging_step(trainer: pl.Trainer, step: int) -> bool:
    """Whether loggers write after optimizer step ``step`` (1-based, as ``global_step``
    reads after it): every ``trainer.log_every_n_steps``."""
    return step % max(1, trainer.log_every_n_steps) == 0


# Frozen sub-modules are kept in eval mode on purpose (no dropout, no BatchNorm updates).
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


class FineTuneModule(pl.LightningModule):
    """A backbone, the method's changes to it, and the task's head, loss and metrics."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        warmup_fraction: float = 0.1,
        min_lr_ratio: float = 0.01,
        label_smoothing: float = 0.0,
        head_dropout: float = 0.0,
        weight_decay_norms: bool = False,
        compile: bool | str = False,
        compile_backend: str = "inductor",
        channels_last: bool | str = "auto",
        task: Task | None = None,
    ) -> None:
        check_types(FineTuneModule.__init__, locals(), "module.")
        super().__init__()
        if not 0 <= warmup_fraction < 1:
            raise ConfigError(f"module.warmup_fraction={warmup_fraction} must be in [0, 1).")
        if compile not in COMPILE_MODES:
            raise ConfigError(
                f"module.compile={compile!r} is not one of {', '.join(map(str, COMPILE_MODES))}."
            )
        if channels_last not in ("auto", True, False):
            raise ConfigError(f"module.channels_last={channels_last!r} is not auto, true or false.")
        self.task = task if task is not None else Classify()
        if num_classes < self.task.min_classes:
            raise ConfigError(
                f"num_classes={num_classes}: task={self.task.name} needs at least "
                f"{self.task.min_classes} classes."
            )
        self.compile_mode = compile
        self.compile_backend = compile_backend
        self.channels_last = channels_last
        self._prepared = False
        self._gradients_checked = False
        self.backbone = backbone
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.head_dropout = head_dropout
        self.optimizer_factory = optimizer or torch.optim.AdamW
        self.warmup_fraction = warmup_fraction
        self.min_lr_ratio = min_lr_ratio
        self.weight_decay_norms = weight_decay_norms
        self.method = None
        self.frozen_modules: set[str] = set()
        # set by the feature cache when it holds block outputs: the rest of the backbone
        self.feature_suffix: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.strict_loading = False  # checkpoints hold the trainable state only
        self.task.build(self)  # the head, the loss, the metrics, the best-so-far metric

    # -- forward: pooled features through the head (classification) ----------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "features" in batch:  # served by the feature cache: the frozen part already ran
            features = batch["features"]
            if self.feature_suffix is not None:  # only a frozen prefix was cached
                features = self.feature_suffix(features)
            return self.head(features)
        return self.head(self.backbone(batch))

    # -- the steps: the task's, plus what the method adds to the loss ----------------------
    def training_step(self, batch, batch_idx):
        loss = self.task.training_step(self, batch)
        extra = self.method.regularization(self) if self.method is not None else None
        if extra is not None:  # the logged and watched loss include it: it is what trains
            loss = loss + extra
        # Lightning's log() costs about a millisecond per call: the loss goes to the
        # loggers when they would write it, the epoch's training metrics once, in
        # on_train_epoch_end (a linear probe's step is ~45 ms on a CPU). Not prog_bar=True:
        # Lightning converts every progress-bar value to a number after every batch, a GPU
        # sync per step even when nothing new was logged; ftlab's ProgressBar shows it.
        if is_logging_step(self.trainer, self.global_step + 1) or batch_idx == 0:
            self.log("train/loss", loss, batch_size=_size(batch))
        return loss

    def on_train_epoch_end(self) -> None:
        self.task.on_train_epoch_end(self)

    def validation_step(self, batch, batch_idx):
        self.task.validation_step(self, batch)

    def on_validation_epoch_end(self) -> None:
        self.task.on_validation_epoch_end(self)

    def test_step(self, batch, batch_idx):
        self.task.test_step(self, batch)

    def on_test_epoch_end(self) -> None:
        self.task.on_test_epoch_end(self)

    def log_best(self, value: torch.Tensor) -> None:
        """Log the best value of the task's monitored metric so far (sanity checks aside)."""
        if not self.trainer.sanity_checking:
            self.val_best.update(value)
        best = self.val_best.compute() if self.val_best.update_called else value
        self.log(self.task.best, best, prog_bar=True, sync_dist=True)

    def on_after_backward(self) -> None:
        """After the first backward pass: every trainable parameter must have a gradient.
        One that has none was marked trainable but never used by the forward; under DDP
        (``find_unused_parameters=false``) that fails at the next step with a message that
        names parameter indices, so it is an error there and a warning otherwise."""
        if self._gradients_checked:
            return
        self._gradients_checked = True
        unused = [n for n, p in self.trainable_parameters() if p.grad is None]
        if not unused:
            return
        message = (
            f"{len(unused)} trainable parameter(s) got no gradient in the first step "
            f"({', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''}): the method marks "
            "them trainable but the forward never uses them. Freeze them, or fix the method."
        )
        if self.trainer.world_size > 1:
            raise ConfigError(message + " Under DDP they would stall gradient reduction.")
        warnings.warn(message, stacklevel=2)

    # -- kernels: memory format and compilation ---------------------------------------------
    def configure_model(self) -> None:
        """After the method has built what trains and before the strategy wraps the model:
        channels-last for CNNs on CUDA (``channels_last: auto``), and ``torch.compile`` of
        the backbone (``compile: true`` or a mode such as ``max-autotune``)."""
        if self._prepared:  # Lightning calls this for fit and again for test
            return
        self._prepared = True
        cuda = self.trainer.strategy.root_device.type == "cuda"
        if Capability.CHANNELS_LAST in self.backbone.anatomy.capabilities and (
            self.channels_last is True or (self.channels_last == "auto" and cuda)
        ):
            self.backbone.to(memory_format=torch.channels_last)
            self.backbone.channels_last = True
        if self.compile_mode:
            mode = None if self.compile_mode is True else self.compile_mode
            # nn.Module.compile keeps parameter names, so checkpoints load either way
            self.backbone.compile(mode=mode, backend=self.compile_backend)

    # -- what trains, and which parts stay in eval mode ------------------------------------
    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def refresh_frozen_modules(self, epoch: int = 0) -> None:
        """Recompute which backbone sub-modules stay in eval mode: those with no trainable
        parameter at all (no dropout or statistics in frozen layers), plus what the method
        keeps waiting (gradual unfreezing)."""
        frozen: set[str] = set()
        for name, sub in self.backbone.named_modules():
            params = list(sub.parameters())
            if not params or any(p.requires_grad for p in params):
                continue
            if name and not any(name.startswith(f + ".") for f in frozen):
                frozen.add(name)
        if self.method is not None:
            frozen |= self.method.frozen_until(self, epoch)
        self.frozen_modules = {f"backbone.{n}" for n in frozen}
        if self.training:
            self.train(True)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for name in self.frozen_modules:
                self.get_submodule(name).eval()
        return self

    # -- optimisation: parameter groups and schedule in ftlab.optim ------------------------
    def configure_optimizers(self):
        lr, weight_decay = optim.optimizer_defaults(self.optimizer_factory)
        groups = optim.param_groups(self, self.method, lr, weight_decay, self.weight_decay_norms)
        extra = fused_optimizer_kwargs(self.optimizer_factory, self.device)
        optimizer = self.optimizer_factory(groups, **extra)
        scheduler = optim.lr_scheduler(
            optimizer,
            self.trainer.estimated_stepping_batches,
            self.trainer.max_epochs,
            self.warmup_fraction,
            self.min_lr_ratio,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # -- checkpoints: trainable state only (ftlab.trainable_state) -------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return trainable_state.trainable_only(self, self.state_dict())

    def load_trainable_state(
        self, state_dict: dict[str, torch.Tensor], source: str = "checkpoint"
    ) -> None:
        """Load a trainable-only state dict, refusing one that does not fit this model."""
        trainable_state.load_trainable(self, state_dict, source)

    def check_trainable_state(
        self, state_dict: dict[str, torch.Tensor], source: str = "checkpoint"
    ) -> None:
        """Raise :class:`CheckpointError` unless ``state_dict`` holds exactly this model's
        trainable state, with matching shapes."""
        trainable_state.check_fits(self, state_dict, source)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = trainable_state.trainable_only(self, checkpoint["state_dict"])
        checkpoint["ftlab"] = {
            **getattr(self, "run_info", {}),
            "method": self.method.hparams() if self.method else None,
            "num_classes": self.num_classes,
            "task": self.task.settings(),
            # metric states are not in state_dict; a resumed run must remember its best
            "val_best": float(self.val_best.compute()) if self.val_best.update_called else None,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming ``fit``: refuse a checkpoint of another run shape, and restore what
        lives outside ``state_dict``."""
        method = self.method.name if self.method is not None else None
        trainable_state.check_resume(self, checkpoint, self.num_classes, method)
        saved = checkpoint.get("ftlab", {})
        best = saved.get("val_best", saved.get("val_acc_best"))  # the key before tasks
        if best is not None:
            self.val_best.reset()
            self.val_best.update(torch.tensor(best))


def _size(batch: dict[str, Any]) -> int:
    """How many examples a batch holds (its labels' first dimension)."""
    return int(batch["labels"].shape[0])
