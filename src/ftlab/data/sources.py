"""What every data source shares: the split container, the base class and running a tool.

A source knows where raw examples live and how to read them; it knows nothing about
transforms, tokenizers or batches (that is the data module's job). A source with a fixed
place is an asset: ``locate`` finds it, ``located`` explains its absence, ``fetch`` gets it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftlab.errors import ConfigError, DataError
from ftlab.paths import Asset

#: Seed for every split that must not move with the run seed (fixed test splits and
#: test subsets), so that every run of every method is scored on the same examples.
FIXED_SPLIT_SEED = 20_240_917

#: Share of the training examples held out as a fixed test split when a dataset has none.
FIXED_TEST_FRACTION = 0.2

SPLITS = ("train", "val", "test")


def run_tool(cmd: Sequence[str], cwd: Path | None = None) -> None:
    """Run an external tool (apt-get, pip) that fetches data; a DataError names what failed."""
    try:
        done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise DataError(f"`{' '.join(cmd)}` cannot run: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise DataError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {' | '.join(tail)}")


@dataclass(frozen=True)
class Split:
    """The raw examples of one split and their integer labels.

    ``items`` is a uint8 array of images (``[N, H, W]`` or ``[N, H, W, C]``), a list of
    image file paths or encoded image files' bytes, or a list of texts (or text pairs). ``index`` is each example's position in the split
    the source read (train or test) before any selection, so selections can be compared.
    """

    items: Sequence[Any] | np.ndarray
    labels: np.ndarray
    index: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64))
        if len(self.items) != len(self.labels):
            raise ValueError(f"{len(self.items)} items but {len(self.labels)} labels")
        index = np.arange(len(self.labels)) if self.index is None else np.asarray(self.index)
        object.__setattr__(self, "index", index.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Split:
        """The examples at ``indices`` (positions in this split)."""
        indices = np.asarray(indices, dtype=np.int64)
        if isinstance(self.items, np.ndarray):
            items: Sequence[Any] | np.ndarray = self.items[indices]
        else:
            items = [self.items[i] for i in indices]
        assert self.index is not None
        return Split(items, self.labels[indices], self.index[indices])


class Source(Asset):
    """Base class of all sources.

    Subclasses set ``name`` and ``modality`` and implement :meth:`_load` (every split,
    read once) and, where cheaper than reading the data, :meth:`_class_names`. Sources with
    a fixed place (the ones ``ftlab-data`` lists) also implement the :class:`Asset` methods.
    """

    name: str = "source"
    modality: str = "image"

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        super().__init__(data_dir)
        self._splits: dict[str, Split | None] | None = None
        self._names: list[str] | None = None

    def prepare(self) -> None:
        """Download what is missing, when the user configured a download (rank 0 only)."""

    def load(self, split: str) -> Split | None:
        """The examples of ``split`` ("train", "val" or "test"); None if the source has none."""
        if split not in SPLITS:
            raise ConfigError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        if self._splits is None:
            self._splits = self._load()
        return self._splits.get(split)

    @property
    def class_names(self) -> list[str]:
        if self._names is None:
            self._names = list(self._class_names())
        return self._names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _class_names(self) -> list[str]:
        raise NotImplementedError

    def _load(self) -> dict[str, Split | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data_dir={str(self.data_dir)!r})"
