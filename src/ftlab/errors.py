"""Errors a user can act on: each names the bad value and what would be valid.

Entry points catch :class:`FtlabError` and print its message instead of a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


def suggest(value: str, choices: Iterable[str], n: int = 3) -> str:
    """A ``did you mean`` phrase for ``value`` among ``choices`` (empty when nothing is close)."""
    close = difflib.get_close_matches(str(value), list(choices), n=n, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
