"""``report.md``: how the runs were set up, the comparison table, the learning rates a tuned
sweep chose, the plots, and the runs that did not finish."""

from __future__ import annotations

import pandas as pd

from ftlab.errors import one_line
from ftlab.records import DONE, FAILED, SKIPPED, UNREADABLE
from ftlab.reporting.fmt import (
    BASELINE,
    BEST,
    DASH,
    FRACTIONS,
    FRONT_TIE_MARK,
    PARETO_MARK,
    number,
    percent_scale,
    plot_title,
    samples_per_class,
    score_label,
    table,
    table_groups,
    table_notes,
    varies,
)
from ftlab.reporting.load import metric_name
from ftlab.reporting.protocol import budget_line, learning_rate_line, rate, selection
from ftlab.reporting.stats import MAX_SEEDS

TEXT_HEADERS = {"model", "method", "data"}


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """Runs per status, the four expected ones first (zero included), then any others."""
    counts = df["status"].value_counts().to_dict()
    ordered = {s: int(counts.pop(s, 0)) for s in (DONE, SKIPPED, FAILED, UNREADABLE)}
    ordered.update({str(s): int(n) for s, n in sorted(counts.items())})
    return ordered


def counts_line(df: pd.DataFrame) -> str:
    return ", ".join(f"{n} {status}" for status, n in status_counts(df).items())


def render(
    df: pd.DataFrame, summary: pd.DataFrame, title: str, source: str, plots: dict[str, str]
) -> str:
    """The whole report; ``plots`` maps plot keys to file names relative to the report."""
    selected = selection(df)
    out = [f"# {title}", ""]
    out += [f"{len(df)} runs from `{source}`: {counts_line(df)}.", ""]
    setup = [line for line in (budget_line(df), learning_rate_line(df, selected)) if line]
    out += [*(f"- {line}" for line in setup), ""]
    out += ["## Comparison", ""]
    if summary.empty:
        out += ["No completed runs to compare.", ""]
    else:
        groups = table_groups(summary)
        out += [_about(summary), ""]
        for group in groups:
            if len(groups) > 1:
                out += [f"### {_group_title(group)}", ""]
            headers, rows = table(group)
            out += [*_table(headers, rows), ""]
            notes = table_notes(group)
            if notes:
                out += [*notes, ""] if len(notes) == 1 else [*(f"- {n}" for n in notes), ""]
    out += _selection_section(selected)
    if plots:
        out += ["## Plots", ""]
        for key, name in plots.items():
            caption = plot_title(summary, key)
            out += [f"### {caption}", "", f"![{caption}]({name})", ""]
        if "acc_vs_samples" in plots:
            out += ["Runs on all samples have no samples-per-class value and appear only in "
                    "the other plots.", ""]  # fmt: skip
    out += _problem_section(df, SKIPPED, "Skipped runs", "reason", "reason")
    out += _problem_section(df, FAILED, "Failed runs", "error", "error (first line)")
    unreadable = df[df["status"] == UNREADABLE]
    if not unreadable.empty:
        rows = [
            [f"`{r['results_file']}`", _first_line(r["error"])] for _, r in unreadable.iterrows()
        ]
        out += ["## Unreadable results", "", *_table(["file", "problem"], rows), ""]
    other = df[~df["status"].isin([DONE, SKIPPED, FAILED, UNREADABLE])]
    if not other.empty:
        rows = [
            [*_run_cells(r), str(r["status"]), f"`{r['run_dir']}`"] for _, r in other.iterrows()
        ]
        out += ["## Runs with another status", ""]
        out += [*_table(["model", "method", "data", "seed", "status", "run dir"], rows), ""]
    return "\n".join(out).rstrip() + "\n"


def _about(summary: pd.DataFrame) -> str:
    """The paragraph over the tables: what a row is, what its intervals and marks mean."""
    keys = set(summary["score_key"].dropna())
    if keys <= {"test/acc"} and not summary["zero_shot"].any():
        score, better, within = "Test accuracy", "a higher test accuracy", "a model and dataset"
    else:
        score = (
            "The score column is the task's headline test metric (test accuracy for classify "
            "and choice, exact match of the generated answer for sft); it"
        )
        better, within = "a better score", "a model, dataset and task"
    return (
        f"One row per configuration over its `done` runs. {score} is the mean over seeds "
        f"with its 95% confidence interval (Student t, n - 1 degrees of freedom; [{DASH}] for "
        f"a single seed); the other columns are means over seeds. The *vs* columns are the "
        f"difference to another row paired by seed (runs with the same seed share the data "
        f"split and order), over the seeds both rows have, with its paired 95% interval; "
        f"where that interval contains 0 the two are not distinguishable (n.d.), and ≈N "
        f"seeds is roughly how many would separate them if the difference and its spread "
        f"stayed as observed (the n at which the interval's half-width equals the "
        f"difference; >{MAX_SEEDS} where even that many would not). {PARETO_MARK} marks the "
        f"Pareto front within {within}: no other row reaches {better} with as few or fewer "
        f"trainable parameters; {FRONT_TIE_MARK} marks a row off it that cannot be told "
        f"apart from it."
    )


def _selection_section(selected: pd.DataFrame) -> list[str]:
    """The learning rates a tuned sweep chose: per configuration its grid, each rate's mean
    validation score over the selection seeds (the chosen one in bold), and the choice."""
    if selected.empty:
        return []
    out = ["## Learning rate chosen on validation", ""]
    seed_sets = {tuple(s) for s in selected["seeds"] if isinstance(s, list) and s}
    on = ""
    if len(seed_sets) == 1:
        only = seed_sets.pop()
        on = f" on seed{'s' if len(only) > 1 else ''} {', '.join(map(str, only))}"
    sources = sorted({str(s) for s in selected["source"] if isinstance(s, str)})
    if sources:
        out += [
            f"Taken from the best run of each configuration in an earlier search "
            f"({', '.join(f'`{s}`' for s in sources)}); its validation scores by rate:",
            "",
        ]
    else:
        out += [
            f"Stage 1 of the tuned sweep trained each configuration at every rate of its "
            f"grid{on}, fitting and validating only (test never looked at); the rate "
            f"with the best mean validation score was chosen and every seed ran at it (the "
            f"comparison above). Those selection runs are not in the comparison. A rate "
            f"chosen at the edge of its grid sent stage 1 one step past it "
            f"(`hydra.sweeper.extend` times at most).",
            "",
        ]
    edges = [r for r in selected.itertuples(index=False) if _at_edge(r.grid, r.chosen)]
    if edges:
        out += [
            f"*(edge)*: still the highest or lowest rate tried, so the best rate may lie "
            f"further out ({', '.join(sorted({_text(r.method) for r in edges}))}).",
            "",
        ]
    show_spc = varies(selected["samples_per_class"])
    for metric, group in selected.groupby(selected["metric"].fillna(""), sort=False):
        scale = 100.0 if metric_name(metric) in FRACTIONS else 1.0
        values = pd.Series([v for found in group["scores"] for v in found.values()], dtype=float)
        scale = percent_scale(values) if scale == 100.0 else 1.0
        digits = 2 if metric_name(metric) in FRACTIONS else 3
        unit = " (%)" if scale == 100.0 else ""
        what = f"{score_label(metric)}{unit}" if metric else "validation score"
        headers = ["model", "method", "data"] + (["samples/class"] if show_spc else [])
        headers += ["param", f"{what} by rate", "chosen"]
        rows = []
        for r in group.itertuples(index=False):
            cells = [_text(r.model), _text(r.method), _text(r.data)]
            cells += [samples_per_class(r.samples_per_class)] if show_spc else []
            tried = []
            for lr in r.grid or sorted(r.scores):
                score = number(r.scores[lr] * scale, digits) if lr in r.scores else "not run"
                cell = f"{rate(lr)}: {score}"
                tried.append(f"**{cell}**" if lr == r.chosen else cell)
            cells += [f"`{r.param}`", ", ".join(tried) or DASH]
            edge = " *(edge)*" if _at_edge(r.grid, r.chosen) else ""
            if pd.notna(r.chosen):  # a column of rates holds NaN where none was chosen
                cells += [rate(r.chosen) + edge]
            elif isinstance(r.not_chosen, str):  # every selection run failed: default rate
                cells += [f"none ({r.not_chosen}); the config's rate"]
            else:
                cells += ["not yet (no final runs)"]
            rows.append(cells)
        out += [*_table(headers, rows), ""]
    return out


def _at_edge(grid: list[float], chosen: float | None) -> bool:
    """Whether a choice is its grid's highest or lowest rate (of a grid of two or more)."""
    return pd.notna(chosen) and len(grid) > 1 and chosen in (min(grid), max(grid))


def _group_title(group: pd.DataFrame) -> str:
    first = group.iloc[0]
    return f"task={first['task']}: {score_label(first['score_key'])}"


def _problem_section(df, status: str, heading: str, column: str, header: str) -> list[str]:
    runs = df[df["status"] == status]
    if runs.empty:
        return []
    rows = [
        [*_run_cells(r), _first_line(r[column]), f"`{r['run_dir']}`"] for _, r in runs.iterrows()
    ]
    headers = ["model", "method", "data", "seed", header, "run dir"]
    return [f"## {heading}", "", *_table(headers, rows), ""]


def _run_cells(r: pd.Series) -> list[str]:
    return [_text(r["model"]), _text(r["method_name"]), _text(r["data"]), _text(r["seed"])]


def _text(value: object) -> str:
    return "?" if value is None or pd.isna(value) else str(value)


def _first_line(value: object, limit: int = 300) -> str:
    if value is None or pd.isna(value) or not str(value).strip():
        return DASH
    return one_line(value, limit)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def align(h: str) -> str:
        if h == PARETO_MARK:
            return ":-:"
        return (
            "---:"
            if h not in TEXT_HEADERS and rows and _numeric_column(h, headers, rows)
            else ":--"
        )

    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join(align(h) for h in headers) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _numeric_column(header: str, headers: list[str], rows: list[list[str]]) -> bool:
    i = headers.index(header)
    cells = (row[i] for row in rows)
    return all(c in (DASH, BASELINE, BEST) or c[:1].isdigit() or c[:1] in "-+" for c in cells)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
