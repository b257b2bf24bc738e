"""Prefix tuning for Hugging Face attention, through transformers' attention interface.

Every current transformers attention module (BERT's self-attention, Llama's, GPT-2's,
DistilBERT's, ...) computes its queries, keys and values (rotary positions included) and
hands them to ``ALL_ATTENTION_FUNCTIONS[config._attn_implementation]``. ftlab registers
one more entry there, :data:`PREFIXED`, and points a prefixed module's own config at it:
the function prepends the module's learned keys and values (``module.prefix()``, each
``[T, kv_heads * head_dim]``, grouped-query heads as the module has them), widens the
mask so that every query, padded or not, sees them, and calls the implementation the
model was built with (SDPA or eager). Module and parameter names do not change, so LoRA
and adapters compose with prefixes and checkpoints name prefixes ``<attention>.prefix``.
The prefix keys carry no rotary position: they are the same from every query's point of
view, as in peft's prefix tuning through a pre-filled cache.
"""

from __future__ import annotations

import copy
import inspect
import sys
from typing import Any

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

PREFIXED = "ftlab_prefix"
#: attention implementations whose masks :func:`prefixed_attention` knows how to widen
KV_EXTENSIBLE = ("sdpa", "eager")


def calls_attention_interface(module: nn.Module) -> bool:
    """Whether ``module``'s forward hands its keys and values to the attention interface."""
    try:
        return "ALL_ATTENTION_FUNCTIONS" in inspect.getsource(type(module).forward)
    except (OSError, TypeError):  # no source (compiled, built in): assume not
        return False


def interface_attention(block: nn.Module) -> str | None:
    """Name, inside ``block``, of its first module that calls the attention interface."""
    return next((n for n, m in block.named_modules() if n and calls_attention_interface(m)), None)


def kv_width(attention: nn.Module, config: Any) -> int:
    """Width of one token's keys (= values) in ``attention``: kv heads x head size."""
    heads = config.num_attention_heads
    head_dim = next(
        (
            getattr(attention, a)
            for a in ("head_dim", "attention_head_size", "head_size")
            if hasattr(attention, a)
        ),
        config.hidden_size // heads,
    )
    groups = getattr(attention, "num_key_value_groups", 1)
    return heads // groups * head_dim


def add_prefix(attention: nn.Module, prefix: nn.Module) -> None:
    """Make ``attention`` also attend to the keys and values ``prefix()`` returns."""
    base = attention.config._attn_implementation
    if base == PREFIXED:  # prefixed already: swap the prefix only
        attention.prefix = prefix
        return
    attention.add_module("prefix", prefix)
    attention.ftlab_attention = base
    attention.config = copy.copy(attention.config)  # this module's own, not the model's
    attention.config._attn_implementation = PREFIXED


def prefixed_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attention interface entry for prefixed modules: keys and values ``[B, H_kv, S,
    D]`` gain the prefix's ``T`` tokens in front, the mask ``T`` "attend" columns."""
    batch, kv_heads, length, head_dim = key.shape
    pk, pv = (
        t.to(key.dtype).reshape(1, -1, kv_heads, head_dim).transpose(1, 2).expand(batch, -1, -1, -1)
        for t in module.prefix()
    )
    implementation = module.ftlab_attention
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", False) if causal is None else causal
    if attention_mask is None and causal and query.shape[2] > 1:
        # SDPA's own causal flag would align the triangle to the prefix; spell it out
        attention_mask = torch.ones(
            query.shape[2], length, dtype=torch.bool, device=query.device
        ).tril(length - query.shape[2])[None, None]
        if implementation != "sdpa":  # eager adds the mask to the scores
            attention_mask = _additive(attention_mask, query.dtype)
    if attention_mask is not None:
        keep = True if attention_mask.dtype == torch.bool else 0.0
        extra = attention_mask.new_full((*attention_mask.shape[:-1], pk.shape[2]), keep)
        attention_mask = torch.cat([extra, attention_mask[..., :length]], dim=-1)
    default = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, default)
    key, value = torch.cat([pk, key], dim=2), torch.cat([pv, value], dim=2)
    return attend(module, query, key, value, attention_mask, **kwargs)


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask, torch.finfo(dtype).min
    )


AttentionInterface.register(PREFIXED, prefixed_attention)
