"""Any Hugging Face dataset as a source: a hub name (online), or local files through one
of ``datasets``' builders (csv, json/jsonl, parquet, arrow, imagefolder).

``datasets`` does the reading (parsing, folder scanning, caching as arrow); this source
picks the columns, maps labels to class indices (a ``ClassLabel``'s names, else the
training labels sorted), finds or carves the splits, and says in one sentence what is
wrong: a missing column, an unknown split, an empty file, a label only the test split has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ftlab.data.sources.base import (
    FIXED_TEST_FRACTION,
    Source,
    Split,
    check_test_fraction,
    fixed_test_split,
    label_ids,
    label_order,
)
from ftlab.errors import ConfigError, DataError, one_line, suggest
from ftlab.plain import plain

#: ``datasets``' packaged builders for local files (``path`` takes one, or a hub name)
BUILDERS = ("csv", "json", "parquet", "arrow", "imagefolder", "text")
#: column names taken when the config names none, in order
TEXT_GUESSES = ("text", "sentence", "content", "review", "document")


class HFDataset(Source):
    """A Hugging Face dataset, by hub name or from local files.

    ``path``: a hub name, or a builder (``csv``, ``json``, ``parquet``, ``arrow``,
    ``imagefolder``) reading ``data_files`` (a file, a list, or ``{split: files}``) or
    ``files_dir`` (a folder). Columns: ``text_column`` (+ ``text_pair_column`` for sentence
    pairs) or ``image_column``, and ``label_column``; left unset, an image feature or a
    column named like text is taken. Splits: ``train_split``; ``val_split`` (optional: else
    the data module carves validation from train); ``test_split`` (``auto``: ``test`` when
    the dataset has it, else a fixed stratified ``test_fraction`` of train).
    """

    name = "hf_dataset"

    def __init__(
        self,
        path: str | None = None,
        config_name: str | None = None,
        data_files: str | Sequence[str] | Mapping[str, Any] | None = None,
        files_dir: str | os.PathLike | None = None,
        text_column: str | None = None,
        text_pair_column: str | None = None,
        image_column: str | None = None,
        label_column: str = "label",
        train_split: str = "train",
        val_split: str | None = None,
        test_split: str | None = "auto",
        test_fraction: float = FIXED_TEST_FRACTION,
        cache_dir: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(data_dir)
        if not path:
            raise ConfigError(
                "data=hf_dataset needs data.source.path: a Hugging Face hub name, or one of "
                f"{', '.join(BUILDERS)} with data.source.data_files (or files_dir) for local "
                "files."
            )
        if text_column and image_column:
            raise ConfigError(
                f"data.source.text_column={text_column!r} and image_column={image_column!r}: "
                "a classification source reads one of them; set the other to null."
            )
        if text_pair_column and image_column:
            raise ConfigError("data.source.text_pair_column needs a text_column, not images.")
        test_fraction = check_test_fraction(test_fraction, "data.source.test_fraction")
        if data_files is None and files_dir is None and path in BUILDERS:
            raise ConfigError(
                f"data.source.path={path} reads local files: set data.source.data_files (a file, "
                "a list, or {train: ..., test: ...}) or data.source.files_dir (a folder)."
            )
        self.path = str(path)
        self.config_name = config_name
        self.data_files = plain(data_files)
        self.files_dir = str(Path(files_dir).expanduser()) if files_dir else None
        self.text_column = text_column
        self.text_pair_column = text_pair_column
        self.image_column = image_column
        self.label_column = label_column
        self.train_split, self.val_split, self.test_split = train_split, val_split, test_split
        self.test_fraction = float(test_fraction)
        self.cache_dir = str(cache_dir) if cache_dir else str(self.data_dir / "hf_datasets")
        self._dataset = None

    # -- reading -----------------------------------------------------------------------------
    def dataset(self):
        """The ``DatasetDict``, read (and cached as arrow by ``datasets``) once."""
        if self._dataset is None:
            self._dataset = self._read()
        return self._dataset

    def _read(self):
        try:
            import datasets
        except ImportError as err:  # pragma: no cover - a dependency of ftlab
            raise ConfigError("data=hf_dataset needs the `datasets` package.") from err
        _check_files(self.data_files)
        datasets.disable_progress_bars()
        try:
            loaded = datasets.load_dataset(
                self.path,
                self.config_name,
                data_files=self.data_files,
                data_dir=self.files_dir,
                cache_dir=self.cache_dir,
            )
        except FileNotFoundError as err:
            raise DataError(
                f"data.source.path={self.path!r}: {one_line(err, 300)} (offline, a hub name works "
                "only once cached; local files: path=csv|json|parquet|arrow|imagefolder with "
                "data_files)."
            ) from err
        except (ValueError, TypeError, OSError) as err:
            raise DataError(
                f"data.source.path={self.path!r} could not be read: {one_line(err, 300)}"
            ) from err
        except Exception as err:  # pyarrow and datasets' own errors: an unreadable file
            if type(err).__module__.startswith(("pyarrow", "datasets")):
                raise DataError(
                    f"data.source.path={self.path!r} ({self.data_files or self.files_dir}) could "
                    f"not be read: {type(err).__name__}: {one_line(err, 300)}"
                ) from err
            raise
        if not isinstance(loaded, datasets.DatasetDict):  # pragma: no cover - split=None
            loaded = datasets.DatasetDict({"train": loaded})
        return loaded

    def _split_named(self, key: str, name: str):
        splits = list(self.dataset())
        if name not in splits:
            raise DataError(
                f"data.source.{key}={name!r} is not a split of {self.path}; its splits: "
                f"{', '.join(splits)}.{suggest(name, splits)}"
            )
        return self.dataset()[name]

    @property
    def modality(self) -> str:  # type: ignore[override]
        return "image" if self._image_column() else "text"

    def _columns(self) -> list[str]:
        return list(self._split_named("train_split", self.train_split).column_names)

    def _image_column(self) -> str | None:
        if self.image_column:
            return self.image_column
        if self.text_column:
            return None
        import datasets

        features = self._split_named("train_split", self.train_split).features
        found = [c for c, f in features.items() if isinstance(f, datasets.Image)]
        return found[0] if found else None

    def _text_column(self) -> str:
        if self.text_column:
            return self.text_column
        columns = self._columns()
        found = next((c for c in TEXT_GUESSES if c in columns), None)
        if found is None:
            raise DataError(
                f"{self.path} has no image feature and no column named like text "
                f"({', '.join(TEXT_GUESSES)}); set data.source.text_column or image_column "
                f"to one of its columns: {', '.join(columns)}."
            )
        return found

    def _check_column(self, part, role: str, column: str, split: str) -> None:
        present = list(part.column_names)
        if column not in present:
            raise DataError(
                f"the {split} split of {self.path} has no column {column!r} "
                f"(data.source.{role}); its columns: {', '.join(present)}."
                f"{suggest(column, present)}"
            )

    # -- labels ------------------------------------------------------------------------------
    def _label_feature(self):
        import datasets

        train = self._split_named("train_split", self.train_split)
        self._check_column(train, "label_column", self.label_column, self.train_split)
        feature = train.features[self.label_column]
        return feature if isinstance(feature, datasets.ClassLabel) else None

    def _class_names(self) -> list[str]:
        feature = self._label_feature()
        if feature is not None:
            return list(feature.names)
        train = self._split_named("train_split", self.train_split)
        values = {str(v).strip() for v in train[self.label_column] if v is not None}
        return label_order(values)

    def _labels(self, part, split: str) -> np.ndarray:
        self._check_column(part, "label_column", self.label_column, split)
        raw = part[self.label_column]
        names = self.class_names
        if self._label_feature() is not None:
            labels = np.asarray(raw, dtype=np.int64)
            bad = sorted({int(v) for v in labels if not 0 <= v < len(names)})
            if bad:
                raise DataError(
                    f"the {split} split of {self.path} has label id(s) {bad[:5]} outside its "
                    f"ClassLabel ({len(names)} classes: {', '.join(names[:10])}); -1 marks a "
                    "missing label: drop those rows or pick another split."
                )
            return labels
        text = ["" if v is None else str(v).strip() for v in raw]
        where = f"the {split} split of {self.path}"
        return label_ids(text, names, where, f"the {self.train_split} split")

    # -- items -------------------------------------------------------------------------------
    def _items(self, part, split: str) -> list[Any]:
        image = self._image_column()
        if image:
            return self._images(part, image, split)
        column = self._text_column()
        self._check_column(part, "text_column", column, split)
        texts = _texts(part[column], column, split, self.path)
        if not self.text_pair_column:
            return texts
        self._check_column(part, "text_pair_column", self.text_pair_column, split)
        pairs = _texts(part[self.text_pair_column], self.text_pair_column, split, self.path)
        return list(zip(texts, pairs, strict=True))

    def _images(self, part, column: str, split: str) -> list[Any]:
        import datasets

        self._check_column(part, "image_column", column, split)
        if not isinstance(part.features[column], datasets.Image):
            raise DataError(
                f"column {column!r} of {self.path} is {part.features[column]}, not images; "
                "set data.source.image_column to an Image column or use text_column."
            )
        items: list[Any] = []
        # paths and embedded encoded bytes alike are decoded by the pipeline, in the workers
        for value in part.cast_column(column, datasets.Image(decode=False))[column]:
            if value.get("path") and Path(value["path"]).is_file():
                items.append(value["path"])
            elif value.get("bytes"):
                items.append(bytes(value["bytes"]))
            else:
                raise DataError(f"an image in column {column!r} of {self.path} has no data.")
        return items

    def _load(self) -> dict[str, Split | None]:
        splits: dict[str, Split | None] = {"train": None, "val": None, "test": None}
        for role, key, name in (
            ("train", "train_split", self.train_split),
            ("val", "val_split", self.val_split),
            ("test", "test_split", self.test_split),
        ):
            if name is None or (role == "test" and name == "auto"):
                if role == "test" and name == "auto" and "test" in self.dataset():
                    name = "test"
                else:
                    continue
            part = self._split_named(key, name)
            if len(part) == 0:
                raise DataError(f"the {name} split of {self.path} has no rows.")
            splits[role] = Split(self._items(part, name), self._labels(part, name))
        if splits["test"] is None:  # a fixed carve: the same test examples for every seed
            train = splits["train"]
            assert train is not None
            splits.update(fixed_test_split(train, self.test_fraction))
        return splits

    def __repr__(self) -> str:
        return f"HFDataset(path={self.path!r}, data_files={self.data_files!r})"


def _texts(values: Sequence[Any], column: str, split: str, path: str) -> list[str]:
    texts = ["" if v is None else str(v) for v in values]
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise DataError(
            f"the {split} split of {path} has {len(empty)} row(s) with an empty {column!r} "
            f"(row(s) {', '.join(str(i) for i in empty[:10])}); fill or drop them."
        )
    return texts


def _check_files(data_files: Any) -> None:
    """Every local file named exists and is not empty (``datasets`` would say less)."""
    if data_files is None:
        return
    if isinstance(data_files, Mapping):
        names = [f for v in data_files.values() for f in ([v] if isinstance(v, str) else v)]
    else:
        names = [data_files] if isinstance(data_files, str) else list(data_files)
    for name in names:
        if "://" in str(name) or any(ch in str(name) for ch in "*?["):
            continue  # a URL or a glob: datasets resolves those
        path = Path(name).expanduser()
        if not path.exists():
            raise DataError(f"data.source.data_files names {path}, which does not exist.")
        if path.is_file() and path.stat().st_size == 0:
            raise DataError(f"data.source.data_files names {path}, which is empty.")
