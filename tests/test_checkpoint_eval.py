"""Checkpoints hold the trainable state + configs; ftlab-eval rebuilds and reproduces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ftlab.errors import CheckpointError
from ftlab.evaluate import evaluate, load_checkpoint
from ftlab.train import train
from tests.conftest import compose

CKPT = ["callbacks=default", "~callbacks.progress_bar", "~callbacks.lr_monitor"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """A linear probe and a full fine-tune of the same tiny setting, with checkpoints."""
    out = {}
    for method in ("linear_probe", "full"):
        run_dir = tmp_path_factory.mktemp(method)
        from tests.conftest import TINY_CNN

        cfg = compose([*TINY_CNN, f"method={method}", *CKPT], run_dir)
        out[method] = train(cfg)
    return out


def test_checkpoint_holds_only_trainable_state(trained):
    for method, results in trained.items():
        ckpt = load_checkpoint(results["checkpoint/path"])
        assert ckpt["ftlab"]["method"]["name"] == method
        assert ckpt["ftlab"]["config"]["method"]["name"] == method
        keys = set(ckpt["state_dict"])
        if method == "linear_probe":
            assert keys == {"head.1.weight", "head.1.bias"}
    probe, full = trained["linear_probe"], trained["full"]
    assert probe["checkpoint/bytes"] < 0.02 * full["checkpoint/bytes"]


@pytest.mark.parametrize("method", ["linear_probe", "full"])
def test_eval_reproduces_the_runs_test_metrics(trained, method, tmp_path):
    results = trained[method]
    cfg = compose([f"ckpt_path={results['checkpoint/path']}"], tmp_path, config_name="eval")
    metrics = evaluate(cfg)
    assert metrics["test/acc"] == pytest.approx(results["test/acc"], abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(results["test/loss"], rel=1e-5)
    assert json.loads((tmp_path / "eval.json").read_text())["test/acc"] == metrics["test/acc"]


def test_checkpoint_with_other_class_count_is_refused(trained, tmp_path):
    ckpt = load_checkpoint(trained["linear_probe"]["checkpoint/path"])
    ckpt["state_dict"]["head.1.weight"] = torch.zeros(5, 1280)
    ckpt["state_dict"]["head.1.bias"] = torch.zeros(5)
    path = tmp_path / "other.ckpt"
    torch.save(ckpt, path)
    cfg = compose([f"ckpt_path={path}"], tmp_path, config_name="eval")
    with pytest.raises(CheckpointError, match=r"shape mismatch head.1.weight: \(5, 1280\)"):
        evaluate(cfg)


def test_truncated_and_missing_checkpoints_are_named(trained, tmp_path):
    data = Path(trained["linear_probe"]["checkpoint/path"]).read_bytes()
    path = tmp_path / "cut.ckpt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="could not be read.*truncated"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")


TINY_TEXT = [
    "model=minilm",
    "model.pretrained=false",
    "model.config_overrides={num_hidden_layers:2,hidden_size:32,num_attention_heads:2,intermediate_size:64}",
    "data=rotten_tomatoes",
    "data.samples_per_class=8",
    "data.val_samples=16",
    "data.test_samples=32",
    "data.max_length=24",
    "trainer.max_epochs=1",
    "logger=none",
    *CKPT,
    "print_config=false",
]


@pytest.mark.parametrize(
    ("method", "merge"),
    [("prompt_deep", False), ("prefix_mlp", True), ("adapter", False), ("lora", True)],
)
def test_eval_reproduces_peft_runs_on_a_text_encoder(method, merge, tmp_path, data_dir):
    results = train(compose([*TINY_TEXT, f"method={method}"], tmp_path / "run"))
    ckpt = load_checkpoint(results["checkpoint/path"])
    saved = ckpt["ftlab"]["config"]["method"]
    assert "***" not in str(saved), saved  # size knobs such as num_tokens are not "secrets"
    overrides = [f"ckpt_path={results['checkpoint/path']}", f"merge_lora={str(merge).lower()}"]
    metrics = evaluate(compose(overrides, tmp_path / "eval", config_name="eval"))
    assert metrics["test/acc"] == pytest.approx(results["test/acc"], abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(results["test/loss"], rel=1e-4)
