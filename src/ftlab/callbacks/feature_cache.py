"""Frozen-backbone feature caching: when nothing in the backbone trains and the inputs
are deterministic, compute its features once per sample and train the head from them.

A linear probe then pays for the backbone's forward pass once instead of once per epoch.
The cached features are the ones the uncached run computes (same eval-mode backbone, same
precision context, the same items in the same shuffled order), so the metrics match.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info

from ftlab.errors import ConfigError

MODES = ("auto", True, False)


class FeatureCache(pl.Callback):
    def __init__(self, enabled: bool | str = "auto", splits: tuple[str, ...] = ("train", "val")):
        if enabled not in MODES:
            raise ConfigError(f"feature_cache={enabled!r} is not one of auto, true, false.")
        self.enabled = enabled
        self.splits = tuple(splits)
        self.active = False
        self.seconds = 0.0

    def why_not(self, trainer: pl.Trainer, module: pl.LightningModule) -> str | None:
        """Why caching would change the result here (None: it would not)."""
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "set_features"):
            return "the data does not come from an ftlab data module"
        trains = [n for n, p in module.backbone.named_parameters() if p.requires_grad]
        if trains:
            return f"the backbone trains ({trains[0]}, ...)"
        if any(datamodule.random_transform(split) for split in self.splits):
            return "the training transform is random (data.augment=true)"
        return None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.active, self.seconds = False, 0.0
        if self.enabled is False:
            return
        reason = self.why_not(trainer, pl_module)
        if reason is not None:
            if self.enabled is True:
                raise ConfigError(f"feature_cache=true, but features cannot be cached: {reason}.")
            return
        start = time.perf_counter()
        datamodule = trainer.datamodule
        for split in self.splits:
            features, labels = self.compute(trainer, pl_module, datamodule.raw_loader(split))
            datamodule.set_features(split, features, labels)
        self.seconds = time.perf_counter() - start
        self.active = True
        rank_zero_info(
            f"ftlab: the backbone is frozen and inputs are deterministic, so its features are "
            f"computed once ({', '.join(self.splits)}: {self.seconds:.1f} s) and the head trains "
            "from the cache (feature_cache=false turns this off)."
        )

    @torch.no_grad()
    def compute(self, trainer, pl_module, loader) -> tuple[torch.Tensor, torch.Tensor]:
        backbone = pl_module.backbone
        was_training = backbone.training
        backbone.eval()
        chunks, labels = [], []
        try:
            for batch in loader:
                batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
                with trainer.precision_plugin.forward_context():
                    chunks.append(backbone(batch).cpu())
                labels.append(batch["labels"].cpu())
        finally:
            backbone.train(was_training)
            pl_module.refresh_frozen_modules()
        return torch.cat(chunks), torch.cat(labels)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.active and trainer.datamodule is not None:
            trainer.datamodule.clear_features()  # testing and later fits read real inputs
        self.active = False

    def state_dict(self) -> dict[str, Any]:
        return {}
