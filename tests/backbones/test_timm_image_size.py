"""A timm model built for one input size (ViT, DeiT, Swin, ...) follows the data's image
size: built at it, pretrained position embeddings resampled, refused in one sentence only
where timm cannot build or run it at that size."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate
from tests.conftest import compose, ftlab_cli
from timm.layers import resample_abs_pos_embed

from ftlab.backbones import TimmBackbone
from ftlab.data.pipelines import ImagePipeline
from ftlab.errors import ConfigError

VIT = "vit_tiny_patch16_224"
#: vit_tiny as a new user runs it on the default data (96 px), shrunk to a few images
VIT_RUN = [
    "model=vit_tiny",
    "model.pretrained=false",
    "method=lora",
    "data.samples_per_class=2",
    "data.val_samples=8",
    "data.test_samples=8",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "logger=none",
    "print_config=false",
]


def test_a_vit_is_built_at_the_default_datas_size(tmp_path):
    cfg = compose(["model=vit_tiny", "model.pretrained=false"], tmp_path)
    assert cfg.model.image_size == cfg.data.image_size == 96
    backbone = instantiate(cfg.model)
    assert backbone.model.pos_embed.shape[1] == 1 + (96 // 16) ** 2
    assert backbone.preprocessing()["input_size"] == (3, 96, 96)
    assert backbone(backbone.example_batch(1)).shape == (1, 192)


def test_data_without_a_size_keeps_the_models_own(tmp_path):
    cfg = compose(["model=vit_tiny", "model.pretrained=false", "data.image_size=null"], tmp_path)
    assert cfg.model.image_size is None
    assert instantiate(cfg.model).preprocessing()["input_size"] == (3, 224, 224)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        (VIT, dict(depth=1)),
        ("swin_tiny_patch4_window7_224", dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2))),
    ],
    ids=["vit", "swin"],
)
def test_weights_saved_at_224_load_at_96(name, kwargs, tmp_path):
    """A local checkpoint goes through timm's own loader, which fits it to the new size."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    saved = TimmBackbone(name, pretrained=False, model_kwargs=kwargs).model
    save_file(saved.state_dict(), tmp_path / "w.safetensors")
    loaded = TimmBackbone(
        name, weights_file=str(tmp_path / "w.safetensors"), model_kwargs=kwargs, image_size=96
    )
    assert loaded.preprocessing()["input_size"] == (3, 96, 96)
    assert loaded(loaded.example_batch(2)).shape == (2, saved.num_features)
    weights = dict(loaded.model.named_parameters())
    if name == VIT:
        resampled = resample_abs_pos_embed(saved.pos_embed, (6, 6), num_prefix_tokens=1)
        assert torch.allclose(weights["pos_embed"], resampled)
    for key, value in saved.state_dict().items():  # everything else as saved
        if key in weights and weights[key].shape == value.shape:
            assert torch.equal(weights[key], value), key


@pytest.mark.parametrize(
    ("size", "said"),
    [
        (100, "use data.image_size=96 or 112 (or null, its own 224x224)."),
        (8, "use data.image_size=16 (or null, its own 224x224)."),
    ],
)
def test_a_size_the_patches_do_not_tile_is_refused_in_one_sentence(size, said):
    with pytest.raises(ConfigError) as caught:
        TimmBackbone(VIT, pretrained=False, label="vit_tiny", image_size=size)
    message = str(caught.value)
    assert message.startswith(f"vit_tiny cannot be built for {size}x{size} images")
    assert "16x16 patches do not tile" in message and message.endswith(said)
    assert message.count(". ") == 0 and "\n" not in message


def test_a_model_that_runs_at_one_size_only_names_that_size():
    with pytest.raises(ConfigError, match=r"use data.image_size=240 \(or null, its own 240x240\)"):
        TimmBackbone("crossvit_tiny_240", pretrained=False, image_size=96)


def test_img_size_set_by_hand_wins_and_the_data_check_refuses_the_mismatch():
    backbone = TimmBackbone(
        VIT, pretrained=False, label="vit_tiny", model_kwargs=dict(img_size=64), image_size=96
    )
    assert backbone.preprocessing()["input_size"] == (3, 64, 64)
    with pytest.raises(ConfigError, match=r"vit_tiny takes 64x64 images only.*model.image_size=96"):
        ImagePipeline(image_size=96).configure(backbone.preprocessing(), "vit_tiny")


def test_models_that_take_any_size_are_built_as_they_are():
    backbone = TimmBackbone("resnet18", pretrained=False, image_size=96)
    assert backbone.fixed_input_size is None
    assert "fixed_input_size" not in backbone.preprocessing()


def test_vit_tiny_trains_on_the_default_data_and_eval_rebuilds_it(tmp_path, data_dir):
    from ftlab.evaluate import evaluate, load_checkpoint, rebuild
    from ftlab.train import train

    ckpt = ["callbacks=default", "~callbacks.progress_bar", "~callbacks.lr_monitor"]
    results = train(compose([*VIT_RUN, *ckpt], tmp_path / "run"))
    assert results["status"] == "done" and results["model"] == "vit_tiny"
    saved = load_checkpoint(results["checkpoint/path"])
    assert saved["ftlab"]["config"]["model"]["image_size"] == 96
    _, _, module, _ = rebuild(saved)
    assert module.backbone.model.pos_embed.shape[1] == 37
    eval_cfg = compose([f"ckpt_path={results['checkpoint/path']}"], tmp_path, config_name="eval")
    assert evaluate(eval_cfg)["test/acc"] == pytest.approx(results["test/acc"], abs=1e-6)


@pytest.mark.slow
def test_ftlab_train_vit_tiny_lora_runs_on_the_default_data(tmp_path, data_dir):
    proc = ftlab_cli("train", *VIT_RUN, "trainer.max_steps=2", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "done" and results["model"] == "vit_tiny"
