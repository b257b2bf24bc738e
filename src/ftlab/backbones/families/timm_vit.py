"""Plain timm vision transformers (ViT, DeiT, BEiT, EVA, ...): one token sequence through
blocks with an ``attn`` (fused ``qkv``) and an ``mlp``. Every method applies: prompts go
in after the patch and position embeddings, adapters around ``attn`` and ``mlp``, prefixes
in timm's own ``Attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Attention
from torch import nn

from ftlab.backbones.anatomy import Anatomy
from ftlab.backbones.families.timm_parts import PREFIX, TimmParts


def describe(model: nn.Module, parts: TimmParts) -> Anatomy | None:
    """The anatomy of a model with a patch embedding whose blocks carry a fused-qkv
    attention; None for any other."""
    blocks = parts.blocks
    first = model.get_submodule(blocks[0].removeprefix(PREFIX))
    if not (hasattr(model, "patch_embed") and hasattr(getattr(first, "attn", None), "qkv")):
        return None
    # the fused-qkv forward that PrefixedAttention reproduces
    plain = all(type(model.get_submodule(b.removeprefix(PREFIX)).attn) is Attention for b in blocks)
    return Anatomy(
        family="vit",
        blocks=blocks,
        layer_ids=parts.layer_ids,
        feature_dim=model.num_features,
        attention=[b + ".attn" for b in blocks],
        mlp=[b + ".mlp" for b in blocks],
        token_sequence=True,
        lora_targets={
            "default": ["attn.qkv", "attn.proj"],
            "attention": ["attn.qkv", "attn.proj"],
            "all_linear": ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"],
            "mlp": ["mlp.fc1", "mlp.fc2"],
        },
        # prompts go in after norm_pre; rotary position embeddings (EVA) are sized to the
        # patch grid, so inserted tokens would not fit them
        embeddings=(
            PREFIX + "norm_pre"
            if hasattr(model, "norm_pre") and getattr(model, "rope", None) is None
            else ""
        ),
        special_tokens=getattr(model, "num_prefix_tokens", 1),
        attention_output=[b + ".attn" for b in blocks],
        mlp_input=[b + ".mlp" for b in blocks],
        mlp_output=[b + ".mlp" for b in blocks],
        attention_kv=[b + ".attn" for b in blocks] if plain else [],
        kv_dims=[first.attn.num_heads * first.attn.head_dim] * len(blocks) if plain else [],
        chained_blocks=True,
    )


class PrefixedAttention(nn.Module):
    """timm's fused-qkv ``Attention`` that also attends to extra keys and values.

    The computation is the wrapped module's own (its ``qkv``, norms, gate and projection);
    only keys and values grow by ``prefix()``'s tokens, which every query may attend to."""

    def __init__(self, base: Attention, prefix: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.prefix = prefix

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        base = self.base
        B, N, _ = x.shape
        heads, head_dim = base.num_heads, base.head_dim
        gate = getattr(base, "gate", None)
        gate = gate(x).sigmoid() if gate is not None else None
        q, k, v = base.qkv(x).reshape(B, N, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        pk, pv = (
            t.to(k.dtype).reshape(1, -1, heads, head_dim).transpose(1, 2).expand(B, -1, -1, -1)
            for t in self.prefix()
        )
        q, k = base.q_norm(q), base.k_norm(torch.cat([pk, k], dim=2))
        v = torch.cat([pv, v], dim=2)
        if is_causal:
            causal = torch.ones(N, N, dtype=torch.bool, device=x.device).tril()
            attn_mask = causal if attn_mask is None else attn_mask & causal
        if attn_mask is not None:
            keep = True if attn_mask.dtype == torch.bool else 0.0
            attn_mask = torch.cat(
                [attn_mask.new_full((*attn_mask.shape[:-1], pk.shape[2]), keep), attn_mask], dim=-1
            )
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=base.attn_drop.p if base.training else 0.0
        )
        x = base.norm(x.transpose(1, 2).reshape(B, N, -1))
        if gate is not None:
            x = x * gate
        return base.proj_drop(base.proj(x))


#: attention type -> the wrapper that extends its keys and values
PREFIXED = {Attention: PrefixedAttention}
