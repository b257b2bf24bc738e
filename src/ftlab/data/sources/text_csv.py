"""Your own texts: CSV files with a text column and a label column."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ftlab.data.sources.base import (
    FIXED_TEST_FRACTION,
    Source,
    Split,
    check_test_fraction,
    fixed_test_split,
    label_ids,
    label_order,
)
from ftlab.errors import ConfigError, DataError, suggest


class TextCSV(Source):
    """Your own CSV files: one text column and one label column (any strings or numbers).

    Without ``test_path``, a fixed stratified ``test_fraction`` of the training file becomes
    the test split (constant seed). Class names are the training labels, sorted.
    """

    name = "text_csv"
    modality = "text"

    def __init__(
        self,
        train_path: str | os.PathLike | None = None,
        val_path: str | os.PathLike | None = None,
        test_path: str | os.PathLike | None = None,
        text_column: str = "text",
        label_column: str = "label",
        data_dir: str | os.PathLike | None = None,
        test_fraction: float = FIXED_TEST_FRACTION,
    ) -> None:
        super().__init__(data_dir)
        if not train_path:
            raise ConfigError(
                "data=text_csv needs data.source.train_path: a CSV file with columns "
                f"{text_column!r} and {label_column!r}."
            )
        test_fraction = check_test_fraction(test_fraction)
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.text_column = text_column
        self.label_column = label_column
        self.test_fraction = float(test_fraction)
        self._frames: dict[str, tuple[list[str], list[str]]] = {}

    def _read(self, split: str) -> tuple[list[str], list[str]]:
        if split in self._frames:
            return self._frames[split]
        path = Path(self.paths[split]).expanduser()
        if not path.is_file():
            raise DataError(f"text_csv {split}_path {path} does not exist.")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DataError(f"{path} is not a readable UTF-8 CSV file: {e}") from e
        present = list(frame.columns)
        for role, column in (
            ("text_column", self.text_column),
            ("label_column", self.label_column),
        ):
            if column not in present:
                raise DataError(
                    f"{path} has no column {column!r} (data.source.{role}); its columns are "
                    f"{', '.join(repr(c) for c in present)}.{suggest(column, present)}"
                )
        texts, labels = frame[self.text_column], frame[self.label_column].str.strip()
        for what, values in (("text", texts), ("label", labels)):
            empty = np.flatnonzero(values.str.strip() == "")
            if len(empty):
                lines = ", ".join(str(i + 2) for i in empty[:10])  # +2: header line, 1-based
                more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
                raise DataError(
                    f"{path} has {len(empty)} row(s) with an empty {what} in column "
                    f"{self.text_column if what == 'text' else self.label_column!r}, at line(s) "
                    f"{lines}{more}; fill or remove them."
                )
        if frame.empty:
            raise DataError(f"{path} has a header but no rows.")
        self._frames[split] = (list(texts), list(labels))
        return self._frames[split]

    def _class_names(self) -> list[str]:
        return label_order(set(self._read("train")[1]))

    def _split(self, split: str) -> Split:
        texts, labels = self._read(split)
        return Split(texts, label_ids(labels, self.class_names, str(self.paths[split])))

    def _load(self) -> dict[str, Split | None]:
        splits: dict[str, Split | None] = {
            s: self._split(s) if self.paths[s] else None for s in self.paths
        }
        if splits["test"] is None:
            assert splits["train"] is not None
            splits.update(fixed_test_split(splits["train"], self.test_fraction))
        return splits
