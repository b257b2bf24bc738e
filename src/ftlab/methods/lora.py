"""LoRA through HF peft: low-rank updates on chosen linear (or 1x1 conv) layers.

peft's tuners work on any torch module, timm included, so ftlab does not reimplement
LoRA; it picks targets from the backbone's anatomy presets and passes peft's own options
(DoRA, rsLoRA, the PiSSA/OLoRA/... initialisations) through, on the same path as every
other peft tuner (:class:`~ftlab.methods.peft_tuner.PeftInjected`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ftlab.backbones.anatomy import Capability
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.methods.base import validate_count
from ftlab.methods.peft_tuner import PeftInjected, build_config


class LoRA(PeftInjected):
    kind = "reparameterising"
    name = "lora"
    requires = frozenset({Capability.LORA_TARGETS})

    def __init__(
        self,
        r: int = 8,
        alpha: float = 16,
        dropout: float = 0.0,
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
        self.use_dora = use_dora
        self.use_rslora = use_rslora
        self.init = init
        self.train_bias = train_bias
        self.peft_options = dict(peft_options or {})

    @property
    def label(self) -> str:
        kind = "dora" if self.use_dora and self.name == "lora" else self.name
        knobs = ",".join(k for k in (f"r={self.r}", self.preset_label()) if k)
        return f"{kind}({knobs})"

    def peft_config(self, backbone: nn.Module):
        from peft import LoraConfig

        options = dict(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules(backbone),
            use_dora=self.use_dora,
            use_rslora=self.use_rslora,
            init_lora_weights=self.init,
            bias="lora_only" if self.train_bias else "none",
        )
        return build_config(LoraConfig, {**options, **self.peft_options}, f"method={self.name}")

    def modify(self, module: nn.Module) -> None:
        super().modify(module)
        self._check_factor_shapes(module.backbone)

    def _check_factor_shapes(self, backbone: nn.Module) -> None:
        """Refuse factors that do not fit their layer: peft's OLoRA initialisation ignores a
        transposed layer (transformers' ``Conv1D``, GPT-2's) and would fail in the forward."""
        from peft.tuners.lora import LoraLayer

        for name, layer in backbone.named_modules():
            if not isinstance(layer, LoraLayer) or "default" not in layer.lora_A:
                continue
            down, up = layer.lora_A["default"].weight, layer.lora_B["default"].weight
            if down.dim() != 2:  # a convolution's factors: no transposed layers there
                continue
            # the weights, not the Linear's in/out_features: OLoRA swaps the weight's data
            takes, gives = down.shape[1], up.shape[0]
            if (takes, gives) != (layer.in_features, layer.out_features):
                raise MethodNotApplicable(
                    f"method={self.name} (init={self.init}): peft builds factors for {name} of "
                    f"{backbone.label} that take {takes} and give {gives} features where the "
                    f"layer takes {layer.in_features} and gives {layer.out_features} (a "
                    "transposed layer, such as GPT-2's Conv1D); use method=lora or pissa."
                )
