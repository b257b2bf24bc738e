"""LoRA through HF peft: low-rank updates on chosen linear (or 1x1 conv) layers.

peft's ``inject_adapter_in_model`` works on any torch module, timm included, so ftlab
does not reimplement LoRA; it picks targets from the backbone's anatomy presets and
passes peft's own options (DoRA, rsLoRA, init) through.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.errors import ConfigError
from ftlab.methods.base import Method, validate_count


class LoRA(Method):
    name = "lora"
    requires = frozenset({Capability.HEAD, Capability.LORA_TARGETS})
    suggestion = "Give explicit method.targets (module names) for this backbone."

    def __init__(
        self,
        r: int = 8,
        alpha: float = 16,
        dropout: float = 0.0,
        targets: str | list[str] = "default",
        use_dora: bool = False,
        use_rslora: bool = False,
        init: bool | str = True,
        train_bias: bool = False,
        peft_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.r = validate_count("method.r", r)
        if alpha <= 0:
            raise ConfigError(f"method.alpha={alpha} must be > 0.")
        if not 0 <= dropout < 1:
            raise ConfigError(f"method.dropout={dropout} must be in [0, 1).")
        self.alpha = alpha
        self.dropout = dropout
        self.targets = targets if isinstance(targets, str) else [str(t) for t in targets]
        self.use_dora = use_dora
        self.use_rslora = use_rslora
        self.init = init
        self.train_bias = train_bias
        self.peft_options = dict(peft_options or {})

    @property
    def label(self) -> str:
        kind = "dora" if self.use_dora else "lora"
        preset = self.targets if isinstance(self.targets, str) else "custom"
        return f"{kind}(r={self.r},{preset})" if preset != "default" else f"{kind}(r={self.r})"

    def hparams(self) -> dict[str, Any]:
        return {
            **super().hparams(),
            "r": self.r,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "targets": self.targets,
            "use_dora": self.use_dora,
            "use_rslora": self.use_rslora,
        }

    def check(self, anatomy: Anatomy, backbone_label: str = "this backbone") -> None:
        if isinstance(self.targets, list):
            return  # explicit module names work on any backbone that has them
        super().check(anatomy, backbone_label)
        if self.targets not in anatomy.lora_targets:
            raise ConfigError(
                f"method.targets={self.targets!r} is not a preset of {backbone_label} "
                f"({anatomy.family}); presets: {sorted(anatomy.lora_targets)}, or a list of "
                "module names."
            )

    def target_modules(self, anatomy: Anatomy) -> list[str]:
        return (
            list(self.targets)
            if isinstance(self.targets, list)
            else anatomy.lora_targets[self.targets]
        )

    def modify(self, module: nn.Module) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        backbone = module.backbone
        config = LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules(backbone.anatomy),
            use_dora=self.use_dora,
            use_rslora=self.use_rslora,
            init_lora_weights=self.init,
            bias="lora_only" if self.train_bias else "none",
            **self.peft_options,
        )
        try:
            inject_adapter_in_model(config, backbone)
        except ValueError as err:
            raise ConfigError(
                f"LoRA found no target in {backbone.label}: {err}. Set method.targets to module "
                f"names of this backbone (presets: {sorted(backbone.anatomy.lora_targets)})."
            ) from err
        for name, param in backbone.named_parameters():
            if "lora_" in name:
                param.requires_grad_(True)

    def merge(self, module: nn.Module) -> int:
        """Fold every LoRA update into its base layer and put the plain layer back, leaving
        a backbone with no peft modules in it. Returns the number of merged layers."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        backbone = module.backbone
        merged = 0
        for name, sub in list(backbone.named_modules()):
            if isinstance(sub, BaseTunerLayer) and hasattr(sub, "get_base_layer"):
                sub.merge(safe_merge=True)
                parent_name, _, attr = name.rpartition(".")
                parent = backbone.get_submodule(parent_name) if parent_name else backbone
                setattr(parent, attr, sub.get_base_layer())
                merged += 1
        return merged
