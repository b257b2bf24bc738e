"""The backbone contract: a module that turns a batch into pooled features."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch
from torch import nn

from ftlab.backbones.anatomy import Anatomy
from ftlab.errors import ConfigError

#: ``model.dtype`` values: how frozen weights are stored (what trains stays float32)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Backbone(nn.Module):
    """A pretrained network without its classifier.

    ``forward(batch)`` takes the data module's dict batch and returns pooled features of
    shape ``[B, anatomy.feature_dim]``; the LightningModule owns the head.
    """

    modality: str = "image"

    def __init__(self, label: str | None = None, dtype: str | None = None) -> None:
        super().__init__()
        self.label = label
        if dtype is not None and dtype not in DTYPES:
            raise ConfigError(f"model.dtype={dtype!r} is not one of {[*DTYPES, None]}.")
        self.frozen_dtype = DTYPES[dtype or "float32"]

    def quantized_cannot_train(self, what: str) -> ConfigError:
        return ConfigError(
            f"{what} would train quantized weights of {self.label} (model.quantization), "
            "which cannot train; use a method that adds what trains: lora, dora, adapter, "
            "prompt, prefix, bitfit or linear_probe."
        )

    def store_frozen_weights(self) -> int:
        """Wholly frozen modules' floating-point parameters in ``model.dtype`` (half the
        memory in bf16 or fp16); a module with anything trainable (a LoRA layer's own
        weights, a norm whose bias trains) all in float32, so the optimiser updates full
        precision and no operation mixes a half weight with a float32 bias. Called once a
        method has chosen what trains; returns the number of tensors cast. Mixed dtypes
        across modules need autocast: ``trainer.precision=bf16-mixed`` or ``16-mixed``."""
        cast = 0
        for prefix, module in self.named_modules():
            params = dict(module.named_parameters(recurse=False))
            trains = any(p.requires_grad for p in params.values())
            for name, param in params.items():
                if not param.is_floating_point():  # quantized weights (bitsandbytes: uint8)
                    if param.requires_grad:
                        raise self.quantized_cannot_train(f"{prefix}.{name}")
                    continue
                dtype = torch.float32 if trains else self.frozen_dtype
                if param.dtype != dtype:
                    param.data = param.data.to(dtype)
                    cast += 1
        return cast

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
