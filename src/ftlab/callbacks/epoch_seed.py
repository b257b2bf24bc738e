"""Reseed the random number generators where a run's randomness must not depend on
what ran before.

- At ``setup`` (before the method callback builds its parameters: LoRA matrices, adapters,
  prompts), so they are initialised alike whether or not Lightning's DDP set-up reseeded
  the process (it does, with the global seed; a single process does not).
- At the start of every training epoch, so dropout masks and in-process augmentation
  depend on (seed, epoch) only, and a run resumed from an end-of-epoch checkpoint goes on
  exactly as the uninterrupted run would have (with ``num_workers=0``; worker processes
  draw their seeds when the loader's iterator is created). The shuffle order is handled
  the same way by :class:`ftlab.data.datamodule.EpochShuffle`.

It must come before the method in the Trainer's callbacks (``train`` puts it first).
"""

from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import torch

SETUP, EPOCH = 0, 1


def derived_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for (run seed, keys...), different for every combination."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def _reseed(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device


class EpochSeed(pl.Callback):
    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.seed is not None and stage == "fit":
            _reseed(derived_seed(self.seed, SETUP))  # the same on every rank

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.seed is not None:
            _reseed(derived_seed(self.seed, EPOCH, trainer.current_epoch, trainer.global_rank))
