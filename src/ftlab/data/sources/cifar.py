"""CIFAR-10 and CIFAR-100 through torchvision, from a folder or downloaded when asked to."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftlab.assets import Asset
from ftlab.data.sources.base import DownloadableSource, Split
from ftlab.errors import DataError


class CIFAR10(DownloadableSource, Asset):
    """CIFAR-10 through torchvision, from ``root`` or ``<data_dir>/cifar10`` (or ``<data_dir>``)."""

    name = "cifar10"
    modality = "image"
    splits = ("train", "test")
    #: the folder torchvision's dataset reads, inside its ``root``
    _folder = "cifar-10-batches-py"

    def _torchvision_class(self):
        from torchvision.datasets import CIFAR10 as Dataset

        return Dataset

    def roots(self) -> list[Path]:
        """The folders that may hold :attr:`_folder` (torchvision's ``root``), in order."""
        if self.root:
            return [Path(self.root).expanduser()]
        return [self.data_dir / self.name, self.data_dir]

    def candidates(self) -> list[Path]:
        return [root / self._folder for root in self.roots()]

    def holds(self, place: Path) -> bool:
        return place.is_dir()

    def remedy(self) -> str:
        return (
            "Set data.source.download=true to download it with torchvision (needs internet), or "
            f"data.source.root to the folder that holds {self._folder}."
        )

    def _download(self) -> None:
        dest = self.roots()[0]
        for train in (True, False):
            self._torchvision_class()(str(dest), train=train, download=True)

    def fetch(self) -> str:
        found = self.locate()
        if found is not None:
            return f"already present in {found.parent}"
        try:
            self._download()
        except Exception as e:  # torchvision raises URLError, RuntimeError, OSError...
            raise DataError(
                f"torchvision could not download {self.name} (needs internet): {e}"
            ) from e
        return f"downloaded to {self.located().parent}"

    def prepare(self) -> None:
        if self.download and self.locate() is None:
            self._download()

    def _class_names(self) -> list[str]:
        self.load("train")
        assert self._names is not None
        return self._names

    def _load(self) -> dict[str, Split | None]:
        place = self.located().parent
        dataset_class = self._torchvision_class()
        splits: dict[str, Split | None] = {}
        for split, train in (("train", True), ("test", False)):
            try:
                ds = dataset_class(str(place), train=train, download=False)
            except RuntimeError as e:
                raise DataError(f"{self.name} in {place} is unreadable: {e}") from e
            splits[split] = Split(np.asarray(ds.data), np.asarray(ds.targets))
            self._names = list(ds.classes)
        return splits


class CIFAR100(CIFAR10):
    """CIFAR-100 (fine labels) through torchvision."""

    name = "cifar100"
    _folder = "cifar-100-python"

    def _torchvision_class(self):
        from torchvision.datasets import CIFAR100 as Dataset

        return Dataset
