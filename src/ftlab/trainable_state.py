"""What a checkpoint holds: the trainable state only, and the checks that it fits.

The frozen rest comes from the pretrained backbone, so a checkpoint is small, and one of
another backbone, method or number of classes is refused with a message that says so.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ftlab.errors import CheckpointError


def trainable_state_keys(root: nn.Module) -> set[str]:
    """Trainable parameters, plus the persistent buffers (BatchNorm statistics) of modules
    that own a trainable parameter (a non-persistent buffer, like the index tensors of
    peft's OFT, is rebuilt with the module and never in a state dict)."""
    keys = {n for n, p in root.named_parameters() if p.requires_grad}
    for mod_name, sub in root.named_modules():
        if any(p.requires_grad for p in sub.parameters(recurse=False)):
            prefix = f"{mod_name}." if mod_name else ""
            keys |= {
                prefix + b
                for b, _ in sub.named_buffers(recurse=False)
                if b not in sub._non_persistent_buffers_set
            }
    return keys


def trainable_only(root: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The entries of ``state_dict`` (of ``root``) that belong to its trainable state."""
    keep = trainable_state_keys(root)
    return {k: v for k, v in state_dict.items() if k in keep}


def check_fits(
    root: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` holds exactly the trainable
    state of ``root``, with matching shapes."""
    own = root.state_dict()
    unexpected = sorted(set(state_dict) - set(own))
    missing = sorted(trainable_state_keys(root) - set(state_dict))
    mismatched = [
        f"{k}: {tuple(v.shape)} in {source}, {tuple(own[k].shape)} here"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    if unexpected or missing or mismatched:
        parts = []
        if mismatched:
            parts.append("shape mismatch " + "; ".join(mismatched[:3]))
        if unexpected:
            parts.append(f"{len(unexpected)} unknown keys (e.g. {unexpected[0]})")
        if missing:
            parts.append(f"{len(missing)} trainable keys missing (e.g. {missing[0]})")
        raise CheckpointError(
            f"{source} does not fit this model ({', '.join(parts)}). Was it trained with "
            "another backbone, method or number of classes?"
        )


def load_trainable(
    root: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Load a trainable-only state dict, refusing one that does not fit ``root``."""
    check_fits(root, state_dict, source)
    root.load_state_dict(state_dict, strict=False)


def check_resume(
    root: nn.Module, checkpoint: dict[str, Any], num_classes: int, method: str | None
) -> None:
    """Refuse to resume from a checkpoint of another run shape: another number of classes,
    another method (by name), or a state that does not fit. Lightning's own loading is not
    strict, since checkpoints hold the trainable state only."""
    info = checkpoint.get("ftlab", {})
    if info.get("num_classes") not in (None, num_classes):
        raise CheckpointError(
            f"checkpoint has {info['num_classes']} classes, this data has {num_classes}."
        )
    theirs = (info.get("method") or {}).get("name")
    if theirs and method and theirs != method:
        raise CheckpointError(
            f"the checkpoint was trained with method={theirs}; this run uses method={method}. "
            f"Resume with method={theirs}, or start without ckpt_path."
        )
    check_fits(root, checkpoint["state_dict"])
