"""Where ftlab keeps what it needs on disk, and how each such asset says where it is.

The data directory has one rule, here: ``$FTLAB_DATA_DIR`` when set and not empty, else
``./data`` in the current directory. Datasets (``ftlab.data``) and packaged weights
(``ftlab.backbones.assets``) are both assets (:class:`Asset`); ``ftlab-data`` loops over them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ftlab.errors import DataError, FtlabError


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


class Asset:
    """Something on disk that ftlab reads: a dataset or pretrained weights.

    Every asset answers "where is it, or not here" the same way: :meth:`locate` only looks
    (a path, or None), :meth:`searched` says what it looked for, and :meth:`located` is the
    one place that turns "not here" into an error. :meth:`fetch` gets it for ``ftlab-data``.
    """

    name: str = "asset"
    #: What :meth:`located` raises.
    missing_error: type[FtlabError] = DataError

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.data_dir = resolve_data_dir(data_dir)

    def locate(self) -> Path | None:
        """Where the asset is, or None when it is not here; looks only, never fetches or raises."""
        raise NotImplementedError

    def searched(self) -> str:
        """What :meth:`locate` looked for, as ``ftlab-data list`` shows a missing asset."""
        return f"{self.name} not found"

    def missing(self) -> str:
        """The message when the asset is needed but absent: where it looked, how to get it."""
        return f"{self.name}: {self.searched()}; fetch it with `ftlab-data fetch {self.name}`."

    def shown(self, found: Path) -> str:
        """How ``ftlab-data list`` shows the place :meth:`locate` found."""
        return str(found)

    def located(self) -> Path:
        """Where the asset is, or :attr:`missing_error` with :meth:`missing` as its message."""
        found = self.locate()
        if found is None:
            raise self.missing_error(self.missing())
        return found

    def fetch(self) -> str:
        """Get the asset if it is not here (idempotent); says what it did, in one line."""
        raise DataError(f"{self.name} cannot be fetched; {self.searched()}.")
