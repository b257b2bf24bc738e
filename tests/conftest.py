"""Shared test set-up: offline by default, real assets fetched once, configs composed
the way ``ftlab-train`` composes them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.pop("WANDB_API_KEY", None)  # tests never talk to W&B's servers
os.environ.setdefault("FTLAB_DATA_DIR", str(REPO / "data"))

#: a CNN run small enough for one optimisation step per test on a 2-core CPU
TINY_CNN = [
    "model=timm",
    "model.name=tf_efficientnet_lite0",
    "model.pretrained=false",
    "data=fashion_mnist",
    "data.samples_per_class=4",
    "data.image_size=32",
    "data.val_samples=16",
    "data.test_samples=16",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "logger=none",
    "callbacks=none",
    "print_config=false",
]


def found_or_fetched(asset) -> Path:
    """A real asset (:class:`ftlab.assets.Asset`), fetched once through ftlab's own fetcher
    if it is not here."""
    if asset.locate() is None:
        print(asset.fetch())
    return asset.located()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``$FTLAB_DATA_DIR`` (the Makefile's ``data/``), with the offline defaults fetched."""
    path = Path(os.environ["FTLAB_DATA_DIR"]).absolute()
    from ftlab.data import FashionMNIST

    found_or_fetched(FashionMNIST(path))
    return path


@pytest.fixture(scope="session")
def efficientnet_weights(data_dir: Path) -> Path:
    from ftlab.backbones.assets import prepare_efficientnet_lite0

    return prepare_efficientnet_lite0(data_dir)


def compose(overrides: list[str], output_dir: Path, config_name: str = "train"):
    """The config ``ftlab-train OVERRIDES`` would run, writing into ``output_dir``."""
    from omegaconf import open_dict

    from ftlab.config import compose_config

    cfg = compose_config(overrides, config_name=config_name)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    def _make(*overrides: str, base: list[str] | None = None, name: str = "run"):
        return compose([*(TINY_CNN if base is None else base), *overrides], tmp_path / name)

    return _make


def ftlab_cli(entry: str, *args: str, timeout: int = 600, **popen):
    """``python -m ftlab.<entry> ARGS`` in a fresh process, as a user would run it."""
    import subprocess
    import sys

    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **popen.pop("env", {})}
    cmd = [sys.executable, "-m", f"ftlab.{entry}", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO, **popen
    )


def quiet_trainer(tmp_path: Path | None = None, **overrides):
    """A CPU Lightning Trainer that writes and prints nothing, trains without validation
    (``overrides`` change any of that: ``max_steps``, ``callbacks``, ...)."""
    import lightning.pytorch as pl

    options = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    return pl.Trainer(**{**options, **overrides})
