"""Any peft tuner that injects into a torch module, as one method.

peft's tuners (LoRA, IA3, LoHa, LoKr, OFT, BOFT, HRA, FourierFT, VeRA, AdaLoRA, LN
tuning, ...) all build on ``BaseTuner``, which wraps the layers a config targets in place.
:class:`PeftTuner` builds the tuner named by ``method.tuner`` on the backbone, with target
modules from the backbone's presets unless the tuner names its own, and keeps peft's tuner
object for what needs more than injection: AdaLoRA's rank allocator (called after every
optimizer step) and orthogonal regulariser (added to the loss), and VeRA's shared
projections, which peft's ``inject_adapter_in_model`` refuses but the tuner class itself
(what ``get_peft_model`` uses) builds. The head is never a target: it is outside the
backbone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.errors import ConfigError, MethodNotApplicable, one_line, suggest
from ftlab.methods.base import Method, is_norm
from ftlab.plain import plain

#: the target preset every backbone offers, computed from its module tree
NORMS = "norms"
#: presets some family offers: missing on a backbone, the method does not apply to it
PRESETS = ("default", "attention", "mlp", "all_linear", "all", NORMS)


def _said(err: BaseException) -> str:
    """What peft said, whole (its point is often on a later line), as one sentence."""
    text = one_line(err, first=False)
    return text if text.endswith(".") else text + "."


def peft_config_class(target: str) -> type:
    """The peft config class that ``tuner._target_`` names, checked to be one that builds
    layers into a module (not a prompt-learning config)."""
    from hydra.utils import get_class
    from peft import PeftConfig
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    try:
        cls = get_class(target)
    except Exception as err:  # hydra: ImportError/ValueError wrapped in its own types
        raise ConfigError(
            f"method.tuner._target_={target!r} is not an importable class; use a peft config "
            f"(peft ships: {', '.join(injectable_configs())}).{suggest(target, injectable_configs())}"
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, PeftConfig)):
        raise ConfigError(
            f"method.tuner._target_={target!r} is not a peft config class (peft ships: "
            f"{', '.join(injectable_configs())})."
        )
    if _peft_type_of(cls) not in PEFT_TYPE_TO_TUNER_MAPPING or _is_prompt_learning(cls):
        raise ConfigError(
            f"method.tuner._target_={target!r} is a prompt-learning config, which adds tokens "
            "instead of layers; use method=prompt or method=prefix (ftlab's own, on every "
            f"backbone family), or a tuner that adds layers: {', '.join(injectable_configs())}."
        )
    return cls


def _peft_type_of(cls: type):
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return next((kind for kind, c in PEFT_TYPE_TO_CONFIG_MAPPING.items() if c is cls), None)


def _is_prompt_learning(cls: type) -> bool:
    from peft.config import PromptLearningConfig

    return issubclass(cls, PromptLearningConfig) or cls.__name__ in (
        "AdaptionPromptConfig",
        "ShadowConfig",
    )


def tuner_options(config_class: type) -> list[str]:
    """The options a peft config takes from a user: its own fields, not the bookkeeping
    every peft config shares (peft_type, task_type, base_model_name_or_path, ...)."""
    import dataclasses

    from peft import PeftConfig

    shared = {f.name for f in dataclasses.fields(PeftConfig)}
    return sorted(
        f.name for f in dataclasses.fields(config_class) if f.init and f.name not in shared
    )


def injectable_configs() -> list[str]:
    """Names of the peft config classes whose tuners add layers (what ``tuner`` takes)."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    return sorted(
        "peft." + cls.__name__
        for kind, cls in PEFT_TYPE_TO_CONFIG_MAPPING.items()
        if kind in PEFT_TYPE_TO_TUNER_MAPPING and not _is_prompt_learning(cls)
    )


class PeftInjected(Method):
    """What every peft-backed method shares: targets from the backbone's presets, peft's
    tuner built on the backbone, its parameters trained, AdaLoRA's schedule, merging.
    Subclasses say which peft config to build (:meth:`peft_config`)."""

    requires = frozenset({Capability.BLOCKS})
    suggestion = "Give explicit method.targets (module names) for this backbone."

    def __init__(self, targets: str | list[str] = "default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        targets = plain(targets)
        self.targets = targets if isinstance(targets, str) else [str(t) for t in targets]
        self.peft_model: nn.Module | None = None  # peft's tuner, once applied
        self._allocated_at = -1

    def names_targets(self) -> bool:
        """Whether the method names its target modules itself (presets do not apply)."""
        return not isinstance(self.targets, str)

    def preset_label(self) -> str:
        preset = self.targets if isinstance(self.targets, str) else "custom"
        return "" if preset == "default" or self.names_targets() else preset

    # -- what it targets -------------------------------------------------------------------
    def check(self, anatomy: Anatomy, backbone_label: str = "this backbone") -> None:
        super().check(anatomy, backbone_label)
        if self.names_targets():
            return
        presets = sorted({*anatomy.lora_targets, NORMS})
        if self.targets == "default" and not anatomy.lora_targets:
            raise MethodNotApplicable(
                f"method={self.name} finds no layers to target in {backbone_label} "
                f"({anatomy.family}): it has no target presets. {self.suggestion}"
            )
        if self.targets in PRESETS and self.targets not in presets:
            raise MethodNotApplicable(
                f"method={self.name} targets the {self.targets!r} preset, which {backbone_label} "
                f"({anatomy.family}) does not have (presets: {presets})."
            )
        if self.targets not in presets:
            raise ConfigError(
                f"method.targets={self.targets!r} is not a preset of {backbone_label} "
                f"({anatomy.family}); presets: {presets}, or a list of module names."
                f"{suggest(self.targets, presets)}"
            )

    def target_modules(self, backbone: nn.Module) -> list[str]:
        if isinstance(self.targets, list):
            return list(self.targets)
        if self.targets == NORMS:
            norms = [
                n
                for n, m in backbone.named_modules()
                if is_norm(m) or isinstance(m, nn.modules.batchnorm._BatchNorm)
            ]
            if not norms:
                raise MethodNotApplicable(
                    f"method.targets=norms but {backbone.label} has no normalisation layers."
                )
            return norms
        return list(backbone.anatomy.lora_targets[self.targets])

    def peft_config(self, backbone: nn.Module):  # pragma: no cover - subclasses
        raise NotImplementedError

    # -- the mechanism ---------------------------------------------------------------------
    def modify(self, module: nn.Module) -> None:
        from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

        backbone = module.backbone
        config = self.peft_config(backbone)
        tuner_class = PEFT_TYPE_TO_TUNER_MAPPING[config.peft_type]
        try:
            # what get_peft_model does under its wrapper: layers replaced in place
            self.peft_model = tuner_class(backbone, config, adapter_name="default")
        except (ValueError, TypeError, NotImplementedError, KeyError) as err:
            raise MethodNotApplicable(
                f"method={self.name} (peft's {tuner_class.__name__}) cannot apply to "
                f"{backbone.label} ({backbone.anatomy.family}) with target modules "
                f"{_short(config.target_modules)}: {_said(err)}"
            ) from err
        prefix = tuner_class.prefix
        for name, param in backbone.named_parameters():
            if prefix in name and param.is_floating_point():
                param.requires_grad_(True)

    def regularization(self, module: nn.Module) -> torch.Tensor | None:
        """AdaLoRA's orthogonal regulariser: how far each P (lora_A) and Q (lora_B) is
        from orthonormal, in Frobenius norm, averaged, times ``orth_reg_weight``."""
        weight = getattr(self.tuner_config, "orth_reg_weight", 0.0) if self.peft_model else 0.0
        if not weight or not hasattr(self.peft_model, "update_and_allocate"):
            return None
        terms = []
        for name, param in module.backbone.named_parameters():
            if not param.requires_grad or not ("lora_A" in name or "lora_B" in name):
                continue
            gram = param @ param.T if "lora_A" in name else param.T @ param
            eye = torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
            terms.append(torch.linalg.matrix_norm(gram - eye))
        return weight * torch.stack(terms).mean() if terms else None

    @property
    def tuner_config(self):
        return self.peft_model.peft_config["default"] if self.peft_model is not None else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """AdaLoRA: after each optimizer step (gradients still there: Lightning zeroes
        them before the next backward), score and prune ranks as peft's loop does."""
        allocate = getattr(self.peft_model, "update_and_allocate", None)
        if allocate is None or trainer.global_step == self._allocated_at:
            return
        self._allocated_at = trainer.global_step
        allocator = self.peft_model.rankallocator
        if not allocator.ipt:  # a fit shorter than tinit + tfinal + 1 steps would mask
            allocator.update_ipt(self.peft_model.model)  # before any score: score it first
        allocate(trainer.global_step)

    def merge(self, module: nn.Module) -> int:
        """Fold every tuner layer into its base layer and put the plain layer back, leaving
        a backbone with no peft modules in it (peft's own ``merge_and_unload``, checking
        the merged weights for NaNs). Returns the number of merged layers."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        if self.peft_model is None or self.peft_model.model is not module.backbone:
            raise ConfigError(
                f"method={self.name} merges the tuner it built in the module it was applied "
                "to, and was not applied to this one; merge that module, or apply a new "
                f"method={self.name} here first."
            )
        layers = sum(isinstance(m, BaseTunerLayer) for m in module.backbone.modules())
        try:
            self.peft_model.merge_and_unload(safe_merge=True)
        except (NotImplementedError, ValueError, TypeError) as err:
            raise ConfigError(
                f"method={self.name}: peft's {type(self.peft_model).__name__} cannot merge into "
                f"its base layers ({_said(err)}) Evaluate with merge_lora=false."
            ) from err
        return layers


def _short(names: Any) -> str:
    names = sorted(names) if isinstance(names, set | list | tuple) else [str(names)]
    return ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")


class PeftTuner(PeftInjected):
    """``method.tuner``: a peft config (``_target_`` plus its options) whose tuner adds
    layers; ``method.targets``: a preset of the backbone (``default``, ``attention``,
    ``all_linear``, ``all`` on CNNs, ``norms`` everywhere) or module names, used unless
    the tuner sets ``target_modules`` itself."""

    name = "peft"
    #: the size knobs a label shows, the first the tuner has
    SIZE_KNOBS = ("r", "init_r", "n_frequency", "boft_block_size", "oft_block_size")

    def __init__(self, tuner: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        tuner = plain(tuner)
        if not isinstance(tuner, Mapping) or "_target_" not in tuner:
            raise ConfigError(
                f"method.tuner={tuner!r} must be a mapping with a _target_ naming a peft config, "
                "e.g. {_target_: peft.IA3Config} (peft ships: "
                f"{', '.join(injectable_configs())})."
            )
        self.tuner = dict(tuner)
        self.config_class = peft_config_class(str(tuner["_target_"]))
        self.total_steps: int | None = None  # the fit's optimizer steps (AdaLoRA's schedule)
        options = tuner_options(self.config_class)
        unknown = sorted(set(self.tuner) - {"_target_"} - set(options))
        if unknown:
            raise ConfigError(
                f"method.tuner.{unknown[0]} is not an option of peft's "
                f"{self.config_class.__name__} (valid: {', '.join(options)})."
                f"{suggest(unknown[0], options)}"
            )

    #: peft tuners that are not low-rank or orthogonal reparameterisations of a weight
    KINDS = {"IA3": "additive", "LN_TUNING": "selective"}

    @property
    def kind(self) -> str:  # type: ignore[override]
        peft_type = str(getattr(_peft_type_of(self.config_class), "value", ""))
        return self.KINDS.get(peft_type, "reparameterising")

    @property
    def label(self) -> str:
        size = next((f"{k}={self.tuner[k]}" for k in self.SIZE_KNOBS if k in self.tuner), "")
        knobs = ",".join(k for k in (size, self.preset_label()) if k)
        return f"{self.name}({knobs})" if knobs else self.name

    def names_targets(self) -> bool:
        return self.tuner.get("target_modules") is not None or super().names_targets()

    def modify(self, module: nn.Module) -> None:
        super().modify(module)
        self._probe(module.backbone)

    def _probe(self, backbone: nn.Module) -> None:
        """Run the backbone once on its own example input: some tuners' layers assume an
        input layout the backbone does not use (peft's OFT takes a Linear layer's 4-D,
        channels-last input, as ConvNeXt's MLP gets it, for a convolution's), which would
        otherwise fail in the first training step."""
        was_training = backbone.training
        backbone.eval()
        try:
            with torch.no_grad():
                backbone(backbone.example_batch())
        except RuntimeError as err:
            raise MethodNotApplicable(
                f"method={self.name} (peft's {type(self.peft_model).__name__}) builds layers in "
                f"{backbone.label} ({backbone.anatomy.family}) that fail on its input: "
                f"{_said(err)} Use lora, or a tuner that runs on this backbone's layers."
            ) from err
        finally:
            backbone.train(was_training)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            steps = trainer.estimated_stepping_batches
            self.total_steps = int(steps) if math.isfinite(steps) else None
        super().setup(trainer, pl_module, stage)
        live = self.tuner_config
        if stage == "fit" and hasattr(live, "total_step") and not self.tuner.get("total_step"):
            # applied before the fit knew its length (by hand, or a module built applied):
            # the schedule is read live, so the fit's length replaces the stand-in
            live.total_step = self.peft_config(pl_module.backbone).total_step

    def peft_config(self, backbone: nn.Module):
        """The peft config object: the tuner's options, the targets, and what ftlab derives
        (AdaLoRA's ``total_step`` from the trainer)."""
        options = {k: v for k, v in self.tuner.items() if k != "_target_"}
        if options.get("target_modules") is None:
            options["target_modules"] = self.target_modules(backbone)
        if "total_step" in self.config_class.__dataclass_fields__ and not options.get("total_step"):
            # AdaLoRA's budget schedule spans the fit; outside a fit (ftlab-eval, a test
            # applying by hand) no schedule runs, and any valid length will do
            tinit, tfinal = options.get("tinit", 0), options.get("tfinal", 0)
            options["total_step"] = self.total_steps or tinit + tfinal + 1
        return build_config(self.config_class, options, "method.tuner")


def build_config(config_class: type, options: dict[str, Any], what: str):
    """``config_class(**options)``, peft's refusal of a value as a ConfigError."""
    try:
        return config_class(**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"{what}: peft's {config_class.__name__} refuses these settings: {_said(err)}"
        ) from err
