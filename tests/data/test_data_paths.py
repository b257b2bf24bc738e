"""One data-dir rule for every asset, and one way for each to say where it is or is not."""

import pytest

import ftlab.data.sources.fashion_mnist as fashion_mnist
from ftlab.asset_registry import ASSETS
from ftlab.backbones.assets import EfficientNetLite0
from ftlab.data import BBCNews, FashionMNIST
from ftlab.data_cli import main
from ftlab.errors import FtlabError
from ftlab.paths import default_data_dir, resolve_data_dir


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_an_unset_or_empty_ftlab_data_dir_means_data_here(value, tmp_path, monkeypatch, capsys):
    if value is None:
        monkeypatch.delenv("FTLAB_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("FTLAB_DATA_DIR", value)
    monkeypatch.chdir(tmp_path)
    here = tmp_path / "data"
    assert default_data_dir() == here
    assert resolve_data_dir(None) == resolve_data_dir("") == here
    assert FashionMNIST().data_dir == BBCNews(data_dir="").data_dir == here
    assert EfficientNetLite0().data_dir == here  # the weights follow the same rule
    assert main(["list"]) == 0
    assert f"data dir: {here}\n" in capsys.readouterr().out


def test_ftlab_data_dir_is_expanded_and_made_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FTLAB_DATA_DIR", "~/datasets")
    assert default_data_dir() == tmp_path / "datasets"
    monkeypatch.setenv("FTLAB_DATA_DIR", "rel")
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == tmp_path / "rel"
    assert resolve_data_dir("elsewhere") == tmp_path / "elsewhere"


@pytest.mark.parametrize("name", list(ASSETS))
def test_every_asset_answers_where_or_not_here_the_same_way(name, tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")
    asset = ASSETS[name](tmp_path)
    found = asset.locate()  # looks only: a path or None, never an error
    if found is None:
        assert asset.searched()
        with pytest.raises(FtlabError) as error:
            asset.located()
        assert str(error.value) == asset.missing()
    else:
        assert found.exists() and asset.located() == found
        assert str(found) in asset.shown(found)
