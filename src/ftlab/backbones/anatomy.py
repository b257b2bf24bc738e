"""What a method may know about a backbone: its anatomy, described once per family.

Methods read the anatomy instead of testing classes. Layer ids follow timm's layer-decay
convention: 0 is the stem (everything before the first block), 1..N the blocks in order,
N+1 whatever sits between the last block and the head (final norm, conv head).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Anatomy:
    family: str
    """``"cnn"``, ``"vit"`` or ``"encoder"`` (a Hugging Face text encoder)."""
    blocks: list[str]
    """Qualified names (inside the backbone) of the ordered blocks or stages."""
    layer_ids: dict[str, int]
    """Parameter name -> 0 (stem), 1..N (block), N+1 (neck)."""
    feature_dim: int
    """Width of the pooled features that reach the head."""
    attention: list[str] = field(default_factory=list)
    """Per block, the attention sub-module (empty when the backbone has none)."""
    mlp: list[str] = field(default_factory=list)
    """Per block, the feed-forward sub-module."""
    token_sequence: bool = False
    """Whether the backbone processes a token sequence that prompts can extend."""
    lora_targets: dict[str, list[str]] = field(default_factory=dict)
    """Named presets of module-name patterns for LoRA (``default``, ``all_linear``, ...)."""

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_layers(self) -> int:
        """Stem + blocks + neck: the number of distinct layer ids."""
        return len(self.blocks) + 2

    @property
    def capabilities(self) -> set[str]:
        caps = {"head", "blocks"} if self.blocks else {"head"}
        if self.attention:
            caps.add("attention")
        if self.mlp:
            caps.add("mlp")
        if self.token_sequence:
            caps.add("token_sequence")
        if self.lora_targets:
            caps.add("lora_targets")
        return caps
