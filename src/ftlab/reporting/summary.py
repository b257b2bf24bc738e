"""Collapse seeds into one row per compared configuration and mark the Pareto front."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ftlab.records import DONE
from ftlab.reporting.fmt import human_count
from ftlab.reporting.load import DEFAULT_TASK, ZERO_SHOT, normalize

# The configuration a row stands for; seeds are what varies inside a row.
ROW_KEYS = ("model", "method_name", "data", "task", "score_key", "data/samples_per_class")
# Rows compete for the Pareto front only against rows on the same backbone, data and task
# (a task's score is its own: exact match and accuracy are not compared).
PANEL_KEYS = ("model", "data", "task", "score_key", "samples_per_class")

SUMMARY_COLUMNS = (
    "model", "method", "data", "task", "samples_per_class", "n", "seeds",
    "score_key", "higher_is_better", "score_mean", "score_std", "val_best_key", "val_best_mean",
    "test_acc_mean", "test_acc_std", "test_f1_mean", "val_acc_best_mean",
    "forgetting_mean", "forgetting_std", "answered_mean", "also", "zero_shot", "vs_zero_shot",
    "params_trainable", "params_total", "params_trainable_pct",
    "samples_per_s", "peak_memory_bytes", "checkpoint_bytes", "fit_s", "fit_s_std",
    "pareto", "run_dirs",
)  # fmt: skip


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, data, task, samples per class) over the ``done`` runs.

    ``score_*`` is each run's score (its task's headline test metric: test accuracy,
    exact match; see :func:`~ftlab.reporting.load.normalize`), the mean over seeds with the
    sample standard deviation (ddof=1, NaN for one seed); ``test_acc_*`` is ``test/acc``
    itself. Runs that share a method name but differ in trainable parameters are different
    configurations, not seeds, so they get separate rows, their names suffixed with the
    parameter count. Rows are sorted by model, data, task, samples per class, then score,
    best first; ``pareto`` marks the rows no other row of the same model, data and task
    beats. ``zero_shot`` marks the untouched model's row and ``vs_zero_shot`` is every
    row's mean score minus it, in the score's units (NaN where a panel has none).
    """
    done = normalize(df)
    done = done[done["status"] == DONE].copy()
    done["task"] = done["task"].fillna(DEFAULT_TASK)
    rows = []
    for _, group in done.groupby(list(ROW_KEYS), dropna=False, sort=False):
        variants = group["params/trainable"].dropna().unique()
        if len(variants) <= 1:
            rows.append(_row(group))
            continue
        for _, variant in group.groupby("params/trainable", dropna=False, sort=True):
            rows.append(_row(variant, suffix=True))
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if summary.empty:
        return summary
    # best first whichever way the score is better: a loss sorts ascending
    ranked = summary["score_mean"].where(summary["higher_is_better"], -summary["score_mean"])
    summary = (
        summary.assign(_rank=ranked)
        .sort_values(
            ["model", "data", "task", "score_key", "samples_per_class", "_rank", "method"],
            ascending=[True, True, True, True, True, False, True],
            na_position="last",
            kind="stable",
        )
        .drop(columns="_rank")
        .reset_index(drop=True)
    )
    summary["pareto"] = False
    for _, panel in summary.groupby(list(PANEL_KEYS), dropna=False, sort=False):
        mask = pareto_mask(
            panel["params_trainable"], panel["score_mean"], bool(panel["higher_is_better"].iloc[0])
        )
        summary.loc[panel.index, "pareto"] = mask
    summary["pareto"] = summary["pareto"].astype(bool)
    summary["vs_zero_shot"] = vs_zero_shot(summary)
    return summary


def pareto_mask(params, score, higher_is_better: bool = True) -> np.ndarray:
    """Which points no other point dominates (fewer-or-equal params and a better-or-equal
    score, strictly better in one; "better" is higher unless ``higher_is_better`` is false).
    Points with a missing value are never marked.
    """
    p = np.asarray(pd.to_numeric(pd.Series(params), errors="coerce"), dtype=float)
    a = np.asarray(pd.to_numeric(pd.Series(score), errors="coerce"), dtype=float)
    if not higher_is_better:
        a = -a
    valid = np.isfinite(p) & np.isfinite(a)
    mask = np.zeros(len(p), dtype=bool)
    for i in np.flatnonzero(valid):
        dominated = valid & (p <= p[i]) & (a >= a[i]) & ((p < p[i]) | (a > a[i]))
        mask[i] = not dominated.any()
    return mask


def vs_zero_shot(summary: pd.DataFrame) -> pd.Series:
    """Each row's mean score minus its panel's zero-shot row's (the untouched model); a
    panel of one sample count without one is read against its (model, data, task)'s only
    zero-shot row, since the untouched model saw no training samples."""
    out = pd.Series(math.nan, index=summary.index, dtype=float)
    baselines = summary[summary["zero_shot"]]
    if baselines.empty:
        return out
    for _, panel in summary.groupby(list(PANEL_KEYS), dropna=False, sort=False):
        own = baselines.loc[baselines.index.intersection(panel.index)]
        if own.empty:
            first = panel.iloc[0]
            same = (baselines["model"] == first["model"]) & (baselines["data"] == first["data"])
            same &= (baselines["task"] == first["task"]) & (
                baselines["score_key"] == first["score_key"]
            )
            own = baselines[same]
            if len(own) != 1:
                continue
        out.loc[panel.index] = panel["score_mean"] - float(own["score_mean"].iloc[0])
    return out


def _row(group: pd.DataFrame, suffix: bool = False) -> dict:
    first = group.iloc[0]
    trainable = _median(group["params/trainable"])
    method = first["method_name"]
    if suffix:
        method = f"{method} [{human_count(trainable)}]"
    fit = group["time/fit_s"].astype(float).dropna()
    seeds = group["seed"].dropna()
    score_mean, score_std = _mean_std(group["score_value"])
    acc_mean, acc_std = _mean_std(group["test/acc"])
    forgetting_mean, forgetting_std = _mean_std(_column(group, "test/forgetting"))
    return {
        "model": first["model"],
        "method": method,
        "data": first["data"],
        "task": first["task"],
        "samples_per_class": _float(first["data/samples_per_class"]),
        "n": len(group),
        "seeds": sorted(int(s) if float(s).is_integer() else float(s) for s in seeds),
        "score_key": first["score_key"],
        "higher_is_better": bool(first["higher_is_better"]),
        "score_mean": score_mean,
        "score_std": score_std,
        "val_best_key": next((k for k in group["val_best_key"] if isinstance(k, str)), None),
        "val_best_mean": _mean(group["val_best"]),
        "test_acc_mean": acc_mean,
        "test_acc_std": acc_std,
        "test_f1_mean": _mean(group["test/f1"]),
        "val_acc_best_mean": _mean(group["val/acc_best"]),
        "forgetting_mean": forgetting_mean,
        "forgetting_std": forgetting_std,
        "answered_mean": _mean(_column(group, "test/answered")),
        "also": _also(group, first["score_key"]),
        "zero_shot": first["method"] == ZERO_SHOT,
        "vs_zero_shot": math.nan,
        "params_trainable": trainable,
        "params_total": _median(group["params/total"]),
        "params_trainable_pct": _mean(group["params/trainable_pct"]),
        "samples_per_s": _mean(group["speed/train_samples_per_s"]),
        "peak_memory_bytes": _mean(group["memory/peak_bytes"]),
        "checkpoint_bytes": _mean(group["checkpoint/bytes"]),
        "fit_s": _mean(group["time/fit_s"]),
        "fit_s_std": fit.std(ddof=1) if len(fit) > 1 else math.nan,
        "pareto": False,
        "run_dirs": [d for d in group["run_dir"] if isinstance(d, str)],
    }


def _also(group: pd.DataFrame, score_key: str) -> dict[str, tuple[float, float]]:
    """The score on each dataset ``also_test`` added (``<data>/test/<score>``): mean, std."""
    found = {}
    for column in group.columns:
        data, sep, key = str(column).partition("/")
        if sep and key == score_key and data not in ("test", "val", "train"):
            found[data] = _mean_std(group[column])
    return found


def _column(group: pd.DataFrame, key: str) -> pd.Series:
    """A metric only some tasks record (an empty column where no run of the frame has it)."""
    if key not in group.columns:
        return pd.Series(dtype=float)
    return pd.to_numeric(group[key], errors="coerce")


def _mean_std(values: pd.Series) -> tuple[float, float]:
    values = values.astype(float).dropna()
    mean = float(values.mean()) if len(values) else math.nan
    return mean, float(values.std(ddof=1)) if len(values) > 1 else math.nan


def _float(value: object) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def _mean(values: pd.Series) -> float:
    values = values.astype(float).dropna()
    return float(values.mean()) if len(values) else math.nan


def _median(values: pd.Series) -> float:
    values = values.astype(float).dropna()
    return float(values.median()) if len(values) else math.nan
