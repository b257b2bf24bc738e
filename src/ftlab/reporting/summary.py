"""Collapse seeds into one row per compared configuration, compare the rows, and mark the
Pareto front and the rows that cannot be told apart from it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ftlab.records import DONE
from ftlab.reporting.fmt import human_count
from ftlab.reporting.load import DEFAULT_TASK, GENERATIVE_TASKS, SELECT, ZERO_SHOT, normalize
from ftlab.reporting.stats import Paired, mean_ci, paired

# The configuration a row stands for; seeds are what varies inside a row.
ROW_KEYS = ("model", "method_name", "data", "task", "score_key", "data/samples_per_class")
# Rows compete for the Pareto front only against rows on the same backbone, data and task
# (a task's score is its own: exact match and accuracy are not compared).
PANEL_KEYS = ("model", "data", "task", "score_key", "samples_per_class")
#: what every row is compared with, per task: the first of these methods the panel has
REFERENCES = {"classify": ("linear_probe", ZERO_SHOT)}
GENERATIVE_REFERENCES = (ZERO_SHOT, "linear_probe")

SUMMARY_COLUMNS = (
    "model", "method", "method_id", "method_kind", "data", "task", "samples_per_class", "n",
    "seeds", "score_key", "higher_is_better", "score_mean", "score_std", "score_low",
    "score_high", "score_by_seed", "val_best_key", "val_best_mean",
    "test_acc_mean", "test_acc_std", "test_f1_mean", "val_acc_best_mean",
    "forgetting_mean", "forgetting_std", "forgetting_low", "forgetting_high", "answered_mean",
    "also", "zero_shot", "vs_zero_shot", "reference", "is_reference", "vs_reference", "vs_best",
    "params_trainable", "params_total", "params_trainable_pct",
    "samples_per_s", "peak_memory_bytes", "checkpoint_bytes", "fit_s", "fit_s_std",
    "pareto", "front_tie", "run_dirs",
)  # fmt: skip


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, data, task, samples per class) over the ``done`` runs
    (a tuned sweep's learning-rate selection runs left out: they were never tested).

    ``score_*`` is each run's score (its task's headline test metric: test accuracy,
    exact match; see :func:`~ftlab.reporting.load.normalize`): the mean over seeds, the
    sample standard deviation (ddof=1, NaN for one seed), the 95% t interval of the mean
    (``score_low``, ``score_high``) and the score by seed; ``test_acc_*`` is ``test/acc``
    itself. Runs that share a method name but differ in trainable parameters are different
    configurations, not seeds, so they get separate rows, their names suffixed with the
    parameter count. Rows are sorted by model, data, task, samples per class, then score,
    best first; ``pareto`` marks the rows no other row of the same model, data and task
    beats. ``zero_shot`` marks the untouched model's row and ``vs_zero_shot`` is every
    row's mean score minus it, in the score's units (NaN where a panel has none).
    ``vs_best`` and ``vs_reference`` compare each row with its panel's best and reference
    rows, paired by seed (:func:`compare`); ``front_tie`` marks the rows off the front that
    cannot be told apart from it (:func:`front_ties`).
    """
    done = normalize(df)
    done = done[(done["status"] == DONE) & (done["stage"] != SELECT)].copy()
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
    summary["front_tie"] = False
    for _, panel in summary.groupby(list(PANEL_KEYS), dropna=False, sort=False):
        front, ties = front_ties(panel, "params_trainable")
        summary.loc[panel.index, "pareto"] = front
        summary.loc[panel.index, "front_tie"] = ties
    summary["pareto"] = summary["pareto"].astype(bool)
    summary["front_tie"] = summary["front_tie"].astype(bool)
    summary["vs_zero_shot"] = vs_zero_shot(summary)
    _compare_rows(summary)
    return summary


def compare(row: pd.Series, other: pd.Series) -> Paired | None:
    """``row``'s score minus ``other``'s, paired by seed over the seeds both have
    (:func:`~ftlab.reporting.stats.paired`); the untouched model's score (a zero-shot row)
    does not depend on the seed, so it is one number taken from every seed of the other."""
    mine, theirs = _seed_scores(row), _seed_scores(other)
    if isinstance(mine, float):
        if isinstance(theirs, float):
            return None
        found = paired(theirs, mine)
        return None if found is None else found.flipped()
    return paired(mine, theirs)


def front_ties(panel: pd.DataFrame, x: str) -> tuple[np.ndarray, np.ndarray]:
    """The panel's Pareto front in ``x`` (fewer is better) and score, and the rows off it
    whose paired interval to the front at their ``x`` (the best front row with as few or
    fewer) contains 0: they cannot be told apart from the front on these seeds."""
    higher = bool(panel["higher_is_better"].iloc[0])
    front = pareto_mask(panel[x], panel["score_mean"], higher)
    ties = np.zeros(len(panel), dtype=bool)
    xs = pd.to_numeric(panel[x], errors="coerce").to_numpy(dtype=float)
    score = panel["score_mean"].to_numpy(dtype=float)
    for i in np.flatnonzero(~front & np.isfinite(xs) & np.isfinite(score)):
        below = np.flatnonzero(front & (xs <= xs[i]))
        if not len(below):
            continue
        level = below[np.argmax(score[below] if higher else -score[below])]
        found = compare(panel.iloc[i], panel.iloc[level])
        ties[i] = found is not None and found.has_interval and not found.distinguishable
    return front, ties


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
    for _, panel in summary.groupby(list(PANEL_KEYS), dropna=False, sort=False):
        own = _zero_shot_row(summary, panel)
        if own is not None:
            out.loc[panel.index] = panel["score_mean"] - float(own["score_mean"])
    return out


def _zero_shot_row(summary: pd.DataFrame, panel: pd.DataFrame) -> pd.Series | None:
    own = panel[panel["zero_shot"]]
    if own.empty:
        first = panel.iloc[0]
        same = summary["zero_shot"] & (summary["model"] == first["model"])
        same &= (summary["data"] == first["data"]) & (summary["task"] == first["task"])
        same &= summary["score_key"] == first["score_key"]
        own = summary[same]
        if len(own) != 1:
            return None
    return own.iloc[0]


def _reference_row(summary: pd.DataFrame, panel: pd.DataFrame) -> pd.Series | None:
    """The row a panel's rows are read against: the linear probe for classification, the
    untouched model for a generative task (:data:`REFERENCES`), whichever the panel has."""
    task = panel["task"].iloc[0]
    wanted = GENERATIVE_REFERENCES if task in GENERATIVE_TASKS else REFERENCES["classify"]
    for method in wanted:
        if method == ZERO_SHOT:
            found = _zero_shot_row(summary, panel)
            if found is not None:
                return found
            continue
        rows = panel[(panel["method_id"] == method) & panel["score_mean"].notna()]
        if len(rows):
            return rows.iloc[0]
    return None


def _compare_rows(summary: pd.DataFrame) -> None:
    """Fill ``reference``, ``is_reference``, ``vs_reference`` and ``vs_best`` in place."""
    reference: list[str | None] = [None] * len(summary)
    vs_reference: list[Paired | None] = [None] * len(summary)
    vs_best: list[Paired | None] = [None] * len(summary)
    is_reference = np.zeros(len(summary), dtype=bool)
    position = {index: i for i, index in enumerate(summary.index)}
    for _, panel in summary.groupby(list(PANEL_KEYS), dropna=False, sort=False):
        ref = _reference_row(summary, panel)
        scored = panel[panel["score_mean"].notna()]
        best = scored.iloc[0] if len(scored) else None  # rows are sorted best first
        if ref is not None:
            is_reference[position[ref.name]] = True
        for index, row in panel.iterrows():
            i = position[index]
            if ref is not None:
                reference[i] = str(ref["method"])
                if index != ref.name:
                    vs_reference[i] = compare(row, ref)
            if best is not None and index != best.name:
                vs_best[i] = compare(row, best)
    summary["reference"] = pd.Series(reference, index=summary.index, dtype=object)
    summary["is_reference"] = is_reference
    summary["vs_reference"] = pd.Series(vs_reference, index=summary.index, dtype=object)
    summary["vs_best"] = pd.Series(vs_best, index=summary.index, dtype=object)


def _seed_scores(row: pd.Series) -> dict | float:
    """A row's score by seed, or its mean where the row is the untouched model's."""
    return float(row["score_mean"]) if row["zero_shot"] else dict(row["score_by_seed"] or {})


def _row(group: pd.DataFrame, suffix: bool = False) -> dict:
    first = group.iloc[0]
    trainable = _median(group["params/trainable"])
    method = first["method_name"]
    if suffix:
        method = f"{method} [{human_count(trainable)}]"
    fit = group["time/fit_s"].astype(float).dropna()
    seeds = group["seed"].dropna()
    score_mean, score_std = _mean_std(group["score_value"])
    score_ci = mean_ci(group["score_value"])
    acc_mean, acc_std = _mean_std(group["test/acc"])
    forgetting = _column(group, "test/forgetting")
    forgetting_mean, forgetting_std = _mean_std(forgetting)
    forgetting_ci = mean_ci(forgetting)
    return {
        "model": first["model"],
        "method": method,
        "method_id": first["method"],
        "method_kind": _mode(group["method_kind"]),
        "data": first["data"],
        "task": first["task"],
        "samples_per_class": _float(first["data/samples_per_class"]),
        "n": len(group),
        "seeds": sorted(int(s) if float(s).is_integer() else float(s) for s in seeds),
        "score_key": first["score_key"],
        "higher_is_better": bool(first["higher_is_better"]),
        "score_mean": score_mean,
        "score_std": score_std,
        "score_low": score_ci.low,
        "score_high": score_ci.high,
        "score_by_seed": _by_seed(group),
        "val_best_key": next((k for k in group["val_best_key"] if isinstance(k, str)), None),
        "val_best_mean": _mean(group["val_best"]),
        "test_acc_mean": acc_mean,
        "test_acc_std": acc_std,
        "test_f1_mean": _mean(group["test/f1"]),
        "val_acc_best_mean": _mean(group["val/acc_best"]),
        "forgetting_mean": forgetting_mean,
        "forgetting_std": forgetting_std,
        "forgetting_low": forgetting_ci.low,
        "forgetting_high": forgetting_ci.high,
        "answered_mean": _mean(_column(group, "test/answered")),
        "also": _also(group, first["score_key"]),
        "zero_shot": first["method"] == ZERO_SHOT,
        "vs_zero_shot": math.nan,
        "reference": None,
        "is_reference": False,
        "vs_reference": None,
        "vs_best": None,
        "params_trainable": trainable,
        "params_total": _median(group["params/total"]),
        "params_trainable_pct": _mean(group["params/trainable_pct"]),
        "samples_per_s": _mean(group["speed/train_samples_per_s"]),
        "peak_memory_bytes": _mean(group["memory/peak_bytes"]),
        "checkpoint_bytes": _mean(group["checkpoint/bytes"]),
        "fit_s": _mean(group["time/fit_s"]),
        "fit_s_std": fit.std(ddof=1) if len(fit) > 1 else math.nan,
        "pareto": False,
        "front_tie": False,
        "run_dirs": [d for d in group["run_dir"] if isinstance(d, str)],
    }


def _also(group: pd.DataFrame, score_key: str) -> dict[str, tuple[float, float, float]]:
    """The score on each dataset ``also_test`` added (``<data>/test/<score>``): the mean
    and its 95% interval's bounds."""
    found = {}
    for column in group.columns:
        data, sep, key = str(column).partition("/")
        if sep and key == score_key and data not in ("test", "val", "train"):
            ci = mean_ci(pd.to_numeric(group[column], errors="coerce"))
            found[data] = (ci.mean, ci.low, ci.high)
    return found


def _by_seed(group: pd.DataFrame) -> dict[int | float, float]:
    """The score of each seed (the mean where a seed ran twice); runs without a seed or a
    score have nothing to pair."""
    runs = group[["seed", "score_value"]].astype(float).dropna()
    means = runs.groupby("seed")["score_value"].mean()
    return {int(s) if float(s).is_integer() else float(s): float(v) for s, v in means.items()}


def _mode(values: pd.Series) -> str | None:
    present = values.dropna()
    return str(present.mode().iloc[0]) if len(present) else None


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
