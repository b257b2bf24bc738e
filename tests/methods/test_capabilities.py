"""What methods need is named by Capability members; each backbone kind offers its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from ftlab.backbones import Capability, TimmBackbone
from ftlab.methods.base import Method

SRC = Path(__file__).resolve().parents[2] / "src" / "ftlab"


def test_a_misspelt_requirement_fails_when_the_method_is_defined():
    with pytest.raises(TypeError, match=r"'attention_kvs'.*Capability: head, blocks"):

        class Typo(Method):  # noqa: F841 - defining it is the test
            requires = frozenset({Capability.HEAD, "attention_kvs"})


def test_every_shipped_method_requires_capabilities():
    import ftlab.methods as methods

    classes = [c for c in vars(methods).values() if isinstance(c, type) and issubclass(c, Method)]
    assert len(classes) >= 8
    for cls in classes:
        assert cls.requires and all(isinstance(r, Capability) for r in cls.requires), cls


def test_what_each_backbone_kind_offers(vit_template, bert_template):
    torch.manual_seed(0)
    cnn = TimmBackbone("resnet18", pretrained=False).anatomy.capabilities
    vit = vit_template.anatomy.capabilities
    bert = bert_template.anatomy.capabilities
    assert {Capability.CHANNELS_LAST, Capability.CHAINED_BLOCKS} <= cnn
    assert Capability.TOKEN_INPUT not in cnn and Capability.ATTENTION_KV not in cnn
    assert {Capability.CHAINED_BLOCKS, Capability.TOKEN_INPUT, Capability.ATTENTION_KV} <= vit
    assert Capability.CHANNELS_LAST not in vit and Capability.TOKEN_EMBEDDINGS not in vit
    assert {Capability.TOKEN_EMBEDDINGS, Capability.ATTENTION_OUTPUT, Capability.MLP_OUTPUT} <= bert
    assert Capability.CHAINED_BLOCKS not in bert  # its layers also need the attention mask


def test_methods_and_the_module_ask_for_capabilities_not_families():
    """`anatomy.family` is a word for messages; deciding by it is what capabilities replace."""
    decides = re.compile(r"family\s*(==|!=|in\b|not in\b)|in\s+FAMILIES")
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in [*(SRC / "methods").glob("*.py"), SRC / "module.py", SRC / "backbones/split.py"]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if decides.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("config_class", ["RobertaConfig", "XLMRobertaConfig", "MPNetConfig"])
def test_encoders_with_a_pooler_option_load_without_the_unused_pooler(config_class, tmp_path):
    """ftlab pools the hidden states itself: an unused pooler would be trainable parameters
    that never get a gradient (a warning on one process, an error under DDP)."""
    import transformers

    from ftlab.backbones import HFBackbone
    from ftlab.backbones.assets import minilm_path

    config = getattr(transformers, config_class)(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    config.save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(tmp_path)
    backbone = HFBackbone(str(tmp_path), pretrained=False)
    assert backbone.config.model_type == config.model_type
    assert not [n for n, _ in backbone.named_parameters() if "pooler" in n]
