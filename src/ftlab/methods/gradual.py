"""Gradual unfreezing (ULMFiT): the head first, then one more block every few epochs.

DDP-safe: every scheduled layer is trainable and in the optimizer from the start; its
learning rate is zero until its epoch, and its BatchNorm layers stay in eval mode until then.
"""

from __future__ import annotations

from torch import nn

from ftlab.backbones.anatomy import Capability
from ftlab.methods.base import Method, validate_count


class Gradual(Method):
    kind = "unfreezing"
    name = "gradual"
    requires = frozenset({Capability.BLOCKS})

    def __init__(self, every: int = 1, max_blocks: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.every = validate_count("method.every", every)
        self.max_blocks = (
            None if max_blocks is None else validate_count("method.max_blocks", max_blocks)
        )

    @property
    def label(self) -> str:
        return f"gradual(every={self.every})"

    def _top(self, module: nn.Module) -> int:
        return module.backbone.anatomy.num_layers - 1

    def modify(self, module: nn.Module) -> None:
        top = self._top(module)
        deepest = 0 if self.max_blocks is None else max(0, top - self.max_blocks)
        self.unfreeze_layers(module, first_layer_id=deepest)

    def unfreeze_epoch(self, module: nn.Module, layer_id: int) -> int:
        """The neck trains with the head from epoch 0; block N from ``every``, N-1 from
        ``2*every``, ..., the stem last."""
        return self.every * (self._top(module) - layer_id)

    def start_epoch(self, module: nn.Module, param_name: str) -> int:
        if not param_name.startswith("backbone."):
            return 0
        return self.unfreeze_epoch(
            module, module.backbone.layer_id(param_name.removeprefix("backbone."))
        )

    def frozen_until(self, module: nn.Module, epoch: int) -> set[str]:
        backbone = module.backbone
        waiting = {
            block
            for lid, block in enumerate(backbone.anatomy.blocks, start=1)
            if self.unfreeze_epoch(module, lid) > epoch
        }
        for name, sub in backbone.named_modules():
            own = [f"{name}.{p}" for p, _ in sub.named_parameters(recurse=False)]
            if own and all(self.unfreeze_epoch(module, backbone.layer_id(p)) > epoch for p in own):
                waiting.add(name)
        return waiting

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        pl_module.refresh_frozen_modules(epoch=trainer.current_epoch)
