"""Typed settings: a value of the wrong type is one sentence naming the key, the value and
the type (``method.*``, ``module.*``, ``data.*``, ``trainer.*``), no shipped config is
refused, and the trainer settings that would train nothing, never end, or need a GPU this
machine lacks are refused before a run starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from ftlab import settings
from ftlab.config import CONF_DIR
from ftlab.errors import ConfigError, user_error
from tests.conftest import compose

DICT = OmegaConf.create({"a": 1})
LIST = OmegaConf.create([1, 2])

# (annotation, value, verdict): True accepted, False refused, None not judged (accepted)
RULES = [
    (float, 1, True),  # Hydra reads `lr=1` as an int
    (float, 1e-3, True),
    (float, np.float32(0.5), True),
    (float, True, False),  # a bool is not a number here
    (float, "abc", False),
    (int, 3, True),
    (int, np.int64(3), True),
    (int, True, False),
    (int, 2.0, False),
    (bool, False, True),
    (bool, 0, False),
    (str, "x", True),
    (str, 1, False),
    (float | None, None, True),
    (int | None, "8", False),
    (bool | str, "auto", True),
    (bool | str, True, True),
    (bool | str, 1, False),
    (int | str, "auto", True),
    (int | str, 1.5, False),
    (Literal["auto", "step", "deferred"], "step", True),
    (Literal["auto", "step", "deferred"], "sometimes", False),
    (Literal[True, "auto"], 1, False),  # 1 == True, yet not the literal true
    (dict[str, Any], DICT, True),
    (dict[str, Any], {"a": 1}, True),
    (dict[str, int], {"a": "b"}, False),
    (dict[str, Any] | None, LIST, False),
    (Mapping[str, Any], DICT, True),
    (list[int], LIST, True),
    (list[int], (1, 2), True),
    (list[str], LIST, False),
    (list[int], "12", False),
    (Sequence[str], "ab", None),  # a string is a sequence of strings: not ours to say
    (tuple[int, ...], [1, 2, 3], True),
    (tuple[int, str], [1, 2], False),
    (str | list[str], ["q", "v"], True),
    (Any, object(), None),
    (Callable[..., torch.optim.Optimizer] | None, "adam", None),
    (torch.nn.Module, "not a module", None),  # a class: never judged
    (str | torch.nn.Module, 3, None),  # one member not judged: the union is not
]


@pytest.mark.parametrize(
    ("hint", "value", "verdict"), RULES, ids=[str(i) for i in range(len(RULES))]
)
def test_the_type_rule(hint, value, verdict):
    assert settings.accepts(hint, value) is verdict


def _takes(lr: float | None = None, n: int = 1, mode: Literal["a", "b"] = "a", x: int = None):
    """Annotations kept as strings (``from __future__ import annotations``), as in ftlab."""


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": "abc"}, "method.lr='abc' must be a number (float) or null; got a string."),
        ({"n": True}, "method.n=True must be an integer (int); got a bool."),
        ({"n": [1]}, "method.n=[1] must be an integer (int); got a list."),
        ({"mode": "c"}, "method.mode='c' must be one of a, b; got a string."),
    ],
)
def test_the_message_names_the_key_the_value_and_the_type(values, message):
    with pytest.raises(ConfigError) as raised:
        settings.check_types(_takes, values, "method.")
    assert str(raised.value) == message


def test_accepted_values_and_what_no_signature_declares_pass():
    settings.check_types(_takes, {"lr": 1, "n": 2, "mode": "b", "x": None, "other": "?"}, "m.")


def test_an_annotation_that_does_not_resolve_is_not_judged():
    def f(a=1, b=2):
        pass

    f.__annotations__.update(a="NotImportedHere", b="int")
    settings.check_types(f, {"a": "anything"}, "m.")
    with pytest.raises(ConfigError, match="m.b='2' must be an integer"):
        settings.check_types(f, {"a": "anything", "b": "2"}, "m.")


# -- through the real constructors, as Hydra calls them ------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.lr=abc", "method.lr='abc' must be a number (float) or null; got a string."),
        ("method.r=2.5", "method.r=2.5 must be an integer (int); got a float."),
        ("method.use_dora=maybe", "method.use_dora='maybe' must be true or false (bool)"),
        ("method.targets=[1,2]", "must be a string (str) or a list of strings (list[str])"),
    ],
)
def test_a_method_setting_of_the_wrong_type_is_a_sentence(override, message, tmp_path):
    cfg = compose(["method=lora", override], tmp_path)
    with pytest.raises(Exception) as raised:
        instantiate(cfg.method)
    error = user_error(raised.value)
    assert isinstance(error, ConfigError), raised.value
    assert message in str(error)


def test_a_module_setting_of_the_wrong_type_is_a_sentence():
    from ftlab.backbones import TimmBackbone
    from ftlab.module import FineTuneModule

    backbone = TimmBackbone("resnet18", pretrained=False)
    with pytest.raises(ConfigError, match=r"^module.warmup_fraction='abc' must be a number"):
        FineTuneModule(backbone, num_classes=3, warmup_fraction="abc")
    with pytest.raises(ConfigError, match=r"^module.compile=1 must be true or false \(bool\) or"):
        FineTuneModule(backbone, num_classes=3, compile=1)


def test_a_data_setting_of_the_wrong_type_is_a_sentence_before_the_source_is_built():
    from ftlab.data import ClassificationDataModule

    source = {"_target_": "no.such.Source"}  # never built: the types are checked first
    with pytest.raises(ConfigError, match=r"^data.batch_size='eight' must be an integer \(int\);"):
        ClassificationDataModule(source, batch_size="eight")
    with pytest.raises(ConfigError, match=r"^data.augment='yes' must be true or false"):
        ClassificationDataModule(source, augment="yes")


# -- no shipped config is refused ------------------------------------------------------------
def _groups(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _values(node) -> dict[str, Any]:
    values = OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in values.items() if not k.startswith("_")}


@pytest.mark.parametrize("data", _groups("data"))
def test_no_data_config_is_refused(data, tmp_path):
    """Against the target's own signature, as its constructor checks (data=streaming's
    selections go to its ``**selections``, not to the base class)."""
    cfg = compose([f"data={data}"], tmp_path)
    settings.check_types(get_class(cfg.data._target_).__init__, _values(cfg.data), "data.")


@pytest.mark.parametrize("method", _groups("method"))
def test_no_method_config_is_refused(method, tmp_path):
    cfg = compose([f"method={method}"], tmp_path)
    settings.check_types(get_class(cfg.method._target_), _values(cfg.method), "method.")


def test_the_module_config_is_not_refused(tmp_path):
    cfg = compose([], tmp_path)
    settings.check_types(get_class(cfg.module._target_), _values(cfg.module), "module.")


@pytest.mark.parametrize("trainer", _groups("trainer"))
def test_no_trainer_config_is_refused_on_a_machine_with_a_gpu(trainer, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = compose([f"trainer={trainer}", "debug=fast"], tmp_path)
    settings.check_trainer(cfg.trainer, trainer)


def test_the_eval_trainer_is_not_refused(tmp_path):
    settings.check_trainer(compose([], tmp_path, config_name="eval").trainer, "cpu")


# -- the trainer ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing, yet the run would test"),
        (["trainer.max_steps=0"], "trainer.max_steps=0 trains nothing"),
        (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0 trains nothing"),
        (["trainer.limit_train_batches=0.0"], "trainer.limit_train_batches=0.0 trains nothing"),
        (["trainer.max_epochs=-1"], "trainer.max_epochs=-1 with trainer.max_steps=-1 trains "),
        (["trainer.max_epochs=-2"], "trainer.max_epochs=-2 must be >= 1, or -1"),
        (["trainer.max_steps=-5"], "trainer.max_steps=-5 must be >= 1, or -1"),
        (["trainer.limit_val_batches=1.5"], "trainer.limit_val_batches=1.5 must be a number of"),
        (["trainer.limit_test_batches=-1"], "trainer.limit_test_batches=-1 must be a number of"),
        (["trainer.fast_dev_run=-1"], "trainer.fast_dev_run=-1 must be true, false or a number"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' must be an integer (int) or null"),
        (["trainer.precision=17"], "trainer.precision=17 must be one of 64, 32, 16, "),
        (["+trainer.limit_train_batchs=2"], "Did you mean 'limit_train_batches'"),
    ],
)
def test_a_trainer_setting_lightning_would_misuse_is_a_sentence(overrides, fragment, tmp_path):
    cfg = compose(overrides, tmp_path)
    with pytest.raises(ConfigError) as raised:
        settings.check_trainer(cfg.trainer, "cpu")
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer.max_epochs=-1", "trainer.max_steps=20"],  # a step budget alone
        ["trainer.max_epochs=0", "trainer.fast_dev_run=true"],  # Lightning sets the length
        ["trainer.limit_train_batches=13", "trainer.limit_val_batches=0.25"],
        ["trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0"],  # no validation
        ["trainer.val_check_interval=0.5", "trainer.precision=bf16-mixed"],
        ["trainer.limit_test_batches=2.0"],  # Lightning reads 2.0 as 2 batches
    ],
)
def test_runs_that_train_and_end_pass(overrides, tmp_path):
    settings.check_trainer(compose(overrides, tmp_path).trainer, "cpu")


@pytest.mark.parametrize(
    ("trainer", "advice"),
    [
        ("gpu", "use trainer=cpu, or trainer=default to take a GPU when there is one."),
        ("gpu_per_job", "use trainer=cpu, or trainer=default to take a GPU when there is one."),
        ("ddp", "use trainer=ddp_cpu (data-parallel CPU processes, gloo) or trainer=cpu."),
        ("fsdp", "use trainer=cpu, or trainer=ddp_cpu for data-parallel CPU processes."),
    ],
)
def test_a_gpu_trainer_without_a_gpu_says_what_to_set(trainer, advice, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cfg = compose([f"trainer={trainer}"], tmp_path)
    with pytest.raises(ConfigError) as raised:
        settings.check_trainer(cfg.trainer, trainer)
    assert str(raised.value) == (
        f"trainer={trainer} needs a CUDA GPU and this machine has none "
        f"(torch.cuda.is_available() is False); {advice}"
    )


def test_an_accelerator_set_by_hand_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cfg = compose(["trainer.accelerator=cuda"], tmp_path)
    with pytest.raises(ConfigError, match=r"^trainer.accelerator=cuda needs a CUDA GPU"):
        settings.check_trainer(cfg.trainer, "cpu")
    settings.check_trainer(compose(["trainer=default"], tmp_path).trainer, "default")  # auto


def test_the_new_trainer_keys_are_lightnings_defaults():
    """Keys without a `+`, each holding the default of the installed Lightning."""
    import inspect

    from lightning.pytorch import Trainer

    cpu = OmegaConf.load(CONF_DIR / "trainer" / "cpu.yaml")
    defaults = inspect.signature(Trainer.__init__).parameters
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        assert cpu[key] == defaults[key].default, key
    for key in ("val_check_interval", "num_sanity_val_steps", "fast_dev_run"):
        assert cpu[key] == defaults[key].default, key


def test_train_refuses_before_any_file_is_written(make_cfg, tmp_path):
    from ftlab.train import train

    cfg = make_cfg("trainer.max_epochs=0", name="zero")
    with pytest.raises(ConfigError, match="trains nothing"):
        train(cfg)
    assert not (tmp_path / "zero").exists()
