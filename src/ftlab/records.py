"""A run's record: the ``results.json`` in its run dir, which every reader trusts.

- Reading: :data:`RESULTS_FILE`, the statuses, :func:`read_record` (a run dir's record or
  None), :func:`finished_record` (only a ``done`` one), :func:`find_records` and
  :func:`load_record` (every record under a tree, an unreadable file as a record too).
- Writing: :class:`RunRecord`, the context manager that owns one run's record from start to
  end. It is ``running`` from before anything is built (a killed job never looks
  finished), then ``done``, ``skipped`` (the method cannot apply) or ``failed`` (the error,
  a short traceback, and what to change when the accelerator ran out of memory); with
  timestamps, secrets masked, written atomically and by rank 0 only.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftlab.atomic import atomic_write_json, atomic_write_text
from ftlab.errors import MethodNotApplicable, OutOfMemory, one_line, root_cause, user_error

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.yaml"

RUNNING = "running"
DONE = "done"
SKIPPED = "skipped"
FAILED = "failed"
#: given by the readers to a results file they cannot parse; never written
UNREADABLE = "unreadable"

SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|credentials?)$")
SECRET_ENV = re.compile(r"API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


# -- reading --------------------------------------------------------------------------------
def read_record(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A run dir's record (any status), or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(run_dir) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finished_record(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The record of a finished attempt at this run, or None."""
    data = read_record(run_dir)
    return data if data is not None and data.get("status") == DONE else None


def find_records(root: str | os.PathLike) -> list[Path]:
    """Every ``results.json`` under ``root``, sorted (symlinked dirs are not followed, so a
    link loop cannot hang the search)."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(root):
        if RESULTS_FILE in filenames:
            found.append(Path(dirpath) / RESULTS_FILE)
    return sorted(found)


def load_record(path: str | os.PathLike) -> dict[str, Any]:
    """One results file as a record; an unreadable one becomes status ``unreadable`` with
    the problem as its error. ``run_dir`` and ``results_file`` are always set."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problem = f"{type(e).__name__}: {e}"
    else:
        if isinstance(record, dict):
            record = dict(record)
            if not isinstance(record.get("run_dir"), str) or not record["run_dir"]:
                record["run_dir"] = str(path.parent)
            record["results_file"] = str(path)
            return record
        problem = f"expected a JSON object, found a JSON {type(record).__name__}"
    return {
        "status": UNREADABLE,
        "error": problem,
        "run_dir": str(path.parent),
        "results_file": str(path),
    }


def why(record: dict[str, Any]) -> str:
    """The first line of a record's reason (skipped) or error (failed), or ``""``."""
    text = record.get("reason") or record.get("error") or ""
    return one_line(text) if text else ""


# -- secrets --------------------------------------------------------------------------------
def mask_secrets(data: Any) -> Any:
    """``data`` with the values of secret-looking keys replaced by ``***``, and the value of
    every secret-looking environment variable (``WANDB_API_KEY``, ``HF_TOKEN``, ...) cut out
    of every string, wherever it was interpolated or quoted in an error message."""
    if isinstance(data, dict):
        return {
            k: ("***" if SECRET_KEY.search(str(k).lower()) and v else mask_secrets(v))
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [mask_secrets(v) for v in data]
    if isinstance(data, str):
        for secret in _secret_env_values():
            data = data.replace(secret, "***")
    return data


def _secret_env_values() -> list[str]:
    """Values of environment variables whose names say they hold a secret (8+ characters,
    so that a flag such as TOKENIZERS_PARALLELISM=false is not one), longest first."""
    found = {
        value
        for name, value in os.environ.items()
        if SECRET_ENV.search(name) and len(value) >= 8 and not name.startswith("TOKENIZERS_")
    }
    return sorted(found, key=len, reverse=True)


# -- writing --------------------------------------------------------------------------------
def run_identity(cfg: Any) -> dict[str, Any]:
    """What names a run in every record, report and sweep summary."""
    return {
        "model": str(cfg.model.get("label") or cfg.model.get("name")),
        "method": str(cfg.method.get("name")),
        "data": str(cfg.data.get("name")),
        "seed": cfg.get("seed"),
    }


def out_of_memory(cfg: Any, err: BaseException) -> OutOfMemory:
    """What to change when the accelerator ran out of memory, instead of a raw stack."""
    first = one_line(root_cause(err), 200)
    advice = [f"lower data.batch_size (now {cfg.data.get('batch_size')})"]
    if cfg.model.get("grad_checkpointing") is False:
        advice.append("set model.grad_checkpointing=true")
    if "bf16" not in str(cfg.trainer.get("precision")):
        advice.append(f"use trainer.precision=bf16-mixed (now {cfg.trainer.get('precision')})")
    advice.append("or a parameter-efficient method (method=lora)")
    return OutOfMemory(f"out of memory ({first}). To fit: {', '.join(advice)}.")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class RunRecord:
    """The record of one run, from ``running`` to how it ended.

    ``with RunRecord(cfg, run_config) as record:`` writes ``config.yaml`` and a ``running``
    record before the body runs; the body adds what it measures with :meth:`update`. On
    leaving, the status is ``done`` when the body returned, ``skipped`` when it raised
    :class:`MethodNotApplicable`, else ``failed`` with the error (an out-of-memory error is
    re-raised as :class:`OutOfMemory`, which says what to shrink). ``on_close(ok)`` runs
    last (closing loggers) and may add fields. Only rank 0 writes (``write``).
    """

    def __init__(
        self,
        cfg: Any,
        run_config: dict[str, Any],
        *,
        write: bool = True,
        on_close: Callable[[bool], dict[str, Any]] | None = None,
        **fields: Any,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.paths.output_dir)
        self.run_config = run_config
        self.write = write
        self.on_close = on_close
        self.data: dict[str, Any] = {
            **run_identity(cfg),
            "status": RUNNING,
            "run_dir": str(self.run_dir),
            "started": _now(),
            **{k: v for k, v in fields.items() if v is not None},
        }

    def update(self, **fields: Any) -> None:
        self.data.update(fields)

    def __enter__(self) -> RunRecord:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.write:
            from omegaconf import OmegaConf

            text = OmegaConf.to_yaml(OmegaConf.create(self.run_config))
            atomic_write_text(self.run_dir / CONFIG_FILE, text)
            self._save()
        return self

    def __exit__(self, exc_type, exc: BaseException | None, tb) -> bool:
        replacement = None
        if exc is None:
            self.data["status"] = DONE
        elif isinstance(exc, MethodNotApplicable):
            self.data.update(status=SKIPPED, reason=str(exc))
        else:
            import torch

            if isinstance(root_cause(exc), torch.OutOfMemoryError):
                replacement = out_of_memory(self.cfg, exc)
            shown = replacement or user_error(exc) or root_cause(exc)
            self.data.update(
                status=FAILED,
                error=f"{type(shown).__name__}: {shown}",
                traceback="".join(traceback.format_exception(exc, limit=8)),
            )
        self.data["finished"] = _now()
        try:
            if self.on_close is not None:
                self.data.update(self.on_close(self.data["status"] != FAILED) or {})
        finally:
            self._save()
        if replacement is not None:
            raise replacement from exc
        return False

    def _save(self) -> None:
        if self.write:  # an error message may quote a secret a config interpolated
            atomic_write_json(self.run_dir / RESULTS_FILE, mask_secrets(self.data))
