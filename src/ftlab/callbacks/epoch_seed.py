"""Reseed the random number generators at the start of every training epoch.

Dropout masks and in-process augmentation then depend on (seed, epoch) only, not on
everything that ran before, so a run resumed from an end-of-epoch checkpoint continues
exactly as the uninterrupted run would have (with ``num_workers=0``; worker processes
draw their seeds when the loader's iterator is created). The shuffle order is handled
the same way by :class:`ftlab.data.datamodule.EpochShuffle`.
"""

from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import torch


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed for (run seed, epoch, rank), different for every combination."""
    mixed = np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]
    return int(mixed)


class EpochSeed(pl.Callback):
    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.seed is None:
            return
        value = epoch_seed(self.seed, trainer.current_epoch, trainer.global_rank)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)  # also seeds every CUDA device
