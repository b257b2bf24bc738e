"""Sweeps: what a multirun needs beyond one run.

- :class:`SweepSummary`, a Hydra callback: when a multirun ends, count the jobs that are
  done, skipped and failed (with their run dirs) and write the comparison report.
- :func:`previous_result`: a job whose run dir already holds a finished ``results.json``
  is not trained again, so rerunning a sweep into the same directory resumes it.
- :func:`gpu_for_job`: one GPU per job when jobs of a sweep run side by side.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

RESULTS_FILE = "results.json"


def previous_result(run_dir: str | Path) -> dict[str, Any] | None:
    """The finished result of an earlier attempt at this job, or None."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("status") == "done" else None


def gpu_for_job(job_num: Any) -> int:
    """GPU index for sweep job ``job_num``: jobs share the visible GPUs round-robin."""
    import torch

    count = torch.cuda.device_count()
    return int(job_num) % count if count else 0


def sweep_group() -> str | None:
    """The sweep's directory name under a Hydra multirun (the W&B group), else None."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
    except ValueError:
        return None
    if hydra_cfg.mode.name != "MULTIRUN":
        return None
    return Path(hydra_cfg.sweep.dir).name


class SweepSummary(Callback):
    """Print done / skipped / failed at the end of a multirun and write its report."""

    def __init__(self, report: bool = True) -> None:
        self.report = report

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summarize_sweep(sweep_dir, report=self.report)


def summarize_sweep(sweep_dir: Path, report: bool = True) -> dict[str, list[tuple[str, str]]]:
    by_status: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(sweep_dir.rglob(RESULTS_FILE)):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {"status": "unreadable"}
        label = f"{data.get('method_label') or data.get('method')} / {data.get('model')} / seed {data.get('seed')}"
        why = data.get("reason") or data.get("error") or ""
        by_status.setdefault(data.get("status", "unknown"), []).append(
            (f"{label}: {os.path.relpath(path.parent)}", why.splitlines()[0] if why else "")
        )
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_status.items())) or "no jobs"
    print(f"\nftlab sweep {sweep_dir}: {counts}")
    for status in ("skipped", "failed", "unreadable", "running"):
        for where, why in by_status.get(status, []):
            print(f"  {status}: {where}" + (f"  ({why})" if why else ""))
    if report and by_status:
        from ftlab.errors import FtlabError
        from ftlab.report import write_report

        try:
            written = write_report(sweep_dir)
            print(f"  report: {written['report']}")
        except (FtlabError, OSError, ValueError) as err:
            print(f"  report not written: {err}")
    return by_status
