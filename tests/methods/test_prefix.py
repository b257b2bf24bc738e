"""Prefix tuning (plain and MLP-reparameterised) on a timm ViT and a BERT encoder."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from ftlab.backbones import TimmBackbone
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.methods import Prefix
from ftlab.methods.prefix import ENCODER, PrefixKV

FAMILIES = ["vit", "bert"]
K = 3
HIDDEN = 8


def prefix_sources(module) -> list[PrefixKV]:
    return [m for m in module.backbone.modules() if isinstance(m, PrefixKV)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_trainable_count_is_the_closed_form(build, helpers, family, reparam):
    module = build(family, Prefix(num_tokens=K, reparam=reparam, mlp_hidden=HIDDEN))
    anatomy = module.backbone.anatomy
    (d,), layers = set(anatomy.kv_dims), anatomy.num_blocks
    if reparam == "none":
        method_params = layers * 2 * K * d
    else:  # table + down + up, the last one for every layer's keys and values
        method_params = K * d + (d * HIDDEN + HIDDEN) + (HIDDEN * layers * 2 * d + layers * 2 * d)
    expected = method_params + helpers.head_count(anatomy.feature_dim)
    assert helpers.count(module) == expected


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_three_steps_move_only_prefixes_and_head(build, batches, helpers, family, reparam):
    module = build(family, Prefix(num_tokens=K, reparam=reparam, mlp_hidden=HIDDEN))
    helpers.assert_only_method_trained(module, helpers.snapshot(module), batches[family])


@pytest.mark.parametrize("family", FAMILIES)
def test_output_depends_on_every_layers_prefix(build, batches, helpers, family):
    module = build(family, Prefix(num_tokens=K))
    batch = batches[family]
    before = helpers.features(module, batch)
    for source in prefix_sources(module):
        for param in (source.key, source.value):
            with torch.no_grad():
                saved = param.clone()
                param.add_(torch.randn_like(saved))
            assert not torch.allclose(helpers.features(module, batch), before, atol=1e-5)
            with torch.no_grad():
                param.copy_(saved)
    torch.testing.assert_close(helpers.features(module, batch), before, rtol=0, atol=0)


def manual_attention(q, k, v, key_mask=None):
    """softmax(q k^T / sqrt(d)) v with masked keys, written out: [B, H, N, d] in and out."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return scores.softmax(-1) @ v


def heads(x, n):
    return x.unflatten(-1, (n, -1)).transpose(1, 2)


def test_vit_attention_is_softmax_over_prefix_and_tokens(build):
    module = build("vit", Prefix(num_tokens=K))
    wrapper = module.backbone.model.blocks[0].attn
    base, source = wrapper.base, wrapper.prefix
    x = torch.randn(2, 5, 192)
    wrapper.eval()
    with torch.no_grad():
        q, k, v = base.qkv(x).chunk(3, dim=-1)
        h = base.num_heads
        pk, pv = (t.expand(2, -1, -1) for t in source())
        out = manual_attention(
            heads(q, h), heads(torch.cat([pk, k], 1), h), heads(torch.cat([pv, v], 1), h)
        )
        expected = base.proj(out.transpose(1, 2).flatten(2))
        torch.testing.assert_close(wrapper(x), expected, rtol=1e-5, atol=1e-5)


def test_bert_attention_is_softmax_over_prefix_and_unpadded_tokens(build, batches):
    module = build("bert", Prefix(num_tokens=K))
    layer = module.backbone.model.encoder.layer[0]
    base = layer.attention.self  # keeps its name and its own projections
    source = base.prefix
    batch = batches["bert"]
    captured = {}
    layer.attention.register_forward_pre_hook(
        lambda m, args, kwargs: captured.update(x=args[0], mask=args[1]), with_kwargs=True
    )
    module.eval()
    with torch.no_grad():
        module(batch)
        x, mask4d = captured["x"], captured["mask"]
        assert mask4d is not None and mask4d.dtype == torch.bool  # SDPA's padding mask
        got, _ = base(x, attention_mask=mask4d)
        h = base.num_attention_heads
        pk, pv = (t.expand(2, -1, -1) for t in source())
        key_mask = torch.cat(
            [torch.ones(2, K, dtype=torch.bool), batch["attention_mask"].bool()], 1
        )
        out = manual_attention(
            heads(base.query(x), h),
            heads(torch.cat([pk, base.key(x)], 1), h),
            heads(torch.cat([pv, base.value(x)], 1), h),
            key_mask,
        )
        torch.testing.assert_close(got, out.transpose(1, 2).flatten(2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reparam", ["none", "mlp"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_bert_padding_does_not_change_real_tokens(
    build, batches, templates, helpers, reparam, attn
):
    backbone = copy.deepcopy(templates["bert"])
    backbone.model.config._attn_implementation = attn  # every layer reads this one config
    module = build("bert", Prefix(num_tokens=K, reparam=reparam, mlp_hidden=HIDDEN), backbone)
    batch = batches["bert"]
    alone, short = helpers.first_alone(batch)
    module.eval()
    with torch.no_grad():
        padded = backbone.forward_tokens(batch)[0, :short]
        single = backbone.forward_tokens(alone)[0]
        pooled_padded, pooled_single = backbone(batch)[0], backbone(alone)[0]
    torch.testing.assert_close(padded, single, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pooled_padded, pooled_single, rtol=1e-5, atol=1e-5)


def test_bert_sdpa_and_eager_agree(build, batches, templates, helpers):
    outputs = []
    for attn in ("sdpa", "eager"):
        backbone = copy.deepcopy(templates["bert"])
        backbone.model.config._attn_implementation = attn
        torch.manual_seed(5)
        outputs.append(
            helpers.features(build("bert", Prefix(num_tokens=K), backbone), batches["bert"])
        )
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_folded_mlp_equals_unfolded_and_loads_as_plain_prefixes(build, batches, helpers, family):
    batch = batches[family]
    method = Prefix(num_tokens=K, reparam="mlp", mlp_hidden=HIDDEN)
    module = build(family, method)
    helpers.train_steps(module, batch)
    unfolded = helpers.features(module, batch)
    assert method.merge(module) == module.backbone.anatomy.num_blocks
    assert not hasattr(module.backbone, ENCODER)
    torch.testing.assert_close(helpers.features(module, batch), unfolded, rtol=1e-6, atol=1e-6)
    assert method.merge(module) == 0  # nothing left to fold

    plain = build(family, Prefix(num_tokens=K))
    plain.load_trainable_state(module.trainable_state_dict())
    torch.testing.assert_close(helpers.features(plain, batch), unfolded, rtol=1e-6, atol=1e-6)


def test_refuses_a_cnn_with_a_sentence():
    cnn = TimmBackbone("resnet18", pretrained=False)
    with pytest.raises(MethodNotApplicable, match="lora, last_n or full"):
        Prefix().check(cnn.anatomy, cnn.label)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_tokens": 0}, "num_tokens=0"),
        ({"num_tokens": -1}, "num_tokens=-1"),
        ({"mlp_hidden": 0}, "mlp_hidden=0"),
        ({"reparam": "lstm"}, "reparam='lstm'"),
        ({"init_std": -1.0}, "init_std=-1.0"),
    ],
)
def test_bad_knobs_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Prefix(**kwargs)


def test_labels_and_hparams():
    assert Prefix(num_tokens=8).label == "prefix(k=8)"
    assert Prefix(num_tokens=8, reparam="mlp").label == "prefix(mlp,k=8)"
    assert Prefix(reparam=None).hparams()["reparam"] == "none"


@pytest.mark.slow
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_real_minilm_padding_fold_and_training(build, batches, helpers, minilm_template, reparam):
    backbone = copy.deepcopy(minilm_template)
    method = Prefix(num_tokens=8, reparam=reparam, mlp_hidden=64)
    module = build("bert", method, backbone)
    batch = batches["bert"]
    module.eval()
    helpers.assert_padding_invariant(backbone, batch)
    helpers.assert_only_method_trained(module, helpers.snapshot(module), batch)
    trained = helpers.features(module, batch)
    method.merge(module)
    torch.testing.assert_close(helpers.features(module, batch), trained, rtol=1e-5, atol=1e-5)
