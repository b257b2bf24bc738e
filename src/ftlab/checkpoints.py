"""Loading checkpoints safely, and finding the one a resumed run continues from.

- :class:`AtomicCheckpointIO` writes checkpoints by temporary file + rename.
- :func:`load_checkpoint` reads with ``torch.load(weights_only=True)``: no pickle from a
  user path is executed, and a missing, truncated or foreign file is one clear message.
- :func:`find_resumable`: ``resume=true`` (or ``ckpt_path=last``) continues this run dir
  when it holds ``checkpoints/last.ckpt`` (a rerun sweep job, or ``hydra.run.dir`` set to
  the old run), else the newest unfinished run of the same task with the same config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ftlab.atomic import atomic_write
from ftlab.errors import CheckpointError, one_line

LAST = Path("checkpoints") / "last.ckpt"
# keys Lightning understands in ``fit(ckpt_path=...)`` besides a path
LIGHTNING_KEYWORDS = ("last", "best", "hpc", "registry")
# what must match for an earlier run to be "the same run": everything that shapes training
SAME_RUN_KEYS = ("model", "method", "data", "module", "seed")
IGNORED_TRAINER_KEYS = ("default_root_dir", "callbacks", "logger")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: the bytes go to a temporary file next to
    the target, are fsynced, then renamed into place. (Lightning's own fsspec transaction
    stages the file in the system temp dir, and a move across filesystems is a copy that a
    kill can cut in half.) A killed job leaves the previous ``last.ckpt`` whole."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options.")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(checkpoint, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only``), with a clear message when it is
    missing, corrupt or not an ftlab checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={str(path)!r} does not exist.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"ckpt_path={str(path)!r} could not be read ({type(err).__name__}: "
            f"{one_line(err, 160)}); it may be truncated or not a torch checkpoint."
        ) from err
    if not isinstance(ckpt, dict) or "ftlab" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"ckpt_path={str(path)!r} is not an ftlab checkpoint.")
    return ckpt


def same_run(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that two attempts at one run share. A trainer key at
    Lightning's own default counts as absent, so a run recorded before ftlab's trainer
    config named that key is the same run."""
    out = {key: config.get(key) for key in SAME_RUN_KEYS}
    trainer = dict(config.get("trainer") or {})
    for key in IGNORED_TRAINER_KEYS:
        trainer.pop(key, None)
    defaults = _trainer_defaults()
    out["trainer"] = {k: v for k, v in trainer.items() if not (k in defaults and defaults[k] == v)}
    return out


def _trainer_defaults() -> dict[str, Any]:
    import inspect

    from lightning.pytorch import Trainer

    params = inspect.signature(Trainer.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def find_resumable(
    out_dir: Path, config: dict[str, Any], search_siblings: bool = True
) -> Path | None:
    """The run dir ``resume=true`` continues: ``out_dir`` itself when it has a last
    checkpoint, else (``search_siblings``) the newest unfinished sibling run with the same
    config and a last checkpoint."""
    if (out_dir / LAST).is_file():
        return out_dir
    if not search_siblings or not out_dir.parent.is_dir():
        return None
    import yaml

    from ftlab.records import DONE, read_record

    want = same_run(config)
    found = []
    for run in out_dir.parent.iterdir():
        if run == out_dir or not (run / LAST).is_file():
            continue
        results = read_record(run)
        if results is None or results.get("status") == DONE:
            continue
        try:
            theirs = yaml.safe_load((run / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(theirs, dict) and same_run(theirs) == want:
            found.append(run)
    return max(found, key=lambda p: p.name) if found else None
