"""Image sources: Fashion-MNIST (IDX files), CIFAR-10/100 (torchvision) and a folder of images."""

from __future__ import annotations

import functools
import gzip
import math
import os
import shutil
import struct
from pathlib import Path

import numpy as np

from ftlab.data.sources import FIXED_SPLIT_SEED, FIXED_TEST_FRACTION, Source, Split, run_tool
from ftlab.data.splits import stratified_split
from ftlab.errors import ConfigError, DataError, suggest

FASHION_MNIST_CLASSES = [
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
]
#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_DEB = "dataset-fashion-mnist"
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


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


def _fashion_mnist_files() -> list[str]:
    return [f for pair in FASHION_MNIST_FILES.values() for f in pair]


class DownloadableSource(Source):
    """A dataset found under ``root`` or ``data_dir``, downloaded only when asked to."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        root: str | os.PathLike | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(data_dir)
        self.root = root
        self.download = bool(download)


class FashionMNIST(DownloadableSource):
    """Fashion-MNIST from the four original IDX ``.gz`` files: 60,000 train / 10,000 test.

    Looked up in ``root``, ``<data_dir>/fashion-mnist``, ``<data_dir>/FashionMNIST/raw``
    and ``/usr/share/datasets/fashion-mnist``; downloaded with torchvision only if
    ``download`` is true.
    """

    name = "fashion_mnist"
    modality = "image"

    def candidates(self) -> list[Path]:
        """Where the four files are looked for, in order."""
        places = [Path(self.root).expanduser()] if self.root else []
        return places + [
            self.data_dir / "fashion-mnist",
            self.data_dir / "FashionMNIST" / "raw",  # where torchvision's download puts them
            FASHION_MNIST_SYSTEM_DIR,
        ]

    def locate(self) -> Path | None:
        files = _fashion_mnist_files()
        return next((p for p in self.candidates() if all((p / f).is_file() for f in files)), None)

    def searched(self) -> str:
        return f"not in {', '.join(str(p) for p in self.candidates())}"

    def missing(self) -> str:
        return (
            f"Fashion-MNIST not found; looked for {', '.join(FASHION_MNIST_FILES['train'])} "
            f"and the t10k files in: {', '.join(str(p) for p in self.candidates())}. Fetch it "
            f"with `make data` or `ftlab-data fetch fashion_mnist --data-dir {self.data_dir}`, "
            "or set data.source.download=true to download it with torchvision (needs internet)."
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
        for name in _fashion_mnist_files():
            if not (source / name).is_file():
                raise DataError(f"{debs[-1].name} has no {name} under {source}.")
            shutil.copy2(source / name, target / name)
        return f"extracted {debs[-1].name} and copied the 4 files to {target}"

    def prepare(self) -> None:
        if self.download and self.locate() is None:
            from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

            for train in (True, False):
                TorchvisionFashionMNIST(str(self.data_dir), train=train, download=True)

    def _class_names(self) -> list[str]:
        return list(FASHION_MNIST_CLASSES)

    def _load(self) -> dict[str, Split | None]:
        place = self.located()
        splits: dict[str, Split | None] = {"val": None}
        for split, (images, labels) in FASHION_MNIST_FILES.items():
            x, y = read_idx(str(place / images)), read_idx(str(place / labels))
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise DataError(f"{place}: {images} {x.shape} does not match {labels} {y.shape}.")
            splits[split] = Split(x, y)
        return splits


class CIFAR10(DownloadableSource):
    """CIFAR-10 through torchvision, from ``root`` or ``<data_dir>/cifar10`` (or ``<data_dir>``)."""

    name = "cifar10"
    modality = "image"
    _folder = "cifar-10-batches-py"

    def _torchvision_class(self):
        from torchvision.datasets import CIFAR10 as Dataset

        return Dataset

    def candidates(self) -> list[Path]:
        """The folders that may hold :attr:`_folder` (torchvision's ``root``), in order."""
        if self.root:
            return [Path(self.root).expanduser()]
        return [self.data_dir / self.name, self.data_dir]

    def locate(self) -> Path | None:
        """The :attr:`_folder` found in one of :meth:`candidates`, or None."""
        folders = (p / self._folder for p in self.candidates())
        return next((f for f in folders if f.is_dir()), None)

    def searched(self) -> str:
        return f"not in {' or '.join(str(p / self._folder) for p in self.candidates())}"

    def missing(self) -> str:
        searched = ", ".join(str(p / self._folder) for p in self.candidates())
        return (
            f"{self.name} not found; looked for {searched}. Set data.source.download=true "
            f"to download it with torchvision (needs internet), or data.source.root to the "
            f"folder that holds {self._folder}."
        )

    def _download(self) -> None:
        dest = self.candidates()[0]
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
        splits: dict[str, Split | None] = {"val": None}
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
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test_fraction={test_fraction} must be in (0, 1).")
        self.root = Path(root).expanduser()
        self.test_fraction = float(test_fraction)

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
        splits: dict[str, Split | None] = {"train": train, "val": None, "test": None}
        for split in ("val", "test"):
            if (self.root / split).is_dir():
                splits[split] = self._scan(self.root / split)
        if splits["test"] is None:
            kept, held = stratified_split(train.labels, self.test_fraction, FIXED_SPLIT_SEED)
            splits["train"], splits["test"] = train.subset(kept), train.subset(held)
        return splits
