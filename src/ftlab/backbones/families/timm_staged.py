"""timm models in stages: CNNs (ResNet, EfficientNet, MobileNet, ConvNeXt, ...) and
transformers in stages that no more specific recipe takes.

``blocks`` are the stages (what ``last_n`` and ``gradual`` count). Inside them, a residual
block whose feed-forward ends in a ``Linear`` (ConvNeXt's MLP, a Swin block's) works on
channels-last tokens, so adapters can sit after it, and after its ``attn`` where that ends
in a ``Linear`` too. LoRA targets the 1x1 convolutions, else the linear layers.
"""

from __future__ import annotations

from torch import nn

from ftlab.backbones.anatomy import Anatomy
from ftlab.backbones.families.timm_parts import PREFIX, TimmParts


def describe(model: nn.Module, parts: TimmParts) -> Anatomy:
    blocks = parts.blocks
    inside = [
        (PREFIX + name, m)
        for name, m in model.named_modules()
        if any((PREFIX + name).startswith(b + ".") for b in blocks)
    ]
    pointwise = [
        name
        for name, m in inside
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
    ]
    linear = [name for name, m in inside if isinstance(m, nn.Linear)]
    all_convs = [
        PREFIX + name
        for name, m in model.named_modules()
        if (isinstance(m, nn.Conv2d) and m.groups == 1) or isinstance(m, nn.Linear)
    ]
    presets = {"default": pointwise or linear, "all": all_convs} if pointwise or linear else {}
    if linear:
        presets["all_linear"] = linear
    residual = [name for name, m in inside if _ends_in_linear(getattr(m, "mlp", None))]
    with_attention = all(
        _ends_in_linear(getattr(model.get_submodule(n[len(PREFIX) :]), "attn", None))
        for n in residual
    )
    attention = [n + ".attn" for n in residual] if residual and with_attention else []
    convolutional = any(isinstance(m, nn.Conv2d) for _, m in inside)
    return Anatomy(
        family="cnn" if convolutional else "hierarchical",
        blocks=blocks,
        layer_ids=parts.layer_ids,
        feature_dim=model.num_features,
        stage_blocks=residual,
        attention=attention,
        mlp=[n + ".mlp" for n in residual],
        lora_targets=presets,
        attention_output=attention,
        mlp_input=[n + ".mlp" for n in residual],
        mlp_output=[n + ".mlp" for n in residual],
        block_widths=[_width(model.get_submodule(n[len(PREFIX) :]).mlp) for n in residual],
        chained_blocks=True,
        convolutional=convolutional,
    )


def _ends_in_linear(module: nn.Module | None) -> bool:
    """Whether ``module``'s result comes out of a ``Linear``: per token, channels last, so a
    bottleneck of ``Linear`` layers can read and add to it."""
    if module is None:
        return False
    last = [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    return bool(last) and isinstance(last[-1], nn.Linear)


def _width(mlp: nn.Module) -> int:
    """The width of the tokens a channels-last feed-forward returns (its last Linear's)."""
    return [m for m in mlp.modules() if isinstance(m, nn.Linear)][-1].out_features
