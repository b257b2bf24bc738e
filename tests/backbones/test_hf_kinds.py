"""Whether a Hugging Face model is an encoder or a decoder is transformers' own answer (its
masked-LM and causal-LM mappings), never a silent guess; and the backbone's old class name
still builds what configs and checkpoints written before the rename name."""

from __future__ import annotations

import pytest
import torch
import transformers
from omegaconf import OmegaConf

from ftlab.backbones import HFBackbone
from ftlab.backbones.assets import minilm_path
from ftlab.backbones.families.hf_generic import text_kind
from ftlab.errors import BackboneError, ConfigError

TINY = dict(
    vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, max_position_embeddings=64,
)  # fmt: skip


class ToyConfig(transformers.BertConfig):
    """An encoder whose model type transformers maps to no LM head at all."""

    model_type = "ftlab_toy_encoder"


class ToyModel(transformers.BertModel):
    config_class = ToyConfig


transformers.AutoConfig.register(ToyConfig.model_type, ToyConfig)
transformers.AutoModel.register(ToyConfig, ToyModel)


def saved(config, path):
    config.save_pretrained(path)
    transformers.AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize(
    ("model_type", "kind"),
    [
        ("bert", "encoder"),  # BERT also has a causal-LM head: the masked-LM one decides
        ("roberta", "encoder"),
        ("distilbert", "encoder"),
        ("deberta-v2", "encoder"),
        ("modernbert", "encoder"),
        ("mpnet", "encoder"),
        ("gpt2", "decoder"),
        ("llama", "decoder"),
        ("qwen2", "decoder"),
        ("gemma3_text", "decoder"),
        ("mistral", "decoder"),
        ("phi3", "decoder"),
        ("falcon", "decoder"),
    ],
)
def test_kinds_come_from_transformers_mappings(model_type, kind):
    config = transformers.AutoConfig.for_model(model_type)
    assert text_kind(config) == kind


def test_a_model_type_transformers_does_not_map_is_refused_until_its_kind_is_said(tmp_path):
    path = saved(ToyConfig(**TINY), tmp_path)
    with pytest.raises(BackboneError, match="'ftlab_toy_encoder' to neither .* model.kind=encoder"):
        HFBackbone(path, pretrained=False)
    backbone = HFBackbone(path, pretrained=False, kind="encoder")
    assert backbone.anatomy.family == "encoder" and backbone.pooling == "mean"
    batch = dict(
        backbone.tokenizer(["two words", "and three words"], padding=True, return_tensors="pt")
    )
    assert backbone(batch).shape == (2, 32)


def test_a_declared_kind_that_contradicts_transformers_is_refused(tmp_path):
    path = saved(transformers.BertConfig(**TINY), tmp_path)
    with pytest.raises(
        ConfigError, match="model.kind=decoder but transformers maps bert to an encoder"
    ):
        HFBackbone(path, pretrained=False, kind="decoder")
    with pytest.raises(
        ConfigError, match=r"model.kind='decodr' is not one of \['auto', 'encoder', 'decoder'\]"
    ):
        HFBackbone(path, pretrained=False, kind="decodr")


def test_an_encoder_decoder_model_is_refused_with_what_works(tmp_path):
    config = transformers.T5Config(vocab_size=30522, d_model=32, num_layers=1, num_heads=2, d_ff=64)
    with pytest.raises(BackboneError, match="t5 is an encoder-decoder model"):
        HFBackbone(saved(config, tmp_path), pretrained=False)


def test_configs_and_checkpoints_naming_the_old_class_still_build(tmp_path):
    """Checkpoints keep the resolved config, whose model ``_target_`` was
    ``ftlab.backbones.HFEncoderBackbone`` before the rename; ``ftlab-eval`` instantiates it."""
    from hydra.utils import instantiate

    old = OmegaConf.create(
        {
            "_target_": "ftlab.backbones.HFEncoderBackbone",
            "name": str(minilm_path()),
            "pretrained": False,
            "config_overrides": {
                k: TINY[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads")
            },
        }
    )
    torch.manual_seed(0)
    built = instantiate(old)
    assert isinstance(built, HFBackbone) and built.anatomy.num_blocks == 2
