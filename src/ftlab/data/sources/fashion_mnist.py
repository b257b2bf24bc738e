"""Fashion-MNIST from the four original IDX ``.gz`` files (Debian's ``dataset-fashion-mnist``)."""

from __future__ import annotations

import functools
import gzip
import math
import os
import shutil
import struct
from pathlib import Path

import numpy as np

from ftlab.assets import Asset, run_tool
from ftlab.data.sources.base import DownloadableSource, Split
from ftlab.errors import DataError

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_DEB = "dataset-fashion-mnist"


@functools.lru_cache(maxsize=8)
def read_idx(path: str) -> np.ndarray:
    """A gzipped IDX file (the MNIST format) as a read-only uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad header).")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != math.prod(shape):
        raise DataError(
            f"{path} holds {array.size} values but its header says {shape}; the file is "
            "truncated, fetch it again."
        )
    return array.reshape(shape)


def _files() -> list[str]:
    return [f for pair in FASHION_MNIST_FILES.values() for f in pair]


class FashionMNIST(DownloadableSource, Asset):
    """Fashion-MNIST from the four original IDX ``.gz`` files: 60,000 train / 10,000 test.

    Looked up in ``root``, ``<data_dir>/fashion-mnist``, ``<data_dir>/FashionMNIST/raw``
    and ``/usr/share/datasets/fashion-mnist``; downloaded with torchvision only if
    ``download`` is true.
    """

    name = "fashion_mnist"
    title = "Fashion-MNIST"
    modality = "image"
    splits = ("train", "test")
    classes = FASHION_MNIST_CLASSES
    default_fetch = True

    def candidates(self) -> list[Path]:
        places = [Path(self.root).expanduser()] if self.root else []
        return places + [
            self.data_dir / "fashion-mnist",
            self.data_dir / "FashionMNIST" / "raw",  # where torchvision's download puts them
            FASHION_MNIST_SYSTEM_DIR,
        ]

    def holds(self, place: Path) -> bool:
        return all((place / f).is_file() for f in _files())

    def searched(self) -> str:
        return f"not in {', '.join(str(p) for p in self.candidates())}"

    def looked_for(self) -> str:
        return (
            f"{', '.join(FASHION_MNIST_FILES['train'])} and the t10k files in: "
            f"{', '.join(str(p) for p in self.candidates())}"
        )

    def remedy(self) -> str:
        return (
            f"{super().remedy().removesuffix('.')}, or set data.source.download=true to download "
            "it with torchvision (needs internet)."
        )

    def fetch(self, local: bool = False) -> str:
        """Debian's ``dataset-fashion-mnist``: installed system-wide when root, else (or when
        ``local``) extracted into ``<data_dir>/debian`` and copied to ``<data_dir>/fashion-mnist``."""
        found = self.locate()
        if found is not None and not (local and found == FASHION_MNIST_SYSTEM_DIR):
            return f"already present in {found}"
        if not local and hasattr(os, "geteuid") and os.geteuid() == 0:
            try:
                run_tool(["apt-get", "install", "-y", FASHION_MNIST_DEB])
            except DataError:
                run_tool(["apt-get", "update"])
                run_tool(["apt-get", "install", "-y", FASHION_MNIST_DEB])
            if self.locate() is not None:
                return (
                    f"installed Debian package {FASHION_MNIST_DEB} into {FASHION_MNIST_SYSTEM_DIR}"
                )
            raise DataError(
                f"apt-get installed {FASHION_MNIST_DEB} but {FASHION_MNIST_SYSTEM_DIR} lacks its "
                "files."
            )
        debian = self.data_dir / "debian"
        debian.mkdir(parents=True, exist_ok=True)
        debs = sorted(debian.glob(f"{FASHION_MNIST_DEB}_*.deb"))
        if not debs:
            run_tool(["apt-get", "download", FASHION_MNIST_DEB], cwd=debian)
            debs = sorted(debian.glob(f"{FASHION_MNIST_DEB}_*.deb"))
            if not debs:
                raise DataError(f"`apt-get download {FASHION_MNIST_DEB}` left no .deb in {debian}.")
        extracted = debian / "root"
        run_tool(["dpkg-deb", "-x", str(debs[-1]), str(extracted)])
        source = extracted / FASHION_MNIST_SYSTEM_DIR.relative_to("/")
        target = self.data_dir / "fashion-mnist"
        target.mkdir(parents=True, exist_ok=True)
        for name in _files():
            if not (source / name).is_file():
                raise DataError(f"{debs[-1].name} has no {name} under {source}.")
            shutil.copy2(source / name, target / name)
        return f"extracted {debs[-1].name} and copied the 4 files to {target}"

    def prepare(self) -> None:
        if self.download and self.locate() is None:
            from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

            for train in (True, False):
                TorchvisionFashionMNIST(str(self.data_dir), train=train, download=True)

    def _load(self) -> dict[str, Split | None]:
        place = self.located()
        splits: dict[str, Split | None] = {}
        for split, (images, labels) in FASHION_MNIST_FILES.items():
            x, y = read_idx(str(place / images)), read_idx(str(place / labels))
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise DataError(f"{place}: {images} {x.shape} does not match {labels} {y.shape}.")
            splits[split] = Split(x, y)
        return splits
