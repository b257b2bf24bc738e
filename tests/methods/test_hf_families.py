"""Hugging Face families beyond BERT, as tiny random-weight models built in-process: every
method config runs a few steps on each, or refuses with a sentence."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
import transformers
from tests.methods.conftest import EVERYWHERE, TEXTS, mechanisms, method_from_config, run_or_refuse

from ftlab.backbones import Capability, HFBackbone
from ftlab.backbones.assets import minilm_path
from ftlab.errors import ConfigError
from ftlab.module import FineTuneModule

SMALL = dict(vocab_size=30522, max_position_embeddings=64)
ATTN = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
#: model type -> (config class, its arguments): at least one of every kind ftlab meets
FAMILIES = {
    "gpt2": ("GPT2Config", dict(n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=30522)),
    "llama": ("LlamaConfig", dict(**SMALL, **ATTN, num_key_value_heads=2)),  # grouped-query
    "qwen2": ("Qwen2Config", dict(**SMALL, **ATTN, num_key_value_heads=2)),
    "qwen3": ("Qwen3Config", dict(**SMALL, **ATTN, num_key_value_heads=2, head_dim=8)),
    "mistral": ("MistralConfig", dict(**SMALL, **ATTN, num_key_value_heads=2)),
    "gemma": ("GemmaConfig", dict(**SMALL, **ATTN, num_key_value_heads=1, head_dim=8)),
    "phi3": ("Phi3Config", dict(**SMALL, **ATTN, pad_token_id=0)),
    "gpt_neox": ("GPTNeoXConfig", dict(**SMALL, **ATTN)),
    # FalconLinear subclasses nn.Linear: linear layers are found by type, not by class name
    "falcon": ("FalconConfig", dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4)),
    "opt": ("OPTConfig", dict(**SMALL, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, ffn_dim=64, word_embed_proj_dim=32)),
    "distilbert": ("DistilBertConfig", dict(**SMALL, dim=32, n_layers=2, n_heads=4,
                                            hidden_dim=64)),
    "roberta": ("RobertaConfig", dict(**SMALL, **ATTN)),
    "electra": ("ElectraConfig", dict(**SMALL, **ATTN, embedding_size=32)),
    "deberta-v2": ("DebertaV2Config", dict(**SMALL, **ATTN)),
    "mpnet": ("MPNetConfig", dict(**SMALL, **ATTN)),
    "modernbert": ("ModernBertConfig", dict(**SMALL, **ATTN, pad_token_id=0, bos_token_id=101,
                                            eos_token_id=102, cls_token_id=101, sep_token_id=102)),
}  # fmt: skip
DECODERS = {
    "gpt2",
    "llama",
    "qwen2",
    "qwen3",
    "mistral",
    "gemma",
    "phi3",
    "gpt_neox",
    "opt",
    "falcon",
}
METHODS = mechanisms()


@functools.cache
def model_dir(family: str, root: Path) -> Path:
    class_name, kwargs = FAMILIES[family]
    path = root / family
    getattr(transformers, class_name)(**kwargs).save_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    if family in DECODERS:  # as GPT-2 and Llama ship: an EOS token and no pad token
        tokenizer.eos_token = "[SEP]"
        tokenizer.pad_token = None
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, HFBackbone]:
    root = tmp_path_factory.mktemp("hf_families")
    out = {}
    for family in FAMILIES:
        torch.manual_seed(0)
        out[family] = HFBackbone(str(model_dir(family, root)), pretrained=False)
    return out


def _batch(backbone: HFBackbone) -> dict[str, torch.Tensor]:
    batch = dict(backbone.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    return {**batch, "labels": torch.tensor([0, 2])}


def test_the_table_has_a_row_for_every_method_config():
    assert set(METHODS) >= EVERYWHERE
    assert len(FAMILIES) >= 15


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_builds_with_its_own_kind_of_pooling(backbones, family):
    backbone = backbones[family]
    assert backbone.config.model_type == family
    assert backbone.pooling == ("last" if family in DECODERS else "mean")
    assert backbone.tokenizer.pad_token is not None  # decoders: EOS stands in
    anatomy = backbone.anatomy
    assert anatomy.num_blocks == 2 and anatomy.feature_dim == 32
    assert anatomy.family == ("decoder" if family in DECODERS else "encoder")
    features = backbone(_batch(backbone))
    assert features.shape == (2, 32) and torch.isfinite(features).all()


@pytest.mark.parametrize("method_name", METHODS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_method_runs_or_refuses_with_a_sentence(backbones, family, method_name, tmp_path):
    run_or_refuse(backbones[family], method_name, _batch(backbones[family]), tmp_path)


def assert_padding_blind(backbone: HFBackbone, family: str) -> torch.Tensor:
    """The first text alone equals itself in a padded batch: padded on either side for a
    decoder (which pools the last real token), on the right for an encoder. Returns it."""
    alone = dict(backbone.tokenizer(TEXTS[:1], return_tensors="pt"))
    with torch.no_grad():
        reference = backbone(alone)[0]
        for side in ("right", "left") if family in DECODERS else ("right",):
            backbone.tokenizer.padding_side = side
            batch = dict(backbone.tokenizer(TEXTS, padding=True, return_tensors="pt"))
            assert not batch["attention_mask"][0].all(), "the first text must be padded"
            torch.testing.assert_close(backbone(batch)[0], reference, atol=1e-5, rtol=1e-4)
    return reference


@pytest.mark.parametrize("family", sorted(DECODERS))
def test_last_token_pooling_ignores_padding_on_either_side(backbones, family):
    assert_padding_blind(copy.deepcopy(backbones[family]).eval(), family)


def test_cls_pooling_on_a_decoder_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match="first token has seen only itself"):
        HFBackbone(str(model_dir("llama", tmp_path)), pretrained=False, pooling="cls")


@pytest.mark.parametrize("family", sorted(DECODERS))
def test_decoders_take_prompts_prefixes_and_adapters(backbones, family):
    capabilities = backbones[family].anatomy.capabilities
    wanted = {
        Capability.TOKEN_INPUT,
        Capability.ATTENTION_KV,
        Capability.ATTENTION_OUTPUT,
        Capability.MLP_OUTPUT,
    }
    assert wanted <= capabilities


@pytest.mark.parametrize("method_name", ["adapter", "adapter_pfeiffer", "adapter_parallel"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_adapters_start_as_the_identity_and_then_change_the_output(
    backbones, family, method_name, tmp_path
):
    """Every family takes adapters at its sub-layer outputs (found from the structure or a
    row of SUBLAYERS); with their up-projections at zero the model is unchanged, and the
    sites are live: a non-zero up-projection changes every family's features."""
    backbone = copy.deepcopy(backbones[family]).eval()
    batch = _batch(backbone)
    with torch.no_grad():
        plain = backbone(batch)
    module = FineTuneModule(backbone, num_classes=3)
    method_from_config(method_name).apply(module)
    module.eval()
    ups = [p for n, p in module.named_parameters() if n.endswith("up.weight")]
    assert len(ups) >= backbone.anatomy.num_blocks
    with torch.no_grad():
        torch.testing.assert_close(backbone(batch), plain, atol=1e-6, rtol=1e-5)
        for name, param in module.named_parameters():
            if name.endswith(("up.weight", "down.weight")):
                param.normal_(std=0.5)
        # (random ModernBERT's feed-forward outputs are tiny, and so is what adapts them)
        assert (backbone(batch) - plain).abs().max() > 1e-4


@pytest.mark.parametrize("deep", [False, True], ids=["shallow", "deep"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prompts_go_before_the_text_and_padding_changes_nothing(backbones, family, deep):
    """Causal attention: the text sees prompts only if they come first; an encoder keeps
    its [CLS] in front. A text alone equals itself in a padded batch (either side on a
    decoder, which pools the last real token), and the prompts reach what is pooled."""
    from ftlab.methods import Prompt

    backbone = copy.deepcopy(backbones[family])
    module = FineTuneModule(backbone, num_classes=3)
    Prompt(num_tokens=3, deep=deep).apply(module)
    assert backbone.token_slot.start == (0 if family in DECODERS else 1)
    module.eval()
    reference = assert_padding_blind(backbone, family)
    alone = dict(backbone.tokenizer(TEXTS[:1], return_tensors="pt"))
    with torch.no_grad():
        prompts = [m for n, m in module.named_modules() if n.endswith(".prompt")]
        # the prompts reach the pooled token (noise: a constant shift is what LayerNorm removes)
        prompts[0].tokens.add_(torch.randn_like(prompts[0].tokens))
        assert not torch.allclose(backbone(alone)[0], reference, atol=1e-3)


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_last_pooling_equals_what_transformers_sequence_classifier_pools(backbones, family):
    """Right padding, texts without a closing EOS: transformers' own classifier pools the
    last non-pad token; with an identity score layer its logits are that hidden state."""
    backbone = copy.deepcopy(backbones[family]).eval()
    backbone.tokenizer.padding_side = "right"
    batch = dict(
        backbone.tokenizer(TEXTS, padding=True, add_special_tokens=False, return_tensors="pt")
    )
    batch.pop("token_type_ids", None)  # GPT-2 would look them up as tokens; decoders' tokenizers
    config = copy.deepcopy(backbone.config)  # make none, and ftlab passes none to a decoder
    config.num_labels, config.pad_token_id = 32, backbone.tokenizer.pad_token_id
    classifier = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    base = getattr(classifier, classifier.base_model_prefix)
    base.load_state_dict(backbone.model.state_dict())
    score = next(m for n, m in classifier.named_modules() if n in ("score", "classifier"))
    with torch.no_grad():
        score.weight.copy_(torch.eye(32))
        theirs = classifier(**batch).logits
        ours = backbone(batch)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method_name", ["lora", "prompt_deep", "adapter"])
def test_a_decoders_trainable_state_rebuilds_the_same_model(backbones, method_name, tmp_path):
    """Trainable state -> a fresh backbone + a fresh method -> the same outputs; LoRA also
    merged into plain layers (fp32)."""
    from tests.methods.conftest import features, train_steps

    def build():
        method = method_from_config(method_name)
        torch.manual_seed(0)
        module = FineTuneModule(copy.deepcopy(backbones["llama"]), num_classes=3)
        method.apply(module)
        return module, method

    batch = _batch(backbones["llama"])
    trained, method = build()
    train_steps(trained, batch, steps=2)
    fresh, fresh_method = build()
    fresh.load_trainable_state(trained.trainable_state_dict())
    expected = features(trained, batch)
    torch.testing.assert_close(features(fresh, batch), expected, rtol=0, atol=0)
    if method_name == "lora":
        with pytest.raises(ConfigError, match="was not applied to this one"):
            method.merge(fresh)  # its tuner lives in `trained`
        assert fresh_method.merge(fresh) > 0
        assert not any("lora_" in n for n, _ in fresh.named_parameters())
        torch.testing.assert_close(features(fresh, batch), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gradient_checkpointing_on_every_family_or_a_sentence(family, tmp_path):
    path = str(model_dir(family, tmp_path))
    if family == "mpnet":  # transformers' MPNetModel has no checkpointing
        with pytest.raises(ConfigError, match="set model.grad_checkpointing=false"):
            HFBackbone(path, pretrained=False, grad_checkpointing=True)
        return
    torch.manual_seed(0)
    plain = HFBackbone(path, pretrained=False).train()
    torch.manual_seed(0)
    recomputed = HFBackbone(path, pretrained=False, grad_checkpointing=True).train()
    assert recomputed.model.is_gradient_checkpointing
    grads = []
    for backbone in (plain, recomputed):
        torch.manual_seed(1)  # the same dropout masks in the first pass and the recompute
        backbone(_batch(backbone)).square().sum().backward()
        grads.append([p.grad for p in backbone.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


#: decoders whose linear layers have no biases (Qwen2 keeps them on q, k and v)
BIAS_FREE = ["gemma", "llama", "mistral", "phi3", "qwen3"]


@pytest.mark.parametrize("family", BIAS_FREE)
def test_bitfit_on_a_bias_free_model_is_refused_not_a_silent_probe(backbones, family, tmp_path):
    outcome = run_or_refuse(backbones[family], "bitfit", _batch(backbones[family]), tmp_path)
    assert outcome.startswith("refused: method=bitfit trains biases and")


@pytest.mark.parametrize("family", ["llama", "gemma", "gpt2"])
def test_train_norms_reaches_the_models_own_norm_classes(backbones, family):
    """transformers' LlamaRMSNorm and GemmaRMSNorm subclass nn.Module, not nn.RMSNorm."""
    from ftlab.methods import Adapter

    module = FineTuneModule(copy.deepcopy(backbones[family]), num_classes=3)
    Adapter(train_norms=True).apply(module)
    blocks = backbones[family].anatomy.num_blocks
    norms = [n for n, p in module.named_parameters() if p.requires_grad and "norm" in n.lower()]
    norms += [n for n, p in module.named_parameters() if p.requires_grad and ".ln_" in n]
    assert len({n.split(".weight")[0].split(".bias")[0] for n in norms}) >= 2 * blocks


def test_prompts_past_the_position_table_say_what_to_lower(backbones):
    """GPT-2 has 64 learned positions here: 60 tokens + 10 prompts cannot fit."""
    from ftlab.methods import Prompt

    backbone = copy.deepcopy(backbones["gpt2"])
    module = FineTuneModule(backbone, num_classes=3)
    Prompt(num_tokens=10).apply(module)
    ids = torch.randint(1000, 2000, (1, 60))
    with pytest.raises(
        ConfigError,
        match=r"70 tokens, 10 of them prompts, need more positions "
        r"than gpt2 has \(max_position_embeddings=64\); lower data.max_length",
    ):
        backbone({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    short = ids[:, :50]  # 60 positions: fits
    assert backbone({"input_ids": short, "attention_mask": torch.ones_like(short)}).shape == (1, 32)


def test_olora_on_gpt2s_transposed_layers_is_a_sentence_not_a_crash(backbones, tmp_path):
    """peft's OLoRA initialisation gives GPT-2's Conv1D factors of the wrong shape, which
    fail in the first forward; ftlab refuses them when they are built, naming the layer."""
    outcome = run_or_refuse(backbones["gpt2"], "olora", _batch(backbones["gpt2"]), tmp_path)
    assert outcome.startswith("refused: method=olora (init=olora)")
    assert "c_attn" in outcome and "use method=lora or pissa" in outcome
    assert run_or_refuse(backbones["gpt2"], "pissa", _batch(backbones["gpt2"]), tmp_path) == "ran"
