"""What a method may know about a backbone: its anatomy, described once per family.

Methods read the anatomy instead of testing classes. Layer ids follow timm's layer-decay
convention: 0 is the stem (everything before the first block), 1..N the blocks in order,
N+1 whatever sits between the last block and the head (final norm, conv head).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum

import torch


class Capability(str, Enum):
    """What a backbone's anatomy can offer a method. Methods name what they need with
    these members, so a misspelt need fails at import instead of skipping every job."""

    HEAD = "head"
    """Pooled features for a fresh classifier (every backbone). A method that needs a new
    head to train (``linear_probe``) names it; a task that predicts with the model's own
    LM head has none to give it."""
    BLOCKS = "blocks"
    """An ordered stack of blocks or stages, with a layer id for every parameter."""
    ATTENTION = "attention"
    MLP = "mlp"
    TOKEN_SEQUENCE = "token_sequence"
    TOKEN_INPUT = "token_input"
    """A token sequence and the module that starts it, where prompts go in."""
    TOKEN_EMBEDDINGS = "token_embeddings"
    """A vocabulary whose embeddings can start prompts (``Backbone.embed_token_ids``)."""
    LORA_TARGETS = "lora_targets"
    ATTENTION_OUTPUT = "attention_output"
    """Where each residual block's attention result leaves, before the residual add (where
    a Houlsby adapter's first bottleneck goes)."""
    MLP_OUTPUT = "mlp_output"
    """Where each residual block's feed-forward result leaves, before the residual add, and
    the module whose input is the feed-forward's input (Pfeiffer and parallel adapters)."""
    ATTENTION_KV = "attention_kv"
    """Self-attention whose keys and values can be extended (``Backbone.extend_attention``)."""
    ATTENTION_PROMPTS = "attention_prompts"
    """Each residual block's attention can attend to prompt tokens that its own norm and
    projections turn into keys and values (``Backbone.add_attention_prompts``): deep
    prompts where the tokens are not one sequence (Swin's windows)."""
    LM_HEAD = "lm_head"
    """Next-token logits over the vocabulary: a decoder loaded with its own LM head
    (``Backbone.lm_forward``), what generative tasks train, score and decode with."""
    CHAINED_BLOCKS = "chained_blocks"
    """Each block takes the previous block's output alone, so the output of the first k
    can be cached (a text encoder's layers also need the batch's attention mask)."""
    CHANNELS_LAST = "channels_last"
    """Convolutions that run faster with NHWC weights and inputs on GPUs."""

    def __str__(self) -> str:
        return self.value


def assign_layer_ids(
    names: Iterable[str], blocks: list[str], is_stem: Callable[[str], bool]
) -> dict[str, int]:
    """Layer id of every parameter name: i for one inside block i (1-based), 0 for the stem
    (``is_stem``: embeddings, patch projection), N+1 for the rest (final norm, neck)."""
    ids = {}
    for name in names:
        block = next((i for i, b in enumerate(blocks, 1) if name.startswith(b + ".")), None)
        ids[name] = block if block is not None else (0 if is_stem(name) else len(blocks) + 1)
    return ids


#: what ``Anatomy.family`` may say: a word for messages and reports, never for decisions
FAMILIES = ("cnn", "vit", "hierarchical", "encoder", "decoder")


@dataclass
class Anatomy:
    """Everything a method may know about a backbone, as module names inside it.

    Two units of depth: ``blocks`` are what layer ids, ``last_n``, ``full`` and ``gradual``
    count (a ViT's or BERT's layers; a CNN's or Swin's stages), and the *residual blocks*
    (:attr:`residual_blocks`) are where per-block sites sit: the same modules on a ViT or
    BERT, every block inside the stages on Swin or ConvNeXt (``stage_blocks``). Every
    per-block list below (``attention`` ... ``block_widths``) is indexed by residual block.
    """

    family: str
    """One of :data:`FAMILIES`: ``cnn``, ``vit`` (a plain timm vision transformer),
    ``hierarchical`` (a timm transformer in stages, such as Swin), ``encoder`` or ``decoder``
    (Hugging Face text models)."""
    blocks: list[str]
    """Qualified names (inside the backbone) of the ordered blocks or stages."""
    layer_ids: dict[str, int]
    """Parameter name -> 0 (stem), 1..N (block), N+1 (neck)."""
    feature_dim: int
    """Width of the pooled features that reach the head."""
    stage_blocks: list[str] = field(default_factory=list)
    """The residual blocks inside the stages, in order, when ``blocks`` are stages that hold
    several (Swin, ConvNeXt); empty when the blocks are themselves the residual blocks."""
    attention: list[str] = field(default_factory=list)
    """Per residual block, the attention sub-module (empty when the backbone has none)."""
    mlp: list[str] = field(default_factory=list)
    """Per residual block, the feed-forward sub-module."""
    token_sequence: bool = False
    """Whether the backbone processes one token sequence that prompts can extend."""
    lora_targets: dict[str, list[str]] = field(default_factory=dict)
    """Named presets of module-name patterns for LoRA (``default``, ``all_linear``, ...)."""
    embeddings: str = ""
    """The module whose output is the token sequence entering the first block (where
    prompts go in); empty when the backbone has no token sequence."""
    special_tokens: int = 0
    """Leading tokens of that sequence that prompts keep in front (class/register tokens,
    ``[CLS]``)."""
    attention_output: list[str] = field(default_factory=list)
    """Per residual block, the module whose output is the attention sub-layer's result
    before the residual add (where a Houlsby adapter goes)."""
    mlp_input: list[str] = field(default_factory=list)
    """Per residual block, the module whose first argument is the feed-forward input."""
    mlp_output: list[str] = field(default_factory=list)
    """Per residual block, the module whose output is the feed-forward result before the
    residual add."""
    attention_kv: list[str] = field(default_factory=list)
    """Per residual block, the self-attention module whose keys and values the backbone can
    extend (``Backbone.extend_attention``: prefix tuning)."""
    kv_dims: list[int] = field(default_factory=list)
    """Per entry of ``attention_kv``, the width of its keys and values (kv heads x head
    size)."""
    attention_prompts: bool = False
    """Whether the backbone turns prompt tokens into those attentions' keys and values
    through each block's own norm and projections (``Backbone.add_attention_prompts``)."""
    block_widths: list[int] = field(default_factory=list)
    """Per residual block, the width of the tokens it takes, when it differs from block to
    block (Swin's stages widen); empty: ``feature_dim`` everywhere."""
    token_embeddings: bool = False
    """Whether token ids have embeddings that prompts can start from."""
    lm_head: bool = False
    """Whether the backbone was loaded with its language-model head (``lm_forward``)."""
    chained_blocks: bool = False
    """Whether each block takes the previous block's output alone."""
    convolutional: bool = False
    """Whether the backbone is a convolutional network (NHWC helps it on GPUs)."""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"Anatomy.family={self.family!r} is not one of {FAMILIES}")
        per_block = ("attention_output", "mlp_input", "mlp_output", "attention_kv", "block_widths")
        for name in per_block:
            values = getattr(self, name)
            if values and len(values) != len(self.residual_blocks):
                raise ValueError(
                    f"Anatomy.{name} has {len(values)} entries for "
                    f"{len(self.residual_blocks)} residual blocks"
                )
        if len(self.kv_dims) != len(self.attention_kv):
            raise ValueError("Anatomy.kv_dims needs one width per attention_kv entry")

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_layers(self) -> int:
        """Stem + blocks + neck: the number of distinct layer ids."""
        return len(self.blocks) + 2

    @property
    def residual_blocks(self) -> list[str]:
        """Where per-block sites sit: ``stage_blocks`` when there are any, else ``blocks``."""
        return self.stage_blocks or self.blocks

    def block_width(self, index: int) -> int:
        """The width of the tokens residual block ``index`` takes."""
        return self.block_widths[index] if self.block_widths else self.feature_dim

    @property
    def capabilities(self) -> set[Capability]:
        offered = {
            Capability.HEAD: True,
            Capability.BLOCKS: bool(self.blocks),
            Capability.ATTENTION: bool(self.attention),
            Capability.MLP: bool(self.mlp),
            Capability.TOKEN_SEQUENCE: self.token_sequence,
            Capability.TOKEN_INPUT: self.token_sequence and bool(self.embeddings),
            Capability.TOKEN_EMBEDDINGS: self.token_embeddings,
            Capability.LORA_TARGETS: bool(self.lora_targets),
            Capability.ATTENTION_OUTPUT: bool(self.attention_output),
            Capability.MLP_OUTPUT: bool(self.mlp_input and self.mlp_output),
            Capability.ATTENTION_KV: bool(self.attention_kv),
            Capability.ATTENTION_PROMPTS: self.attention_prompts and bool(self.attention_kv),
            Capability.LM_HEAD: self.lm_head,
            Capability.CHAINED_BLOCKS: self.chained_blocks and bool(self.blocks),
            Capability.CHANNELS_LAST: self.convolutional,
        }
        return {cap for cap, has in offered.items() if has}


_PROMPTS_CACHED = contextvars.ContextVar("ftlab_prompts_cached", default=False)


@contextmanager
def prompts_in_cache() -> Iterator[None]:
    """Forwards in this context carry no prompt positions: the prompts' keys and values are
    in a key/value cache already (decoding after the first step), so a slot inserts and
    replaces nothing."""
    token = _PROMPTS_CACHED.set(True)
    try:
        yield
    finally:
        _PROMPTS_CACHED.reset(token)


@dataclass(frozen=True)
class TokenSlot:
    """``count`` tokens a method inserts at position ``start`` of the token sequence
    (prompts). The backbone honours a slot it is given: it extends the padding mask with
    ones there and removes the slot from its output, so pooling sees the original tokens."""

    start: int
    count: int

    def insert(self, seq: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``seq`` [B, N, D] with ``tokens`` [count, D] inserted for every sample."""
        if _PROMPTS_CACHED.get():
            return seq
        tokens = tokens.to(seq.dtype).unsqueeze(0).expand(seq.shape[0], -1, -1)
        return torch.cat([seq[:, : self.start], tokens, seq[:, self.start :]], dim=1)

    def replace(self, seq: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``seq`` [B, N + count, D] with the slot's tokens swapped for ``tokens``."""
        if _PROMPTS_CACHED.get():
            return seq
        return self.insert(self.remove(seq), tokens)

    def remove(self, seq: torch.Tensor) -> torch.Tensor:
        return torch.cat([seq[:, : self.start], seq[:, self.start + self.count :]], dim=1)

    def extend_mask(self, mask: torch.Tensor, fill: int = 1) -> torch.Tensor:
        """A [B, N] padding mask with ones for the slot: inserted tokens are always seen
        (``fill=0``: token type ids, the first segment's)."""
        extra = mask.new_full((mask.shape[0], self.count), fill)
        return torch.cat([mask[:, : self.start], extra, mask[:, self.start :]], dim=1)
