import gzip
from pathlib import Path

import numpy as np
import pytest
from tests.data.conftest import write_images

import ftlab.data.sources.fashion_mnist as fashion_mnist
from ftlab.data.pipelines import to_pil
from ftlab.data.sources import CIFAR10, CIFAR100, FashionMNIST, ImageFolder
from ftlab.data.sources.fashion_mnist import read_idx
from ftlab.errors import ConfigError, DataError


def test_fashion_mnist_reads_the_real_idx_files(fashion_mnist_dir, tmp_path):
    source = FashionMNIST(tmp_path, root=fashion_mnist_dir)
    train, val, test = source.load("train"), source.load("val"), source.load("test")
    assert val is None
    assert train.items.shape == (60_000, 28, 28) and train.items.dtype == np.uint8
    assert test.items.shape == (10_000, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert source.class_names[0] == "T-shirt/top" and source.class_names[9] == "Ankle boot"
    image = to_pil(train.items[0])
    assert image.mode == "RGB" and image.size == (28, 28)


def test_fashion_mnist_is_found_through_the_data_dir(fashion_mnist_dir, tmp_path):
    local = tmp_path / "fashion-mnist"
    local.mkdir()
    for f in fashion_mnist_dir.iterdir():
        (local / f.name).symlink_to(f)
    assert FashionMNIST(tmp_path).locate() == local


def test_missing_fashion_mnist_names_the_places_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")
    source = FashionMNIST(tmp_path / "data", root=tmp_path / "mine")
    with pytest.raises(DataError) as error:
        source.load("train")
    message = str(error.value)
    for place in ("mine", "data/fashion-mnist", "no-system-copy"):
        assert place in message
    assert "ftlab-data fetch fashion_mnist" in message and "make data" in message
    assert source.class_names[1] == "Trouser"  # metadata needs no files


def test_truncated_idx_file_is_a_data_error(tmp_path):
    path = tmp_path / "bad-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(
            b"\0\0\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 50
        )
    with pytest.raises(DataError, match="truncated"):
        read_idx(str(path))


@pytest.mark.parametrize("source_class", [CIFAR10, CIFAR100])
def test_missing_cifar_says_how_to_download(source_class, tmp_path):
    source = source_class(tmp_path)
    with pytest.raises(DataError, match=r"download=true") as error:
        source.class_names  # noqa: B018
    assert str(tmp_path / source.name) in str(error.value)


def test_image_folder_carves_a_fixed_stratified_test_split(image_root):
    source = ImageFolder(image_root)
    assert source.class_names == ["cat", "dog", "owl"]
    train, test = source.load("train"), source.load("test")
    assert source.load("val") is None
    assert np.bincount(test.labels).tolist() == [2, 2, 1]  # 20% of 10, 8, 6
    assert len(train) + len(test) == 24
    assert not set(train.items) & set(test.items)
    again = ImageFolder(image_root).load("test")
    assert again.items == test.items
    assert to_pil(train.items[0]).size == (20, 16)


def test_image_folder_uses_its_val_and_test_folders(image_root):
    write_images(image_root / "val" / "dog", 2, 120)
    write_images(image_root / "test" / "cat", 3, 40)
    write_images(image_root / "test" / "owl", 1, 200)
    source = ImageFolder(image_root)
    assert len(source.load("train")) == 24
    assert source.load("val").labels.tolist() == [1, 1]
    assert source.load("test").labels.tolist() == [0, 0, 0, 2]


def test_image_folder_errors_name_the_problem(tmp_path, image_root):
    with pytest.raises(ConfigError, match="data.source.root"):
        ImageFolder(None)
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere").class_names  # noqa: B018

    flat = tmp_path / "flat"
    write_images(flat / "cat", 2, 0)
    with pytest.raises(DataError, match=r"flat/train .*It holds cat; .*move them into"):
        ImageFolder(flat).class_names  # noqa: B018

    (tmp_path / "bare" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        ImageFolder(tmp_path / "bare").class_names  # noqa: B018

    (image_root / "train" / "eel").mkdir()
    (image_root / "train" / "eel" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"'eel'\) has no images"):
        ImageFolder(image_root).load("train")


def test_image_folder_rejects_a_class_that_train_lacks(image_root):
    write_images(image_root / "val" / "dgo", 1, 0)
    with pytest.raises(DataError, match=r"known classes: cat, dog, owl\. Did you mean 'dog'"):
        ImageFolder(image_root).load("val")


def test_unreadable_image_names_the_file(image_root):
    broken = image_root / "train" / "cat" / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        to_pil(str(broken))


def test_image_folder_test_fraction_is_checked(image_root):
    with pytest.raises(ConfigError, match="test_fraction=1.5"):
        ImageFolder(image_root, test_fraction=1.5)
    assert isinstance(ImageFolder(Path(image_root)).root, Path)
