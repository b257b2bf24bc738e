"""The method contract, one table: every ``conf/method/*.yaml`` on every backbone family
(tiny random CNN, ViT, BERT encoder, Llama-type decoder) runs a few steps or refuses with
a sentence, and where it runs: only its own parameters and the head change; its trainable
state rebuilds the same model; under gradient checkpointing every trainable parameter gets
the same gradient, under bf16 autocast a finite one; applying a fresh copy again trains the
same names. A method config without a row in :data:`EXPECTED` fails the table."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from tests.methods.conftest import (
    NUM_CLASSES,
    features,
    gradients,
    method_from_config,
    run_or_refuse,
    snapshot,
    train_steps,
)
from tests.methods.test_hf_families import model_dir

from ftlab.backbones import HFBackbone, TimmBackbone
from ftlab.config import CONF_DIR
from ftlab.errors import ConfigError
from ftlab.module import FineTuneModule

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
FAMILIES = ("cnn", "vit", "bert", "decoder")

#: method -> the families where it refuses, and a phrase of the reason (the rest run)
EXPECTED: dict[str, dict[str, str]] = {
    "adalora": {},
    "adapter": {"cnn": "needs mlp_output"},
    "adapter_parallel": {"cnn": "needs mlp_output"},
    "adapter_pfeiffer": {"cnn": "needs mlp_output"},
    "bitfit": {"decoder": "trains biases and"},
    "boft": {},
    "dora": {},
    "fourierft": {
        "cnn": "only the following modules are supported: `torch.nn.Linear`",
        # the tiny decoder's v_proj is 32 x 16: fewer entries than the 1000 frequencies
        "decoder": "`n_frequency` should be less than or equal to the product",
    },
    "full": {},
    "full_llrd": {},
    "gradual": {},
    "hra": {},
    "ia3": {},
    "last_n": {},
    "linear_probe": {},
    "ln_tuning": {},
    "loha": {},
    "lokr": {},
    "lora": {},
    "oft": {},
    "olora": {"cnn": "Unknown initialization init_lora_weights='olora'"},
    "peft": {},
    "pissa": {"cnn": "Unknown initialization init_lora_weights='pissa'"},
    "prefix": {"cnn": "needs attention_kv"},
    "prefix_mlp": {"cnn": "needs attention_kv"},
    "prompt": {"cnn": "needs token_input"},
    "prompt_deep": {"cnn": "needs token_input"},
    "vera": {"cnn": "No layers types compatible with VeRA"},
    # the untouched model answers through its LM head, which classification never loads
    "zero_shot": {family: "needs lm_head" for family in ("cnn", "vit", "bert", "decoder")},
}


def test_every_method_config_has_a_row():
    assert sorted(EXPECTED) == METHODS, "add a row to EXPECTED for every new method config"


@pytest.fixture(scope="module")
def backbones(vit_template, bert_template, tmp_path_factory) -> dict:
    torch.manual_seed(0)
    cnn = TimmBackbone("test_efficientnet", pretrained=False)
    torch.manual_seed(0)
    decoder = HFBackbone(
        str(model_dir("llama", tmp_path_factory.mktemp("decoder"))), pretrained=False
    )
    return {"cnn": cnn, "vit": vit_template, "bert": bert_template, "decoder": decoder}


def _batch(backbone) -> dict[str, torch.Tensor]:
    if isinstance(backbone, TimmBackbone):
        g = torch.Generator().manual_seed(1)
        return {
            "pixel_values": torch.randn(2, 3, 32, 32, generator=g),
            "labels": torch.tensor([0, 2]),
        }
    from tests.methods.conftest import TEXTS

    text = dict(backbone.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    return {**text, "labels": torch.tensor([1, 2])}


def _fresh(backbone, method_name: str):
    method = method_from_config(method_name)
    torch.manual_seed(0)
    module = FineTuneModule(
        copy.deepcopy(backbone),
        num_classes=NUM_CLASSES,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-2),
    )
    method.apply(module)
    return module, method


def _no_dropout(module: torch.nn.Module) -> None:
    for sub in module.modules():
        if isinstance(sub, torch.nn.Dropout):
            sub.p = 0.0


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method_name", METHODS)
def test_the_method_contract(backbones, method_name, family, tmp_path):
    backbone = backbones[family]
    batch = _batch(backbone)
    outcome = run_or_refuse(backbone, method_name, batch, tmp_path)
    reason = EXPECTED[method_name].get(family)
    if reason is not None:
        assert outcome.startswith("refused") and reason in outcome, outcome
        return
    assert outcome == "ran", outcome

    # only the method's own parameters and the head train; the method trains something
    module, method = _fresh(backbone, method_name)
    trainable = {n for n, _ in module.trainable_parameters()}
    assert {"head.1.weight", "head.1.bias"} <= trainable
    if method_name != "linear_probe":
        assert any(n.startswith("backbone.") for n in trainable), "nothing in the backbone trains"

    # a fresh copy of the method on a fresh backbone trains the same names, and applying
    # the same method object again changes nothing
    again, _ = _fresh(backbone, method_name)
    assert {n for n, _ in again.trainable_parameters()} == trainable
    assert again.state_dict().keys() == module.state_dict().keys()
    method.apply(module)
    assert {n for n, _ in module.trainable_parameters()} == trainable
    with pytest.raises(ConfigError, match="is already applied to this module"):
        method_from_config(method_name).apply(module)

    # the trainable state (what a checkpoint holds) rebuilds the same model
    before = snapshot(module)
    train_steps(module, batch, steps=2)
    moved = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    assert moved <= trainable
    state = module.trainable_state_dict()
    assert set(state) >= trainable and all(k in module.state_dict() for k in state)
    again.load_trainable_state(state)
    torch.testing.assert_close(features(again, batch), features(module, batch), rtol=0, atol=0)

    # gradient checkpointing: the same gradients (fp32, no dropout); bf16: finite ones
    plain, _ = _fresh(backbone, method_name)
    _no_dropout(plain)
    checkpointed = copy.deepcopy(plain)
    checkpointed.backbone.set_grad_checkpointing(True)
    reference, got = gradients(plain, batch), gradients(checkpointed, batch)
    assert got.keys() == reference.keys()
    for name, grad in reference.items():
        assert grad is not None and got[name] is not None, f"{name} got no gradient"
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    for name, grad in gradients(checkpointed, batch, bf16=True).items():
        assert grad is not None and torch.isfinite(grad).all(), name
