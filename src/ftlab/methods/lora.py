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
from ftlab.errors import ConfigError
from ftlab.methods.base import validate_count
from ftlab.methods.peft_tuner import PeftInjected, build_config


class LoRA(PeftInjected):
    name = "lora"
    requires = frozenset({Capability.HEAD, Capability.LORA_TARGETS})

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
