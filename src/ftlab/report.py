"""``ftlab-report DIR``: compare the runs under DIR in a table, plots and a CSV.

Reads every ``results.json`` under DIR (single runs and sweep jobs alike) and writes
``results.csv``, ``report.md`` and PNG plots into ``--out`` (default DIR). Every file is
written to a temporary name and renamed into place, so an interrupted report leaves the
previous version, never half a file. A training sweep calls :func:`write_report` when it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from ftlab.atomic import atomic_write_text
from ftlab.errors import FtlabError
from ftlab.reporting.fmt import PARETO_MARK, table, varies
from ftlab.reporting.load import load_results
from ftlab.reporting.markdown import counts_line, render
from ftlab.reporting.plots import plot_acc_vs_params, plot_acc_vs_samples, plot_acc_vs_time
from ftlab.reporting.summary import summarize

__all__ = ["load_results", "summarize", "write_report", "main"]

CSV_NAME = "results.csv"
REPORT_NAME = "report.md"
PLOTS = {
    "acc_vs_params": plot_acc_vs_params,
    "acc_vs_time": plot_acc_vs_time,
    "acc_vs_samples": plot_acc_vs_samples,
}


def write_report(
    dir: str | os.PathLike, out: str | os.PathLike | None = None, title: str | None = None
) -> dict[str, Path]:
    """Read the runs under ``dir`` and write the report into ``out`` (default ``dir``).

    Returns the written paths by key: ``csv``, ``report``, and one per plot drawn
    (``acc_vs_params``, ``acc_vs_time``, ``acc_vs_samples``). Raises
    :class:`~ftlab.errors.FtlabError` when ``dir`` is missing or holds no ``results.json``.
    """
    df = load_results(dir)
    return _write(df, summarize(df), Path(dir), Path(out) if out else Path(dir), title)


def _write(df: pd.DataFrame, summary: pd.DataFrame, source: Path, out: Path, title) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"csv": atomic_write_text(out / CSV_NAME, _csv(df))}
    for key, plot in PLOTS.items():
        path = out / f"{key}.png"
        if _wanted(key, summary):
            written[key] = plot(summary, path)
        elif path.exists():
            # A plot left by an earlier report would describe runs this report no longer has.
            path.unlink()
    plots = {k: p.name for k, p in written.items() if k in PLOTS}
    text = render(df, summary, title or default_title(source), str(source), plots)
    written["report"] = atomic_write_text(out / REPORT_NAME, text)
    return written


def _wanted(key: str, summary: pd.DataFrame) -> bool:
    if summary.empty:
        return False
    if key == "acc_vs_samples":
        spc = summary["samples_per_class"]
        return bool(spc.notna().any()) and varies(spc)
    return True


def default_title(source: Path) -> str:
    return f"Fine-tuning comparison: {source.resolve().name or source}"


def _csv(df: pd.DataFrame) -> str:
    # Lists and dicts (overrides) go in as JSON so that the CSV reads back unambiguously.
    def cell(v: object) -> object:
        return json.dumps(v) if isinstance(v, (list, dict, tuple)) else v

    return df.map(cell).to_csv(index=False)


# Columns the terminal drops when it is too narrow for all of them; report.md keeps them.
SECONDARY_COLUMNS = (
    "best val acc",
    "test F1",
    "% of total",
    "samples/s",
    "peak memory",
    "checkpoint",
)
LOG_WIDTH = 240


def print_table(df: pd.DataFrame, summary: pd.DataFrame, title: str, console: Console) -> None:
    """The comparison table and the run counts, on the terminal."""
    if summary.empty:
        console.print(f"[bold]{title}[/]: no completed runs ({counts_line(df)})")
        return
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ftlab-report",
        description="Compare fine-tuning runs: read every results.json under DIR and write "
        "results.csv, report.md and plots.",
    )
    parser.add_argument("dir", metavar="DIR", help="a run, sweep or logs directory")
    parser.add_argument("--out", metavar="OUT", help="where to write the report (default: DIR)")
    parser.add_argument("--title", metavar="T", help="the report's title")
    args = parser.parse_args(argv)

    source = Path(args.dir)
    out = Path(args.out) if args.out else source
    title = args.title or default_title(source)
    try:
        df = load_results(source)
        summary = summarize(df)
        written = _write(df, summary, source, out, title)
    except FtlabError as e:
        print(f"ftlab-report: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"ftlab-report: error: cannot write the report to {out}: {e}", file=sys.stderr)
        return 1
    # A log file has no width; give it the whole table rather than rich's default 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=LOG_WIDTH)
    print_table(df, summary, title, console)
    for path in written.values():
        console.print(f"wrote {path}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
