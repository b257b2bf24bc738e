"""``task=classify`` (the default): a fresh linear head on the backbone's pooled features,
cross-entropy on the class labels, accuracy and macro F1."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from ftlab.tasks.base import Task


class Classify(Task):
    name: ClassVar[str] = "classify"

    def __init__(self, name: str = "classify") -> None:
        self.name = name

    def build(self, module: nn.Module) -> None:
        num_classes = module.num_classes
        module.head = nn.Sequential(
            nn.Dropout(module.head_dropout) if module.head_dropout else nn.Identity(),
            nn.Linear(module.backbone.anatomy.feature_dim, num_classes),
        )
        module.loss_fn = nn.CrossEntropyLoss(label_smoothing=module.label_smoothing)
        metrics = {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        }
        if num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
        # on the hot path: no argument checks (torch.unique on the labels, a host sync per
        # step on a GPU); the loss has checked the labels already
        train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        module.train_metrics = MetricCollection({"acc": train_acc}, prefix="train/")
        module.val_metrics = MetricCollection(metrics).clone(prefix="val/")
        module.test_metrics = MetricCollection(metrics).clone(prefix="test/")
        module.val_best = MaxMetric()

    def _step(self, module: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = module(batch)
        return module.loss_fn(logits.float(), batch["labels"]), logits

    def training_step(self, module: Any, batch: dict[str, Any]) -> torch.Tensor:
        loss, logits = self._step(module, batch)
        module.train_metrics.update(logits, batch["labels"])
        return loss

    def on_train_epoch_end(self, module: Any) -> None:
        if module.train_metrics["acc"].update_called:
            module.log_dict(module.train_metrics.compute())  # torchmetrics syncs across ranks
        module.train_metrics.reset()

    def validation_step(self, module: Any, batch: dict[str, Any]) -> None:
        loss, logits = self._step(module, batch)
        module.val_metrics.update(logits, batch["labels"])
        size = batch["labels"].shape[0]
        module.log("val/loss", loss, prog_bar=False, batch_size=size, sync_dist=True)

    def on_validation_epoch_end(self, module: Any) -> None:
        values = module.val_metrics.compute()
        module.val_metrics.reset()
        acc = values.pop("val/acc")
        module.log("val/acc", acc, prog_bar=True, sync_dist=True)
        module.log_dict(values, sync_dist=True, prog_bar=False)
        module.log_best(acc)

    def test_step(self, module: Any, batch: dict[str, Any]) -> None:
        loss, logits = self._step(module, batch)
        module.test_metrics.update(logits, batch["labels"])
        module.log("test/loss", loss, batch_size=batch["labels"].shape[0], sync_dist=True)

    def on_test_epoch_end(self, module: Any) -> None:
        module.log_dict(module.test_metrics.compute(), sync_dist=True)
        module.test_metrics.reset()
