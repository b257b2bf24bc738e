"""Numbers as people read them, and the comparison table's cells (shared by markdown and rich)."""

from __future__ import annotations

import math

import pandas as pd

from ftlab.reporting.load import GENERATIVE_TASKS, ZERO_SHOT, higher_is_better, metric_name
from ftlab.reporting.stats import MAX_SEEDS, Paired

DASH = "—"
PARETO_MARK = "★"
#: a row off the front that its paired interval cannot tell apart from the front
FRONT_TIE_MARK = "☆"


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or other container is a value, not a gap
        return False


def _scaled(value: float, base: float, units: tuple[str, ...], digits: int) -> str:
    for unit in units[:-1]:
        # Compare after rounding so that 999_960 reads "1.0 M", not "1000.0 K".
        if abs(round(value, digits)) < base:
            return f"{value:.{digits}f} {unit}"
        value /= base
    return f"{value:.{digits}f} {units[-1]}"


def human_count(n: object, digits: int = 1) -> str:
    """A parameter count: ``950``, ``4.0 K``, ``1.2 M``, ``86.6 M``, ``7.0 B``."""
    if _missing(n):
        return DASH
    n = float(n)  # type: ignore[arg-type]
    if abs(n) < 1000:
        return f"{n:.0f}"
    return _scaled(n / 1000, 1000, ("K", "M", "B", "T"), digits)


def human_bytes(n: object, digits: int = 1) -> str:
    """A size in binary units: ``512 B``, ``4.0 KiB``, ``1.5 MiB``, ``2.3 GiB``."""
    if _missing(n):
        return DASH
    n = float(n)  # type: ignore[arg-type]
    if abs(n) < 1024:
        return f"{n:.0f} B"
    return _scaled(n / 1024, 1024, ("KiB", "MiB", "GiB", "TiB", "PiB"), digits)


def percent_scale(*columns: pd.Series) -> float:
    """100 when metrics are fractions in [0, 1] (shown as percent), 1 when already percent."""
    values = pd.concat([c.astype(float) for c in columns]).dropna()
    return 100.0 if values.empty or values.abs().max() <= 1.0 else 1.0


def number(value: object, digits: int = 1) -> str:
    if _missing(value):
        return DASH
    value = float(value)  # type: ignore[arg-type]
    return f"{value:,.{digits}f}"


def pct(value: object) -> str:
    """A share of the total: ``100%``, ``12.3%``, ``0.0421%`` (three significant digits)."""
    return DASH if _missing(value) else f"{float(value):.3g}%"  # type: ignore[arg-type]


def mean_std(mean: object, std: object, scale: float, digits: int = 2) -> str:
    """``87.53 ± 0.41``; the std is a dash when there was one seed."""
    if _missing(mean):
        return DASH
    sd = DASH if _missing(std) else f"{float(std) * scale:.{digits}f}"  # type: ignore[arg-type]
    return f"{float(mean) * scale:.{digits}f} ± {sd}"  # type: ignore[arg-type]


def mean_interval(mean: object, low: object, high: object, scale: float, digits: int = 2) -> str:
    """``87.53 [85.20, 89.86]``: a mean and its 95% interval (``[—]`` for one seed)."""
    if _missing(mean):
        return DASH
    shown = f"{float(mean) * scale:.{digits}f}"  # type: ignore[arg-type]
    if _missing(low) or _missing(high):
        return f"{shown} [{DASH}]"
    return f"{shown} [{float(low) * scale:.{digits}f}, {float(high) * scale:.{digits}f}]"  # type: ignore[arg-type]


def versus(found: Paired | None, scale: float, digits: int = 2) -> str:
    """A paired difference as a cell: ``+4.67 [0.16, 9.17]`` where its interval excludes 0,
    ``+1.33 (n.d., ≈8 seeds)`` where it does not (with roughly how many seeds would
    separate the two), ``+1.33 (1 seed)`` where one seed is all they share."""
    if found is None or _missing(found.diff):
        return DASH
    diff = f"{found.diff * scale:+.{digits}f}"
    if not found.has_interval:
        return f"{diff} ({found.n} seed{'s' if found.n != 1 else ''})"
    if found.distinguishable:
        return f"{diff} [{found.low * scale:.{digits}f}, {found.high * scale:.{digits}f}]"
    needed = found.seeds_needed
    if needed is None:
        return f"{diff} (n.d.)"
    count = f">{MAX_SEEDS}" if needed > MAX_SEEDS else f"≈{needed}"
    return f"{diff} (n.d., {count} seeds)"


def samples_per_class(value: object) -> str:
    return "all" if _missing(value) else f"{float(value):g}"  # type: ignore[arg-type]


def varies(values: pd.Series) -> bool:
    """More than one distinct value, a missing value counting as one of them."""
    return values.astype(float).fillna(-1.0).nunique() > 1


#: metrics that are shares of the examples, shown in percent
FRACTIONS = frozenset({"acc", "exact_match", "answered", "f1"})
#: what the vs-reference cell of the reference row itself says, and the vs-best cell of
#: the best row
BASELINE, BEST = "baseline", "best"
#: the reference rows by the names their columns use
REFERENCE_NAMES = {ZERO_SHOT: "zero-shot", "linear_probe": "linear probe"}
#: the score headers people know by another name than ``test <metric>``
SCORE_LABELS = {"test/exact_match": "exact match"}
#: the scores plot titles and axes name in words
SCORE_TITLES = {"test/acc": "test accuracy", "test/exact_match": "exact match"}
#: what each plot draws the score against
PLOT_SUBJECTS = {
    "acc_vs_params": "trainable parameters",
    "acc_vs_time": "training time",
    "acc_vs_samples": "training samples per class",
}


def score_label(key: object) -> str:
    """A metric key as a header says it: ``test/acc`` -> ``test acc``, ``test/exact_match``
    -> ``exact match``, ``val/loss_best`` -> ``best val loss``."""
    key = str(key)
    if key in SCORE_LABELS:
        return SCORE_LABELS[key]
    split, _, name = key.partition("/")
    if name.endswith("_best"):
        return f"best {split} {name.removesuffix('_best').replace('_', ' ')}"
    return f"{split} {name.replace('_', ' ')}"


def score_title(summary: pd.DataFrame) -> str:
    """The score of a whole report in words: ``test accuracy``, ``exact match``, or
    ``test score`` where its tables score different metrics."""
    keys = set(summary["score_key"].dropna()) or {"test/acc"}
    if len(keys) > 1:
        return "test score"
    key = keys.pop()
    return SCORE_TITLES.get(key, score_label(key))


def plot_title(summary: pd.DataFrame, key: str) -> str:
    """A plot's title: ``Test accuracy vs trainable parameters``, ``Exact match vs ...``."""
    title = f"{score_title(summary)} vs {PLOT_SUBJECTS.get(key, key)}"
    return title[0].upper() + title[1:]


def score_scale(group: pd.DataFrame) -> float:
    """How the group's scores are shown: 100 for a share in [0, 1] (accuracy, exact match),
    1 for a value already in percent or one that is no share (a loss)."""
    key = _first(group["score_key"], "test/acc")
    if metric_name(key) not in FRACTIONS:
        return 1.0
    columns = [group["score_mean"]]
    if metric_name(_first(group["val_best_key"], key)) == metric_name(key):
        columns.append(group["val_best_mean"])
    return percent_scale(*columns)


def table_groups(summary: pd.DataFrame) -> list[pd.DataFrame]:
    """The summary as one table per (task, score): each table's headers name its score."""
    keys = ["task", "score_key"]
    return [g for _, g in summary.groupby(keys, dropna=False, sort=False)]


def table(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of the comparison table, one list per summary row; the rows
    share one task and score (:func:`table_groups`)."""
    score_key = _first(summary["score_key"], "test/acc")
    val_key = _first(summary["val_best_key"], f"val/{metric_name(score_key)}_best")
    scale = score_scale(summary)
    unit = " (%)" if scale == 100.0 else ""
    digits = 2 if metric_name(score_key) in FRACTIONS else 3
    same_metric = metric_name(val_key) == metric_name(score_key)
    val_scale = scale if same_metric else 1.0
    val_digits = digits if same_metric else (2 if metric_name(val_key) in FRACTIONS else 3)
    show_spc = varies(summary["samples_per_class"])
    show_ref = bool(summary["reference"].notna().any())
    show_best = bool(summary["vs_best"].notna().any())
    show_f1 = summary["test_f1_mean"].notna().any()
    show_answered = summary["answered_mean"].notna().any()
    show_forgetting = summary["forgetting_mean"].notna().any()
    also = sorted({name for found in summary["also"] for name in (found or {})})
    f1_scale = percent_scale(summary["test_f1_mean"])
    answered_scale = percent_scale(summary["answered_mean"])
    headers = [PARETO_MARK, "model", "method", "data"]
    headers += ["samples/class"] if show_spc else []
    headers += ["seeds", f"{score_label(score_key)}{unit}"]
    headers += [reference_header(summary)] if show_ref else []
    headers += ["vs best"] if show_best else []
    headers += [f"{name}: {score_label(score_key)}{unit}" for name in also]
    headers += ["test F1" + (" (%)" if f1_scale == 100.0 else "")] if show_f1 else []
    headers += ["answered" + (" (%)" if answered_scale == 100.0 else "")] if show_answered else []
    headers += ["forgetting"] if show_forgetting else []
    headers += [f"{score_label(val_key)}{' (%)' if val_scale == 100.0 else ''}"]
    headers += ["trainable params", "% of total", "samples/s"]
    headers += ["peak memory", "checkpoint", "fit time (s)"]
    rows = []
    for r in summary.itertuples(index=False):
        mark = PARETO_MARK if r.pareto else FRONT_TIE_MARK if r.front_tie else ""
        cells = [mark, _name(r.model), _name(r.method), _name(r.data)]
        cells += [samples_per_class(r.samples_per_class)] if show_spc else []
        cells += [str(r.n), mean_interval(r.score_mean, r.score_low, r.score_high, scale, digits)]
        if show_ref:
            cells += [BASELINE if r.is_reference else versus(r.vs_reference, scale, digits)]
        if show_best:
            best = r.vs_best is None and not _missing(r.score_mean)
            cells += [BEST if best else versus(r.vs_best, scale, digits)]
        nothing = (math.nan, math.nan, math.nan)
        cells += [mean_interval(*(r.also or {}).get(n, nothing), scale, digits) for n in also]
        cells += [number(r.test_f1_mean * f1_scale, 2)] if show_f1 else []
        cells += [number(r.answered_mean * answered_scale, 1)] if show_answered else []
        if show_forgetting:
            cells += [mean_interval(r.forgetting_mean, r.forgetting_low, r.forgetting_high, 1, 3)]
        cells += [number(r.val_best_mean * val_scale, val_digits)]
        cells += [human_count(r.params_trainable), pct(r.params_trainable_pct)]
        cells += [number(r.samples_per_s, 0 if (r.samples_per_s or 0) >= 100 else 1)]
        cells += [human_bytes(r.peak_memory_bytes), human_bytes(r.checkpoint_bytes)]
        cells += [number(r.fit_s, 1)]
        rows.append(cells)
    return headers, rows


def reference_header(summary: pd.DataFrame) -> str:
    """``vs linear probe``, ``vs zero-shot``: the column of differences to the reference
    row (``vs reference`` where the table's panels have different ones)."""
    names = set(summary["reference"].dropna())
    if len(names) != 1:
        return "vs reference"
    return f"vs {REFERENCE_NAMES.get(name := names.pop(), name)}"


def table_notes(summary: pd.DataFrame) -> list[str]:
    """What the table's marks and task-specific columns mean, one line each, and how to add
    the baseline a generative task's table lacks."""
    score_key = _first(summary["score_key"], "test/acc")
    label = score_label(score_key)
    units = ", in percentage points" if score_scale(summary) == 100.0 else ""
    notes = []
    if not higher_is_better(score_key):
        notes.append(
            f"Lower {label} is better: rows are sorted by it ascending, the Pareto front "
            f"looks for a lower one, and a difference below 0 is a gain."
        )
    if summary["front_tie"].any():
        notes.append(
            f"{FRONT_TIE_MARK}: off the Pareto front, but its paired interval to the front "
            f"row at its size (the best {PARETO_MARK} row with as few or fewer trainable "
            f"parameters) contains 0: on these seeds it cannot be told apart from the front."
        )
    if summary["reference"].notna().any():
        header = reference_header(summary)
        if summary["zero_shot"].any():
            what = "the untouched model, tested without training; its score is the same "
            what += "for every seed"
        else:
            what = "the row every method should beat"
        notes.append(
            f"{header}: the row's {label} minus the {header[3:]} row's{units}, paired by seed "
            f"(marked {BASELINE}: {what})."
        )
    if summary["vs_best"].notna().any():
        notes.append(
            f"vs best: the row's {label} minus the best row's (marked {BEST}) of the same "
            f"model, data and task{units}, paired by seed."
        )
    if summary["answered_mean"].notna().any():
        notes.append("answered: the share of test generations an answer could be read from.")
    if summary["forgetting_mean"].notna().any():
        notes.append(
            "forgetting: how much the cross-entropy on general text rose from the untouched "
            "model's (mean [95% interval] over seeds); lower is better, below 0 it predicts "
            "general text better than before."
        )
    task = _first(summary["task"], "")
    if task in GENERATIVE_TASKS:
        missing = [
            f"{_name(p['model'].iloc[0])} · {_name(p['data'].iloc[0])}"
            for _, p in summary.groupby(["model", "data"], dropna=False, sort=False)
            if not p["zero_shot"].any()
        ]
        if missing:
            notes.append(
                f"No zero-shot row for {', '.join(missing)}: add `method=zero_shot` to the "
                f"sweep (`ftlab-train -m task={task} method=zero_shot,...`) for the untouched "
                "model's baseline."
            )
    return notes


def _first(values: pd.Series, default: str) -> str:
    """The most common value of a text column (``default`` where it has none)."""
    present = values.dropna()
    return str(present.mode().iloc[0]) if len(present) else default


def _name(value: object) -> str:
    return "?" if _missing(value) else str(value)
