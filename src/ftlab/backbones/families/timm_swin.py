"""Swin (timm's ``swin_*``): the worked example of adding a backbone family.

Swin holds its transformer blocks inside four stages that widen as they shrink the image
(96, 192, 384, 768 channels for Swin-T), and each block attends within windows, with a
relative position bias and, every other block, a mask for the shifted windows. So:

- ``blocks`` stay the stages (``last_n`` and ``gradual`` count stages, as timm's coarse
  groups do); the staged recipe finds every block inside them (``stage_blocks``) and their
  sites (``attn``, ``mlp``), where adapters go;
- prefixes: each block's ``WindowAttention`` attends, from every window, to learned keys
  and values with no position bias and no shift mask (:class:`PrefixedWindowAttention`);
- prompts: there is no one token sequence to insert into, so prompts join each block's
  attention the way VPT puts them into Swin (every window sees them; their own outputs
  are replaced by the next block's prompts): keys and values from the block's own
  ``norm1`` and ``qkv`` (:class:`ProjectedPrompts`). Deep prompts only.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import WindowAttention
from torch import nn

from ftlab.backbones.anatomy import Anatomy
from ftlab.backbones.families import timm_staged
from ftlab.backbones.families.timm_parts import PREFIX, TimmParts


def describe(model: nn.Module, parts: TimmParts) -> Anatomy | None:
    """The staged anatomy plus key/value and prompt sites when every block's attention is
    Swin's ``WindowAttention``; None for any other model."""
    anatomy = timm_staged.describe(model, parts)
    attentions = [model.get_submodule(a.removeprefix(PREFIX)) for a in anatomy.attention]
    if not attentions or not all(type(a) is WindowAttention for a in attentions):
        return None
    return dataclasses.replace(
        anatomy,
        family="hierarchical",
        attention_kv=list(anatomy.attention),
        kv_dims=[a.qkv.out_features // 3 for a in attentions],
        attention_prompts=True,
    )


def prompt_source(backbone: nn.Module, attention: str, tokens: nn.Module) -> nn.Module:
    """The key/value source for prompts in the block that holds ``attention`` (a name
    inside ``backbone``)."""
    block = backbone.get_submodule(attention.rpartition(".")[0])
    return ProjectedPrompts(tokens, block.norm1, block.attn.qkv)


class ProjectedPrompts(nn.Module):
    """Keys and values of prompt tokens, made by a block's own ``norm1`` and ``qkv`` as it
    makes them for its image tokens. Holds no parameters of its own: the tokens belong to
    the method, the norm and projection to the block (references, not children)."""

    def __init__(self, tokens: nn.Module, norm: nn.Module, qkv: nn.Linear) -> None:
        super().__init__()
        for name, part in (("_tokens", tokens), ("_norm", norm), ("_qkv", qkv)):
            object.__setattr__(self, name, part)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._norm(self._tokens())
        _, key, value = self._qkv(x).reshape(x.shape[0], 3, -1).unbind(1)
        return key, value


class PrefixedWindowAttention(nn.Module):
    """timm's ``WindowAttention`` that also attends to extra keys and values.

    Every window's queries see the ``T`` extra tokens; their columns of the relative
    position bias and of the shifted-window mask are zero, so nothing positions them and
    no shift hides them. The rest is the wrapped module's own computation."""

    def __init__(self, base: WindowAttention, prefix: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.prefix = prefix

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        base = self.base
        windows, n, _ = x.shape
        heads = base.num_heads
        q, k, v = base.qkv(x).reshape(windows, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        pk, pv = (
            t.to(k.dtype).reshape(1, -1, heads, k.shape[-1]).transpose(1, 2) for t in self.prefix()
        )
        extra = pk.shape[2]
        k = torch.cat([pk.expand(windows, -1, -1, -1), k], dim=2)
        v = torch.cat([pv.expand(windows, -1, -1, -1), v], dim=2)
        bias = F.pad(base._get_rel_pos_bias(), (extra, 0))  # [1, heads, n, extra + n]
        if mask is not None:  # [num_windows, n, n]: 0 or -inf per pair of the shifted windows
            shifted = F.pad(mask, (extra, 0)).unsqueeze(1)
            per_image = bias + shifted  # [num_windows, heads, n, extra + n]
            bias = per_image.repeat(windows // mask.shape[0], 1, 1, 1)
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias.to(q.dtype),
            dropout_p=base.attn_drop.p if base.training else 0.0,
        )
        x = x.transpose(1, 2).reshape(windows, n, -1)
        return base.proj_drop(base.proj(x))


#: attention type -> the wrapper that extends its keys and values
PREFIXED = {WindowAttention: PrefixedWindowAttention}
