"""Sweeps: what a multirun needs beyond one run.

- :class:`SweepSummary`, a Hydra callback: when a multirun ends, give every generative
  comparison its zero-shot baseline (:func:`run_zero_shot_baselines`), count the jobs that
  are done, skipped and failed (with their run dirs) and write the comparison report.
- :func:`spawns_processes` / :func:`run_job_in_subprocess`: a sweep job that trains with
  DDP on this machine runs as a single ``ftlab-train`` in a child process, so Lightning's
  launcher (which re-executes ``sys.argv`` for every extra rank) never relaunches the sweep.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ftlab.console import log
from ftlab.records import (
    DONE,
    FAILED,
    RESULTS_FILE,
    RUNNING,
    SKIPPED,
    UNREADABLE,
    find_records,
    load_record,
    read_record,
    why,
)


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN"


def sweep_group() -> str | None:
    """The sweep's directory name under a Hydra multirun (the W&B group), else None."""
    if not in_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().sweep.dir).name


class SweepSummary(Callback):
    """Run the zero-shot baselines a generative sweep lacks, print done / skipped / failed
    at the end of a multirun and write its report."""

    def __init__(self, report: bool = True, zero_shot: bool = True) -> None:
        self.report = report
        self.zero_shot = zero_shot

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if self.zero_shot:
            run_zero_shot_baselines(sweep_dir)
        summarize_sweep(sweep_dir, report=self.report)
        if "wandb" in (config.get("logger") or {}):
            dashboard(sweep_dir)


def dashboard(sweep_dir: Path) -> None:
    """The sweep group's W&B dashboard: created when W&B is online, else its spec written
    for ``ftlab-report DIR --wandb`` after ``wandb sync``. Never fails the sweep."""
    from ftlab.errors import FtlabError
    from ftlab.reporting.dashboard import write_dashboard

    try:
        path, url = write_dashboard(sweep_dir)
    except (FtlabError, OSError, ValueError) as err:
        print(f"  W&B dashboard not made: {err}")
        return
    if url:
        print(f"  W&B dashboard: {url}")
    else:
        print(
            f"  W&B dashboard spec: {path} (after `wandb sync`: ftlab-report {sweep_dir} --wandb)"
        )


def summarize_sweep(sweep_dir: Path, report: bool = True) -> dict[str, list[tuple[str, str]]]:
    by_status: dict[str, list[tuple[str, str]]] = {}
    for path in find_records(sweep_dir):
        data = load_record(path)
        label = f"{data.get('method_label') or data.get('method')} / {data.get('model')} / seed {data.get('seed')}"
        by_status.setdefault(data.get("status", "unknown"), []).append(
            (f"{label}: {os.path.relpath(path.parent)}", why(data))
        )
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_status.items())) or "no jobs"
    print(f"\nftlab sweep {sweep_dir}: {counts}")
    for status in (SKIPPED, FAILED, UNREADABLE, RUNNING):
        for where, reason in by_status.get(status, []):
            print(f"  {status}: {where}" + (f"  ({reason})" if reason else ""))
    if report and by_status:
        from ftlab.errors import FtlabError
        from ftlab.reporting import write_report

        try:
            written = write_report(sweep_dir)
            print(f"  report: {written['report']}")
        except (FtlabError, OSError, ValueError) as err:
            print(f"  report not written: {err}")
    return by_status


# -- the zero-shot baseline ----------------------------------------------------------------
def run_zero_shot_baselines(sweep_dir: Path) -> list[Path]:
    """Give each (model, data) of a generative task (sft, choice) in the sweep that has
    ``done`` runs and no ``done`` zero-shot run its baseline: the untouched model, validated
    and tested by ``ftlab-train`` with the panel's first done run's overrides and
    ``method=zero_shot``, in ``<sweep_dir>/zero_shot_<model>_<data>`` (in the sweep's W&B
    group). Cheap (nothing trains); each baseline is one printed line, and one that cannot
    run never fails the sweep. Returns the run dirs it ran."""
    from ftlab.reporting.load import GENERATIVE_TASKS, ZERO_SHOT

    firsts: dict[tuple, dict[str, Any]] = {}
    have = set()
    for path in find_records(sweep_dir):
        record = load_record(path)
        if record.get("status") != DONE or record.get("task") not in GENERATIVE_TASKS:
            continue
        key = (record.get("model"), record.get("data"), record.get("task"))
        if record.get("method") == ZERO_SHOT:
            have.add(key)
        else:
            firsts.setdefault(key, record)
    ran = []
    for key, first in firsts.items():
        if key in have:
            continue
        model, data, task = key
        tasks = {t for m, d, t in firsts if (m, d) == (model, data)}
        name = f"zero_shot_{model}_{data}" + (f"_{task}" if len(tasks) > 1 else "")
        run_dir = sweep_dir / re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        what = f"zero-shot baseline for {model} / {data} (task={task})"
        try:
            record = _zero_shot(first, run_dir, group=sweep_dir.name)
        except Exception as err:  # the baseline is an extra: the sweep's own jobs are done
            from ftlab.errors import one_line, root_cause, user_error

            shown = user_error(err) or root_cause(err)
            print(f"  {what} not run: {one_line(f'{type(shown).__name__}: {shown}')}")
            continue
        reason = f": {why(record)}" if why(record) else ""
        print(f"  {what}: {run_dir} ({record.get('status')}{reason})")
        ran.append(run_dir)
    return ran


def zero_shot_overrides(overrides: list[str]) -> list[str]:
    """A job's overrides for the untouched model: its method (and the method's settings,
    which zero_shot does not have) replaced by ``method=zero_shot``; nothing resumed."""
    dropped = ("method", "ckpt_path", "resume")
    kept = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".", 1)[0].split("@", 1)[0] in dropped:
            continue
        kept.append(override)
    return [*kept, "method=zero_shot"]


def _zero_shot(first: dict[str, Any], run_dir: Path, group: str) -> dict[str, Any]:
    """Run the zero-shot job that reads ``first``'s panel against the untouched model as
    its own ``ftlab-train`` (a run dir, log and W&B run like a job's; DDP ranks, if any,
    started by it) and return its record. The config is composed here first, so that one
    that cannot compose is a sentence."""
    import subprocess
    import sys

    from ftlab.config import compose_config
    from ftlab.errors import FtlabError

    job_dir = Path(first["results_file"]).parent
    overrides, hydra_overrides = _job_overrides(first, job_dir)
    overrides = [o for o in zero_shot_overrides(overrides) if not o.startswith("print_config=")]
    overrides.append("print_config=false")
    cfg = compose_config([*overrides, *hydra_overrides])
    wandb = (cfg.get("logger") or {}).get("wandb")
    if wandb is not None and wandb.get("group") is None:
        overrides.append(f"logger.wandb.group={group}")  # a single run has no sweep group
    command = [
        sys.executable, "-m", "ftlab.train", *overrides, *hydra_overrides,
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    proc = subprocess.run(command, check=False)
    record = read_record(run_dir)
    if record is None:
        raise FtlabError(f"it left no {RESULTS_FILE} (exit code {proc.returncode})")
    return record


def _job_overrides(record: dict[str, Any], job_dir: Path) -> tuple[list[str], list[str]]:
    """The job's own overrides (the record's, else Hydra's ``.hydra/overrides.yaml``) and
    the Hydra ones that change what composes (``hydra.searchpath``)."""
    import yaml

    from ftlab.errors import ConfigError

    overrides = record.get("overrides")
    hydra_dir = job_dir / ".hydra"
    if not isinstance(overrides, list) and (hydra_dir / "overrides.yaml").is_file():
        overrides = yaml.safe_load((hydra_dir / "overrides.yaml").read_text())
    if not isinstance(overrides, list):
        raise ConfigError(f"{job_dir} holds no record of its overrides (.hydra/overrides.yaml)")
    hydra_overrides = []
    if (hydra_dir / "hydra.yaml").is_file():
        hydra_cfg = yaml.safe_load((hydra_dir / "hydra.yaml").read_text()) or {}
        recorded = ((hydra_cfg.get("hydra") or {}).get("overrides") or {}).get("hydra") or []
        hydra_overrides = [o for o in recorded if o.startswith("hydra.searchpath")]
    return [str(o) for o in overrides], hydra_overrides


# hydra overrides that belong to the sweep, not to one of its jobs
SWEEP_ONLY = (
    "hydra.mode",
    "hydra.sweep",
    "hydra/launcher",
    "hydra.launcher",
    "hydra/sweeper",
    "hydra.sweeper",
)
JOB_PROCESS = "FTLAB_SWEEP_JOB_PROCESS"  # set in the child: it never re-runs itself again
LAUNCHED_ENV = ("LOCAL_RANK", "WORLD_SIZE", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID")


def spawns_processes(cfg: DictConfig) -> bool:
    """Whether Lightning would start extra processes (by re-running the command line) for
    this job: a DDP-type strategy over more than one device or node, with no cluster
    launcher (torchrun, SLURM tasks) that starts the ranks itself."""
    if os.environ.get(JOB_PROCESS) or any(os.environ.get(k) for k in LAUNCHED_ENV):
        return False
    trainer = cfg.get("trainer") or {}
    strategy = trainer.get("strategy")
    name = str(strategy.get("_target_", "") if isinstance(strategy, DictConfig) else strategy)
    if not any(kind in name.lower() for kind in ("ddp", "fsdp", "deepspeed")):
        return False
    if name.lower().endswith(("spawn", "notebook", "fork")):
        return False  # these start their ranks without re-running the command line
    return _device_count(trainer) * int(trainer.get("num_nodes") or 1) > 1


def _device_count(trainer: DictConfig) -> int:
    devices = trainer.get("devices", "auto")
    if isinstance(devices, int) and devices > 0:
        return devices
    if not isinstance(devices, int | str):  # a list of device indices
        return len(devices)
    if isinstance(devices, str) and devices.isdigit():
        return int(devices)
    import torch

    gpu = str(trainer.get("accelerator", "auto")) in ("gpu", "cuda", "auto")
    return torch.cuda.device_count() if gpu and torch.cuda.is_available() else 1


def run_job_in_subprocess(cfg: DictConfig) -> dict[str, Any]:
    """Run this sweep job as a single ``ftlab-train`` run in a child process (which may
    then spawn its DDP ranks) and return the ``results.json`` it leaves."""
    import subprocess
    import sys

    from hydra.core.hydra_config import HydraConfig

    from ftlab.errors import FtlabError, MethodNotApplicable

    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.startswith(SWEEP_ONLY)]
    command = [
        sys.executable, "-m", "ftlab.train",
        "--config-name", hydra_cfg.job.config_name,
        *hydra_cfg.overrides.task, *hydra_overrides,
        f"hydra.run.dir={job_dir}", "hydra.output_subdir=null", "hydra.mode=RUN",
    ]  # fmt: skip
    log.info(f"job {hydra_cfg.job.num} trains with DDP: running it as its own process")
    proc = subprocess.run(command, check=False, env={**os.environ, JOB_PROCESS: "1"})
    data = read_record(job_dir) or {}
    if data.get("status") == DONE:
        return data
    reason = data.get("reason") or data.get("error") or f"exit code {proc.returncode}"
    if data.get("status") == SKIPPED:
        raise MethodNotApplicable(reason)
    raise FtlabError(f"the job's process failed: {reason}")
