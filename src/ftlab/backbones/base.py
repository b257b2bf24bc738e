"""The backbone contract: a module that turns a batch into pooled features."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch
from torch import nn

from ftlab.backbones.anatomy import Anatomy


class Backbone(nn.Module):
    """A pretrained network without its classifier.

    ``forward(batch)`` takes the data module's dict batch and returns pooled features of
    shape ``[B, anatomy.feature_dim]``; the LightningModule owns the head.
    """

    modality: str = "image"

    def __init__(self, label: str | None = None) -> None:
        super().__init__()
        self.label = label

    @cached_property
    def anatomy(self) -> Anatomy:
        return self.describe()

    def describe(self) -> Anatomy:  # pragma: no cover - each family implements it
        raise NotImplementedError

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute block activations in the backward pass (always the non-reentrant kind:
        the reentrant one silently gives LoRA weights no gradient)."""
        raise NotImplementedError

    def preprocessing(self) -> Any:
        """What the data module needs to feed this backbone (timm data config or tokenizer)."""
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def example_batch(self, batch_size: int = 2) -> dict[str, torch.Tensor]:
        """A small valid input, for shape checks and throughput measurements."""
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Parameter names (inside the backbone) that the family trains without weight
        decay beyond biases and norms: position embeddings, class tokens."""
        return set()

    def layer_id(self, param_name: str) -> int:
        """Layer id of a backbone parameter; parameters added later (LoRA, adapters) inherit
        the id of the block they sit in."""
        ids = self.anatomy.layer_ids
        if param_name in ids:
            return ids[param_name]
        for i, block in enumerate(self.anatomy.blocks, start=1):
            if param_name.startswith(block + "."):
                return i
        return self.anatomy.num_layers - 1
