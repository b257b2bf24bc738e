"""How a comparison's runs were set up, as its report states it: the training budget the
runs had, and how each method's learning rate was set (chosen on validation in a tuned
sweep, ``tune=lr``: the grid, each rate's validation score, the choice).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import pandas as pd

from ftlab.records import DONE
from ftlab.reporting.load import FINAL, SELECT, ZERO_SHOT, run_config

NOT_STATED = "not stated"
SELECTION_COLUMNS = (
    "model", "method", "data", "task", "samples_per_class", "param", "metric", "seeds",
    "grid", "scores", "chosen", "source", "not_chosen",
)  # fmt: skip


def budgets(df: pd.DataFrame) -> dict[str, list[str]]:
    """The budgets of the compared runs (``done``, not a selection run, not the untouched
    model, which trains nothing), each with the methods that had it, in order of first
    appearance; :data:`NOT_STATED` for runs that do not say."""
    runs = _compared(df)
    runs = runs[runs["method"] != ZERO_SHOT]
    found: dict[str, list[str]] = {}
    for budget, name in zip(runs["budget"], runs["method_name"]):
        methods = found.setdefault(budget if isinstance(budget, str) else NOT_STATED, [])
        if str(name) not in methods:
            methods.append(str(name))
    return found


def budget_line(df: pd.DataFrame) -> str | None:
    """The report's sentence on the budget: one for every run, or the ones that differ."""
    found = budgets(df)
    if not found:
        return None
    if len(found) == 1:
        budget = next(iter(found))
        if budget == NOT_STATED:
            return (
                "Training budget: not stated (the runs predate `budget=` and have no "
                "`config.yaml` to read it from)."
            )
        return f"Training budget: {budget} for every run."
    parts = "; ".join(f"{budget}: {', '.join(methods)}" for budget, methods in found.items())
    return f"Training budgets differ, so the rows did not train on equal terms: {parts}."


def learning_rate_line(df: pd.DataFrame, selected: pd.DataFrame) -> str:
    """The report's sentence on how the learning rates were set."""
    if selected.empty:
        return "Learning rate: as each run was configured (not tuned by the sweep)."
    metrics = sorted({str(m) for m in selected["metric"] if isinstance(m, str)})
    on = f" (`{'`, `'.join(metrics)}`)" if metrics else ""
    select_runs = int(_done(df)["stage"].eq(SELECT).sum())
    runs = f"; its {select_runs} selection runs are not in the comparison" if select_runs else ""
    return (
        f"Learning rate: chosen per method on validation{on}, never on test: see *Learning "
        f"rate chosen on validation*{runs}."
    )


def selection(df: pd.DataFrame) -> pd.DataFrame:
    """One row per tuned configuration (model, method, data, task, samples per class): the
    tuned parameter, the validation metric, the selection seeds, the grid, the mean
    validation score of each rate over the selection seeds (from the ``select`` runs; from
    the final runs' ``tuning`` record where those runs are not here), and the chosen rate
    (None where the final runs have not run yet). ``source`` names the earlier search a
    choice was taken from (``from_dir``), else None."""
    runs = _done(df)
    records = runs["tuning"] if "tuning" in runs.columns else pd.Series(None, index=runs.index)
    tuned = runs[runs["stage"].isin([SELECT, FINAL]) | records.map(_tuning).notna()]
    keys = ["model", "method_name", "data", "task", "data/samples_per_class"]
    rows = []
    for _, group in tuned.groupby(keys, dropna=False, sort=False):
        final = records.loc[group.index[group["stage"] != SELECT]]
        record = next((t for t in map(_tuning, final) if t is not None), {})
        param = str(record.get("param") or "method.lr")
        select = group[group["stage"] == SELECT]
        metric = record.get("metric") or next(
            (k for k in select["val_best_key"] if isinstance(k, str)), None
        )
        scores = _select_scores(select, param, metric) or _recorded_scores(record)
        grid = [_key(r) for r in record.get("grid") or []] or sorted(scores)
        seeds = record.get("seeds")
        if seeds is None and len(select):
            seeds = sorted({int(s) for s in select["seed"].dropna()})
        first = group.iloc[0]
        chosen = record.get("chosen")
        rows.append(
            {
                "model": first["model"],
                "method": first["method_name"],
                "data": first["data"],
                "task": first["task"],
                "samples_per_class": first["data/samples_per_class"],
                "param": param,
                "metric": metric,
                "seeds": list(seeds) if seeds is not None else None,
                "grid": grid,
                "scores": scores,
                "chosen": None if chosen is None else _key(chosen),
                "source": record.get("from"),
                "not_chosen": record.get("not_chosen"),  # why stage 1 chose nothing
            }
        )
    return pd.DataFrame(rows, columns=list(SELECTION_COLUMNS))


def rate(value: object) -> str:
    """A learning rate as people write it: ``3e-4``, ``1e-2``, ``2.5e-5``."""
    mantissa, _, exponent = f"{float(value):.2e}".partition("e")  # type: ignore[arg-type]
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _key(lr: object) -> float:
    """A rate as a dict key: the grid's, the record's and the config's texts of one rate
    (``3e-4``, ``0.0003``, ``0.00030000000000000003``) are one number."""
    return float(f"{float(lr):.6g}")  # type: ignore[arg-type]


def _done(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == DONE]


def _compared(df: pd.DataFrame) -> pd.DataFrame:
    runs = _done(df)
    return runs[runs["stage"] != SELECT]


def _tuning(value: object) -> dict | None:
    """A run's ``tuning`` record (a dict; JSON text when read back from results.csv)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return dict(value) if isinstance(value, Mapping) and value else None


def _recorded_scores(record: Mapping) -> dict[float, float]:
    """``tuning.scores`` by rate: a dict keyed by the rate's text, or the list of
    ``[rate, score]`` pairs a record passed through a Hydra override holds."""
    scores = record.get("scores") or {}
    pairs = scores.items() if isinstance(scores, Mapping) else scores
    found = {}
    for pair in pairs:
        try:
            lr, score = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        found[_key(lr)] = score
    return found


def _select_scores(select: pd.DataFrame, param: str, metric: str | None) -> dict[float, float]:
    """The mean validation score of each rate over its selection runs."""
    found: dict[float, list[float]] = {}
    for record in select.to_dict("records"):
        lr = _param_value(record, param)
        value = record.get(metric) if metric else record.get("val_best")
        if lr is None or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        found.setdefault(_key(lr), []).append(float(value))
    return {lr: sum(v) / len(v) for lr, v in sorted(found.items())}


def _param_value(record: dict, param: str) -> float | None:
    """The value a run had for a config path (``method.lr``): a key of its record when it
    has one, else its saved config."""
    if _number(record.get(param)) is not None:
        return _number(record.get(param))
    node: object = run_config(record)
    for part in param.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return _number(node)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
