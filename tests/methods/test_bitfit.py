"""BitFit, the README's example of adding a method: only block biases and the head train."""

from __future__ import annotations

import torch

from ftlab.methods import BitFit
from ftlab.train import train


def test_bitfit_trains_only_block_biases_and_the_head(make_cfg):
    cfg = make_cfg("method=bitfit")
    results = train(cfg)
    assert results["status"] == "done" and results["method"] == "bitfit"


def test_bitfit_marks_exactly_the_biases(make_cfg):
    from ftlab.train import build

    _, backbone, module, _ = build(make_cfg("method=bitfit"))
    BitFit().apply(module)
    blocks = tuple(f"backbone.{b}." for b in backbone.anatomy.blocks)
    expected = {
        n for n, _ in module.named_parameters()
        if (n.startswith(blocks) and n.endswith("bias")) or n.startswith("head.")
    }  # fmt: skip
    assert {n for n, p in module.named_parameters() if p.requires_grad} == expected
    assert any(n.startswith(blocks) for n in expected)
    # biases of BatchNorm that train keep their module as a real (updating) BatchNorm
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in module.backbone.modules())
