"""The comparison table on the terminal: as wide as the terminal allows."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from ftlab.reporting.fmt import PARETO_MARK, score_label, table, table_groups, table_notes
from ftlab.reporting.markdown import counts_line

# Columns the terminal drops when it is too narrow for all of them; report.md keeps them.
SECONDARY_COLUMNS = (
    "vs best",
    "best val",
    "test F1",
    "answered",
    "% of total",
    "samples/s",
    "peak memory",
    "checkpoint",
)
LOG_WIDTH = 240


def print_table(df: pd.DataFrame, summary: pd.DataFrame, title: str, console: Console) -> None:
    """The comparison table (one per task and score) and the run counts, on the terminal."""
    if summary.empty:
        console.print(f"[bold]{title}[/]: no completed runs ({counts_line(df)})")
        return
    groups = table_groups(summary)
    for group in groups:
        first = group.iloc[0]
        shown = title
        if len(groups) > 1:
            shown = f"{title}: task={first['task']}, {score_label(first['score_key'])}"
        _print_group(df, group, shown, console)
        for note in table_notes(group):
            console.print(note, highlight=False, markup=False)


def _print_group(df: pd.DataFrame, summary: pd.DataFrame, title: str, console: Console) -> None:
    headers, rows = table(summary)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    keep = list(range(len(headers)))
    if sum(widths[i] + 3 for i in keep) + 1 > console.width:
        keep = [i for i in keep if not headers[i].startswith(SECONDARY_COLUMNS)]
    # Where even the short table does not fit, let rich wrap cells rather than cut them off.
    fits = sum(widths[i] + 3 for i in keep) + 1 <= console.width
    rich_table = Table(title=title, caption=f"runs: {counts_line(df)}", header_style="bold")
    for i in keep:
        numeric = headers[i] not in {PARETO_MARK, "model", "method", "data"}
        rich_table.add_column(
            headers[i],
            justify="right" if numeric else "left",
            no_wrap=fits,
            min_width=widths[i] if fits else None,
            overflow="ellipsis" if fits else "fold",
        )
    for row, pareto in zip(rows, summary["pareto"]):
        rich_table.add_row(*(row[i] for i in keep), style="bold" if pareto else None)
    console.print(rich_table)
