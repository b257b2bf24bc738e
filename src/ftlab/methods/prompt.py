"""Prompt tuning: learnable tokens in the token sequence (VPT, Jia et al. 2022; Lester et
al. 2021 for text).

``num_tokens`` vectors join the sequence where the anatomy says it starts (after the
patch and position embeddings of a ViT, after the embedding layer of a text encoder),
behind the class/[CLS] tokens by default. ``deep=true`` (VPT-deep) gives every block its
own prompts, replacing the previous block's outputs at those positions. The backbone is
told the slot (``backbone.token_slot``): it widens the padding mask there and removes the
slot before pooling, so mean pooling and the class token see only the real tokens.

A backbone without one token sequence whose attention takes prompts (Swin: windows in
stages of growing width) gets deep prompts as VPT gives them to Swin: every block's
attention, in every window, also attends to that block's prompts, turned into keys and
values by the block's own norm and projections (``Backbone.add_attention_prompts``).

Prompts for block ``i`` live in that block (``<block>.prompt.tokens``), so they carry its
layer id and a rebuild names them the same. Insertion and replacement are forward hooks
on that one backbone's modules, set by ``apply``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability, TokenSlot
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.methods.base import Method, train_block_extras, validate_count

POSITIONS = ("after_cls", "start")
INITS = ("random", "normal", "vocab", "text")


class PromptTokens(nn.Module):
    """One block's prompts ``[num_tokens, dim]`` and the hooks that put them in."""

    NO_WEIGHT_DECAY = ("tokens",)  # input embeddings: decay would pull them to zero

    def __init__(
        self, values: torch.Tensor, slot: TokenSlot | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.tokens = nn.Parameter(values.clone())
        self.slot = slot
        self.dropout = nn.Dropout(dropout)

    def forward(self) -> torch.Tensor:
        return self.dropout(self.tokens)

    def insert(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        """Forward hook on the embeddings: the sequence gains the prompts."""
        return self.slot.insert(output, self())

    def replace(self, module: nn.Module, args: tuple) -> tuple:
        """Forward pre-hook on a later block: its input's prompt positions become ours."""
        return (self.slot.replace(args[0], self()), *args[1:])


class Prompt(Method):
    kind = "soft prompts"
    name = "prompt"
    requires = frozenset({Capability.TOKEN_INPUT})
    suggestion = "Use lora, last_n or full, which need only blocks."
    #: the other way in: each block's attention takes the prompts (deep prompts only)
    in_attention = frozenset({Capability.ATTENTION_PROMPTS})

    def __init__(
        self,
        num_tokens: int = 10,
        deep: bool = False,
        position: str = "after_cls",
        init: str = "random",
        init_std: float = 0.02,
        init_text: str | None = None,
        dropout: float = 0.0,
        train_norms: bool = False,
        train_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_tokens = validate_count("method.num_tokens", num_tokens)
        self.deep = bool(deep)
        for key, value, choices in (("position", position, POSITIONS), ("init", init, INITS)):
            if value not in choices:
                raise ConfigError(f"method.{key}={value!r} is not one of {list(choices)}.")
        self.position = position
        self.init = init
        if init_std <= 0:
            raise ConfigError(f"method.init_std={init_std} must be > 0.")
        self.init_std = init_std
        if init == "text" and not init_text:
            raise ConfigError("method.init=text needs method.init_text (the words to start from).")
        self.init_text = init_text
        if not 0 <= dropout < 1:
            raise ConfigError(f"method.dropout={dropout} must be in [0, 1).")
        self.dropout = dropout
        self.train_norms = train_norms
        self.train_bias = train_bias

    @property
    def label(self) -> str:
        return f"prompt({'deep,' if self.deep else ''}k={self.num_tokens})"

    def needs(self, anatomy: Anatomy) -> frozenset[Capability]:
        offered = anatomy.capabilities
        if Capability.TOKEN_INPUT not in offered and Capability.ATTENTION_PROMPTS in offered:
            return self.in_attention
        return self.requires

    def check(self, anatomy: Anatomy, backbone_label: str = "this backbone") -> None:
        super().check(anatomy, backbone_label)
        if self.needs(anatomy) == self.in_attention:
            if not self.deep:
                raise MethodNotApplicable(
                    f"method={self.name} with deep=false inserts prompts into one token "
                    f"sequence, and {backbone_label} ({anatomy.family}) has none: its blocks "
                    "attend within windows, in stages of different widths. Its blocks take "
                    "prompts in their attention, as VPT gives them to Swin: set "
                    "method.deep=true (method=prompt_deep)."
                )
            if self.position != "after_cls":
                raise ConfigError(
                    f"method.position={self.position} places prompts in a token sequence, and "
                    f"{backbone_label}'s prompts join each block's attention instead, where "
                    "they have no position; leave method.position=after_cls."
                )
        if (
            self.init in ("vocab", "text")
            and Capability.TOKEN_EMBEDDINGS not in anatomy.capabilities
        ):
            raise ConfigError(
                f"method.init={self.init} starts prompts from token embeddings, which "
                f"{backbone_label} ({anatomy.family}) has none of; use init=random or normal."
            )

    def slot(self, anatomy: Anatomy) -> TokenSlot:
        start = anatomy.special_tokens if self.position == "after_cls" else 0
        return TokenSlot(start, self.num_tokens)

    def modify(self, module: nn.Module) -> None:
        backbone = module.backbone
        anatomy = backbone.anatomy
        if self.needs(anatomy) == self.in_attention:
            self._into_attention(backbone, anatomy)
        else:
            self._into_sequence(backbone, anatomy)
        train_block_extras(module, norms=self.train_norms, bias=self.train_bias)

    def _into_sequence(self, backbone: nn.Module, anatomy: Anatomy) -> None:
        slot = self.slot(anatomy)
        blocks = anatomy.blocks if self.deep else anatomy.blocks[:1]
        dim = anatomy.feature_dim
        embeddings = backbone.get_submodule(anatomy.embeddings)
        values = [self.initial_values(backbone, dim) for _ in blocks]
        for i, block_name in enumerate(blocks):
            prompt = self._add_to(backbone, block_name, values[i], slot)
            if i == 0:
                embeddings.register_forward_hook(prompt.insert)
            else:
                backbone.get_submodule(block_name).register_forward_pre_hook(prompt.replace)
        backbone.token_slot = slot

    def _into_attention(self, backbone: nn.Module, anatomy: Anatomy) -> None:
        blocks = anatomy.residual_blocks
        values = [self.initial_values(backbone, anatomy.block_width(i)) for i in range(len(blocks))]
        for i, (block_name, attention) in enumerate(zip(blocks, anatomy.attention_kv)):
            prompt = self._add_to(backbone, block_name, values[i], slot=None)
            backbone.add_attention_prompts(attention, prompt)

    def _add_to(
        self, backbone: nn.Module, block_name: str, values: torch.Tensor, slot: TokenSlot | None
    ) -> PromptTokens:
        """Block ``block_name``'s prompts, living in it as ``prompt`` (its layer id, and
        the same name on every rebuild)."""
        block = backbone.get_submodule(block_name)
        if hasattr(block, "prompt"):
            raise ConfigError(f"{block_name} already has a `prompt` attribute.")
        prompt = PromptTokens(values.to(_device(block)), slot, self.dropout)
        block.add_module("prompt", prompt)
        return prompt

    def initial_values(self, backbone: nn.Module, dim: int) -> torch.Tensor:
        k = self.num_tokens
        if self.init == "random":  # VPT: Xavier-uniform over a [dim, dim] patch projection
            bound = math.sqrt(6.0 / (2 * dim))
            return torch.empty(k, dim).uniform_(-bound, bound)
        if self.init == "normal":
            return torch.randn(k, dim) * self.init_std
        tokenizer = backbone.tokenizer
        if self.init == "vocab":
            special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
            ordinary = torch.ones(len(tokenizer), dtype=torch.bool)
            ordinary[special] = False
            candidates = ordinary.nonzero().squeeze(1)
            ids = candidates[torch.randint(len(candidates), (k,))]
        else:
            text_ids = tokenizer(self.init_text, add_special_tokens=False)["input_ids"]
            if not text_ids:
                raise ConfigError(f"method.init_text={self.init_text!r} has no tokens.")
            ids = torch.tensor(text_ids * math.ceil(k / len(text_ids)))[:k]
        return backbone.embed_token_ids(ids).cpu()


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device
