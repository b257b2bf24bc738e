"""``model.dtype``: frozen weights stored in bfloat16 or float16, what trains in float32,
under autocast; every method config on a tiny Llama, and a whole run through ``train``
and ``ftlab-eval``."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
from hydra.utils import instantiate
from tests.conftest import compose
from tests.methods.conftest import TEXTS, snapshot
from tests.methods.test_hf_families import METHODS, model_dir

from ftlab.backbones import HFEncoderBackbone
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.module import FineTuneModule


@pytest.fixture(scope="module")
def bf16_llama(tmp_path_factory) -> HFEncoderBackbone:
    root = tmp_path_factory.mktemp("dtype")
    torch.manual_seed(0)
    return HFEncoderBackbone(str(model_dir("llama", root)), pretrained=False, dtype="bfloat16")


@pytest.mark.parametrize("method_name", METHODS)
def test_frozen_weights_in_bf16_and_what_trains_in_fp32(bf16_llama, method_name, tmp_path):
    method = instantiate(compose([f"method={method_name}"], tmp_path).method)
    module = FineTuneModule(
        copy.deepcopy(bf16_llama),
        num_classes=3,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-2),
    )
    try:
        method.apply(module)
    except MethodNotApplicable:
        pytest.skip(f"{method_name} does not apply to a Llama (the family table says why)")
    dtypes = {p.requires_grad: set() for p in module.parameters()}
    for param in module.parameters():
        dtypes[param.requires_grad].add(param.dtype)
    assert dtypes[True] == {torch.float32}
    assert dtypes.get(False, {torch.bfloat16}) == {torch.bfloat16}
    batch = dict(bf16_llama.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    labels = torch.tensor([0, 2])
    before = snapshot(module)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(module(batch), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)
    for name, param in module.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed <= param.requires_grad, f"frozen {name} changed"
    assert all(t.dtype == torch.float32 for t in module.trainable_state_dict().values())


def test_an_unknown_dtype_names_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"model.dtype='bf16' is not one of \['float32'"):
        HFEncoderBackbone(str(model_dir("llama", tmp_path)), pretrained=False, dtype="bf16")


#: a tiny Llama run (test_eval_decoder's), its frozen weights in bfloat16
def _run(tmp_path, *overrides):
    from tests.test_eval_decoder import TINY_DECODER_RUN

    llama = model_dir("llama", tmp_path / "models")
    return compose(
        [*TINY_DECODER_RUN, f"model.name={llama}", "model.dtype=bfloat16", *overrides],
        tmp_path / "run",
    )


def test_half_weights_without_autocast_are_refused_with_the_setting_to_use(tmp_path, data_dir):
    from ftlab.train import train

    with pytest.raises(ConfigError, match="set trainer.precision=bf16-mixed"):
        train(_run(tmp_path, "method=lora", "trainer.precision=32-true"))


def test_a_bf16_run_evaluates_to_what_it_recorded(tmp_path, data_dir):
    from ftlab.evaluate import evaluate
    from ftlab.train import train

    returned = train(_run(tmp_path, "method=lora", "trainer.precision=bf16-mixed"))
    recorded = json.loads((tmp_path / "run" / "results.json").read_text())
    assert recorded["status"] == "done" and recorded["test/acc"] == returned["test/acc"]
    eval_cfg = compose([f"ckpt_path={recorded['checkpoint/path']}"], tmp_path / "eval", "eval")
    metrics = evaluate(eval_cfg)
    assert metrics["test/acc"] == pytest.approx(recorded["test/acc"], abs=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_quantization_without_cuda_is_refused_with_what_works_instead(tmp_path):
    with pytest.raises(ConfigError, match="model.quantization=4bit runs on bitsandbytes' CUDA"):
        HFEncoderBackbone(str(model_dir("llama", tmp_path)), quantization="4bit")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantization": "3bit"}, r"model.quantization='3bit' is not one of \['4bit', '8bit'"),
        ({"quantization": "4bit", "pretrained": False}, "set model.pretrained=true"),
    ],
)
def test_bad_quantization_settings_say_what_is_valid(kwargs, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        HFEncoderBackbone(str(model_dir("llama", tmp_path)), **kwargs)
