"""Seed method 3: train the whole network, optionally keeping the first K blocks frozen."""

from __future__ import annotations

from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.errors import ConfigError
from ftlab.methods.base import Method


class Full(Method):
    kind = "unfreezing"
    name = "full"
    requires = frozenset({Capability.BLOCKS})

    def __init__(self, freeze_first: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(freeze_first, int) or freeze_first < 0:
            raise ConfigError(f"method.freeze_first={freeze_first!r} must be an integer >= 0.")
        self.freeze_first = freeze_first

    @property
    def label(self) -> str:
        knobs = [f"freeze_first={self.freeze_first}"] if self.freeze_first else []
        if self.layer_decay is not None:
            knobs.append(f"layer_decay={self.layer_decay}")
        return f"{self.name}({','.join(knobs)})" if knobs else self.name

    def check(self, anatomy: Anatomy, backbone_label: str = "this backbone") -> None:
        super().check(anatomy, backbone_label)
        if self.freeze_first > anatomy.num_blocks:
            raise ConfigError(
                f"method.freeze_first={self.freeze_first} but {backbone_label} has "
                f"{anatomy.num_blocks} blocks (valid: 0..{anatomy.num_blocks})."
            )

    def modify(self, module: nn.Module) -> None:
        # freeze_first=K keeps the stem (layer id 0) and blocks 1..K frozen.
        self.unfreeze_layers(
            module, first_layer_id=self.freeze_first + 1 if self.freeze_first else 0
        )
