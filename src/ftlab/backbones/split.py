"""A backbone cut after its k-th block, so the frozen part can run once per sample.

When the stem and the first k blocks hold no trainable parameter (``last_n`` with
n < N), their output for a given input never changes during training. The feature cache
computes it once (:meth:`FrozenPrefix.prefix`) and training runs only the rest
(:meth:`FrozenPrefix.suffix`).

The cut needs no per-architecture code: ``prefix`` stops the backbone's own forward at the
k-th block with a forward hook, and ``suffix`` runs the backbone's forward on one stored
example while a hook swaps the k-th block's output for the cached batch. The frozen part
thus still runs on one example per step (1/B of its cost); everything after the cut runs
exactly as in the backbone's forward. :meth:`FrozenPrefix.why_not` refuses a cut that
would change results, checked on a real batch.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import DropBlock2d, DropPath
from torch import nn

from ftlab.backbones.anatomy import Capability
from ftlab.backbones.base import Backbone


class _Stop(Exception):
    def __init__(self, output: torch.Tensor) -> None:
        self.output = output


class FrozenPrefix:
    def __init__(self, backbone: Backbone, k: int) -> None:
        self.backbone = backbone
        self.k = k
        self.cut = backbone.get_submodule(backbone.anatomy.blocks[k - 1])
        self.example: dict[str, torch.Tensor] | None = None

    @staticmethod
    def frozen_blocks(backbone: Backbone) -> int:
        """How many leading blocks (with the stem before them) hold no trainable parameter."""
        trains = {backbone.layer_id(n) for n, p in backbone.named_parameters() if p.requires_grad}
        first = min(trains, default=backbone.anatomy.num_layers)
        return max(0, min(first - 1, backbone.anatomy.num_blocks))

    def prefix(self, batch: dict[str, Any]) -> torch.Tensor:
        """The k-th block's output for ``batch`` (the backbone stops there)."""

        def stop(module, args, output):
            raise _Stop(output)

        if self.example is None:
            self.example = {
                key: value[:1].detach().cpu()
                for key, value in batch.items()
                if key != "labels" and torch.is_tensor(value)
            }
        handle = self.cut.register_forward_hook(stop)
        try:
            self.backbone(batch)
        except _Stop as stopped:
            return stopped.output
        finally:
            handle.remove()
        raise RuntimeError(f"{self.backbone.anatomy.blocks[self.k - 1]} never ran")

    def suffix(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features from cached k-th block outputs."""
        assert self.example is not None, "prefix() stores the example suffix() runs on"
        handle = self.cut.register_forward_hook(lambda module, args, output: features)
        try:
            return self.backbone({k: v.to(features.device) for k, v in self.example.items()})
        finally:
            handle.remove()

    def why_not(self, module: nn.Module, batch: dict[str, Any]) -> str | None:
        """Why caching after block k would change the result (None: it would not).

        Runs the frozen part in the mode training uses (frozen sub-modules in eval mode) with
        autograd on: its output must not depend on a trainable parameter (whatever layer id
        a method gave it), and no module it calls may be random or batch-dependent. Then
        checks on ``batch`` that ``suffix(prefix(x))`` equals the backbone's forward.
        """
        anatomy = self.backbone.anatomy
        if Capability.CHAINED_BLOCKS not in anatomy.capabilities:
            # e.g. a text encoder's layers also need the batch's attention mask, which the
            # stored example cannot provide
            return (
                f"a {anatomy.family} backbone's layers need more than the previous layer's output"
            )
        called: list[nn.Module] = []
        hook = nn.modules.module.register_module_forward_pre_hook(lambda m, args: called.append(m))
        was_training = module.training
        try:
            module.train(True)  # what training runs: frozen sub-modules stay in eval mode
            with torch.enable_grad():
                out = self.prefix(batch)
        finally:
            hook.remove()
            module.train(was_training)
        if out.requires_grad:  # a trainable parameter acts before the cut (a prompt, say)
            return f"a trainable parameter acts before block {self.k}'s output"
        for sub in called:
            if sub.training and _random_or_batch_dependent(sub):
                return f"the frozen part runs {type(sub).__name__} in training mode"
        self.backbone.eval()
        try:
            with torch.no_grad():
                whole = self.backbone(batch)
                split = self.suffix(self.prefix(batch))
        finally:
            module.train(was_training)
        if whole.shape != split.shape or not torch.allclose(whole, split, atol=1e-5, rtol=1e-4):
            return "the backbone's forward does not hand the block's output straight on"
        return None


#: modules that drop at random in training mode, by their probability attribute
RANDOM = ((nn.modules.dropout._DropoutNd, "p"), (DropPath, "drop_prob"), (DropBlock2d, "drop_prob"))


def _random_or_batch_dependent(module: nn.Module) -> bool:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return True  # batch statistics: a cached sample would not see its batch
    return any(isinstance(module, kind) and (getattr(module, p, 0) or 0) > 0 for kind, p in RANDOM)
