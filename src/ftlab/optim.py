"""Optimizer parameter groups and the learning-rate schedule, as plain functions.

``root`` is the model being fine-tuned (a :class:`~ftlab.module.FineTuneModule` in
training): it has a ``backbone`` with ``no_weight_decay()``, and ``method`` is the
fine-tuning method (``lr_scale`` and ``start_epoch`` per parameter) or None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ftlab.errors import ConfigError


def optimizer_defaults(factory: Callable[..., torch.optim.Optimizer]) -> tuple[float, float]:
    """The base learning rate and weight decay that ``factory`` would use."""
    probe = factory([torch.zeros(1, requires_grad=True)])
    return probe.defaults["lr"], probe.defaults.get("weight_decay", 0.0)


def backbone_no_weight_decay(root: nn.Module) -> set[str]:
    """Qualified names of the parameters the backbone family trains without decay."""
    return {f"backbone.{n}" for n in root.backbone.no_weight_decay()}


def decays(
    root: nn.Module,
    name: str,
    param: nn.Parameter,
    spared: set[str],
    weight_decay_norms: bool = False,
) -> bool:
    """No weight decay on biases and norms (1-d), on what the backbone family declares
    (timm's ``no_weight_decay``: position embeddings, class tokens), and on parameters
    that modules a method added list in ``NO_WEIGHT_DECAY`` (prompt tokens, prefixes);
    ``weight_decay_norms`` decays everything. ``spared`` is
    ``backbone_no_weight_decay(root)``, computed once per optimizer."""
    if weight_decay_norms:
        return True
    if param.ndim <= 1 or name.endswith(".bias"):
        return False
    if name in spared:
        return False
    owner, _, leaf = name.rpartition(".")
    return leaf not in getattr(root.get_submodule(owner), "NO_WEIGHT_DECAY", ())


def param_groups(
    root: nn.Module,
    method: Any,
    lr: float,
    weight_decay: float,
    weight_decay_norms: bool = False,
) -> list[dict[str, Any]]:
    """One group per (lr scale, decay or not, start epoch) over the trainable parameters,
    ordered by start epoch, then by learning rate from the highest."""
    groups: dict[tuple[float, bool, int], dict[str, Any]] = {}
    spared = backbone_no_weight_decay(root)
    for name, param in root.named_parameters():
        if not param.requires_grad:
            continue
        scale = method.lr_scale(root, name) if method else 1.0
        start = method.start_epoch(root, name) if method else 0
        decay = decays(root, name, param, spared, weight_decay_norms)
        key = (scale, decay, start)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr": lr * scale,
                "weight_decay": weight_decay if decay else 0.0,
                "start_epoch": start,
            }
        groups[key]["params"].append(param)
    if not groups:
        raise ConfigError("nothing is trainable: the method froze every parameter.")
    return sorted(groups.values(), key=lambda g: (g["start_epoch"], -g["lr"]))


def warmup_cosine(total: int, warmup: int, floor: float) -> Callable[[int], float]:
    """LR factor at a step: linear warm-up over ``warmup`` steps, then a cosine from 1 down
    to ``floor`` at step ``total``."""

    def shape(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return shape


def gated(
    shape: Callable[[int], float], start_epoch: int, steps_per_epoch: int
) -> Callable[[int], float]:
    """``shape``, held at 0 before ``start_epoch`` (gradual unfreezing: the layer is in the
    optimizer from the start, so DDP sees a fixed set of parameters)."""
    return lambda step: shape(step) if step // steps_per_epoch >= start_epoch else 0.0


def lr_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: float,
    max_epochs: int | None,
    warmup_fraction: float,
    min_lr_ratio: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up + cosine over ``total_steps`` optimizer steps, each group gated by its
    ``start_epoch``. The factors are plain functions so that the scheduler's state dict
    leaves them out (LambdaLR saves callable objects' attributes)."""
    total = max(1, int(total_steps))
    epochs = max_epochs if max_epochs and max_epochs > 0 else 1
    steps_per_epoch = max(1, math.ceil(total / epochs))
    shape = warmup_cosine(total, int(warmup_fraction * total), min_lr_ratio)
    factors = [gated(shape, g["start_epoch"], steps_per_epoch) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
