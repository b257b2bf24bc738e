"""``report.md``: the comparison table, the plots, and the runs that did not finish."""

from __future__ import annotations

import pandas as pd

from ftlab.errors import one_line
from ftlab.records import DONE, FAILED, SKIPPED, UNREADABLE
from ftlab.reporting.fmt import (
    BASELINE,
    DASH,
    PARETO_MARK,
    plot_title,
    score_label,
    table,
    table_groups,
    table_notes,
)

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
    out = [f"# {title}", ""]
    out += [f"{len(df)} runs from `{source}`: {counts_line(df)}.", ""]
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
    """The paragraph over the tables: what a row is and what the marks mean."""
    keys = set(summary["score_key"].dropna())
    if keys <= {"test/acc"} and not summary["zero_shot"].any():
        return (
            f"One row per configuration over its `done` runs. Test accuracy is the mean ± "
            f"sample standard deviation (ddof=1) over seeds ({DASH} for a single seed); the "
            f"other columns are means over seeds. {PARETO_MARK} marks the Pareto front within "
            f"a model and dataset: no other row reaches a higher test accuracy with as few or "
            f"fewer trainable parameters."
        )
    return (
        f"One row per configuration over its `done` runs. The score column is the task's "
        f"headline test metric (test accuracy for classify and choice, exact match of the "
        f"generated answer for sft), the mean ± sample standard deviation (ddof=1) over seeds "
        f"({DASH} for a single seed); the other columns are means over seeds. {PARETO_MARK} "
        f"marks the Pareto front within a model, dataset and task: no other row reaches a "
        f"better score with as few or fewer trainable parameters."
    )


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
    return all(c in (DASH, BASELINE) or c[:1].isdigit() or c[:1] in "-+" for c in cells)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
