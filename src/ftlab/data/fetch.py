"""``ftlab-data``: fetch the datasets and pretrained weights that work offline, or list them.

    ftlab-data fetch [NAME ...] [--data-dir DIR]   # default: what the offline defaults need
    ftlab-data list [--data-dir DIR]

Every fetch is idempotent, prints what it did, and names what failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ftlab.backbones.assets import EfficientNetLite0, MiniLM, SmolLM2
from ftlab.data.images import CIFAR10, CIFAR100, FashionMNIST
from ftlab.data.texts import BBCNews, RottenTomatoes
from ftlab.errors import DataError, FtlabError, suggest
from ftlab.paths import Asset, default_data_dir, resolve_data_dir

#: Every asset ``ftlab-data`` knows, by name, in the order ``list`` shows them.
ASSETS: dict[str, type[Asset]] = {
    asset.name: asset
    for asset in (
        FashionMNIST,
        RottenTomatoes,
        BBCNews,
        EfficientNetLite0,
        MiniLM,
        SmolLM2,
        CIFAR10,
        CIFAR100,
    )
}
#: What the offline default configs need.
DEFAULT_ASSETS = (
    "fashion_mnist",
    "rotten_tomatoes",
    "bbc_news",
    "efficientnet_lite0",
    "minilm",
    "smollm2",
)


def _check_names(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise DataError(
            f"unknown asset {unknown[0]!r}; known: {', '.join(ASSETS)}.{suggest(unknown[0], ASSETS)}"
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
            print(f"{name}: {ASSETS[name](directory).fetch()}", flush=True)
            failures[name] = None
        except FtlabError as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr, flush=True)
            failures[name] = str(e)
    return failures


def list_assets(data_dir: Path) -> None:
    """One line per asset: its name, ``ok`` or ``missing``, and where it is or was looked for."""
    print(f"data dir: {data_dir}")
    for name, asset_class in ASSETS.items():
        asset = asset_class(data_dir)
        found = asset.locate()
        where = asset.shown(found) if found is not None else asset.searched()
        print(f"  {name:<19} {'ok' if found is not None else 'missing':<8} {where}")


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
    fetch_cmd.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(ASSETS)}")
    commands.add_parser("list", parents=[common], help="what is available, and where")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    try:
        if args.command == "list":
            list_assets(data_dir)
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
