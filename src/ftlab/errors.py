"""Errors a user can act on: each names the bad value and what would be valid.

Entry points wrap ``main`` in :func:`exit_on_user_error`, which prints an
:class:`FtlabError`'s message (or Hydra's config error) as one line and exits 2 instead of
showing a traceback.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable, Iterable


class FtlabError(Exception):
    """A problem with the user's input or environment, explained in one message."""


class ConfigError(FtlabError):
    """A configuration value is invalid."""


class DataError(FtlabError):
    """A dataset is missing, empty or malformed."""


class BackboneError(FtlabError):
    """A backbone cannot be built or loaded."""


class MethodNotApplicable(FtlabError):
    """A fine-tuning method cannot apply to the chosen backbone.

    A sweep records the job as ``skipped`` with this message instead of ``failed``.
    """


class CheckpointError(FtlabError):
    """A checkpoint is missing, corrupt or does not fit the model it is loaded into."""


class TrainingDiverged(FtlabError):
    """The training loss became NaN or infinite."""


class OutOfMemory(FtlabError):
    """The accelerator ran out of memory; the message says what to shrink."""


def one_line(value: object, limit: int | None = None, *, first: bool = True) -> str:
    """An error's (or any value's) text on one line, for a sentence that quotes it: its
    first non-empty line (``first``), or all of it joined (messages whose point is on a
    later line, as peft's often are); cut at a word boundary near ``limit`` characters. An
    error without text gives its class name."""
    text = str(value).strip()
    if isinstance(value, BaseException) and not text:
        return type(value).__name__
    line = (
        next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        if first
        else " ".join(text.split())
    )
    if limit is not None and len(line) > limit:
        line = (line[:limit].rsplit(" ", 1)[0] or line[:limit]) + " ..."
    return line


def suggest(value: str, choices: Iterable[str], n: int = 3) -> str:
    """A ``did you mean`` phrase for ``value`` among ``choices`` (empty when nothing is close)."""
    close = difflib.get_close_matches(str(value), list(choices), n=n, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def user_error(err: BaseException | None) -> FtlabError | None:
    """The :class:`FtlabError` behind ``err``, also when Hydra's ``instantiate`` wrapped it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, FtlabError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def root_cause(err: BaseException) -> BaseException:
    """What went wrong under Hydra's ``InstantiationException`` wrapper, if it wrapped it."""
    from hydra.errors import InstantiationException

    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def explain(err: BaseException) -> tuple[str, str] | None:
    """``(kind, message)`` for an error the user can act on: an :class:`FtlabError` behind
    ``err`` (kind: its class name) or Hydra's / OmegaConf's config error (kind: ``config
    error``); None for anything else, which is a bug to show in full."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user = user_error(err)
    if user is not None:
        return type(user).__name__, str(user)
    if isinstance(err, HydraException | OmegaConfBaseException):
        return "config error", str(err)
    return None


def exit_on_user_error(fn: Callable) -> Callable:
    """Turn an :class:`FtlabError` (and Hydra's config errors) into one red line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            explained = explain(err)
            if explained is None:
                raise
            _fail(": ".join(explained))

    return wrapper


def exit_code_for(err: BaseException, prog: str) -> int:
    """For an entry point without Hydra's wrapper (``ftlab-data``, ``ftlab-export``): an
    error the user can act on printed as ``prog: message`` (exit status 2); anything else
    raised again, in full, as the bug it is."""
    explained = explain(err)
    if explained is None:
        raise err
    print(f"{prog}: {explained[1]}", file=sys.stderr)
    return 2


def _fail(message: str) -> None:
    print(f"\nftlab: {message}", file=sys.stderr)
    sys.exit(2)
