"""Prompt tuning (shallow and VPT-deep) on a timm ViT and a BERT encoder."""

from __future__ import annotations

import copy

import pytest
import torch

from ftlab.backbones import TimmBackbone
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.methods import Prompt
from ftlab.methods.prompt import PromptTokens

FAMILIES = ["vit", "bert"]
K = 3


def prompts(module) -> list[PromptTokens]:
    return [m for m in module.backbone.modules() if isinstance(m, PromptTokens)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("deep", [False, True])
def test_trainable_count_is_the_closed_form(build, helpers, family, deep):
    module = build(family, Prompt(num_tokens=K, deep=deep))
    anatomy = module.backbone.anatomy
    layers = anatomy.num_blocks if deep else 1
    expected = layers * K * anatomy.feature_dim + helpers.head_count(anatomy.feature_dim)
    assert helpers.count(module) == expected


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("deep", [False, True])
def test_three_steps_move_only_prompts_and_head(build, batches, helpers, family, deep):
    module = build(family, Prompt(num_tokens=K, deep=deep))
    helpers.assert_only_method_trained(module, helpers.snapshot(module), batches[family])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("deep", [False, True])
def test_output_depends_on_every_layers_prompts(build, batches, helpers, family, deep):
    module = build(family, Prompt(num_tokens=K, deep=deep))
    batch = batches[family]
    before = helpers.features(module, batch)
    for prompt in prompts(module):  # the last block's prompts too: deep replaces, not adds
        with torch.no_grad():
            saved = prompt.tokens.clone()
            prompt.tokens.add_(torch.randn_like(saved))
        assert not torch.allclose(helpers.features(module, batch), before, atol=1e-5)
        with torch.no_grad():
            prompt.tokens.copy_(saved)
    torch.testing.assert_close(helpers.features(module, batch), before, rtol=0, atol=0)


def sequences_entering_blocks(module, batch) -> list[torch.Tensor]:
    """Each block's input, seen after the prompts' own pre-hooks (registered earlier)."""
    seen = []
    hooks = [
        module.backbone.get_submodule(b).register_forward_pre_hook(
            lambda m, args: seen.append(args[0].detach())
        )
        for b in module.backbone.anatomy.blocks
    ]
    module.eval()
    with torch.no_grad():
        module(batch)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("position", ["after_cls", "start"])
def test_vit_sequence_layout(build, batches, position):
    """Prompts sit behind the class token (or first), the rest of the sequence is the
    unprompted model's; the deep ones replace the previous block's at the same place."""
    batch = batches["vit"]
    base = build("vit")
    module = build("vit", Prompt(num_tokens=K, deep=True, position=position))
    plain = sequences_entering_blocks(base, batch)[0]
    first, second = sequences_entering_blocks(module, batch)
    start = 1 if position == "after_cls" else 0
    ps = prompts(module)
    torch.testing.assert_close(first[:, start : start + K], ps[0].tokens.expand(2, -1, -1))
    torch.testing.assert_close(torch.cat([first[:, :start], first[:, start + K :]], 1), plain)
    assert first.shape[1] == plain.shape[1] + K
    torch.testing.assert_close(second[:, start : start + K], ps[1].tokens.expand(2, -1, -1))


@pytest.mark.parametrize("pool", ["avg", "token"])
def test_vit_pooling_sees_no_prompt(build, batches, pool):
    """timm pools the sequence; prompt outputs must not reach the head (avg pooling over
    patch tokens only, token pooling on the class token)."""
    torch.manual_seed(0)
    vit = TimmBackbone(
        "vit_tiny_patch16_224",
        pretrained=False,
        model_kwargs={"img_size": 32, "depth": 2, "global_pool": pool},
    )
    module = build("vit", Prompt(num_tokens=K, position="after_cls"), backbone=vit)
    last = {}
    vit.model.blocks[-1].register_forward_hook(lambda m, a, out: last.update(x=out))
    module.eval()
    with torch.no_grad():
        got = vit(batches["vit"])
        tokens = vit.model.norm(last["x"])
        assert tokens.shape[1] == 1 + K + 4
        expected = tokens[:, 1 + K :].mean(1) if pool == "avg" else tokens[:, 0]
        torch.testing.assert_close(got, vit.model.fc_norm(expected))


@pytest.mark.parametrize("deep", [False, True])
@pytest.mark.parametrize("position", ["after_cls", "start"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bert_padding_does_not_change_real_tokens(
    build, batches, templates, helpers, deep, position, pooling
):
    backbone = copy.deepcopy(templates["bert"])
    backbone.pooling = pooling
    module = build("bert", Prompt(num_tokens=K, deep=deep, position=position), backbone)
    batch = batches["bert"]
    alone, short = helpers.first_alone(batch)
    module.eval()
    with torch.no_grad():
        padded_features = backbone(batch)[0]
        alone_features = backbone(alone)[0]
        padded_tokens = backbone.forward_tokens(batch)[0, :short]
        alone_tokens = backbone.forward_tokens(alone)[0]
    torch.testing.assert_close(padded_features, alone_features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(padded_tokens, alone_tokens, rtol=1e-5, atol=1e-5)


def test_bert_mean_pooling_excludes_prompts(build, batches):
    module = build("bert", Prompt(num_tokens=K))
    backbone, batch = module.backbone, batches["bert"]
    last = {}
    backbone.model.encoder.layer[-1].register_forward_hook(lambda m, a, out: last.update(x=out))
    module.eval()
    with torch.no_grad():
        got = backbone(batch)
    hidden = last["x"]  # [B, 1 + K + N - 1, D]: [CLS], prompts, the rest
    real = torch.cat([hidden[:, :1], hidden[:, 1 + K :]], 1)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(got, (real * mask).sum(1) / mask.sum(1))


def test_text_init_uses_the_words_embeddings(build, templates):
    bert = templates["bert"]
    module = build("bert", Prompt(num_tokens=5, init="text", init_text="positive negative"))
    ids = bert.tokenizer("positive negative", add_special_tokens=False)["input_ids"]
    assert len(ids) == 2
    cycled = torch.tensor((ids * 3)[:5])
    expected = bert.embed_token_ids(cycled)
    torch.testing.assert_close(prompts(module)[0].tokens.detach(), expected)


def test_vocab_init_samples_real_tokens(build, templates):
    module = build("bert", Prompt(num_tokens=4, init="vocab", deep=True))
    values = [p.tokens.detach() for p in prompts(module)]
    assert len(values) == 2 and not torch.equal(values[0], values[1])
    # the embeddings end in a LayerNorm (weight 1, bias 0 at init): every row is standardised
    for v in values:
        torch.testing.assert_close(v.mean(-1), torch.zeros(4), atol=1e-5, rtol=0)


def test_random_init_is_vpt_uniform(build):
    tokens = prompts(build("vit", Prompt(num_tokens=50)))[0].tokens
    bound = (6 / (2 * 192)) ** 0.5
    assert tokens.abs().max() <= bound and tokens.abs().max() > 0.9 * bound


def test_same_trainable_count_and_outputs_as_peft(build, batches, templates):
    """HF peft's prompt tuning prepends prompts to the word embeddings, before position
    and token-type embeddings and the LayerNorm; ftlab inserts them after the embedding
    layer. With those two embeddings zeroed the mechanisms coincide: peft's prompt P gives
    the same real-token outputs as ftlab's ``LayerNorm(P)`` at the start of the sequence."""
    peft = pytest.importorskip("peft")
    backbone = copy.deepcopy(templates["bert"])
    with torch.no_grad():
        backbone.model.embeddings.position_embeddings.weight.zero_()
        backbone.model.embeddings.token_type_embeddings.weight.zero_()
    reference = copy.deepcopy(backbone.model)
    config = peft.PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=K)
    peft_model = peft.get_peft_model(reference, config)
    peft_trainable, _ = peft_model.get_nb_trainable_parameters()

    module = build("bert", Prompt(num_tokens=K, position="start"), backbone)
    dim = backbone.anatomy.feature_dim
    ours = sum(p.numel() for n, p in module.trainable_parameters() if n.startswith("backbone."))
    assert ours == peft_trainable == K * dim

    peft_prompt = peft_model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        prompts(module)[0].tokens.copy_(backbone.model.embeddings.LayerNorm(peft_prompt))
    batch = {k: v for k, v in batches["bert"].items() if k in ("input_ids", "attention_mask")}
    peft_model.eval()
    module.eval()
    with torch.no_grad():
        theirs = peft_model(**batch).last_hidden_state[:, K:]
        mine = backbone.forward_tokens(batch)
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(mine[mask], theirs[mask], rtol=1e-5, atol=1e-5)


def test_refuses_a_cnn_with_a_sentence():
    cnn = TimmBackbone("resnet18", pretrained=False)
    with pytest.raises(MethodNotApplicable, match="lora, last_n or full"):
        Prompt().check(cnn.anatomy, cnn.label)


def test_word_inits_refused_on_images(templates):
    vit = templates["vit"]
    with pytest.raises(ConfigError, match="init=vocab"):
        Prompt(init="vocab").check(vit.anatomy, vit.label)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_tokens": 0}, "num_tokens=0"),
        ({"num_tokens": -2}, "num_tokens=-2"),
        ({"position": "end"}, "position='end'"),
        ({"init": "zeros"}, "init='zeros'"),
        ({"init": "text"}, "init_text"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"init_std": 0}, "init_std=0"),
    ],
)
def test_bad_knobs_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Prompt(**kwargs)


def test_labels_and_hparams():
    assert Prompt(num_tokens=8).label == "prompt(k=8)"
    assert Prompt(num_tokens=8, deep=True).label == "prompt(deep,k=8)"
    assert Prompt(num_tokens=8).hparams()["num_tokens"] == 8


@pytest.mark.slow
@pytest.mark.parametrize("deep", [False, True])
def test_real_minilm_padding_and_training(build, batches, helpers, minilm_template, deep):
    backbone = copy.deepcopy(minilm_template)
    module = build("bert", Prompt(num_tokens=8, deep=deep, init="vocab"), backbone)
    batch = batches["bert"]
    module.eval()
    helpers.assert_padding_invariant(backbone, batch)
    helpers.assert_only_method_trained(module, helpers.snapshot(module), batch)
