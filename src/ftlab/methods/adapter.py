"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021; He et al. 2022).

A small down-projection, non-linearity and up-projection sits in every chosen block:
after the attention and the feed-forward sub-layers (``houlsby``), after the feed-forward
only (``pfeiffer``), or beside the feed-forward, reading its input (``parallel``). The
anatomy names the sites; ``apply`` swaps each for a wrapper that calls the original module
and adds the adapter, so the module names are the same on every rebuild.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.methods.base import Method, train_block_extras, validate_count

PLACEMENTS = ("houlsby", "pfeiffer", "parallel")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
INITS = ("near_identity", "normal", "kaiming")


class Bottleneck(nn.Module):
    """``up(act(down(x)))``; ``near_identity`` starts ``up`` at zero, so adding it to a
    residual changes nothing until training moves it."""

    def __init__(self, dim: int, hidden: int, activation: str, init: str, init_std: float) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(hidden, dim)
        with torch.no_grad():
            self.down.bias.zero_()
            self.up.bias.zero_()
            if init == "near_identity":  # down keeps nn.Linear's own init
                self.up.weight.zero_()
            elif init == "normal":
                nn.init.normal_(self.down.weight, std=init_std)
                nn.init.normal_(self.up.weight, std=init_std)
            else:
                nn.init.kaiming_normal_(self.down.weight, nonlinearity="relu")
                nn.init.kaiming_normal_(self.up.weight, nonlinearity="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class InputTap(nn.Module):
    """Passes through ``base`` and keeps its input for the parallel adapter that a later
    module of the same block adds (when the feed-forward's input and output are two
    modules, as in BERT). Read once per call, so gradient checkpointing's replay of the
    block sets it again before it is read."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        self.seen = x
        return self.base(x, *args, **kwargs)

    def pop(self) -> torch.Tensor:
        seen, self.seen = self.seen, None
        if seen is None:
            raise RuntimeError("parallel adapter ran before its block's feed-forward input")
        return seen


class AdapterSite(nn.Module):
    """``base`` plus an adapter: ``y + s * A(y)`` (sequential) or ``y + s * A(x)``
    (parallel), where ``y = base(x)`` and ``x`` is the input (or the tapped one)."""

    def __init__(
        self, base: nn.Module, adapter: Bottleneck, scaling: float, parallel: bool = False
    ) -> None:
        super().__init__()
        self.base = base
        self.adapter = adapter
        self.scaling = scaling
        self.parallel = parallel
        self._tap: InputTap | None = None  # a reference, not a child: it lives elsewhere

    def tap_from(self, tap: InputTap) -> None:
        object.__setattr__(self, "_tap", tap)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        y = self.base(x, *args, **kwargs)
        if not self.parallel:
            return y + self.scaling * self.adapter(y)
        source = x if self._tap is None else self._tap.pop()
        return y + self.scaling * self.adapter(source)


def output_width(module: nn.Module, default: int) -> int:
    """Width of what ``module`` returns: its last Linear's ``out_features``."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else default


def validate_layers(layers: Any, num_blocks: int | None = None) -> list[int] | None:
    """``None`` (every residual block) or a list of distinct residual block indices
    (0-based: a ViT's or BERT's layers, every block inside a Swin's or ConvNeXt's stages)."""
    if layers is None:
        return None
    if isinstance(layers, int) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in layers
    ):
        raise ConfigError(f"method.layers={layers!r} must be null (all blocks) or a list of ints.")
    layers = list(layers)
    if not layers or len(set(layers)) != len(layers):
        raise ConfigError(f"method.layers={layers} must be non-empty and without repeats.")
    if num_blocks is not None and not all(0 <= i < num_blocks for i in layers):
        raise ConfigError(
            f"method.layers={layers} but this backbone has {num_blocks} residual blocks "
            f"(valid: 0..{num_blocks - 1})."
        )
    return layers


class Adapter(Method):
    kind = "additive"
    name = "adapter"
    requires = frozenset({Capability.BLOCKS, Capability.MLP_OUTPUT})
    suggestion = "Use lora, last_n or full, which need only blocks."

    def __init__(
        self,
        placement: str = "houlsby",
        reduction_factor: int = 16,
        bottleneck_dim: int | None = None,
        activation: str = "relu",
        init: str = "near_identity",
        init_std: float = 1e-2,
        scaling: float = 1.0,
        layers: list[int] | None = None,
        train_norms: bool = False,
        train_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for key, value, choices in (
            ("placement", placement, PLACEMENTS),
            ("activation", activation, tuple(ACTIVATIONS)),
            ("init", init, INITS),
        ):
            if value not in choices:
                raise ConfigError(f"method.{key}={value!r} is not one of {list(choices)}.")
        self.placement = placement
        self.reduction_factor = validate_count("method.reduction_factor", reduction_factor)
        self.bottleneck_dim = (
            None
            if bottleneck_dim is None
            else validate_count("method.bottleneck_dim", bottleneck_dim)
        )
        self.activation = activation
        self.init = init
        if init_std <= 0:
            raise ConfigError(f"method.init_std={init_std} must be > 0.")
        self.init_std = init_std
        if scaling <= 0:
            raise ConfigError(f"method.scaling={scaling} must be > 0.")
        self.scaling = float(scaling)
        self.layers = validate_layers(layers)
        self.train_norms = train_norms
        self.train_bias = train_bias

    @property
    def label(self) -> str:
        size = f"d={self.bottleneck_dim}" if self.bottleneck_dim else f"r={self.reduction_factor}"
        return f"adapter({self.placement},{size})"

    def hidden_size(self, width: int, where: str = "the model") -> int:
        """The bottleneck width for a stream of ``width`` features."""
        if self.bottleneck_dim is not None:
            return self.bottleneck_dim
        if self.reduction_factor > width:
            raise ConfigError(
                f"method.reduction_factor={self.reduction_factor} is wider than {where} "
                f"({width} features): the bottleneck would be empty (valid: 1..{width})."
            )
        return width // self.reduction_factor

    def check(self, anatomy: Anatomy, backbone_label: str = "this backbone") -> None:
        super().check(anatomy, backbone_label)
        if self.placement == "houlsby" and Capability.ATTENTION_OUTPUT not in anatomy.capabilities:
            raise MethodNotApplicable(
                f"method={self.name} (placement=houlsby) puts an adapter after each block's "
                f"attention and feed-forward, and {backbone_label}'s blocks ({anatomy.family}) "
                "have no attention output to adapt; use method=adapter_pfeiffer or "
                "adapter_parallel (method.placement=pfeiffer or parallel), which adapt the "
                "feed-forward only."
            )
        blocks = len(anatomy.residual_blocks)
        validate_layers(self.layers, blocks)
        narrowest = min(anatomy.block_width(i) for i in range(blocks))
        where = f"{backbone_label}'s {'narrowest block' if anatomy.block_widths else 'width'}"
        self.hidden_size(narrowest, where)

    def sites(self, anatomy: Anatomy) -> list[tuple[int, str, str | None]]:
        """(block index, module to wrap, module whose input a parallel adapter reads when
        it is another one) for every adapter, in a fixed order."""
        chosen = range(len(anatomy.residual_blocks)) if self.layers is None else sorted(self.layers)
        sites = []
        for i in chosen:
            if self.placement == "houlsby":
                sites.append((i, anatomy.attention_output[i], None))
            if self.placement == "parallel":
                tap = anatomy.mlp_input[i]
                sites.append(
                    (i, anatomy.mlp_output[i], None if tap == anatomy.mlp_output[i] else tap)
                )
            else:
                sites.append((i, anatomy.mlp_output[i], None))
        return sites

    def modify(self, module: nn.Module) -> None:
        backbone = module.backbone
        anatomy = backbone.anatomy
        parallel = self.placement == "parallel"
        for _, name, tap_name in self.sites(anatomy):
            base = backbone.get_submodule(name)
            width = output_width(base, anatomy.feature_dim)
            adapter = Bottleneck(
                width, self.hidden_size(width), self.activation, self.init, self.init_std
            ).to(next(base.parameters()).device)
            site = AdapterSite(base, adapter, self.scaling, parallel=parallel)
            if tap_name is not None:
                tap = InputTap(backbone.get_submodule(tap_name))
                backbone.set_submodule(tap_name, tap)
                site.tap_from(tap)
            backbone.set_submodule(name, site)
        train_block_extras(module, self.train_norms, self.train_bias, self.layers)
        for sub in backbone.modules():
            if isinstance(sub, AdapterSite):
                sub.adapter.requires_grad_(True)
