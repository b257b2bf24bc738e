"""The shape every fine-tuning method shares.

A method is a Lightning callback. In ``setup`` (before checkpoint restore, before
DDP/FSDP wrap, before optimizers) it calls :meth:`Method.apply`, which freezes the
backbone, lets the subclass unfreeze or inject what it trains, and freezes BatchNorm
statistics of what stays frozen. ``apply`` is idempotent and works without a Trainer.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from timm.layers import RmsNorm, RmsNorm2d, SimpleNorm, SimpleNorm2d
from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.errors import ConfigError, MethodNotApplicable, suggest
from ftlab.settings import check_types


class Method(pl.Callback):
    """Base class: subclasses set ``name``/``requires`` and implement :meth:`modify`."""

    name: ClassVar[str] = "method"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.HEAD})
    suggestion: ClassVar[str] = ""
    #: False for a method that trains nothing (the untouched model is only tested)
    trains: ClassVar[bool] = True
    #: the kind of mechanism, as reports group methods: "unfreezing" (the probe, last_n,
    #: full), "reparameterising" (LoRA and its kin), "additive" (adapters, IA3's scaling
    #: vectors), "soft prompts" (prompts, prefixes), "selective" (BitFit, LN tuning)
    kind: ClassVar[str] = "other"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = [r for r in cls.requires if not isinstance(r, Capability)]
        if unknown:
            raise TypeError(
                f"{cls.__name__}.requires names {unknown!r}; a method requires members of "
                f"ftlab.backbones.Capability: {', '.join(c.value for c in Capability)}."
            )

    def __new__(cls, *args: Any, **settings: Any):
        # types here, once: __new__ sees every setting, while each __init__ along the MRO
        # takes only its own and compares it (r < 1) before this class's __init__ could look
        check_types(cls, settings, "method.")
        return super().__new__(cls)

    def __init__(
        self,
        lr: float | None = None,
        layer_decay: float | None = None,
        name: str | None = None,
        lr_grid: list[float] | None = None,
        **unknown: Any,
    ):
        if name is not None:  # a variant's own name (dora, adapter_pfeiffer, ...)
            self.name = str(name)
        if unknown:
            key = sorted(unknown)[0]
            valid = self.settings()
            raise ConfigError(
                f"method.{key} is not a setting of method={self.name} (valid: "
                f"{', '.join(valid)}).{suggest(key, valid)}"
            )
        if lr is not None and lr <= 0:
            raise ConfigError(f"method.lr={lr} must be > 0.")
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ConfigError(f"method.layer_decay={layer_decay} must be in (0, 1].")
        self.lr = lr
        self.layer_decay = layer_decay
        # what a tuned sweep (tune=lr) tries for this method; training reads only lr
        self.lr_grid = [float(x) for x in lr_grid] if lr_grid is not None else None
        if self.lr_grid and min(self.lr_grid) <= 0:
            raise ConfigError(f"method.lr_grid={self.lr_grid} must hold rates > 0.")

    @classmethod
    def settings(cls) -> list[str]:
        """Every keyword this method's constructors accept: its valid config keys."""
        names = {"name"}
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for param in inspect.signature(init).parameters.values():
                if param.kind is param.KEYWORD_ONLY or param.kind is param.POSITIONAL_OR_KEYWORD:
                    names.add(param.name)
        names.discard("self")
        return sorted(names)

    # -- what users see ------------------------------------------------------------------
    @property
    def label(self) -> str:
        """Name plus the size knob, e.g. ``last_n(n=2)``: the row name in reports."""
        return self.name

    def hparams(self) -> dict[str, Any]:
        """Every setting's value, read from the attribute of the same name: derived from
        the constructors' signatures (:meth:`settings`), never a hand-kept list."""
        return {"name": self.name, **{k: getattr(self, k) for k in self.settings() if k != "name"}}

    # -- the mechanism ---------------------------------------------------------------------
    def needs(self, anatomy: Anatomy) -> frozenset[Capability]:
        """What this method needs from ``anatomy``: ``requires``, unless the method has
        another way to work on a backbone that offers something else (prompts: a token
        sequence, or attention that takes prompts)."""
        return self.requires

    def check(self, anatomy: Anatomy, backbone_label: str = "this backbone") -> None:
        """Refuse, with a sentence, a backbone whose anatomy lacks what this method needs."""
        offered = anatomy.capabilities
        missing = self.needs(anatomy) - offered
        if missing:
            raise MethodNotApplicable(
                f"method={self.name} needs {', '.join(sorted(missing))}, which {backbone_label} "
                f"({anatomy.family}) does not offer (it offers {', '.join(sorted(offered))})."
                f" {self.suggestion}".rstrip()
            )

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        dtype = pl_module.backbone.frozen_dtype
        if dtype != torch.float32 and "mixed" not in str(trainer.precision):
            short = str(dtype).removeprefix("torch.")
            raise ConfigError(
                f"model.dtype={short} stores frozen weights in {short} next to float32 trainable "
                f"ones, which needs autocast: set trainer.precision="
                f"{'bf16' if dtype == torch.bfloat16 else '16'}-mixed (now {trainer.precision}) "
                "or model.dtype=float32."
            )
        self.apply(pl_module)

    def apply(self, module: nn.Module) -> nn.Module:
        """Freeze, inject and mark what trains on ``module`` (a :class:`FineTuneModule`)."""
        current = getattr(module, "method", None)
        if current is self:
            return module
        if current is not None:
            raise ConfigError(
                f"method {current.name!r} is already applied to this module; build a fresh "
                f"module to apply {self.name!r}."
            )
        backbone = module.backbone
        self.check(backbone.anatomy, backbone.label)
        backbone.requires_grad_(False)
        try:
            self.modify(module)
        except RuntimeError as err:  # torch: only floating-point tensors can require grad
            if getattr(backbone, "quantization", None) and "floating point" in str(err):
                raise backbone.quantized_cannot_train(f"method={self.name}") from err
            raise
        module.head.requires_grad_(True)
        freeze_batchnorm(backbone)
        backbone.store_frozen_weights()
        module.method = self
        module.refresh_frozen_modules()
        return module

    def modify(self, module: nn.Module) -> None:
        """Unfreeze or inject what this method trains (the head is handled by ``apply``)."""

    def regularization(self, module: nn.Module) -> torch.Tensor | None:
        """A term the method adds to the training loss (AdaLoRA's orthogonality), or None."""
        return None

    def unfreeze_layers(self, module: nn.Module, first_layer_id: int) -> None:
        """Make every backbone parameter with layer id >= ``first_layer_id`` trainable."""
        for name, param in module.backbone.named_parameters():
            if module.backbone.layer_id(name) >= first_layer_id:
                param.requires_grad_(True)

    # -- optimisation ------------------------------------------------------------------------
    def lr_scale(self, module: nn.Module, param_name: str) -> float:
        """Per-parameter LR multiplier: layer-wise decay from the head down, when set."""
        if self.layer_decay is None or not param_name.startswith("backbone."):
            return 1.0
        backbone = module.backbone
        depth = backbone.anatomy.num_layers  # the head sits one above the top layer id
        return self.layer_decay ** (depth - backbone.layer_id(param_name.removeprefix("backbone.")))

    def start_epoch(self, module: nn.Module, param_name: str) -> int:
        """Epoch from which a trainable parameter's LR is non-zero (0: from the start)."""
        return 0

    def frozen_until(self, module: nn.Module, epoch: int) -> set[str]:
        """Names of backbone sub-modules that stay in eval mode at ``epoch`` although
        trainable (gradual unfreezing keeps BatchNorm statistics of waiting layers still)."""
        return set()


def freeze_batchnorm(root: nn.Module) -> int:
    """Swap every BatchNorm whose affine parameters are all frozen for timm's frozen
    version, so no parent ``.train()`` can update its running statistics."""
    from timm.layers import freeze_batch_norm_2d

    count = 0
    for name, child in list(root.named_modules()):
        if not isinstance(child, nn.modules.batchnorm._BatchNorm):
            continue
        if any(p.requires_grad for p in child.parameters()):
            continue
        frozen = freeze_batch_norm_2d(child)
        if frozen is child:
            continue
        parent_name, _, attr = name.rpartition(".")
        setattr(root.get_submodule(parent_name) if parent_name else root, attr, frozen)
        count += 1
    return count


#: normalisation layer types: torch's, and timm's own that do not subclass them
NORMS = (nn.LayerNorm, nn.RMSNorm, RmsNorm, RmsNorm2d, SimpleNorm, SimpleNorm2d)


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer, by type; by name only for transformers' families, whose norms
    (``LlamaRMSNorm``, ``GemmaRMSNorm``, ...) are each their own ``nn.Module`` with no
    common type to test."""
    return isinstance(module, NORMS) or type(module).__name__.endswith(("LayerNorm", "RMSNorm"))


def train_block_extras(
    module: nn.Module, norms: bool, bias: bool, layers: list[int] | None = None
) -> None:
    """Also train the normalisation layers and/or every bias inside the blocks (``layers``:
    indices of residual blocks, as adapters count them; every block when ``None``)."""
    anatomy = module.backbone.anatomy
    backbone = module.backbone
    chosen = anatomy.blocks if layers is None else [anatomy.residual_blocks[i] for i in layers]
    for block_name in chosen:
        block = backbone.get_submodule(block_name)
        if norms:
            for sub in block.modules():
                if is_norm(sub):
                    sub.requires_grad_(True)
        if bias:
            for name, param in block.named_parameters():
                if name.endswith("bias"):
                    param.requires_grad_(True)


def validate_count(key: str, value: Any, upper: int | None = None, what: str = "") -> int:
    """Check an integer size knob: positive, and at most ``upper`` when given."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}={value!r} must be a positive integer.")
    if upper is not None and value > upper:
        raise ConfigError(f"{key}={value} but {what} (valid: 1..{upper}).")
    return value
