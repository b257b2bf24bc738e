"""``ftlab-data``: fetch the datasets and pretrained weights that work offline, list them,
or write any data config as streaming shards.

    ftlab-data fetch [NAME ...] [--data-dir DIR]   # default: what the offline defaults need
    ftlab-data list [--data-dir DIR]
    ftlab-data optimize data=NAME [data.KEY=VALUE ...] out=DIR|URL [chunk_bytes=64MB]
                        [workers=N] [overwrite=true]

Every fetch is idempotent, prints what it did, and names what failed; the assets are
:mod:`ftlab.asset_registry`'s. ``optimize`` takes the overrides ``ftlab-train`` takes and
writes the splits a run with them would read (see :mod:`ftlab.data.streaming`); train on
them with ``data=streaming data.source.input_dir=``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ftlab.asset_registry import ASSETS, DEFAULT_ASSETS, get
from ftlab.errors import ConfigError, FtlabError, exit_code_for, suggest
from ftlab.paths import default_data_dir, resolve_data_dir


def fetch(
    names: Sequence[str] | None = None, data_dir: str | os.PathLike | None = None
) -> dict[str, str | None]:
    """Fetch ``names`` (default: :data:`DEFAULT_ASSETS`); returns name -> error (None if it worked)."""
    directory = resolve_data_dir(data_dir)
    assets = {name: get(name, directory) for name in names or DEFAULT_ASSETS}
    failures: dict[str, str | None] = {}
    for name, asset in assets.items():
        try:
            print(f"{name}: {asset.fetch()}", flush=True)
            failures[name] = None
        except FtlabError as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr, flush=True)
            failures[name] = str(e)
    return failures


def list_assets(data_dir: Path) -> None:
    """One line per asset: its name, ``ok`` or ``missing``, and where it is or was looked for."""
    print(f"data dir: {data_dir}")
    for name in ASSETS:
        asset = get(name, data_dir)
        found = asset.locate()
        where = asset.shown(found) if found is not None else asset.searched()
        print(f"  {name:<19} {'ok' if found is not None else 'missing':<8} {where}")


#: ``ftlab-data optimize``'s own keys (everything else is a config override)
OPTIMIZE_KEYS = {
    "out": "the folder or cloud URL to write the shards to",
    "chunk_bytes": "the size of one shard file (litdata's chunk_bytes, e.g. 64MB)",
    "workers": "how many processes write shards (default: the CPUs, at most 8)",
    "overwrite": "true replaces what out= already holds",
}


def optimize(arguments: Sequence[str]) -> dict:
    """``ftlab-data optimize``: compose the data config as ``ftlab-train`` would with the
    same overrides, and write its selected splits as shards; returns the shards' metadata."""
    import time

    from hydra.utils import instantiate

    from ftlab.config import compose_config
    from ftlab.data.streaming import write_shards
    from ftlab.plain import plain

    own: dict[str, str] = {}
    overrides = []
    for arg in arguments:
        key, eq, value = arg.partition("=")
        if eq and key in OPTIMIZE_KEYS:
            own[key] = value
        elif eq and not key.startswith(("data", "seed", "paths", "+", "~")):
            raise ConfigError(
                f"optimize: {arg!r} is neither a data override (data=..., data.KEY=..., seed=...) "
                f"nor one of optimize's keys: {', '.join(f'{k}=' for k in OPTIMIZE_KEYS)}."
                f"{suggest(key, OPTIMIZE_KEYS)}"
            )
        else:
            overrides.append(arg)
    if not own.get("out"):
        raise ConfigError(
            "optimize needs out=<folder or cloud URL> for the shards, e.g. "
            "`ftlab-data optimize data=fashion_mnist out=shards/fashion_mnist`."
        )
    overwrite = own.get("overwrite", "false").lower()
    if overwrite not in ("true", "false"):
        raise ConfigError(f"overwrite={own['overwrite']!r} must be true or false.")
    workers = own.get("workers")
    if workers is not None and not (workers.isdigit() and int(workers) > 0):
        raise ConfigError(f"workers={workers!r} must be a positive integer.")
    cfg = compose_config(overrides)
    datamodule = instantiate(cfg.data)
    start = time.perf_counter()
    meta = write_shards(
        datamodule,
        own["out"],
        chunk_bytes=own.get("chunk_bytes", "64MB"),
        workers=int(workers) if workers else None,
        overwrite=overwrite == "true",
        config=plain(cfg.data),
    )
    sizes = ", ".join(f"{split} {n:,}" for split, n in meta["splits"].items())
    print(
        f"wrote {meta['name']} ({meta['modality']}, {len(meta['class_names'])} classes; {sizes}) "
        f"as shards to {own['out']} in {time.perf_counter() - start:.1f} s.\n"
        f"Train on them: ftlab-train data=streaming data.source.input_dir={own['out']}",
        flush=True,
    )
    return meta


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
    optimize_cmd = commands.add_parser(
        "optimize",
        help="write a data config's splits as litdata shards, for data=streaming",
        description="Write the splits `ftlab-train data=NAME ...` would read as litdata shards. "
        + " ".join(f"{k}=: {v}." for k, v in OPTIMIZE_KEYS.items()),
    )
    optimize_cmd.add_argument(
        "arguments", nargs="*", metavar="KEY=VALUE", help="data=NAME, data.* overrides, out=..."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    try:
        if args.command == "list":
            list_assets(data_dir)
            return 0
        if args.command == "optimize":
            optimize(args.arguments)
            return 0
        failures = fetch(args.names, data_dir)
    except Exception as e:
        return exit_code_for(e, "ftlab-data")
    failed = [name for name, error in failures.items() if error]
    if failed:
        print(f"ftlab-data: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
