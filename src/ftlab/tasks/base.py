"""What every task shares: what it predicts with, how it is trained and judged.

A task is the third axis beside the backbone and the method (``task=classify|sft|choice``).
It owns the head (a new linear head on pooled features, or the model's own LM head), the
loss, the metrics and how the data must be read; methods and backbones know nothing of it.
The LightningModule asks its task for each of these and stays short.

Facts the configs need before anything is built (does the backbone load its LM head, which
metric picks the best checkpoint) are class attributes, read by the ``${ftlab.task:...}``
resolver, so they are stated once, here and in each task.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ftlab.backbones.anatomy import Capability
from ftlab.errors import MethodNotApplicable


class Task:
    """Base class: a subclass sets the facts below and implements the steps."""

    name: ClassVar[str] = "task"
    #: the backbone loads its language-model head (``model.lm_head`` follows this)
    lm_head: ClassVar[bool] = False
    #: a fresh head trains on pooled features (what ``linear_probe`` trains)
    new_head: ClassVar[bool] = True
    #: what the backbone must offer
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.HEAD})
    #: the validation metric that picks the best checkpoint, and which way is better
    monitor: ClassVar[str] = "val/acc"
    monitor_mode: ClassVar[str] = "max"
    #: the test metric a report ranks methods by
    score: ClassVar[str] = "test/acc"
    #: classes the data must have (a classifier needs two)
    min_classes: ClassVar[int] = 2

    @property
    def best(self) -> str:
        """The best-so-far validation metric a run logs (``val/acc_best``)."""
        return f"{self.monitor}_best"

    # -- before anything trains --------------------------------------------------------------
    def check(self, backbone: Any, method: Any, datamodule: Any = None) -> None:
        """Refuse, with a sentence, a backbone, method or data this task cannot use."""
        missing = self.requires - backbone.anatomy.capabilities
        if missing:
            raise self.refusal(backbone, missing)
        if not self.new_head and Capability.HEAD in method.needs(backbone.anatomy):
            raise MethodNotApplicable(
                f"method={method.name} trains a new head on pooled features, and "
                f"task={self.name} predicts with {backbone.label}'s own LM head, so there is "
                "no new head to train; the untouched model is the baseline (method=zero_shot)."
            )

    def refusal(self, backbone: Any, missing: set[Capability]) -> Exception:
        from ftlab.errors import ConfigError

        return ConfigError(
            f"task={self.name} needs {', '.join(sorted(missing))}, which {backbone.label} "
            f"({backbone.anatomy.family}) does not offer."
        )

    def pipeline(self, datamodule: Any) -> Any:
        """How the data module reads its source for this task (None: the pipeline its
        modality names)."""
        return None

    # -- on the module ---------------------------------------------------------------------
    def build(self, module: nn.Module) -> None:
        """Give ``module`` its ``head`` and metrics (registered there, so they move with it)."""
        raise NotImplementedError

    def training_step(self, module: Any, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def validation_step(self, module: Any, batch: dict[str, Any]) -> None:
        raise NotImplementedError

    def on_validation_epoch_end(self, module: Any) -> None:
        raise NotImplementedError

    def test_step(self, module: Any, batch: dict[str, Any]) -> None:
        raise NotImplementedError

    def on_test_epoch_end(self, module: Any) -> None:
        raise NotImplementedError

    def on_train_epoch_end(self, module: Any) -> None:
        """Log what the epoch measured in training."""

    def measure_before(self, module: Any, device: torch.device) -> dict[str, Any]:
        """What to record about the untouched model before anything is applied or trained
        (forgetting's baseline), measured on ``device``."""
        return {}

    def settings(self) -> dict[str, Any]:
        """This task's settings, as its config holds them (for records and reports)."""
        return {"name": self.name}
