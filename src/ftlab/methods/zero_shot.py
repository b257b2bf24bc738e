"""The untouched model, tested as it is: the baseline every method on a generative task is
read against. It trains nothing, so it answers through the model's own LM head."""

from __future__ import annotations

from ftlab.backbones.anatomy import Capability
from ftlab.methods.base import Method


class ZeroShot(Method):
    kind = "none"
    name = "zero_shot"
    requires = frozenset({Capability.LM_HEAD})
    suggestion = (
        "The untouched model answers through its own LM head only: use task=sft or "
        "task=choice with a decoder (model=smollm2)."
    )
    trains = False
