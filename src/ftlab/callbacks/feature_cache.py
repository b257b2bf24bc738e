"""Frozen-part feature caching: when the first part of the network is frozen, runs in eval
mode and sees deterministic inputs, compute its output once per sample and train the rest
from the cache.

- The whole backbone frozen (``linear_probe``): the head trains from pooled features, and
  the backbone's forward is paid once instead of once per epoch.
- The stem and the first k blocks frozen (``last_n``): their output at block k is cached
  and every step runs only the later blocks (:class:`ftlab.backbones.split.FrozenPrefix`).

The cached values are the ones the uncached run computes (same eval-mode modules, same
precision context, the same items in the same shuffled order), so the metrics match. A
cache larger than a quarter of this machine's memory lives in a file in the run dir
(memory-mapped) instead of in RAM.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only

from ftlab.backbones.split import FrozenPrefix
from ftlab.console import log
from ftlab.data.features import feature_serving
from ftlab.errors import ConfigError

MODES = ("auto", True, False)
RAM_SHARE = 0.25  # a bigger cache goes to a memory-mapped file


class FeatureCache(pl.Callback):
    """Caches the frozen part's output when it can (``enabled="auto"``), insists
    (``True``: a sentence says why it cannot) or never does (``False``). It talks to the
    data through :class:`ftlab.data.features.FeatureServing`, which a data module offers
    or declares it lacks."""

    def __init__(
        self,
        enabled: bool | str = "auto",
        splits: tuple[str, ...] = ("train", "val"),
        ram_bytes: int | None = None,
    ):
        if enabled not in MODES:
            raise ConfigError(f"feature_cache={enabled!r} is not one of auto, true, false.")
        self.enabled = enabled
        self.splits = tuple(splits)
        self.ram_bytes = _physical_memory() * RAM_SHARE if ram_bytes is None else ram_bytes
        self.active = False
        self.seconds = 0.0
        self.kind: str | None = None  # "backbone" or "frozen_prefix(k=...)"
        self.files: list[Path] = []

    def plan(self, trainer: pl.Trainer, module: pl.LightningModule) -> FrozenPrefix | str | None:
        """What can be cached: None (the whole backbone), a :class:`FrozenPrefix`, or a
        string saying why nothing can."""
        task = getattr(module, "task", None)
        if task is not None and not task.new_head:
            return f"task={task.name} reads every token's logits through the LM head, not pooled features"
        serving = feature_serving(trainer.datamodule)
        if isinstance(serving, str):
            return serving
        if any(serving.random_transform(split) for split in self.splits):
            return "the training transform is random (data.augment=true)"
        backbone = module.backbone
        trains = [n for n, p in backbone.named_parameters() if p.requires_grad]
        if not trains:
            return None
        k = FrozenPrefix.frozen_blocks(backbone)
        if k == 0:
            return f"the backbone trains from its first block ({trains[0]}, ...)"
        split = FrozenPrefix(backbone, k)
        batch = next(iter(serving.raw_loader("train")))
        batch = module.transfer_batch_to_device(batch, module.device, 0)
        with trainer.precision_plugin.forward_context():
            reason = split.why_not(module, batch)
        module.refresh_frozen_modules()
        return split if reason is None else f"the backbone trains after block {k}, and {reason}"

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.active, self.seconds, self.kind = False, 0.0, None
        if self.enabled is False:
            return
        plan = self.plan(trainer, pl_module)
        if isinstance(plan, str):
            if self.enabled is True:
                raise ConfigError(f"feature_cache=true, but features cannot be cached: {plan}.")
            return
        start = time.perf_counter()
        serving = feature_serving(trainer.datamodule)
        assert not isinstance(serving, str)  # the plan asked it first
        run = pl_module.backbone if plan is None else plan.prefix
        for split in self.splits:
            features, labels = self.compute(trainer, pl_module, serving.raw_loader(split), run)
            serving.set_features(split, features, labels)
        pl_module.feature_suffix = None if plan is None else plan.suffix
        self.seconds = time.perf_counter() - start
        self.active = True
        self.kind = "backbone" if plan is None else f"frozen_prefix(k={plan.k})"
        what = (
            "the backbone is frozen"
            if plan is None
            else f"the stem and blocks 1..{plan.k} of {pl_module.backbone.anatomy.num_blocks} "
            "are frozen"
        )
        if rank_zero_only.rank == 0:
            log.info(
                f"{what} and inputs are deterministic, so their output is computed once "
                f"({', '.join(self.splits)}: {self.seconds:.1f} s, "
                f"{'file-backed' if self.files else 'in memory'}) and training runs the rest from "
                "the cache (feature_cache=false turns this off)."
            )

    @torch.no_grad()
    def compute(self, trainer, pl_module, loader, run=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``run(batch)`` (default: the backbone) for every batch of ``loader``, in order,
        with the backbone in eval mode; rows stored in RAM or in a memory-mapped file."""
        backbone = pl_module.backbone
        run = run or backbone
        was_training = backbone.training
        backbone.eval()
        store, labels, row = None, [], 0
        try:
            for batch in loader:
                batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
                with trainer.precision_plugin.forward_context():
                    out = run(batch).cpu()
                if store is None:
                    store = self._allocate(trainer, len(loader.dataset), out)
                store[row : row + len(out)] = out
                row += len(out)
                labels.append(batch["labels"].cpu())
        finally:
            backbone.train(was_training)
            pl_module.refresh_frozen_modules()
        return store[:row], torch.cat(labels)

    def _allocate(self, trainer: pl.Trainer, rows: int, first: torch.Tensor) -> torch.Tensor:
        shape = (rows, *first.shape[1:])
        nbytes = first[:1].numel() * first.element_size() * rows
        if nbytes <= self.ram_bytes:
            return torch.empty(shape, dtype=first.dtype)
        folder = Path(trainer.default_root_dir or ".") / "feature_cache"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, suffix=".bin")
        os.close(fd)
        self.files.append(Path(name))
        numel = nbytes // first.element_size()
        return torch.from_file(name, shared=True, size=numel, dtype=first.dtype).view(shape)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        serving = feature_serving(trainer.datamodule) if self.active else None
        if serving is not None and not isinstance(serving, str):
            serving.clear_features()  # testing and later fits read real inputs
        pl_module.feature_suffix = None
        for path in self.files:
            path.unlink(missing_ok=True)
        self.files = []
        self.active = False

    def state_dict(self) -> dict[str, Any]:
        return {}


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30
