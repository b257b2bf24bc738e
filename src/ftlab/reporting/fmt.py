"""Numbers as people read them, and the comparison table's cells (shared by markdown and rich)."""

from __future__ import annotations

import pandas as pd

DASH = "—"
PARETO_MARK = "★"


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


def samples_per_class(value: object) -> str:
    return "all" if _missing(value) else f"{float(value):g}"  # type: ignore[arg-type]


def varies(values: pd.Series) -> bool:
    """More than one distinct value, a missing value counting as one of them."""
    return values.astype(float).fillna(-1.0).nunique() > 1


def table(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of the comparison table, one list per summary row."""
    acc_scale = percent_scale(summary["test_acc_mean"], summary["val_acc_best_mean"])
    unit = " (%)" if acc_scale == 100.0 else ""
    show_spc = varies(summary["samples_per_class"])
    show_f1 = summary["test_f1_mean"].notna().any()
    f1_scale = percent_scale(summary["test_f1_mean"])
    headers = [PARETO_MARK, "model", "method", "data"]
    headers += ["samples/class"] if show_spc else []
    headers += ["seeds", f"test acc{unit}"]
    headers += ["test F1" + (" (%)" if f1_scale == 100.0 else "")] if show_f1 else []
    headers += [f"best val acc{unit}", "trainable params", "% of total", "samples/s"]
    headers += ["peak memory", "checkpoint", "fit time (s)"]
    rows = []
    for r in summary.itertuples(index=False):
        cells = [PARETO_MARK if r.pareto else "", _name(r.model), _name(r.method), _name(r.data)]
        cells += [samples_per_class(r.samples_per_class)] if show_spc else []
        cells += [str(r.n), mean_std(r.test_acc_mean, r.test_acc_std, acc_scale)]
        cells += [number(r.test_f1_mean * f1_scale, 2)] if show_f1 else []
        cells += [number(r.val_acc_best_mean * acc_scale, 2)]
        cells += [human_count(r.params_trainable), pct(r.params_trainable_pct)]
        cells += [number(r.samples_per_s, 0 if (r.samples_per_s or 0) >= 100 else 1)]
        cells += [human_bytes(r.peak_memory_bytes), human_bytes(r.checkpoint_bytes)]
        cells += [number(r.fit_s, 1)]
        rows.append(cells)
    return headers, rows


def _name(value: object) -> str:
    return "?" if _missing(value) else str(value)
