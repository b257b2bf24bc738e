"""timm families beyond the plain ViT and the CNNs, as tiny random models: every method
config runs a few steps on each, or refuses with a sentence."""

from __future__ import annotations

import functools

import pytest
import torch
from tests.methods.conftest import mechanisms, run_or_refuse

from ftlab.backbones import Capability, TimmBackbone

#: family -> (timm name, kwargs that make it tiny, its image size)
FAMILIES = {
    "deit": ("deit_tiny_patch16_224", dict(img_size=32, depth=2), 32),
    "eva": ("eva02_tiny_patch14_224", dict(img_size=28, depth=2), 28),
    "beit": ("beit_base_patch16_224", dict(img_size=32, depth=2, embed_dim=32, num_heads=2), 32),
    # two blocks a stage: stage 0's second block attends in shifted windows
    "swin": ("swin_tiny_patch4_window7_224",
             dict(img_size=32, embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4), 32),
    # ConvNeXt-T's block form (a Linear MLP), not atto's 1x1-conv one
    "convnext": ("convnext_atto", dict(dims=(16, 32, 64, 128), depths=(1, 1, 1, 1), conv_mlp=False),
                 32),
    "resnet": ("resnet18", dict(), 32),
}  # fmt: skip
METHODS = mechanisms()


@functools.cache
def template(family: str) -> TimmBackbone:
    name, kwargs, _ = FAMILIES[family]
    torch.manual_seed(0)
    return TimmBackbone(name, pretrained=False, model_kwargs=kwargs)


def _batch(family: str) -> dict[str, torch.Tensor]:
    size = FAMILIES[family][2]
    g = torch.Generator().manual_seed(1)
    return {
        "pixel_values": torch.randn(2, 3, size, size, generator=g),
        "labels": torch.tensor([0, 2]),
    }


def test_hierarchical_models_are_described_by_what_they_contain():
    swin, convnext = template("swin").anatomy, template("convnext").anatomy
    assert swin.family == "hierarchical" and Capability.CHANNELS_LAST not in swin.capabilities
    assert any(t.endswith("attn.qkv") for t in swin.lora_targets["default"])
    assert len(swin.blocks) == 2 and len(swin.residual_blocks) == 4  # stages, blocks inside
    assert {Capability.ATTENTION_PROMPTS, Capability.ATTENTION_KV} <= swin.capabilities
    assert convnext.family == "cnn" and Capability.CHANNELS_LAST in convnext.capabilities
    assert any(t.endswith("mlp.fc1") for t in convnext.lora_targets["default"])  # Linear MLP
    assert Capability.MLP_OUTPUT in convnext.capabilities  # adapters beside the MLP
    assert Capability.ATTENTION_OUTPUT not in convnext.capabilities


@pytest.mark.parametrize("method_name", METHODS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_method_runs_or_refuses_with_a_sentence(family, method_name, tmp_path):
    run_or_refuse(template(family), method_name, _batch(family), tmp_path)
