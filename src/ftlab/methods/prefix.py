"""Prefix tuning (Li & Liang 2021): learnable keys and values in every attention layer.

Each self-attention named by the anatomy (``attention_kv``) attends, from every query and
whatever the padding, to ``num_tokens`` extra key/value pairs; queries and the sequence
length stay as they are. The backbone does the attention part
(``Backbone.extend_attention``); this method owns the prefixes.

``reparam: mlp`` produces all layers' prefixes from one small MLP over a learnt
``[num_tokens, dim]`` table (Li & Liang's reparameterisation, steadier training). The
MLP is the trained state and is what checkpoints hold, so evaluation rebuilds the same
modules and loads it; :meth:`Prefix.merge` folds it into plain per-layer prefixes for
inference, after which the trainable state is exactly what ``reparam: none`` would save.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.errors import ConfigError
from ftlab.methods.base import Method, train_block_extras, validate_count

REPARAMS = ("none", "mlp")
ENCODER = "prefix_encoder"  # where the shared MLP sits in the backbone


class PrefixMLP(nn.Module):
    """``up(tanh(down(table)))``: every layer's keys and values from one table (layer ``i``
    gets ``dims[i]``-wide keys and values: Swin's stages widen)."""

    NO_WEIGHT_DECAY = ("table",)

    def __init__(self, num_tokens: int, dims: list[int], hidden: int) -> None:
        super().__init__()
        self.dims = list(dims)
        self.table = nn.Parameter(torch.randn(num_tokens, max(dims)))
        self.down = nn.Linear(max(dims), hidden)
        self.up = nn.Linear(hidden, 2 * sum(dims))

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``index``'s keys and values, computing only its rows of ``up``."""
        dim = self.dims[index]
        start = 2 * sum(self.dims[:index])
        rows = slice(start, start + 2 * dim)
        hidden = torch.tanh(self.down(self.table))
        kv = nn.functional.linear(hidden, self.up.weight[rows], self.up.bias[rows])
        return kv[:, :dim], kv[:, dim:]


class PrefixKV(nn.Module):
    """One layer's prefixes: its own ``key``/``value`` parameters, or a row block of a
    shared :class:`PrefixMLP` (held by reference: the backbone owns it)."""

    NO_WEIGHT_DECAY = ("key", "value")  # virtual tokens' keys and values, like embeddings

    def __init__(
        self,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        source: PrefixMLP | None = None,
        index: int = 0,
    ) -> None:
        super().__init__()
        if (source is None) == (key is None):
            raise ValueError("give either key and value, or a source")
        if key is not None:
            self.key = nn.Parameter(key.clone())
            self.value = nn.Parameter(value.clone())
        self.index = index
        object.__setattr__(self, "_source", source)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._source is not None:
            return self._source.layer(self.index)
        return self.key, self.value


class Prefix(Method):
    kind = "soft prompts"
    name = "prefix"
    requires = frozenset({Capability.ATTENTION_KV})
    suggestion = (
        "Prefixes need self-attention whose keys and values ftlab can extend (timm's plain "
        "ViT attention; Hugging Face attention with model.attn_implementation=sdpa or eager, "
        "not DeBERTa's or MPNet's relative attention); use lora, last_n or full, which need "
        "only blocks."
    )

    def __init__(
        self,
        num_tokens: int = 10,
        reparam: str | None = "none",
        mlp_hidden: int = 512,
        init_std: float = 0.02,
        train_norms: bool = False,
        train_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_tokens = validate_count("method.num_tokens", num_tokens)
        reparam = "none" if reparam is None else reparam
        if reparam not in REPARAMS:
            raise ConfigError(f"method.reparam={reparam!r} is not one of {list(REPARAMS)}.")
        self.reparam = reparam
        self.mlp_hidden = validate_count("method.mlp_hidden", mlp_hidden)
        if init_std <= 0:
            raise ConfigError(f"method.init_std={init_std} must be > 0.")
        self.init_std = init_std
        self.train_norms = train_norms
        self.train_bias = train_bias

    @property
    def label(self) -> str:
        return f"prefix({'mlp,' if self.reparam == 'mlp' else ''}k={self.num_tokens})"

    def check(self, anatomy: Anatomy, backbone_label: str = "this backbone") -> None:
        super().check(anatomy, backbone_label)
        if len(anatomy.attention_kv) != len(anatomy.residual_blocks):
            raise ConfigError(f"{backbone_label} describes attention for only some blocks.")

    def modify(self, module: nn.Module) -> None:
        backbone = module.backbone
        anatomy = backbone.anatomy
        dims, layers = anatomy.kv_dims, anatomy.attention_kv
        device = next(backbone.get_submodule(layers[0]).parameters()).device
        if self.reparam == "mlp":
            encoder = PrefixMLP(self.num_tokens, dims, self.mlp_hidden).to(device)
            backbone.add_module(ENCODER, encoder)
            encoder.requires_grad_(True)
            sources = [PrefixKV(source=encoder, index=i) for i in range(len(layers))]
        else:
            sources = [
                PrefixKV(
                    torch.randn((self.num_tokens, dim), device=device) * self.init_std,
                    torch.randn((self.num_tokens, dim), device=device) * self.init_std,
                    index=i,
                )
                for i, dim in enumerate(dims)
            ]
        for name, source in zip(layers, sources):
            backbone.extend_attention(name, source)
            source.requires_grad_(True)
        train_block_extras(module, norms=self.train_norms, bias=self.train_bias)

    @torch.no_grad()
    def merge(self, module: nn.Module) -> int:
        """Fold the MLP into plain per-layer prefixes and drop it (inference, or a
        checkpoint that ``reparam: none`` loads). Returns the number of folded layers."""
        backbone = module.backbone
        encoder = getattr(backbone, ENCODER, None)
        if encoder is None:
            return 0
        layers = backbone.anatomy.attention_kv
        for i, name in enumerate(layers):
            key, value = encoder.layer(i)
            wrapper = backbone.get_submodule(name)
            wrapper.prefix = PrefixKV(key.detach(), value.detach(), index=i)
        delattr(backbone, ENCODER)
        module.refresh_frozen_modules()
        return len(layers)
