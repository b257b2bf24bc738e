"""Your own images in class folders: ``root/train/<class>/<image>``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ftlab.data.sources.base import (
    FIXED_TEST_FRACTION,
    Source,
    Split,
    check_test_fraction,
    fixed_test_split,
)
from ftlab.errors import ConfigError, DataError, suggest

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


class ImageFolder(Source):
    """Your own images: ``root/train/<class>/*.jpg`` (any common format), optional
    ``root/val`` and ``root/test`` with the same class folders.

    Without ``root/test``, a fixed stratified ``test_fraction`` of ``train`` becomes the
    test split (constant seed: the same images whatever the run seed).
    """

    name = "image_folder"
    modality = "image"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
        test_fraction: float = FIXED_TEST_FRACTION,
    ) -> None:
        super().__init__(data_dir)
        if not root:
            raise ConfigError(
                "data=image_folder needs data.source.root: a folder holding train/<class>/<image> "
                "(and optionally val/ and test/)."
            )
        self.root = Path(root).expanduser()
        self.test_fraction = check_test_fraction(test_fraction)

    def _train_dir(self) -> Path:
        if not self.root.is_dir():
            raise DataError(f"image_folder root {self.root} does not exist or is not a folder.")
        train = self.root / "train"
        if not train.is_dir():
            found = [p.name for p in _class_dirs(self.root)]
            hint = (
                f" It holds {', '.join(found)}; if those are classes, move them into {train}."
                if found
                else ""
            )
            raise DataError(
                f"image_folder expects {train}/<class>/<image>, but {train} does not exist.{hint}"
            )
        return train

    def _class_names(self) -> list[str]:
        train = self._train_dir()
        names = [p.name for p in _class_dirs(train)]
        if not names:
            raise DataError(f"{train} has no class folders; expected {train}/<class>/<image>.")
        return names

    def _scan(self, folder: Path) -> Split:
        names = self.class_names
        paths: list[str] = []
        labels: list[int] = []
        for class_dir in _class_dirs(folder):
            if class_dir.name not in names:
                raise DataError(
                    f"{class_dir} is a class that {self.root / 'train'} does not have; "
                    f"known classes: {', '.join(names)}.{suggest(class_dir.name, names)}"
                )
            images = sorted(p for p in class_dir.rglob("*") if _is_image(p))
            if not images:
                raise DataError(
                    f"class folder {class_dir} ({class_dir.name!r}) has no images; accepted "
                    f"extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}."
                )
            paths += [str(p) for p in images]
            labels += [names.index(class_dir.name)] * len(images)
        if not paths:
            raise DataError(f"{folder} has no class folders with images.")
        return Split(paths, np.asarray(labels))

    def _load(self) -> dict[str, Split | None]:
        train = self._scan(self._train_dir())
        splits: dict[str, Split | None] = {"train": train}
        for split in ("val", "test"):
            if (self.root / split).is_dir():
                splits[split] = self._scan(self.root / split)
        if splits.get("test") is None:
            splits.update(fixed_test_split(train, self.test_fraction))
        return splits
