"""Every model x method x data config composes and resolves into something buildable."""

from __future__ import annotations

import itertools

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from ftlab.run import CONF_DIR
from tests.conftest import compose

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))


def _pairs():
    """Every model with every method, and every dataset once: the fast subset."""
    pairs = [
        (model, method, "fashion_mnist") for model, method in itertools.product(MODELS, METHODS)
    ]
    return pairs + [("efficientnet_lite0", "last_n", data) for data in DATA]


@pytest.mark.parametrize(("model", "method", "data"), _pairs())
def test_model_method_pairs_compose(model, method, data, tmp_path):
    _check(model, method, data, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "method", "data"), list(itertools.product(MODELS, METHODS, DATA))
)
def test_every_combination_composes(model, method, data, tmp_path):
    _check(model, method, data, tmp_path)


def _check(model, method, data, tmp_path):
    cfg = compose([f"model={model}", f"method={method}", f"data={data}"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for group in ("model", "method", "data", "module", "trainer"):
        assert get_class(resolved[group]["_target_"])  # the target imports
    assert resolved["method"]["name"]
    assert resolved["data"]["name"] == data or data in ("image_folder", "text_csv")
    assert resolved["module"]["optimizer"]["lr"] == resolved["method"]["lr"]


def test_method_configs_name_their_strategy():
    for method in METHODS:
        cfg = OmegaConf.load(CONF_DIR / "method" / f"{method}.yaml")
        if "defaults" not in cfg:
            assert cfg.name, method


def test_a_vit_built_at_another_size_asks_the_data_for_that_size(tmp_path):
    """`+model.model_kwargs.img_size=96` (the README's example) must reach the transforms."""
    from hydra.utils import instantiate

    cfg = compose(
        ["model=vit_small", "model.pretrained=false", "+model.model_kwargs.img_size=96"], tmp_path
    )
    backbone = instantiate(cfg.model)
    assert backbone.preprocessing()["input_size"] == (3, 96, 96)
    assert backbone(backbone.example_batch(1)).shape == (1, 384)
