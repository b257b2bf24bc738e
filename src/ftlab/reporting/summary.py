"""Collapse seeds into one row per compared configuration and mark the Pareto front."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ftlab.records import DONE
from ftlab.reporting.fmt import human_count
from ftlab.reporting.load import normalize

# The configuration a row stands for; seeds are what varies inside a row.
ROW_KEYS = ("model", "method_name", "data", "data/samples_per_class")
# Rows compete for the Pareto front only against rows on the same backbone and data.
PANEL_KEYS = ("model", "data", "samples_per_class")

SUMMARY_COLUMNS = (
    "model", "method", "data", "samples_per_class", "n", "seeds",
    "test_acc_mean", "test_acc_std", "test_f1_mean", "val_acc_best_mean",
    "params_trainable", "params_total", "params_trainable_pct",
    "samples_per_s", "peak_memory_bytes", "checkpoint_bytes", "fit_s", "fit_s_std",
    "pareto", "run_dirs",
)  # fmt: skip


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, data, samples per class) over the ``done`` runs.

    Accuracy is the mean over seeds with the sample standard deviation (ddof=1, NaN for one
    seed). Runs that share a method name but differ in trainable parameters are different
    configurations, not seeds, so they get separate rows, their names suffixed with the
    parameter count. Rows are sorted by model, data, samples per class, then test accuracy
    descending; ``pareto`` marks the rows no other row of the same model and data beats.
    """
    done = normalize(df)
    done = done[done["status"] == DONE]
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
    summary = summary.sort_values(
        ["model", "data", "samples_per_class", "test_acc_mean", "method"],
        ascending=[True, True, True, False, True],
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)
    summary["pareto"] = False
    for _, panel in summary.groupby(list(PANEL_KEYS), dropna=False, sort=False):
        mask = pareto_mask(panel["params_trainable"], panel["test_acc_mean"])
        summary.loc[panel.index, "pareto"] = mask
    summary["pareto"] = summary["pareto"].astype(bool)
    return summary


def pareto_mask(params, acc) -> np.ndarray:
    """Which points no other point dominates (fewer-or-equal params and higher-or-equal
    accuracy, strictly better in one). Points with a missing value are never marked.
    """
    p = np.asarray(pd.to_numeric(pd.Series(params), errors="coerce"), dtype=float)
    a = np.asarray(pd.to_numeric(pd.Series(acc), errors="coerce"), dtype=float)
    valid = np.isfinite(p) & np.isfinite(a)
    mask = np.zeros(len(p), dtype=bool)
    for i in np.flatnonzero(valid):
        dominated = valid & (p <= p[i]) & (a >= a[i]) & ((p < p[i]) | (a > a[i]))
        mask[i] = not dominated.any()
    return mask


def _row(group: pd.DataFrame, suffix: bool = False) -> dict:
    first = group.iloc[0]
    trainable = _median(group["params/trainable"])
    method = first["method_name"]
    if suffix:
        method = f"{method} [{human_count(trainable)}]"
    acc = group["test/acc"].astype(float).dropna()
    fit = group["time/fit_s"].astype(float).dropna()
    seeds = group["seed"].dropna()
    return {
        "model": first["model"],
        "method": method,
        "data": first["data"],
        "samples_per_class": _float(first["data/samples_per_class"]),
        "n": len(group),
        "seeds": sorted(int(s) if float(s).is_integer() else float(s) for s in seeds),
        "test_acc_mean": acc.mean() if len(acc) else math.nan,
        "test_acc_std": acc.std(ddof=1) if len(acc) > 1 else math.nan,
        "test_f1_mean": _mean(group["test/f1"]),
        "val_acc_best_mean": _mean(group["val/acc_best"]),
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


def _float(value: object) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def _mean(values: pd.Series) -> float:
    values = values.astype(float).dropna()
    return float(values.mean()) if len(values) else math.nan


def _median(values: pd.Series) -> float:
    values = values.astype(float).dropna()
    return float(values.median()) if len(values) else math.nan
