"""Shards written by ``ftlab-data optimize``, as a source: the folder's format (its
``ftlab.json``), reading it back, and the name a run gives it.

``out/ftlab.json`` holds what a run needs before it reads a sample (modality, class names,
split sizes) and is written last: a folder without it was not written, or not finished, by
``ftlab-data optimize``. Writing the shards is :mod:`ftlab.data.streaming`'s job.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ftlab.data.sources.base import SPLITS, Source, Split
from ftlab.errors import ConfigError, DataError

#: the file that says what the shards hold, written last
META_FILE = "ftlab.json"
FORMAT = 1


def is_url(path: str | os.PathLike) -> bool:
    """A cloud location (``s3://``, ``gs://``, ...) rather than a local folder."""
    return "://" in str(path) and not str(path).startswith("file://")


def local_path(path: str | os.PathLike) -> Path:
    """A local folder's path (``file://`` allowed), absolute."""
    return Path(str(path).removeprefix("file://")).expanduser().absolute()


def remote_client(url: str, storage_options: Mapping[str, Any] | None = None):
    """litdata's client for a cloud URL (its helper is private: one place to mend)."""
    from litdata.streaming.fs_provider import _get_fs_provider

    return _get_fs_provider(url, dict(storage_options or {}))


def shards_label(meta: Mapping[str, Any]) -> str:
    """How runs, reports and W&B name shards: ``<the data they hold>(shards)``."""
    return f"{meta['name']}(shards)"


def read_meta(input_dir: str | os.PathLike, storage_options: Mapping | None = None) -> dict:
    """``input_dir/ftlab.json``, checked; a DataError says what is wrong with the folder."""
    where = str(input_dir).rstrip("/")
    written_by = "ftlab-data optimize data=<data config> out=<dir>"
    if is_url(where):
        provider = remote_client(where, storage_options)
        if not provider.exists(f"{where}/{META_FILE}"):
            raise DataError(
                f"{where} has no {META_FILE}: it was not written by `{written_by}`, or that "
                "run did not finish."
            )
        with tempfile.TemporaryDirectory() as tmp:
            provider.download_file(f"{where}/{META_FILE}", f"{tmp}/{META_FILE}")
            text = Path(tmp, META_FILE).read_text()
    else:
        folder = local_path(where)
        if not folder.is_dir():
            raise DataError(
                f"data.source.input_dir={input_dir} is not a folder; write shards there with "
                f"`{written_by}`."
            )
        if not (folder / META_FILE).is_file():
            raise DataError(
                f"{folder} has no {META_FILE}: it was not written by `{written_by}`, or that "
                "run did not finish."
            )
        text = (folder / META_FILE).read_text()
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{where}/{META_FILE} is not valid JSON ({e}); write the shards again."
        ) from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(
            f"{where}/{META_FILE} has format {found!r}; this ftlab reads format {FORMAT}: write "
            "the shards again with this version's ftlab-data optimize."
        )
    return meta


def shards_name(input_dir: Any) -> str:
    """How runs, reports and W&B name data=streaming: ``<the data it holds>(shards)`` for
    a local folder that ``ftlab-data optimize`` wrote, else ``streaming`` (a URL is not
    read just to name it; a bad folder is reported when the data is built)."""
    if not input_dir or is_url(str(input_dir)):
        return "streaming"
    try:
        return shards_label(json.loads((local_path(str(input_dir)) / META_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return "streaming"


class Shards(Source):
    """Shards written by ``ftlab-data optimize``, local or in object storage.

    ``cache_dir`` and ``max_cache_size`` are litdata's: where chunks of remote shards are
    kept while they are read, and how much of them. ``storage_options`` go to the cloud
    client (credentials, endpoint).
    """

    name = "streaming"

    def __init__(
        self,
        input_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        max_cache_size: str | int = "50GB",
        storage_options: Mapping[str, Any] | None = None,
        data_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(data_dir)
        if not input_dir:
            raise ConfigError(
                "data=streaming needs data.source.input_dir: a folder or cloud URL written by "
                "`ftlab-data optimize data=<data config> out=<dir>`."
            )
        self.input_dir = str(input_dir).rstrip("/")
        self.cache_dir = None if cache_dir in (None, "") else str(cache_dir)
        self.max_cache_size = max_cache_size
        self.storage_options = dict(storage_options or {})
        self.meta = read_meta(self.input_dir, self.storage_options)
        self.modality = self.meta["modality"]

    def _class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    def _load(self) -> dict[str, Split | None]:
        raise DataError(
            "streaming shards are read as a stream (Shards.dataset), not loaded into memory."
        )

    def dataset(self, split: str, shuffle: bool, seed: int, transform, drop_last: bool | None):
        """litdata's ``StreamingDataset`` over ``split``; create it where the process group
        already exists (a dataloader hook), since it reads its rank and world size then."""
        from litdata import StreamingDataset

        if split not in SPLITS:
            raise ConfigError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        location = f"{self.input_dir}/{split}"
        if not is_url(location):
            location = str(local_path(location))
        return StreamingDataset(
            location,
            cache_dir=self.cache_dir,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            max_cache_size=self.max_cache_size,
            storage_options=self.storage_options,
            transform=transform,
        )

    def __repr__(self) -> str:
        return f"Shards(input_dir={self.input_dir!r}, holds={self.meta['name']!r})"
