"""Where ftlab keeps what it needs on disk.

The data directory has one rule, here: ``$FTLAB_DATA_DIR`` when set and not empty, else
``./data`` in the current directory. Datasets (:mod:`ftlab.data.sources`) and packaged
weights (:mod:`ftlab.backbones.assets`) are both assets (:class:`ftlab.assets.Asset`) that
follow it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def default_data_dir() -> Path:
    """``$FTLAB_DATA_DIR`` if set and not empty, else ``./data`` relative to the current directory."""
    return Path(os.environ.get("FTLAB_DATA_DIR") or "data").expanduser().absolute()


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir`` made absolute; None or "" (an unset config value) means the default."""
    return default_data_dir() if data_dir in (None, "") else Path(data_dir).expanduser().absolute()


def package_dir(module: str) -> Path | None:
    """The folder of an importable package, found without importing it; None if not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None
