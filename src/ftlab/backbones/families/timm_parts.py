"""What every timm recipe starts from: the blocks timm's own parameter grouping names, and
ftlab's layer ids over them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from timm.models import group_parameters
from timm.models._manipulate import MATCH_PREV_GROUP
from torch import nn

from ftlab.backbones.anatomy import assign_layer_ids

PREFIX = "model."  # the timm model sits at ``model`` inside the backbone


@dataclass
class TimmParts:
    blocks: list[str]
    """The coarse groups timm's ``group_matcher(coarse=True)`` calls blocks (a ViT's
    blocks, a CNN's or Swin's stages), ``model.``-prefixed, in timm's order."""
    layer_ids: dict[str, int]
    """Every parameter: 0 for timm's stem, i for block i, N+1 for the rest (the neck)."""


def timm_parts(model: nn.Module) -> TimmParts:
    """Blocks and layer ids of a timm model, from its own group matcher.

    timm's groups put what follows the last block (a ViT's final norm, a CNN's conv head)
    into the last block's group (``MATCH_PREV_GROUP``); ftlab gives it a layer id of its
    own (N+1), so those patterns are left out when the blocks are grouped."""
    matcher = model.group_matcher(coarse=True)
    specs = _specs(matcher.get("blocks", []))
    kept = [
        (pattern, suffix) for pattern, suffix in specs if tuple(suffix or ()) != MATCH_PREV_GROUP
    ]
    blocks = []
    for names in group_parameters(model, {"blocks": kept}).values():
        found = next((m for p, _ in kept if (m := re.match(p, names[0]))), None)
        if found is not None:  # the last group holds what no block pattern matched
            blocks.append(found.group(0).rstrip("."))
    stem = matcher.get("stem") or []
    stem_patterns = [re.compile(p) for p in ([stem] if isinstance(stem, str) else stem) if p]
    layer_ids = assign_layer_ids(
        (n for n, _ in model.named_parameters()),
        blocks,
        lambda name: any(p.match(name) for p in stem_patterns),
    )
    return TimmParts(
        blocks=[PREFIX + b for b in blocks],
        layer_ids={PREFIX + name: lid for name, lid in layer_ids.items()},
    )


def _specs(blocks: Any) -> list[tuple[str, Any]]:
    """timm's block spec as (pattern, suffix) pairs: it may be one pattern or a list."""
    if isinstance(blocks, str):
        return [(blocks, None)]
    return [(spec, None) if isinstance(spec, str) else (spec[0], spec[1]) for spec in blocks]
