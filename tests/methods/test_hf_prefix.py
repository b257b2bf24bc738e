"""Prefix tuning on Hugging Face families beyond BERT, through the attention interface:
equal to peft's own prefix tuning (a pre-filled cache) on grouped-query decoders, blind to
padding on either side, the same under SDPA and eager attention and with gradient
checkpointing."""

from __future__ import annotations

import copy

import peft
import pytest
import torch
from tests.methods.conftest import TEXTS
from tests.methods.test_hf_families import FAMILIES, assert_padding_blind, model_dir

from ftlab.backbones import HFBackbone
from ftlab.methods.prefix import Prefix
from ftlab.module import FineTuneModule

NUM_TOKENS = 4
#: families whose attention cannot take a prefix (disentangled / relative attention that
#: does not go through transformers' attention interface)
NO_PREFIX = {"deberta-v2", "mpnet"}


def prefixed(family: str, root, **backbone_kwargs) -> tuple[FineTuneModule, HFBackbone]:
    """A tiny random ``family`` model with prefixes (``module.plain``: its model without)."""
    torch.manual_seed(0)
    backbone = HFBackbone(str(model_dir(family, root)), pretrained=False, **backbone_kwargs)
    plain = copy.deepcopy(backbone.model).eval()
    module = FineTuneModule(backbone, num_classes=3)
    object.__setattr__(module, "plain", plain)
    torch.manual_seed(1)
    Prefix(num_tokens=NUM_TOKENS, init_std=0.5).apply(module)
    return module.eval(), backbone


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma", "mistral", "phi3"])
def test_prefix_equals_peft_prefix_tuning_through_a_cache(family, side, tmp_path):
    """peft puts the prefixes in a pre-filled cache and shifts the text's positions by their
    number; ftlab's prefixes have no position and the text keeps its own. Given positions
    shifted back, peft's model computes exactly what ftlab's does, grouped-query heads and
    padding included."""
    module, backbone = prefixed(family, tmp_path)
    backbone.tokenizer.padding_side = side
    theirs_model = peft.get_peft_model(
        module.plain,
        peft.PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=NUM_TOKENS),
    ).eval()
    table = theirs_model.prompt_encoder["default"].embedding.weight
    batch = dict(backbone.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    mask = batch["attention_mask"]
    with torch.no_grad():
        for i, name in enumerate(backbone.anatomy.attention_kv):
            key, value = backbone.get_submodule(name).prefix()
            width = key.shape[1]
            table[:, 2 * i * width : (2 * i + 1) * width] = key
            table[:, (2 * i + 1) * width : (2 * i + 2) * width] = value
        ours = backbone.forward_tokens(batch)
        positions = (mask.cumsum(1) - 1).clamp(min=0) - NUM_TOKENS
        theirs = theirs_model(
            input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions
        ).last_hidden_state
        plain = theirs_model.get_base_model()(
            input_ids=batch["input_ids"], attention_mask=mask
        ).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(ours[real], plain[real], atol=1e-3)  # the prefix matters


PREFIXABLE = sorted(set(FAMILIES) - NO_PREFIX)


@pytest.mark.parametrize("family", PREFIXABLE)
def test_a_text_alone_equals_itself_in_a_padded_batch(family, tmp_path):
    module, backbone = prefixed(family, tmp_path)
    assert_padding_blind(backbone, family)


@pytest.mark.parametrize("family", ["llama", "gpt2", "distilbert", "roberta"])
def test_sdpa_and_eager_attention_agree_with_a_prefix(family, tmp_path):
    """The mask is widened in two forms: SDPA's boolean one (built where transformers
    leaves it to SDPA's causal flag) and eager's additive one."""
    batch = None
    outputs = []
    for implementation in ("sdpa", "eager"):
        module, backbone = prefixed(family, tmp_path, attn_implementation=implementation)
        batch = batch or dict(backbone.tokenizer(TEXTS, padding=True, return_tensors="pt"))
        with torch.no_grad():
            outputs.append(backbone(batch))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_gradient_checkpointing_gives_the_prefixes_the_same_gradients(family, tmp_path):
    grads = []
    for checkpointing in (False, True):
        module, backbone = prefixed(family, tmp_path, grad_checkpointing=checkpointing)
        module.train()
        batch = dict(backbone.tokenizer(TEXTS, padding=True, return_tensors="pt"))
        backbone(batch).square().sum().backward()
        grads.append({n: p.grad for n, p in module.named_parameters() if ".prefix." in n})
    assert grads[0] and grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", sorted(NO_PREFIX))
def test_attention_without_the_interface_is_refused_with_a_sentence(family, tmp_path):
    from ftlab.backbones import Capability

    backbone = HFBackbone(str(model_dir(family, tmp_path)), pretrained=False)
    assert Capability.ATTENTION_KV not in backbone.anatomy.capabilities
