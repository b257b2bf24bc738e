"""BitFit (Ben Zaken et al. 2022): train only the bias terms inside the blocks, and the
head. The README's walk-through of adding a method uses this file."""

from __future__ import annotations

from torch import nn

from ftlab.backbones.anatomy import Capability
from ftlab.errors import MethodNotApplicable
from ftlab.methods.base import Method, train_block_extras


class BitFit(Method):
    kind = "selective"
    name = "bitfit"
    requires = frozenset({Capability.BLOCKS})

    def __init__(self, train_norms: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train_norms = train_norms

    def modify(self, module: nn.Module) -> None:
        train_block_extras(module, norms=self.train_norms, bias=True)
        backbone = module.backbone
        if not any(n.endswith("bias") and p.requires_grad for n, p in backbone.named_parameters()):
            raise MethodNotApplicable(  # Llama-type decoders: bias-free linear layers
                f"method=bitfit trains biases and {backbone.label}'s blocks have none; use "
                "lora, last_n or linear_probe."
            )
