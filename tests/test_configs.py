"""Every model, method and data config composes with every other group's configs and
resolves into something buildable."""

from __future__ import annotations

import itertools

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf, open_dict

from ftlab.config import CONF_DIR
from tests.conftest import compose

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))


def _covering() -> list[tuple[str, str, str]]:
    """Every model with every method, the dataset cycling so that every model also meets
    every dataset and every method every dataset: all pairs of the three groups (what
    their configs interpolate across: image size, tokenizer, learning rate) in
    models x methods compositions instead of the whole product."""
    assert len(METHODS) >= len(DATA)  # so each row's cycle meets every dataset
    rows = max(len(MODELS), len(DATA))  # more datasets than models: some models twice
    return [
        (MODELS[i % len(MODELS)], method, DATA[(i + j) % len(DATA)])
        for i in range(rows)
        for j, method in enumerate(METHODS)
    ]


def test_the_covering_array_has_every_pair():
    cases = _covering()
    for a, b in ((0, 1), (0, 2), (1, 2)):
        groups = (MODELS, METHODS, DATA)
        assert {(c[a], c[b]) for c in cases} == set(itertools.product(groups[a], groups[b]))


@pytest.mark.parametrize(("model", "method", "data"), _covering())
def test_every_pair_of_model_method_and_data_composes(model, method, data, tmp_path):
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
    """`+model.model_kwargs.img_size=96` (timm's own knob, set by hand) must reach the
    transforms."""
    from hydra.utils import instantiate

    cfg = compose(
        ["model=vit_small", "model.pretrained=false", "+model.model_kwargs.img_size=96"], tmp_path
    )
    backbone = instantiate(cfg.model)
    assert backbone.preprocessing()["input_size"] == (3, 96, 96)
    assert backbone(backbone.example_batch(1)).shape == (1, 384)


EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (CONF_DIR / "hparams_search").glob("*.yaml"))


def _sweep_params(overrides: list[str], tmp_path) -> tuple:
    """The composed config and its sweeper's ``params``, as ``ftlab-train -m`` sees them."""
    from hydra import compose as hydra_compose

    compose([], tmp_path)  # initialises Hydra on ftlab's config dir
    cfg = hydra_compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    params = OmegaConf.to_container(cfg.hydra.sweeper.get("params") or {}, resolve=False)
    return cfg, params


def _options(group: str, values: str) -> list[str]:
    """A sweep's values for a config group: a comma list, or Hydra's ``glob(pattern)``
    (every option of the group whose name matches)."""
    import fnmatch

    if values.startswith("glob(") and values.endswith(")"):
        pattern = values[len("glob(") : -1].split(",")[0].strip()
        names = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        found = [n for n in names if fnmatch.fnmatch(n, pattern)]
        assert found, f"{group}={values} matches no option"
        return found
    return [v.strip() for v in values.split(",")]


def _check_sweep_params(cfg, params: dict, tmp_path) -> None:
    """Every swept key exists: a config group's values are options of that group (each
    composes), any other key is a value of the composed config."""
    assert params, "the sweep sweeps nothing"
    for key, values in params.items():
        if (CONF_DIR / key).is_dir():
            options = _options(key, str(values))
            for option in options:
                assert (CONF_DIR / key / f"{option}.yaml").is_file(), f"{key}={option}"
                compose([f"{key}={option}"], tmp_path)
        else:
            assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_config_composes_as_its_header_says(experiment, tmp_path):
    text = (CONF_DIR / "experiment" / f"{experiment}.yaml").read_text()
    assert f"ftlab-train -m experiment={experiment}" in text  # the header's command
    cfg, params = _sweep_params([f"experiment={experiment}"], tmp_path)
    assert cfg.task_name == experiment
    for group in ("model", "method", "data", "module", "trainer"):
        assert get_class(OmegaConf.to_container(cfg[group], resolve=True)["_target_"])
    _check_sweep_params(cfg, params, tmp_path)


@pytest.mark.parametrize("search", SEARCHES)
def test_every_hparams_search_config_composes_for_the_optuna_sweeper(search, tmp_path):
    text = (CONF_DIR / "hparams_search" / f"{search}.yaml").read_text()
    assert "ftlab-train -m hparams_search=" in text  # the header's command
    assert search == "optuna" or f"hparams_search={search}" in text
    cfg, params = _sweep_params([f"hparams_search={search}"], tmp_path)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert get_class(cfg.hydra.sweeper._target_)  # the optional extra is installed
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.optimized_metric == "val/acc_best"
    _check_sweep_params(cfg, params, tmp_path)
    if search != "optuna":  # each method's search tunes the learning rate and its size knob
        assert "method.lr" in params and len(params) == 2
        method = OmegaConf.to_container(cfg.method, resolve=True)
        knob = next(k for k in params if k != "method.lr").split(".", 1)[1]
        assert knob in method, f"{search} tunes method.{knob}, which {method['name']} lacks"


@pytest.mark.parametrize("value", [None, "", "elsewhere"], ids=["unset", "empty", "set"])
def test_the_configs_data_dir_follows_the_one_data_dir_rule(value, tmp_path, monkeypatch):
    """conf/paths, the sources, the weights and ftlab-data agree on where data lives."""
    from ftlab.paths import default_data_dir

    monkeypatch.chdir(tmp_path)
    if value is None:
        monkeypatch.delenv("FTLAB_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("FTLAB_DATA_DIR", value)
    expected = tmp_path / ("elsewhere" if value else "data")
    assert default_data_dir() == expected
    cfg = compose([], tmp_path / "run")
    assert cfg.paths.data_dir == str(expected) == cfg.data.source.data_dir
    assert cfg.model.weights_file == f"{expected}/weights/tf_efficientnet_lite0.safetensors"


def test_a_vit_kept_at_224_with_data_at_96_says_what_to_set(tmp_path, data_dir):
    """A ViT follows the data's size unless told otherwise (model.image_size=null: its own
    224); then the data's 96 px cannot run (timm asserts deep inside the forward): one
    sentence names both ways out, before any data loads."""
    from ftlab.errors import ConfigError
    from ftlab.train import build

    cfg = compose(
        ["model=vit_tiny", "model.pretrained=false", "method=lora", "model.image_size=null"],
        tmp_path,
    )
    with pytest.raises(ConfigError, match=r"vit_tiny takes 224x224 images only") as caught:
        build(cfg)
    assert "data.image_size=224" in str(caught.value)
    assert "model.image_size=96 and no model.model_kwargs.img_size" in str(caught.value)
