"""Feature caching of the frozen part (whole backbone or stem + first blocks): on when
valid, off when not (also when the data module declares it cannot serve features), and the
same metrics as the uncached run."""

from __future__ import annotations

import pytest
import torch
from lightning import LightningDataModule

from ftlab.backbones import TimmBackbone
from ftlab.backbones.split import FrozenPrefix
from ftlab.callbacks import FeatureCache
from ftlab.data import ClassificationDataModule
from ftlab.data.features import NOT_FTLAB, feature_serving
from ftlab.errors import ConfigError
from ftlab.train import train
from tests.conftest import TINY_CNN

COMPARED = ("test/acc", "test/loss", "val/acc_best", "val/loss")
#: a 3-block ViT at 32 px, randomly initialised
TINY_VIT = [
    *[o for o in TINY_CNN if not o.startswith("model")],
    "model=vit_tiny",
    "model.pretrained=false",
    "+model.model_kwargs.img_size=32",
    "+model.model_kwargs.depth=3",
]


def test_cached_linear_probe_matches_the_uncached_run(make_cfg):
    common = ["method=linear_probe", "trainer.max_epochs=3", "data.samples_per_class=8"]
    cached = train(make_cfg(*common, name="cached"))
    plain = train(make_cfg(*common, "feature_cache=false", name="plain"))
    assert cached["feature_cache"] == "backbone" and plain["feature_cache"] is None
    for key in ("test/acc", "test/loss", "val/acc_best", "val/loss"):
        assert cached[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("model", ["cnn", "vit"])
def test_cached_frozen_blocks_of_last_n_match_the_uncached_run(model, make_cfg):
    common = ["method=last_n", "method.n=1", "trainer.max_epochs=2", "data.samples_per_class=8"]
    base = TINY_VIT if model == "vit" else TINY_CNN
    cached = train(make_cfg(*common, base=base, name="cached"))
    assert cached["feature_cache"] == (
        "frozen_prefix(k=6)" if model == "cnn" else "frozen_prefix(k=2)"
    )
    plain = train(make_cfg(*common, "feature_cache=false", base=base, name="plain"))
    assert cached["feature_cache_s"] and plain["feature_cache_s"] is None
    for key in COMPARED:
        assert cached[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("tf_efficientnet_lite0", {}),
        ("resnet18", {}),
        ("vit_tiny_patch16_224", {"img_size": 32, "depth": 3}),
    ],
)
def test_the_cut_hands_on_exactly_what_the_forward_computes(name, kwargs):
    torch.manual_seed(0)
    backbone = TimmBackbone(name, pretrained=False, model_kwargs=kwargs).eval()
    batch = {"pixel_values": torch.randn(3, 3, 32, 32)}
    for k in range(1, backbone.anatomy.num_blocks + 1):
        split = FrozenPrefix(backbone, k)
        with torch.no_grad():
            torch.testing.assert_close(split.suffix(split.prefix(batch)), backbone(batch))


def test_cache_stays_off_when_the_backbone_trains_or_inputs_are_random(make_cfg):
    assert train(make_cfg("method=full", name="a"))["feature_cache_s"] is None
    augmented = train(make_cfg("method=linear_probe", "data.augment=true", name="b"))
    assert augmented["feature_cache_s"] is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["method=prompt"], r"trains from its first block \(model.blocks.0.prompt"),
        (["method=last_n", "method.n=1", "+model.model_kwargs.pos_drop_rate=0.1"], "Dropout"),
    ],
    ids=["prompt-before-the-blocks", "dropout-in-the-stem"],
)
def test_a_prefix_that_trains_or_is_random_is_not_cached(overrides, reason, make_cfg):
    with pytest.raises(ConfigError, match=reason):
        train(make_cfg(*overrides, "feature_cache=true", base=TINY_VIT))


def test_a_cut_after_a_trainable_parameter_is_refused_whatever_its_layer_id():
    torch.manual_seed(0)
    backbone = TimmBackbone(
        "vit_tiny_patch16_224", pretrained=False, model_kwargs={"img_size": 32, "depth": 3}
    )
    backbone.requires_grad_(False)
    backbone.model.blocks[0].norm1.weight.requires_grad_(True)  # acts before block 2's output
    batch = {"pixel_values": torch.randn(2, 3, 32, 32)}
    reason = FrozenPrefix(backbone, 2).why_not(backbone, batch)
    assert reason == "a trainable parameter acts before block 2's output"
    backbone.model.blocks[0].norm1.weight.requires_grad_(False)
    assert FrozenPrefix(backbone, 2).why_not(backbone, batch) is None


def test_a_cache_too_big_for_memory_goes_to_a_file_and_is_removed(make_cfg, monkeypatch):
    _seen_files.clear()
    monkeypatch.setattr(FeatureCache, "__init__", _tiny_ram(FeatureCache.__init__))
    common = ["method=last_n", "method.n=2", "data.samples_per_class=8"]
    on_file = train(make_cfg(*common, name="file"))
    plain = train(make_cfg(*common, "feature_cache=false", name="plain"))
    assert on_file["feature_cache_s"]
    for key in COMPARED:
        assert on_file[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-6), key
    assert _seen_files and all(not p.exists() for p in _seen_files)  # removed at teardown


_seen_files: list = []


def _tiny_ram(init):
    def patched(self, *args, **kwargs):
        init(self, *args, ram_bytes=0, **{k: v for k, v in kwargs.items() if k != "ram_bytes"})
        original = self._allocate

        def allocate(trainer, rows, first):
            store = original(trainer, rows, first)
            _seen_files.extend(self.files)
            assert self.files, "ram_bytes=0 must put the cache in a file"
            return store

        self._allocate = allocate

    return patched


def test_insisting_on_an_impossible_cache_says_why(make_cfg):
    with pytest.raises(ConfigError, match=r"feature_cache=true.*the backbone trains"):
        train(make_cfg("method=full", "feature_cache=true"))


class DeclinesFeatures(ClassificationDataModule):
    """A data module that declares it cannot serve cached features."""

    def feature_serving(self) -> str:
        return "this data module keeps its inputs"


def test_a_data_module_without_feature_serving_is_trained_uncached(make_cfg):
    declines = ["method=linear_probe", f"data._target_={__name__}.DeclinesFeatures"]
    with pytest.raises(ConfigError) as error:
        train(make_cfg(*declines, "feature_cache=true", name="insist"))
    assert str(error.value) == (
        "feature_cache=true, but features cannot be cached: this data module keeps its inputs."
    )
    quietly = train(make_cfg(*declines, name="auto"))
    assert quietly["status"] == "done" and quietly["feature_cache"] is None


def test_a_lightning_data_module_that_is_not_ftlabs_gets_no_cache():
    class Trainer:  # what FeatureCache.plan reads of a trainer
        datamodule = LightningDataModule()

    assert FeatureCache("auto").plan(Trainer(), module=None) == NOT_FTLAB
    assert feature_serving(None) == NOT_FTLAB  # no data module at all
