"""The console of a run: each line once, who says it in front, and third-party noise that
asks nothing of the user dropped by its exact message (never a whole logger or category).

Hydra's job logging (``conf/hydra/default.yaml``) formats console lines with
:class:`ConsoleFormatter`; the entry points call :func:`quiet_console` once it is set up.
"""

from __future__ import annotations

import logging
import re
import warnings

log = logging.getLogger("ftlab")

#: logger name -> messages (whole-message regular expressions) that are dropped
NOISE: dict[str, tuple[str, ...]] = {
    "lightning.pytorch.utilities.rank_zero": (
        r"💡 Tip: .*",  # advertisements for Lightning's hosted products, on every Trainer
        r"TPU available: False, using: 0 TPU cores",
        r"HPU available: False, using: 0 HPUs",
        # ftlab's schedule asks for the number of steps; nothing for the user to do
        r"Loading `train_dataloader` to estimate number of stepping batches\.",
    ),
    "litdata.streaming.dataset": (
        # data=streaming's evaluation splits read every item once under DDP on purpose (the
        # ranks then take unequal steps, which evaluation allows); training drops the rest
        r"You're operating within a distributed environment and have disabled the `drop_last` "
        r"option\. .*",
        r"StreamingDataset POSIX-fast \w+: mmap chunks in place \(no cache copy, no source "
        r"delete\)\.",
    ),
}
#: (message regex, category) of warnings dropped
NOISY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # torch deprecates a class Lightning's own code still uses (lightning/pytorch/utilities/_pytree.py)
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


class ConsoleFormatter(logging.Formatter):
    """``[ftlab] message``; ``[lightning] WARNING: message`` above INFO: the package that
    speaks, without the module path, time stamp or level of every line (the run's log file
    keeps those)."""

    def format(self, record: logging.LogRecord) -> str:
        who = record.name.split(".", 1)[0]
        level = f"{record.levelname}: " if record.levelno > logging.INFO else ""
        text = f"[{who}] {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class DropNoise(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.fullmatch(message) for p in self.patterns)


def quiet_console() -> None:
    """Once logging is configured: Lightning's lines through it alone, and the noise out.

    Importing ``lightning`` gives its package logger a console handler of its own, while its
    records also reach the root logger's (Hydra's) handlers: every line twice. Where the
    root logger has handlers, Lightning's own are removed (idempotent).
    """
    import lightning

    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:  # theirs; never a FileHandler
                    logger.removeHandler(handler)
            logger.propagate = True
    del lightning
    for name, patterns in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNoise) for f in logger.filters):
            logger.addFilter(DropNoise(patterns))
    for message, category in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
