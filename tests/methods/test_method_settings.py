"""Method configs: each records its own name, a key no constructor takes is an error
naming the valid ones (it used to vanish into ``**kwargs``), and what is stored as
hyperparameters is every setting's value, derived from the settings, never a copy."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from tests.conftest import compose

from ftlab.config import CONF_DIR
from ftlab.errors import ConfigError, user_error

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))


@pytest.mark.parametrize("name", METHODS)
def test_every_method_config_records_its_own_name(name, tmp_path):
    cfg = compose([f"method={name}"], tmp_path)
    method = instantiate(cfg.method)
    assert cfg.method.name == method.name == method.hparams()["name"] == name


@pytest.mark.parametrize("name", METHODS)
def test_every_key_of_a_method_config_is_a_setting(name, tmp_path):
    cfg = compose([f"method={name}"], tmp_path)
    method_class = type(instantiate(cfg.method))
    assert set(cfg.method) - {"_target_", "_recursive_"} <= set(method_class.settings())


@pytest.mark.parametrize("name", METHODS)
def test_the_stored_hyperparameters_are_every_setting_as_configured(name, tmp_path):
    from omegaconf import OmegaConf

    cfg = compose([f"method={name}"], tmp_path)
    method = instantiate(cfg.method)
    hparams = method.hparams()
    assert set(hparams) == set(type(method).settings())
    for key, value in OmegaConf.to_container(cfg.method, resolve=True).items():
        if not key.startswith("_"):
            assert hparams[key] == value, key


def test_an_unknown_key_names_the_valid_ones(tmp_path):
    cfg = compose(["method=lora", "+method.rank=16"], tmp_path)
    with pytest.raises(Exception) as raised:
        instantiate(cfg.method)
    error = user_error(raised.value)
    assert isinstance(error, ConfigError)
    assert str(error).startswith("method.rank is not a setting of method=lora (valid: alpha,")
    assert ", r, targets," in str(error)


def test_every_method_config_has_its_own_label(tmp_path):
    """Reports and sweeps key rows by the label: two configs with one label would merge
    (full and full_llrd once did)."""
    labels = {
        name: instantiate(compose([f"method={name}"], tmp_path).method).label for name in METHODS
    }
    assert len(set(labels.values())) == len(labels), labels
