"""The comparison plots, drawn on matplotlib's Agg canvas (no display, no pyplot state).

Each figure has one panel per (model, data[, task][, samples per class]) and one legend; a
method keeps its colour and marker across panels and figures. The y axis is the panel's
score (test accuracy, exact match), as the report's tables show it; a zero-shot row (the
untouched model) is a horizontal line, the level each method is read against.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

from ftlab.atomic import atomic_write
from ftlab.reporting.fmt import (
    SCORE_TITLES,
    plot_title,
    samples_per_class,
    score_label,
    score_scale,
    varies,
)

DPI = 150
MARKERS = "osD^vP*Xhp<>"
FRONT_STYLE = {"color": "0.3", "linestyle": "--", "linewidth": 1.3}
BASELINE_STYLE = {"color": "firebrick", "linestyle": ":", "linewidth": 1.6}
BASELINE_LABEL = "zero-shot (untouched model)"


def method_styles(methods: Iterable[str]) -> dict[str, tuple[tuple, str]]:
    """A (colour, marker) per method name, stable for a given set of names."""
    names = sorted({str(m) for m in methods})
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {m: (cmap(i % cmap.N), MARKERS[i % len(MARKERS)]) for i, m in enumerate(names)}


def plot_acc_vs_params(summary: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The score against trainable parameters (log x), with the Pareto front as steps."""
    return _scatter(
        summary,
        path,
        x="params_trainable",
        xlabel="trainable parameters (log scale)",
        suptitle=plot_title(summary, "acc_vs_params"),
        log_x=True,
        front=True,
    )


def plot_acc_vs_time(summary: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The score against wall-clock fit time, with error bars both ways over seeds."""
    times = summary["fit_s"].astype(float)
    times = times[times > 0]
    log_x = len(times) > 0 and times.max() / times.min() > 20
    return _scatter(
        summary,
        path,
        x="fit_s",
        xerr="fit_s_std",
        xlabel="fit time (s" + (", log scale)" if log_x else ")"),
        suptitle=plot_title(summary, "acc_vs_time"),
        log_x=log_x,
        front=False,
    )


def plot_acc_vs_samples(summary: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The score against training samples per class, one line per method (log x).

    Full-data rows (no samples-per-class limit) have no x position and are left out here.
    """
    styles = method_styles(summary["method"])
    axis = _score_axes(summary)
    # Only the (model, data) pairs that have few-shot rows get a panel.
    fewshot = summary[np.isfinite(summary["samples_per_class"].astype(float))]
    panels = _panels(fewshot, ["model", "data", "task", "score_key"])
    fig, axes = _figure(len(panels), plot_title(summary, "acc_vs_samples"))
    used: list[str] = []
    baseline = False
    for ax, (title, panel) in zip(axes, panels):
        scale, ylabel = axis[_axis_key(panel)]
        ticks: set[float] = set()
        baseline |= _baselines(ax, panel, scale)
        for method, rows in panel[~panel["zero_shot"]].groupby("method", sort=True):
            rows = rows.sort_values("samples_per_class")
            rows = rows[np.isfinite(rows["score_mean"].astype(float))]
            if rows.empty:
                continue
            colour, marker = styles[str(method)]
            ax.errorbar(
                rows["samples_per_class"],
                rows["score_mean"] * scale,
                yerr=rows["score_std"].fillna(0.0) * scale,
                color=colour,
                marker=marker,
                markersize=6,
                linewidth=1.6,
                capsize=3,
            )
            ticks.update(rows["samples_per_class"].astype(float))
            used.append(str(method))
        if not ticks:
            _empty(ax, title, "no few-shot runs")
            continue
        ax.set_xscale("log")
        ax.set_xticks(sorted(ticks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.08, y=0.1)
        _decorate(ax, title, "training samples per class (log scale)", ylabel)
    _legend(fig, styles, used, baseline=baseline)
    return _save(fig, path)


def _scatter(summary, path, *, x, xlabel, suptitle, log_x, front, xerr=None) -> Path:
    styles = method_styles(summary["method"])
    axis = _score_axes(summary)
    panels = _panels(summary, ["model", "data", "task", "score_key", "samples_per_class"])
    fig, axes = _figure(len(panels), suptitle)
    used: list[str] = []
    baseline = False
    for ax, (title, panel) in zip(axes, panels):
        scale, ylabel = axis[_axis_key(panel)]
        xs = panel[x].astype(float)
        ok = np.isfinite(xs) & np.isfinite(panel["score_mean"].astype(float))
        # the untouched model trains nothing: a level to read against, not a point
        ok &= ~panel["zero_shot"].astype(bool)
        points = panel[ok & (xs > 0)] if log_x else panel[ok]
        if points.empty:
            _empty(ax, title, f"no runs with {xlabel.split(' (')[0]}")
            continue
        baseline |= _baselines(ax, panel, scale)
        panel = points
        for r in panel.itertuples(index=False):
            colour, marker = styles[str(r.method)]
            y = r.score_mean * scale
            ax.errorbar(
                getattr(r, x),
                y,
                yerr=0.0 if pd.isna(r.score_std) else r.score_std * scale,
                xerr=None if xerr is None or pd.isna(getattr(r, xerr)) else getattr(r, xerr),
                color=colour,
                marker=marker,
                markersize=8,
                capsize=3,
                linestyle="none",
                zorder=3,
            )
            ax.annotate(
                str(r.method),
                (getattr(r, x), y),
                xytext=(7, 5),
                textcoords="offset points",
                fontsize=8,
                color="0.15",
                # A light box keeps the label legible where the Pareto line runs through it.
                bbox={
                    "boxstyle": "round,pad=0.15",
                    "facecolor": "white",
                    "edgecolor": "none",
                    "alpha": 0.75,
                },
                zorder=4,
            )
            used.append(str(r.method))
        if front:
            pts = panel[panel["pareto"]].sort_values(x)
            ax.step(pts[x], pts["score_mean"] * scale, where="post", zorder=2, **FRONT_STYLE)
        if log_x:
            ax.set_xscale("log")
            if x == "params_trainable":
                ax.xaxis.set_major_formatter(FuncFormatter(_count_tick))
        ax.margins(x=0.15, y=0.12)
        _decorate(ax, title, xlabel, ylabel)
    _legend(fig, styles, used, front=front, baseline=baseline)
    return _save(fig, path)


def _panels(summary: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    show_spc = "samples_per_class" in keys and varies(summary["samples_per_class"])
    show_task = summary["task"].nunique(dropna=False) > 1
    panels = []
    for _, panel in summary.groupby(keys, dropna=False, sort=False):
        first = panel.iloc[0]
        title = f"{first['model']} · {first['data']}"
        if show_task:
            title += f" · {first['task']}"
        if show_spc:
            spc = samples_per_class(first["samples_per_class"])
            title += " · all samples" if spc == "all" else f" · {spc} samples/class"
        panels.append((title, panel))
    return panels


def _figure(n: int, suptitle: str) -> tuple[Figure, list]:
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(6.4 * ncols + 2.0, 4.6 * nrows + 0.4), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(suptitle, fontsize=13, fontweight="bold")
    return fig, axes[:n]


def _axis_key(panel: pd.DataFrame) -> tuple:
    first = panel.iloc[0]
    return first["task"], first["score_key"]


def _score_axes(summary: pd.DataFrame) -> dict[tuple, tuple[float, str]]:
    """The scale and y label per (task, score), the same as the report's tables use."""
    axes = {}
    for key, group in summary.groupby(["task", "score_key"], dropna=False, sort=False):
        scale = score_scale(group)
        label = SCORE_TITLES.get(key[1], score_label(key[1]))
        axes[key] = (scale, f"{label} (%)" if scale == 100.0 else label)
    return axes


def _baselines(ax, panel: pd.DataFrame, scale: float) -> bool:
    """The panel's zero-shot level as a horizontal line; whether it had one."""
    levels = panel.loc[panel["zero_shot"].astype(bool), "score_mean"].astype(float).dropna()
    for level in levels:
        ax.axhline(level * scale, zorder=1, **BASELINE_STYLE)
    return len(levels) > 0


def _decorate(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def _empty(ax, title: str, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_title(title, fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(
    fig: Figure, styles: dict, used: list[str], front: bool = False, baseline: bool = False
) -> None:
    handles = [
        Line2D([], [], color=styles[m][0], marker=styles[m][1], linestyle="", markersize=7, label=m)
        for m in sorted(set(used))
    ]
    if front:
        handles.append(Line2D([], [], label="Pareto front", **FRONT_STYLE))
    if baseline:
        handles.append(Line2D([], [], label=BASELINE_LABEL, **BASELINE_STYLE))
    if handles:
        fig.legend(handles=handles, loc="outside right upper", title="method", frameon=False)


def _count_tick(value: float, _pos: object) -> str:
    for unit, base in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= base:
            return f"{value / base:g}{unit}"
    return f"{value:g}"


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
