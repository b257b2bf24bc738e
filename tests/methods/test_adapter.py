"""Bottleneck adapters on a timm ViT and a BERT encoder."""

from __future__ import annotations

import copy

import pytest
import torch
from tests.conftest import quiet_trainer
from torch import nn
from torch.utils.data import DataLoader

from ftlab.backbones import TimmBackbone
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.methods import Adapter
from ftlab.methods.adapter import AdapterSite, InputTap

FAMILIES = ["vit", "bert"]
PLACEMENTS = ["houlsby", "pfeiffer", "parallel"]
SITES_PER_BLOCK = {"houlsby": 2, "pfeiffer": 1, "parallel": 1}


def adapter_count(dim: int, hidden: int, sites: int) -> int:
    return sites * (dim * hidden + hidden + hidden * dim + dim)


def norm_count(module, family: str) -> int:
    """Two LayerNorms per block in both families (ViT norm1/norm2; BERT attention/output)."""
    anatomy = module.backbone.anatomy
    return anatomy.num_blocks * 2 * 2 * anatomy.feature_dim


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_trainable_count_is_the_closed_form(build, helpers, family, placement):
    module = build(family, Adapter(placement=placement, reduction_factor=8))
    dim, blocks = module.backbone.anatomy.feature_dim, module.backbone.anatomy.num_blocks
    sites = SITES_PER_BLOCK[placement] * blocks
    assert helpers.count(module) == adapter_count(dim, dim // 8, sites) + helpers.head_count(dim)


@pytest.mark.parametrize("family", FAMILIES)
def test_bottleneck_dim_layers_and_norms_change_the_count(build, helpers, family):
    method = Adapter(bottleneck_dim=5, layers=[1], train_norms=True)
    module = build(family, method)
    dim = module.backbone.anatomy.feature_dim
    expected = adapter_count(dim, 5, 2) + 2 * 2 * dim + helpers.head_count(dim)
    assert helpers.count(module) == expected
    block0 = module.backbone.anatomy.blocks[0]
    assert not any(
        isinstance(m, AdapterSite) for m in module.backbone.get_submodule(block0).modules()
    )
    assert method.label == "adapter(houlsby,d=5)"


@pytest.mark.parametrize("family", FAMILIES)
def test_train_bias_trains_every_block_bias(build, helpers, family):
    module = build(family, Adapter(placement="pfeiffer", train_bias=True))
    biases = [
        n
        for n, p in module.backbone.named_parameters()
        if n.endswith("bias") and any(n.startswith(b + ".") for b in module.backbone.anatomy.blocks)
    ]
    assert biases and all(dict(module.backbone.named_parameters())[n].requires_grad for n in biases)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_near_identity_starts_as_the_pretrained_model(build, batches, helpers, family, placement):
    batch = batches[family]
    reference = helpers.features(build(family), batch)
    adapted = helpers.features(build(family, Adapter(placement=placement)), batch)
    torch.testing.assert_close(adapted, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("init", ["normal", "kaiming"])
def test_other_inits_move_the_output(build, batches, helpers, init):
    batch = batches["bert"]
    reference = helpers.features(build("bert"), batch)
    adapted = helpers.features(build("bert", Adapter(init=init, init_std=0.5)), batch)
    assert not torch.allclose(adapted, reference, atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_three_steps_move_only_adapters_and_head(build, batches, helpers, family, placement):
    # gelu: a ReLU bottleneck of 2-8 units on random weights may be dead from the start
    method = Adapter(placement=placement, reduction_factor=4, activation="gelu", train_norms=True)
    module = build(family, method)
    helpers.assert_only_method_trained(module, helpers.snapshot(module), batches[family])


@pytest.mark.parametrize("family", FAMILIES)
def test_trained_adapters_change_the_features(build, batches, helpers, family):
    batch = batches[family]
    module = build(family, Adapter(placement="parallel"))
    module.eval()
    with torch.no_grad():
        before = module.backbone(batch)
    helpers.train_steps(module, batch)
    with torch.no_grad():
        assert not torch.allclose(module.backbone(batch), before)


def test_parallel_adapter_on_bert_reads_the_feed_forward_input(build, batches, helpers):
    """BERT's feed-forward is two modules: the adapter at ``output.dense`` must read what
    ``intermediate`` was given (the attention output), not the 4x-wide hidden state."""
    module = build("bert", Adapter(placement="parallel", bottleneck_dim=4, init="normal"))
    layer = module.backbone.model.encoder.layer[0]
    assert isinstance(layer.intermediate, InputTap)
    site = layer.output.dense
    seen = {}

    def keep(key, value):
        seen[key] = value  # and return None: the hook leaves the output alone

    site.adapter.register_forward_hook(lambda m, args, out: keep("x", args[0]))
    layer.attention.register_forward_hook(lambda m, args, out: keep("attn", out[0]))
    helpers.features(module, batches["bert"])
    torch.testing.assert_close(seen["x"], seen["attn"], rtol=0, atol=0)
    assert layer.intermediate.seen is None  # consumed, nothing held between calls


def test_trains_under_a_lightning_trainer(build, batches, tmp_path):
    module = build("vit")
    method = Adapter(placement="pfeiffer")
    trainer = quiet_trainer(tmp_path, max_steps=3, callbacks=[method])
    trainer.fit(module, train_dataloaders=DataLoader([batches["vit"]] * 3, batch_size=None))
    assert module.method is method
    ups = [m.adapter.up.weight for m in module.modules() if isinstance(m, AdapterSite)]
    assert ups and all(w.abs().sum() > 0 for w in ups)


def test_refuses_a_cnn_with_a_sentence():
    cnn = TimmBackbone("resnet18", pretrained=False)
    with pytest.raises(MethodNotApplicable, match="lora, last_n or full"):
        Adapter().check(cnn.anatomy, cnn.label)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reduction_factor": 0}, "reduction_factor=0"),
        ({"reduction_factor": -4}, "reduction_factor=-4"),
        ({"bottleneck_dim": 0}, "bottleneck_dim=0"),
        ({"placement": "sideways"}, "placement='sideways'"),
        ({"activation": "swish"}, "activation='swish'"),
        ({"init": "zeros"}, "init='zeros'"),
        ({"scaling": 0}, "scaling=0"),
        ({"layers": [0, 0]}, "layers"),
        ({"layers": 3}, "layers=3"),
    ],
)
def test_bad_knobs_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Adapter(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"layers": [2]}, r"layers=\[2\].*valid: 0..1"), ({"reduction_factor": 64}, "valid: 1..32")],
)
def test_knobs_checked_against_the_backbone(templates, kwargs, match):
    bert = templates["bert"]
    with pytest.raises(ConfigError, match=match):
        Adapter(**kwargs).check(bert.anatomy, bert.label)


def test_wrappers_keep_the_original_module(build):
    module = build("vit", Adapter())
    block = module.backbone.model.blocks[0]
    assert isinstance(block.attn, AdapterSite) and isinstance(block.mlp, AdapterSite)
    assert isinstance(block.attn.base.qkv, nn.Linear)


@pytest.mark.slow
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_real_minilm_starts_unchanged_and_trains_only_adapters(
    build, batches, helpers, minilm_template, placement
):
    batch = batches["bert"]
    reference = helpers.features(build("bert", backbone=copy.deepcopy(minilm_template)), batch)
    method = Adapter(placement=placement, activation="gelu")
    module = build("bert", method, backbone=copy.deepcopy(minilm_template))
    torch.testing.assert_close(helpers.features(module, batch), reference, rtol=0, atol=1e-6)
    helpers.assert_only_method_trained(module, helpers.snapshot(module), batch)
