"""``hydra/sweeper=tuned`` (``tune=lr``): a comparison in which every method trains at its
own learning rate, chosen on validation data.

    ftlab-train -m experiment=method_board_text tune=lr

The sweep's jobs are whatever its parameters make (methods x seeds x ...). Stage 1
(``stage=select``) runs, for every configuration of the sweep (the jobs without their
seed), each learning rate of its method's grid (``method.lr_grid``; else ``factors`` times
``method.lr``) on the selection seeds (``seeds``), fitting and validating only
(``test=false``: the test split is never looked at to choose). The rate with the best mean
validation score (the task's: ``val/acc_best``, or the lowest ``val/loss_best``; a tie goes
to the lower rate) is that configuration's. A rate chosen at the edge of its grid says the best may lie beyond it, so
stage 1 then tries one more rate past that edge (the grid's own step), up to ``extend``
times per configuration; a choice still at the edge after that is recorded as such
(``at_edge``) and the report says so. Stage 2 (``stage=final``) runs every job of the sweep at its
configuration's rate, each run recording the grid, the scores and the choice
(``tuning``); ``<sweep dir>/tuning.json`` holds them all. ``from_dir=<a sweep dir>`` takes
the choices from an earlier search instead of stage 1 (an Optuna search,
``hparams_search=*``, or a tuned sweep): per configuration, the rate of its best run there.

Jobs are numbered stage 1 first, then stage 2, in a fixed order, so rerunning the command
resumes: finished jobs are not trained again.
"""

from __future__ import annotations

import logging
import math
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from ftlab.errors import ConfigError, exit_on_user_error, one_line
from ftlab.records import DONE, find_records, load_record
from ftlab.settings import check_types

log = logging.getLogger(__name__)
TUNING_FILE = "tuning.json"
#: overrides that tell a job apart from its configuration's other jobs
SEED_KEYS = ("seed",)


class TunedSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        seeds: list[int] = [0],  # noqa: B006 (read, never changed)
        factors: list[float] = [1 / 3, 1.0, 3.0],  # noqa: B006
        from_dir: str | None = None,
        extend: int = 2,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=dict(params or {}))
        # checked in sweep(), where a mistake is one sentence and exit 2
        self._settings = {"seeds": seeds, "factors": factors, "extend": extend}
        self.from_dir = Path(from_dir).expanduser() if from_dir else None

    # -- the sweep ---------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        # the sweep runs outside the task function's wrapper: a sweep-level mistake (no
        # seeds, nothing in from_dir) is one line and exit 2 here too
        return exit_on_user_error(self._sweep)(arguments)

    def _sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        # settings.check_types, as for method.* and data.*: "extend=two" is a sentence
        check_types(type(self), self._settings, "hydra.sweeper.")
        self.seeds = [int(s) for s in self._settings["seeds"]]
        self.factors = [float(f) for f in self._settings["factors"]]
        self.extend = int(self._settings["extend"])
        if not self.seeds:
            raise ConfigError("hydra.sweeper.seeds is empty; name at least one seed to select on.")
        if any(f <= 0 for f in self.factors):
            raise ConfigError(f"hydra.sweeper.factors={self.factors} must all be > 0.")
        if self.extend < 0:
            raise ConfigError(
                f"hydra.sweeper.extend={self.extend} must be >= 0 (0: never go past a grid)."
            )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]
        groups: OrderedDict[tuple[str, ...], list[list[str]]] = OrderedDict()
        for job in jobs:
            groups.setdefault(_configuration(job), []).append(job)
        if self.from_dir is not None:
            choices = {key: self._from_earlier(key) for key in groups}
            next_index = 0
            returns = []
        else:
            grids = {key: self._grid(list(key)) for key in groups}
            returns, next_index = self._launch(self._select_jobs(grids), 0)
            # rounds past the edges: each a batch of its own, in a fixed order, so that a
            # rerun numbers its jobs as the first attempt did and resumes
            for _ in range(self.extend):
                beyond = {
                    key: [lr]
                    for key, grid in grids.items()
                    if grid and (lr := _past_edge(grid, self._choose(key, grid, sweep_dir)))
                }
                if not beyond:
                    break
                more, next_index = self._launch(self._select_jobs(beyond), next_index)
                returns += more
                for key, lrs in beyond.items():
                    grids[key] = sorted([*grids[key], *lrs])
            choices = {
                key: self._choose(key, grids[key], sweep_dir) if grids[key] else _as_is(key)
                for key in groups
            }
        final = [
            [*job, *_rate(choices[key]), "stage=final", f"tuning={_override_value(choices[key])}"]
            for key, group in groups.items()
            for job in group
        ]
        done, _ = self._launch(final, next_index)
        _write_json(
            sweep_dir / TUNING_FILE,
            [{"configuration": list(key), **choice} for key, choice in choices.items()],
        )
        return [*returns, *done]

    def _select_jobs(self, grids: dict[tuple[str, ...], list[float]]) -> list[list[str]]:
        return [
            [*key, f"seed={seed}", f"method.lr={lr!r}", "test=false", "stage=select"]
            for key, grid in grids.items()
            for seed in self.seeds
            for lr in grid
        ]

    def _launch(self, jobs: list[list[str]], start: int) -> tuple[list, int]:
        returns: list = []
        if not jobs:  # nothing to select on: every grid empty (method.lr_grid=[])
            return returns, start
        for batch in self.split_overrides_to_chunks(jobs, self.max_batch_size):
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=start)
            start += len(batch)
            returns.append(results)
        return returns, start

    # -- what to try, and what to keep ------------------------------------------------------
    def _job_config(self, overrides: list[str]):
        return self.hydra_context.config_loader.load_sweep_config(self.config, overrides)

    def _grid(self, configuration: list[str]) -> list[float]:
        """The learning rates stage 1 tries for a configuration: its method's ``lr_grid``,
        else the sweeper's factors times its ``lr``."""
        method = self._job_config(configuration).method
        grid = OmegaConf.select(method, "lr_grid", default=None)
        if grid is not None:  # [] (zero_shot): nothing trains, nothing to tune
            rates = [float(lr) for lr in grid]
            if any(not lr > 0 for lr in rates):  # before any job: not one failure per rate
                raise ConfigError(
                    f"method.lr_grid={rates} of method={method.get('name')} must hold rates "
                    "> 0, e.g. method.lr_grid=[1e-3,3e-3,1e-2]."
                )
            return rates
        if method.get("lr") is None:
            raise ConfigError(
                f"method={method.get('name')} has neither method.lr_grid nor method.lr to "
                "tune around; set method.lr_grid=[...]."
            )
        return sorted({float(f"{float(method.lr) * f:.3g}") for f in self.factors})

    def _choose(self, key: tuple[str, ...], grid: list[float], sweep_dir: Path) -> dict:
        """The rate with the best mean validation score over the selection seeds."""
        runs = _records(sweep_dir, stage="select", configuration=key)
        scores: dict[float, list[float]] = {lr: [] for lr in grid}
        metric, lower = None, False
        for record in runs:
            metric = metric or _val_key(record)
            lower = "loss" in (metric or "")
            value = record.get(metric) if metric else None
            lr = _lr(record)
            if lr in scores and isinstance(value, int | float) and math.isfinite(value):
                scores[lr].append(float(value))
        # ascending, so that max/min keep the first best: a tie goes to the lower rate
        means = {lr: sum(v) / len(v) for lr, v in sorted(scores.items()) if v}
        if not means:
            # every selection run was skipped (a method the backbone cannot take) or failed:
            # nothing to choose, and the sweep goes on; the final runs keep the config's rate
            # and record why (a skipped method is skipped again there, with its reason)
            why = _why_none(sweep_dir, key)
            log.warning(f"{' '.join(key) or 'the sweep'}: no rate chosen ({why})")
            return {
                "param": "method.lr", "metric": metric, "seeds": self.seeds, "grid": grid,
                "scores": {}, "chosen": None, "not_chosen": why,
            }  # fmt: skip
        chosen = (min if lower else max)(means, key=means.get)
        return {
            "param": "method.lr",
            "metric": metric,
            "seeds": self.seeds,
            "grid": grid,
            "scores": {f"{lr:g}": round(means[lr], 6) for lr in grid if lr in means},
            "chosen": chosen,
            "at_edge": len(grid) > 1 and chosen in (min(grid), max(grid)),
        }

    def _from_earlier(self, key: tuple[str, ...]) -> dict:
        """The rate of this configuration's best run in ``from_dir`` (an earlier search)."""
        assert self.from_dir is not None
        runs = [r for r in _records(self.from_dir, configuration=key) if _val_key(r)]
        if not runs:
            raise ConfigError(
                f"hydra.sweeper.from_dir={self.from_dir} has no finished run of "
                f"{' '.join(o for o in key if not o.startswith(NOT_MATCHED)) or 'this sweep'} with a validation score to take a learning "
                "rate from."
            )
        metric = _val_key(runs[0])
        best = (min if "loss" in metric else max)(runs, key=lambda r: r[metric])
        return {
            "param": "method.lr",
            "metric": metric,
            "from": str(self.from_dir),
            "grid": sorted({_lr(r) for r in runs}),
            "scores": {f"{_lr(r):g}": round(r[metric], 6) for r in runs},
            "chosen": _lr(best),
        }


def _past_edge(grid: list[float], choice: dict) -> float | None:
    """The next rate past the grid's edge the choice sits on: a step of the grid's own ratio
    there, to one significant digit as people write rates (1e-2 chosen over [1e-3, 3e-3,
    1e-2] gives 3e-2), or None for a choice inside the grid (or a grid of one rate)."""
    grid = sorted(grid)
    chosen = choice["chosen"]
    if len(grid) < 2 or chosen not in (grid[0], grid[-1]):
        return None
    step = grid[-1] / grid[-2] if chosen == grid[-1] else grid[0] / grid[1]
    return float(f"{chosen * step:.1g}")


def _why_none(sweep_dir: Path, key: tuple[str, ...]) -> str:
    """Why no selection run of a configuration has a score: the first skipped or failed
    run's reason, in a line."""
    for record in _records(sweep_dir, stage="select", configuration=key, done=False):
        reason = record.get("reason") or record.get("error") or "no reason recorded"
        reason = re.sub(r"[\\${}'\"]", "", one_line(str(reason), 200))  # override-safe
        return f"selection runs {record.get('status')}: {reason}"
    return "no selection run finished with a validation score"


def _rate(choice: dict) -> list[str]:
    return [] if choice["chosen"] is None else [f"method.lr={choice['chosen']!r}"]


def _as_is(key: tuple[str, ...]) -> dict:
    """A configuration with nothing to tune (an empty grid: method=zero_shot)."""
    return {"param": "method.lr", "grid": [], "scores": {}, "chosen": None}


def _configuration(job: list[str]) -> tuple[str, ...]:
    """A job's overrides without its seed: what the jobs of one configuration share."""
    return tuple(o for o in job if o.split("=", 1)[0].lstrip("+~") not in SEED_KEYS)


def _override_value(value: Any) -> str:
    """``value`` in Hydra's override grammar: dict keys bare, strings quoted, a dict whose
    keys are numbers (the scores by learning rate) as a list of pairs."""
    if isinstance(value, dict):
        if all(_is_number(k) for k in value):
            return _override_value([[float(k), v] for k, v in value.items()])
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    return repr(value)


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


#: overrides that say how a sweep searched, not what it trained: an earlier search's runs
#: (``from_dir``: an Optuna sweep) match a configuration without them
NOT_MATCHED = ("method.lr=", "tune=", "hparams_search=")


def _records(
    root: Path, stage: str | None = None, configuration=None, done: bool = True
) -> list[dict]:
    """The records under ``root`` (done ones, or with ``done=False`` the others: skipped,
    failed), of ``stage`` (by the job's ``stage=`` override: a run skipped before it
    started records no stage), of the runs whose overrides hold every override of
    ``configuration`` but the learning rate's."""
    wanted = {o for o in configuration or () if not o.startswith(NOT_MATCHED)}
    wanted |= {f"stage={stage}"} if stage else set()
    found = []
    for path in find_records(root):
        record = load_record(path)
        if (record.get("status") == DONE) != done:
            continue
        if wanted <= set(_overrides(Path(record["run_dir"]))):
            found.append(record)
    return found


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def _lr(record: dict) -> float:
    config = OmegaConf.load(Path(record["run_dir"]) / "config.yaml")
    return float(config.method.lr)


def _val_key(record: dict) -> str | None:
    return next((k for k in record if k.startswith("val/") and k.endswith("_best")), None)


def _write_json(path: Path, data: Any) -> None:
    from ftlab.atomic import atomic_write_json

    atomic_write_json(path, data)
