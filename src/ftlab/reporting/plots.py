"""The comparison plots, drawn on matplotlib's Agg canvas (no display, no pyplot state).

Each figure has one panel per (model, data[, task][, samples per class]) and one legend,
outside the panels. Built to stay readable with 30 methods:

- a point's colour is its method's kind of mechanism (:data:`KIND_COLOURS`), the same in
  every panel and figure, so six colours cover any number of methods;
- its fill says where it stands against the panel's Pareto front: filled with a dark edge
  on the front, hollow where its paired interval to the front at its size contains 0 (it
  cannot be told apart from the front on these seeds), faded below the front;
- only the front, the :data:`LEADERS` best and the reference row are named, each label
  placed where it overlaps no other label or point (:func:`place_labels`), with a leader
  line where it had to move away.

The y axis is the panel's score (test accuracy, exact match), as the report's tables show
it; a zero-shot row (the untouched model) is a horizontal line, the level each method is
read against.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter
from matplotlib.transforms import Bbox

from ftlab.atomic import atomic_write
from ftlab.reporting.fmt import (
    SCORE_TITLES,
    plot_title,
    samples_per_class,
    score_label,
    score_scale,
    varies,
)
from ftlab.reporting.load import KINDS
from ftlab.reporting.summary import pareto_mask

DPI = 150
#: one colour per kind of mechanism (Okabe-Ito: told apart with any colour vision)
KIND_COLOURS = {
    "unfreezing": "#0072B2",
    "reparameterising": "#D55E00",
    "additive": "#009E73",
    "soft prompts": "#CC79A7",
    "selective": "#E69F00",
    "other": "#7F7F7F",
}
KIND_LABELS = {
    "unfreezing": "unfreezing (probe, last_n, full)",
    "reparameterising": "reparameterising (LoRA and kin)",
    "additive": "additive (adapters, IA3)",
    "soft prompts": "soft prompts (prompts, prefixes)",
    "selective": "selective (BitFit, LN tuning)",
    "other": "other",
}
#: how many of a panel's best rows are named besides the front and the reference
LEADERS = 5
#: a panel of this many rows or fewer names every row
NAME_ALL = 8
#: what a label artist's gid starts with (tests find the labels by it)
LABEL_GID = "ftlab-label"
#: a method's markers in the few-shot plot, cycled within its kind (colours are shared)
MARKERS = "osD^vP*Xhp<>"
FRONT_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.2}
BASELINE_STYLE = {"color": "0.1", "linestyle": ":", "linewidth": 1.8}
BASELINE_LABEL = "zero-shot (untouched model)"
LABEL_SIZE = 8
#: label offsets tried from a point: rings (in points) and directions, nearest and
#: rightwards first, since names read left to right
RINGS = (6, 12, 22, 34, 48, 64, 84)
ANGLES = (0, 35, -35, 70, -70, 90, -90, 110, -110, 145, -145, 180)
PANEL_SIZE = (7.4, 5.2)
LEGEND_WIDTH = 3.3


def kind_colour(kind: object) -> str:
    """The colour of a method kind (``other``'s grey for one the report does not know)."""
    return KIND_COLOURS.get(str(kind), KIND_COLOURS["other"])


def plot_acc_vs_params(summary: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The score against trainable parameters (log x), with the Pareto front as steps."""
    return _save(figure_acc_vs_params(summary), path)


def plot_acc_vs_time(summary: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The score against wall-clock fit time, with error bars both ways over seeds."""
    return _save(figure_acc_vs_time(summary), path)


def plot_acc_vs_samples(summary: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The score against training samples per class, one line per method (log x)."""
    return _save(figure_acc_vs_samples(summary), path)


def figure_acc_vs_params(summary: pd.DataFrame) -> Figure:
    """:func:`plot_acc_vs_params`'s figure. The front and its ties are the table's (★, ☆)."""
    return _scatter(
        summary,
        x="params_trainable",
        xlabel="trainable parameters (log scale)",
        suptitle=plot_title(summary, "acc_vs_params"),
        log_x=True,
    )


def figure_acc_vs_time(summary: pd.DataFrame) -> Figure:
    """:func:`plot_acc_vs_time`'s figure; its front is the fit-time one (no other method
    scores better in as little time), without ties: fit times are not paired by seed."""
    times = summary["fit_s"].astype(float)
    times = times[times > 0]
    log_x = len(times) > 0 and times.max() / times.min() > 20
    return _scatter(
        summary,
        x="fit_s",
        xerr="fit_s_std",
        xlabel="fit time (s" + (", log scale)" if log_x else ")"),
        suptitle=plot_title(summary, "acc_vs_time"),
        log_x=log_x,
    )


def figure_acc_vs_samples(summary: pd.DataFrame) -> Figure:
    """:func:`plot_acc_vs_samples`'s figure: full-data rows (no samples-per-class limit)
    have no x position and are left out; each line is named at its last point."""
    axis = _score_axes(summary)
    markers = _kind_markers(summary)
    # Only the (model, data) pairs that have few-shot rows get a panel.
    fewshot = summary[np.isfinite(summary["samples_per_class"].astype(float))]
    panels = _panels(fewshot, ["model", "data", "task", "score_key"])
    fig, axes = _figure(len(panels), plot_title(summary, "acc_vs_samples"))
    kinds: set[str] = set()
    baseline = False
    pending = []
    for ax, (title, panel) in zip(axes, panels):
        scale, ylabel = axis[_axis_key(panel)]
        ticks: set[float] = set()
        baseline |= _baselines(ax, panel, scale)
        ends = []
        for method, rows in panel[~panel["zero_shot"]].groupby("method", sort=True):
            rows = rows.sort_values("samples_per_class")
            rows = rows[np.isfinite(rows["score_mean"].astype(float))]
            if rows.empty:
                continue
            kind = str(rows["method_kind"].iloc[0])
            ax.errorbar(
                rows["samples_per_class"],
                rows["score_mean"] * scale,
                yerr=rows["score_std"].fillna(0.0) * scale,
                color=kind_colour(kind),
                marker=markers[str(method)],
                markersize=6,
                linewidth=1.6,
                capsize=3,
                gid=f"point:{method}",
            )
            ticks.update(rows["samples_per_class"].astype(float))
            kinds.add(kind)
            last = rows.iloc[-1]
            ends.append((float(last["samples_per_class"]), last["score_mean"] * scale, method))
        if not ticks:
            _empty(ax, title, "no few-shot runs")
            continue
        ax.set_xscale("log")
        ax.set_xticks(sorted(ticks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.25, y=0.1)
        _decorate(ax, title, "training samples per class (log scale)", ylabel)
        points = [(float(x), float(y)) for x, y in zip(panel["samples_per_class"], panel["score_mean"] * scale) if np.isfinite(x) and np.isfinite(y)]  # fmt: skip
        pending.append((ax, ends, points))
    _legend(fig, kinds, baseline=baseline)
    _freeze(fig)
    for ax, ends, points in pending:
        place_labels(ax, ends, points)
    return fig


def _scatter(summary, *, x, xlabel, suptitle, log_x, xerr=None) -> Figure:
    axis = _score_axes(summary)
    panels = _panels(summary, ["model", "data", "task", "score_key", "samples_per_class"])
    fig, axes = _figure(len(panels), suptitle)
    kinds: set[str] = set()
    baseline = front_drawn = ties_drawn = False
    pending = []
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
        if x == "params_trainable":  # the table's front (★) and ties (☆)
            front = points["pareto"].to_numpy(dtype=bool)
            ties = points["front_tie"].to_numpy(dtype=bool)
        else:
            # Fit times are one noisy measurement per seed, not paired: no ties to claim.
            front = pareto_mask(points[x], points["score_mean"], _higher(points))
            ties = np.zeros(len(points), dtype=bool)
        for r, on_front, tie in zip(points.itertuples(index=False), front, ties):
            kind = str(r.method_kind)
            colour = kind_colour(kind)
            px, py = getattr(r, x), r.score_mean * scale
            sd = 0.0 if pd.isna(r.score_std) else r.score_std * scale
            xsd = None if xerr is None or pd.isna(getattr(r, xerr)) else getattr(r, xerr)
            ax.errorbar(
                px, py, yerr=sd, xerr=xsd, color=colour, alpha=0.45, linewidth=1.0,
                capsize=2, linestyle="none", zorder=2,
            )  # fmt: skip
            ax.plot(px, py, linestyle="none", zorder=3, gid=f"point:{r.method}",
                    **_point_style(colour, on_front, tie))  # fmt: skip
            kinds.add(kind)
        ties_drawn |= bool(ties.any())
        pts = points[front].sort_values(x)
        if len(pts):
            ax.step(pts[x], pts["score_mean"] * scale, where="post", zorder=1, **FRONT_STYLE)
            front_drawn = True
        if log_x:
            ax.set_xscale("log")
            if x == "params_trainable":
                ax.xaxis.set_major_formatter(FuncFormatter(_count_tick))
            # the points set the range: an error bar as wide as its mean reaches to 0
            ax.set_xlim(*_log_range(points[x].astype(float)))
        ax.margins(x=0.08, y=0.08)
        _decorate(ax, title, xlabel, ylabel)
        named = _named(points, front)
        labels = [(float(getattr(r, x)), r.score_mean * scale, str(r.method)) for r in named]
        everything = list(zip(points[x].astype(float), points["score_mean"] * scale))
        pending.append((ax, labels, everything))
    _legend(fig, kinds, front=front_drawn, ties=ties_drawn, baseline=baseline, named=True)
    _freeze(fig)
    for ax, labels, everything in pending:
        place_labels(ax, labels, everything)
    return fig


def _log_range(values: pd.Series, pad: float = 0.08) -> tuple[float, float]:
    low, high = math.log10(values.min()), math.log10(values.max())
    margin = pad * max(high - low, 1.0)
    return 10 ** (low - margin), 10 ** (high + margin)


def _higher(points: pd.DataFrame) -> bool:
    return bool(points["higher_is_better"].iloc[0])


def _named(points: pd.DataFrame, front: np.ndarray) -> list:
    """The rows a panel names, in the order they get the best spots: the front (fewest
    parameters first), then the best rows, then the reference row."""
    rank = points["score_mean"].where(points["higher_is_better"], -points["score_mean"])
    few = len(points) <= NAME_ALL
    leaders = set(rank.sort_values(ascending=False).index[: len(points) if few else LEADERS])
    chosen = [i for i in points.index[front]]
    chosen += [i for i in points.index if i in leaders and i not in chosen]
    chosen += [i for i in points.index[points["is_reference"]] if i not in chosen]
    return [points.loc[i] for i in chosen]


def _point_style(colour: str, on_front: bool, tie: bool) -> dict:
    if on_front:
        return {"marker": "o", "markersize": 8.5, "color": colour, "markerfacecolor": colour,
                "markeredgecolor": "black", "markeredgewidth": 1.2}  # fmt: skip
    if tie:
        return {"marker": "o", "markersize": 8, "color": colour, "markerfacecolor": "white",
                "markeredgecolor": colour, "markeredgewidth": 2.0}  # fmt: skip
    return {"marker": "o", "markersize": 6.5, "color": colour,
            "markerfacecolor": to_rgba(colour, 0.45), "markeredgecolor": colour,
            "markeredgewidth": 0.8}  # fmt: skip


# -- labels ---------------------------------------------------------------------------------
def place_labels(
    ax, labels: Sequence[tuple[float, float, str]], points: Sequence[tuple[float, float]]
) -> list:
    """Name ``labels`` ((x, y, text) in data coordinates, most important first) so that no
    two overlap and none covers a point of ``points``, inside the panel: each takes the
    nearest free offset of :data:`RINGS` x :data:`ANGLES`, rightwards first; one that must
    sit away from its point gets a leader line. Where no offset is free, the one covering
    fewest points (never a label, if any such remains) is taken. The figure's layout must
    be final (:func:`_freeze`): positions are measured on the canvas."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    px_per_pt = fig.dpi / 72.0
    pad = 0.25 * LABEL_SIZE * px_per_pt  # the label box's (0.2 of the font size) and a hair
    radius = 4.5 * px_per_pt  # about a marker's
    centres = [ax.transData.transform((x, y)) for x, y in points if _finite(x, y)]
    marks = [Bbox.from_extents(cx - radius, cy - radius, cx + radius, cy + radius)
             for cx, cy in centres]  # fmt: skip
    placed: list[Bbox] = []
    made = []
    for n, (x, y, text) in enumerate(labels):
        if not _finite(x, y):
            continue
        cx, cy = ax.transData.transform((x, y))
        probe = ax.text(0, 0, text, fontsize=LABEL_SIZE)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h = extent.width + 2 * pad, extent.height + 2 * pad
        best, best_cost = None, None
        for ring in RINGS:
            for angle in ANGLES:
                dx = ring * px_per_pt * math.cos(math.radians(angle))
                dy = ring * px_per_pt * math.sin(math.radians(angle))
                ha, va, box = _box(cx + dx, cy + dy, w, h, angle)
                if not _inside(box, frame):
                    continue
                clash = sum(_area(box, other) for other in placed)
                covered = sum(box.overlaps(m) for m in marks)
                cost = (clash > 0, covered, ring, clash)
                if best_cost is None or cost < best_cost:
                    best, best_cost = (dx, dy, ha, va, box, ring), cost
                if clash == 0 and covered == 0:
                    break
            if best_cost is not None and best_cost[:2] == (False, 0):
                break
        if best is None:  # no offset fits inside the panel: leave the point unnamed
            continue
        dx, dy, ha, va, box, ring = best
        # the text sits inside its box, ``pad`` in from the edge that faces the point
        dx += pad if ha == "left" else -pad if ha == "right" else 0.0
        dy += pad if va == "bottom" else -pad if va == "top" else 0.0
        arrow = None
        if ring > RINGS[1]:
            arrow = {"arrowstyle": "-", "color": "0.3", "linewidth": 0.8,
                     "shrinkA": 0, "shrinkB": radius / px_per_pt}  # fmt: skip
        made.append(
            ax.annotate(
                text,
                (x, y),
                xytext=(dx / px_per_pt, dy / px_per_pt),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=LABEL_SIZE,
                color="0.1",
                # a light box keeps a label legible where the front's line runs under it
                bbox={
                    "boxstyle": "round,pad=0.2",
                    "facecolor": "white",
                    "edgecolor": "none",
                    "alpha": 0.8,
                },  # fmt: skip
                arrowprops=arrow,
                zorder=5,
                gid=f"{LABEL_GID}:{n}",
                annotation_clip=False,
            )
        )
        placed.append(box)
    return made


def _box(x: float, y: float, w: float, h: float, angle: float) -> tuple[str, str, Bbox]:
    """The label box whose edge nearest the point touches (x, y), for a label offset in
    ``angle`` degrees: its text alignment and its extent on the canvas."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    ha = "left" if c > 0.3 else "right" if c < -0.3 else "center"
    va = "bottom" if s > 0.3 else "top" if s < -0.3 else "center"
    x0 = x if ha == "left" else x - w if ha == "right" else x - w / 2
    y0 = y if va == "bottom" else y - h if va == "top" else y - h / 2
    return ha, va, Bbox.from_bounds(x0, y0, w, h)


def _inside(box: Bbox, frame: Bbox) -> bool:
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1


def _area(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def _finite(x: float, y: float) -> bool:
    return math.isfinite(float(x)) and math.isfinite(float(y))


# -- figure, panels, legend -------------------------------------------------------------------
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
    width, height = PANEL_SIZE
    fig = Figure(
        figsize=(width * ncols + LEGEND_WIDTH, height * nrows + 0.5), dpi=DPI, layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(suptitle, fontsize=13, fontweight="bold")
    return fig, axes[:n]


def _freeze(fig: Figure) -> None:
    """Settle the layout and the axis limits, then keep them: labels are placed by where
    things are on the canvas, so nothing may move after."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    for ax in fig.axes:
        if ax.get_visible():
            ax.set_xlim(ax.get_xlim())
            ax.set_ylim(ax.get_ylim())


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


def _kind_markers(summary: pd.DataFrame) -> dict[str, str]:
    """A marker per method, distinct within its kind (the kind's colour is shared)."""
    markers: dict[str, str] = {}
    for _, group in summary.groupby("method_kind", dropna=False, sort=True):
        for i, method in enumerate(sorted(set(group["method"].astype(str)))):
            markers[method] = MARKERS[i % len(MARKERS)]
    return markers


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
    fig: Figure,
    kinds: set[str],
    front: bool = False,
    ties: bool = False,
    baseline: bool = False,
    named: bool = False,
) -> None:
    """One legend beside the panels: the kinds drawn, then what the marks mean."""
    handles = [
        Line2D(
            [],
            [],
            color=kind_colour(k),
            marker="o",
            linestyle="",
            markersize=8,
            label=KIND_LABELS.get(k, k),
        )  # fmt: skip
        for k in (*KINDS, *sorted(kinds - set(KINDS)))
        if k in kinds
    ]
    if front:
        handles.append(Line2D([], [], label="Pareto front", **FRONT_STYLE))
        handles.append(
            Line2D([], [], linestyle="", label="on the front", **_point_style("0.6", True, False))
        )
    if ties:
        handles.append(
            Line2D([], [], linestyle="", label="cannot be told apart from\nthe front "
                   "(paired 95% CI\ncontains 0)", **_point_style("0.35", False, True))
        )  # fmt: skip
    if front:
        handles.append(
            Line2D(
                [], [], linestyle="", label="below the front", **_point_style("0.5", False, False)
            )
        )
    if baseline:
        handles.append(Line2D([], [], label=BASELINE_LABEL, **BASELINE_STYLE))
    if front or named:
        handles.append(Line2D([], [], linestyle="", label="bars: ±1 sd over seeds"))
    if named:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="",
                label=f"named: the front, the {LEADERS}\nbest, the reference (all\nwhen {NAME_ALL} or fewer)",
            )
        )
    if handles:
        fig.legend(
            handles=handles, loc="outside right upper", title="method kind", frameon=False,
            fontsize=9, title_fontsize=10, alignment="left",
        )  # fmt: skip


def _count_tick(value: float, _pos: object) -> str:
    for unit, base in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= base:
            return f"{value / base:g}{unit}"
    return f"{value:g}"


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
