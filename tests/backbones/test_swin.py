"""Swin, the worked example of a backbone family: adapters, deep prompts and prefixes reach
every block inside its stages, checked against computations written out here; ConvNeXt's
Linear MLP takes adapters beside it; ``last_n`` still counts stages."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from tests.conftest import TINY_CNN, ftlab_cli
from tests.methods.conftest import head_count, snapshot, train_steps

from ftlab.backbones import Capability, TimmBackbone
from ftlab.backbones.families.timm_swin import PrefixedWindowAttention, ProjectedPrompts
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.methods import Adapter, LastN, Prefix, Prompt
from ftlab.module import FineTuneModule

#: two stages of two blocks: 8x8 tokens in 4x4 windows, so stage 0's second block shifts
SWIN = dict(img_size=32, embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4)
#: ConvNeXt-T's block form (conv_mlp=False): a depthwise conv, then a Linear MLP
CONVNEXT = dict(dims=(8, 16, 32, 64), depths=(1, 2, 1, 1), conv_mlp=False)


@functools.cache
def template(name: str) -> TimmBackbone:
    torch.manual_seed(0)
    if name == "swin":
        return TimmBackbone("swin_tiny_patch4_window7_224", pretrained=False, model_kwargs=SWIN)
    return TimmBackbone("convnext_atto", pretrained=False, model_kwargs=CONVNEXT)


def module_with(name: str, method=None) -> FineTuneModule:
    torch.manual_seed(0)
    module = FineTuneModule(copy.deepcopy(template(name)), num_classes=3)
    if method is not None:
        method.apply(module)
    return module


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"pixel_values": torch.randn(2, 3, 32, 32, generator=g), "labels": torch.tensor([0, 2])}


def reference_attention(attn, x, extra_k, extra_v, mask):
    """Swin's window attention written out as its paper has it (scaled scores, relative
    position bias, the shift mask, softmax), over the window's tokens and ``T`` extra
    keys/values that have no bias and no mask: what VPT computes for prompts in a window."""
    windows, n, _ = x.shape
    heads = attn.num_heads
    q, k, v = attn.qkv(x).reshape(windows, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    t = extra_k.shape[0]
    ek = extra_k.reshape(t, heads, -1).transpose(0, 1).expand(windows, -1, -1, -1)
    ev = extra_v.reshape(t, heads, -1).transpose(0, 1).expand(windows, -1, -1, -1)
    scores = (q * attn.scale) @ torch.cat([ek, k], 2).transpose(-2, -1)
    position = attn._get_rel_pos_bias()[0]
    scores[..., t:] = scores[..., t:] + position
    if mask is not None:
        per_window = mask.repeat(windows // mask.shape[0], 1, 1).unsqueeze(1)
        scores[..., t:] = scores[..., t:] + per_window
    out = scores.softmax(-1) @ torch.cat([ev, v], 2)
    return attn.proj(out.transpose(1, 2).reshape(windows, n, -1))


def test_swin_counts_stages_and_finds_every_block_inside_them():
    anatomy = template("swin").anatomy
    assert anatomy.family == "hierarchical"
    assert anatomy.blocks == ["model.layers.0", "model.layers.1"]
    assert anatomy.residual_blocks == [
        f"model.layers.{s}.blocks.{b}" for s in (0, 1) for b in (0, 1)
    ]
    assert anatomy.kv_dims == [16, 16, 32, 32] and anatomy.block_widths == [16, 16, 32, 32]
    offered = anatomy.capabilities
    assert {
        Capability.ATTENTION_PROMPTS,
        Capability.ATTENTION_KV,
        Capability.ATTENTION_OUTPUT,
    } <= offered
    assert Capability.TOKEN_INPUT not in offered  # windows in stages: no one token sequence


@pytest.mark.parametrize("shifted", [False, True])
def test_prefixed_window_attention_is_the_written_out_computation(shifted):
    block = template("swin").model.layers[0].blocks[1 if shifted else 0]
    attn, mask = copy.deepcopy(block.attn).eval(), block.attn_mask
    assert (mask is not None) == shifted
    torch.manual_seed(2)
    x = torch.randn(2 * 4, 16, 16)  # 2 images x 4 windows of 4x4 tokens, 16 channels
    key, value = torch.randn(3, 16), torch.randn(3, 16)

    class Fixed(torch.nn.Module):
        def forward(self):
            return key, value

    with torch.no_grad():
        ours = PrefixedWindowAttention(attn, Fixed())(x, mask=mask)
        expected = reference_attention(attn, x, key, value, mask)
        plain = attn(x, mask=mask)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours, plain, atol=1e-3)  # the extra keys and values count


def test_deep_prompts_join_every_blocks_attention_through_its_own_norm_and_qkv():
    module = module_with("swin", Prompt(num_tokens=3, deep=True))
    backbone = module.backbone
    anatomy = backbone.anatomy
    for i, name in enumerate(anatomy.residual_blocks):
        block = backbone.get_submodule(name)
        tokens = block.prompt.tokens
        assert tokens.shape == (3, anatomy.block_width(i))
        assert isinstance(block.attn, PrefixedWindowAttention)
        assert isinstance(block.attn.prefix, ProjectedPrompts)
        with torch.no_grad():
            key, value = block.attn.prefix()
            projected = block.attn.base.qkv(block.norm1(tokens))
        width = anatomy.kv_dims[i]
        torch.testing.assert_close(key, projected[:, width : 2 * width])
        torch.testing.assert_close(value, projected[:, 2 * width :])
    prompts = sum(3 * anatomy.block_width(i) for i in range(len(anatomy.residual_blocks)))
    assert sum(p.numel() for _, p in module.trainable_parameters()) == prompts + head_count(32)
    before = snapshot(module)
    train_steps(module, batch(), steps=2)
    trainable = {n for n, _ in module.trainable_parameters()}
    moved = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    assert moved == trainable  # every block's prompts moved, nothing frozen did


def test_shallow_prompts_and_a_position_are_refused_on_swin_with_what_works():
    with pytest.raises(
        MethodNotApplicable, match=r"deep=false .* method.deep=true \(method=prompt_deep\)"
    ):
        module_with("swin", Prompt(num_tokens=3))
    with pytest.raises(ConfigError, match="method.position=start"):
        module_with("swin", Prompt(num_tokens=3, deep=True, position="start"))


@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_prefixes_reach_every_block_with_each_stages_width(reparam):
    hidden = 8
    module = module_with("swin", Prefix(num_tokens=2, reparam=reparam, mlp_hidden=hidden))
    dims = module.backbone.anatomy.kv_dims
    if reparam == "none":
        expected = sum(2 * 2 * d for d in dims)
    else:  # table at the widest width, down, and up for every layer's keys and values
        expected = 2 * max(dims) + (max(dims) * hidden + hidden) + (hidden + 1) * 2 * sum(dims)
    assert sum(p.numel() for _, p in module.trainable_parameters()) == expected + head_count(32)
    before = snapshot(module)
    train_steps(module, batch(), steps=2)
    moved = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {n for n, _ in module.trainable_parameters()}


def test_adapters_sit_in_every_block_and_layers_count_blocks_not_stages():
    module = module_with("swin", Adapter(reduction_factor=4))
    sites = [n for n, _ in module.backbone.named_modules() if n.endswith(".adapter")]
    assert len(sites) == 2 * 4  # after attention and feed-forward, in each of the 4 blocks
    only_last = module_with("swin", Adapter(reduction_factor=4, layers=[3]))
    names = [n for n, _ in only_last.trainable_parameters() if ".adapter." in n]
    assert names and all(n.startswith("backbone.model.layers.1.blocks.1.") for n in names)
    with pytest.raises(ConfigError, match=r"has 4 residual blocks \(valid: 0..3\)"):
        module_with("swin", Adapter(layers=[4]))


def test_last_n_still_counts_stages():
    module = module_with("swin", LastN(n=1))
    trains = {
        n.split(".")[3]
        for n, _ in module.trainable_parameters()
        if n.startswith("backbone.model.layers.")
    }
    assert trains == {"1"}
    with pytest.raises(ConfigError, match="has 2 blocks"):
        module_with("swin", LastN(n=3))


def test_convnext_takes_adapters_beside_its_linear_mlp_and_refuses_houlsby_with_a_sentence():
    anatomy = template("convnext").anatomy
    assert len(anatomy.residual_blocks) == 5 and anatomy.block_widths == [8, 16, 16, 32, 64]
    with pytest.raises(
        MethodNotApplicable,
        match="no attention output .* method=adapter_pfeiffer or adapter_parallel",
    ):
        module_with("convnext", Adapter())
    for placement in ("pfeiffer", "parallel"):
        module = module_with("convnext", Adapter(placement=placement, reduction_factor=4))
        adapters = [m for n, m in module.backbone.named_modules() if n.endswith(".adapter")]
        assert [a.down.in_features for a in adapters] == anatomy.block_widths
        before = snapshot(module)
        train_steps(module, batch(), steps=2)
        moved = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
        assert moved == {n for n, _ in module.trainable_parameters()}


def test_a_convnext_with_a_convolutional_mlp_is_refused_adapters_with_a_sentence():
    torch.manual_seed(0)
    conv_mlp = TimmBackbone(
        "convnext_atto",
        pretrained=False,
        model_kwargs=dict(dims=(8, 16, 32, 64), depths=(1, 1, 1, 1)),
    )
    module = FineTuneModule(conv_mlp, num_classes=3)
    with pytest.raises(MethodNotApplicable, match=r"needs mlp_output, which convnext_atto \(cnn\)"):
        Adapter(placement="pfeiffer").apply(module)


@pytest.mark.slow
def test_a_new_user_runs_adapters_and_deep_prompts_on_swin_from_the_command_line(tmp_path):
    kwargs = ["embed_dim=16", "depths=[2,2]", "num_heads=[1,2]", "window_size=4"]
    base = [o for o in TINY_CNN if not o.startswith("model.name")]
    for method in ("adapter", "prompt_deep"):
        proc = ftlab_cli(
            "train",
            *base,
            "model.name=swin_tiny_patch4_window7_224",
            *(f"+model.model_kwargs.{k}" for k in kwargs),
            f"method={method}",
            f"hydra.run.dir={tmp_path / method}",
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
