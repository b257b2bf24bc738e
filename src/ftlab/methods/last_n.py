"""Seed method 2: train the last N blocks (or stages), what follows them, and the head."""

from __future__ import annotations

from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.methods.base import Method, validate_count


class LastN(Method):
    kind = "unfreezing"
    name = "last_n"
    requires = frozenset({Capability.BLOCKS})

    def __init__(self, n: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.n = validate_count("method.n", n)

    @property
    def label(self) -> str:
        return f"last_n(n={self.n})"

    def check(self, anatomy: Anatomy, backbone_label: str = "this backbone") -> None:
        super().check(anatomy, backbone_label)
        validate_count(
            "method.n",
            self.n,
            anatomy.num_blocks,
            f"{backbone_label} has {anatomy.num_blocks} blocks",
        )

    def modify(self, module: nn.Module) -> None:
        blocks = module.backbone.anatomy.num_blocks
        self.unfreeze_layers(module, first_layer_id=blocks - self.n + 1)
