"""Real weights are real: the packaged ImageNet EfficientNet-Lite0 recognises known
photos, and its features beat random ones on real Fashion-MNIST."""

from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from ftlab.train import train
from tests.conftest import compose

IMAGENET = {"china.jpg": 698, "flower.jpg": 985}  # palace, daisy


def test_packaged_efficientnet_recognises_known_images(efficientnet_weights):
    model = timm.create_model(
        "tf_efficientnet_lite0",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(efficientnet_weights)),
    ).eval()
    config = timm.data.resolve_model_data_config(model)
    assert config["mean"] == (0.5, 0.5, 0.5)  # the model's own preprocessing, not ImageNet's
    transform = timm.data.create_transform(**config)
    for name, label in IMAGENET.items():
        image = Image.fromarray(load_sample_image(name))
        with torch.no_grad():
            top = model(transform(image).unsqueeze(0)).softmax(-1).topk(3).indices[0].tolist()
        assert top[0] == label, f"{name}: top-3 {top}, expected {label} first"


@pytest.mark.slow
def test_linear_probe_on_real_weights_beats_random_weights(tmp_path, efficientnet_weights):
    common = [
        "model=efficientnet_lite0",
        "method=linear_probe",
        "data.samples_per_class=20",
        "data.image_size=64",
        "data.val_samples=200",
        "data.test_samples=500",
        "trainer.max_epochs=4",
        "logger=none",
        "callbacks=none",
    ]
    real = train(compose(common, tmp_path / "real"))
    rand = train(compose([*common, "model.pretrained=false"], tmp_path / "random"))
    assert real["test/acc"] > 0.6, real["test/acc"]
    assert real["test/acc"] > rand["test/acc"] + 0.1, (real["test/acc"], rand["test/acc"])


@pytest.mark.slow
def test_ftlab_train_cli_end_to_end(tmp_path, data_dir, efficientnet_weights):
    """The console entry point as a user runs it: config tree, summary, results.json."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "ftlab.train",
            f"paths.root_dir={tmp_path}", f"paths.data_dir={data_dir}",
            "method=linear_probe", "data.samples_per_class=5", "data.image_size=32",
            "data.val_samples=20", "data.test_samples=20", "trainer.max_epochs=1",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "config" in out and "test accuracy" in out and "wandb sync" in out
    (results,) = tmp_path.glob("logs/train/runs/*/results.json")
    import json

    data = json.loads(results.read_text())
    for key in (
        "model", "method", "data", "seed", "status", "val/acc_best", "test/acc",
        "params/trainable", "params/total", "speed/train_samples_per_s",
        "memory/peak_bytes", "checkpoint/bytes", "time/fit_s",
    ):  # fmt: skip
        assert data.get(key) is not None, key
    assert data["status"] == "done" and data["model"] == "efficientnet_lite0"
    assert (results.parent / "config.yaml").is_file()
    assert (results.parent / ".hydra" / "config.yaml").is_file()
