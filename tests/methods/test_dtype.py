"""``model.dtype``: frozen weights stored in bfloat16 or float16, what trains in float32,
under autocast; every method config on a tiny Llama, and a whole run through ``train``
and ``ftlab-eval``."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
from tests.conftest import compose
from tests.methods.conftest import TEXTS, method_from_config, snapshot
from tests.methods.test_hf_families import METHODS, model_dir

from ftlab.backbones import HFBackbone, TimmBackbone
from ftlab.config import CONF_DIR
from ftlab.errors import ConfigError
from ftlab.module import FineTuneModule


@pytest.fixture(scope="module")
def bf16_llama(tmp_path_factory) -> HFBackbone:
    root = tmp_path_factory.mktemp("dtype")
    torch.manual_seed(0)
    return HFBackbone(str(model_dir("llama", root)), pretrained=False, dtype="bfloat16")


# Llama has no biases (bitfit); zero_shot trains nothing and needs the LM head
@pytest.mark.parametrize("method_name", sorted(set(METHODS) - {"bitfit", "zero_shot"}))
def test_frozen_weights_in_bf16_and_what_trains_in_fp32(bf16_llama, method_name, tmp_path):
    method = method_from_config(method_name)
    module = FineTuneModule(
        copy.deepcopy(bf16_llama),
        num_classes=3,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-2),
    )
    method.apply(module)  # every other method applies to a Llama
    batch = dict(bf16_llama.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    _trains_under_autocast(module, batch, torch.tensor([0, 2]))


CNN_METHODS = ["linear_probe", "last_n", "lora", "bitfit"]
TIMM_PAIRS = [
    *(("deit", m) for m in [*CNN_METHODS, "adapter", "prompt", "prefix"]),
    *((family, m) for family in ("convnext", "resnet") for m in CNN_METHODS),
]


@pytest.mark.parametrize(("family", "method_name"), TIMM_PAIRS)
def test_timm_frozen_weights_in_bf16(family, method_name, tmp_path):
    from tests.methods.test_timm_families import FAMILIES, _batch

    name, kwargs, _ = FAMILIES[family]
    torch.manual_seed(0)
    backbone = TimmBackbone(name, pretrained=False, model_kwargs=kwargs, dtype="bfloat16")
    module = FineTuneModule(backbone, num_classes=3)
    method = method_from_config(method_name)
    method.apply(module)
    batch = _batch(family)
    _trains_under_autocast(module, {"pixel_values": batch["pixel_values"]}, batch["labels"])


def _trains_under_autocast(module: FineTuneModule, batch: dict, labels: torch.Tensor) -> None:
    """Two bf16-autocast AdamW steps: what trains is float32 and moves, wholly frozen
    modules are bfloat16, nothing frozen changes; the checkpoint state is float32."""
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert {p.dtype for n, p in module.named_parameters() if n in trainable} == {torch.float32}
    for owner in module.modules():  # wholly frozen modules hold bfloat16
        params = list(owner.parameters(recurse=False))
        if params and not any(p.requires_grad for p in params):
            assert {p.dtype for p in params} == {torch.bfloat16}, type(owner).__name__
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
    state = module.trainable_state_dict().values()
    assert all(t.dtype == torch.float32 for t in state if t.is_floating_point())


def test_an_unknown_dtype_names_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"model.dtype='bf16' is not one of \['float32'"):
        HFBackbone(str(model_dir("llama", tmp_path)), pretrained=False, dtype="bf16")


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
        HFBackbone(str(model_dir("llama", tmp_path)), quantization="4bit")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantization": "3bit"}, r"model.quantization='3bit' is not one of \['4bit', '8bit'"),
        ({"quantization": "4bit", "pretrained": False}, "set model.pretrained=true"),
    ],
)
def test_bad_quantization_settings_say_what_is_valid(kwargs, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        HFBackbone(str(model_dir("llama", tmp_path)), **kwargs)


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")))
def test_every_model_config_takes_the_memory_knobs(model, tmp_path):
    """``model.dtype=bfloat16`` on any model (and ``model.quantization`` on a Hugging Face
    one) is a setting, not Hydra's "key not in struct"."""
    cfg = compose([f"model={model}"], tmp_path)
    assert cfg.model.dtype is None and cfg.model.grad_checkpointing is False
    if "HFBackbone" in cfg.model._target_:
        assert cfg.model.quantization is None
