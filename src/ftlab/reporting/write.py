"""Write a comparison report: ``results.csv``, ``report.md`` and PNG plots.

Every file is written to a temporary name and renamed into place, so an interrupted report
leaves the previous version, never half a file. A training sweep calls :func:`write_report`
when it ends; ``ftlab-report`` calls it from the command line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ftlab.atomic import atomic_write_text
from ftlab.reporting.fmt import varies
from ftlab.reporting.load import load_results
from ftlab.reporting.markdown import render
from ftlab.reporting.plots import plot_acc_vs_params, plot_acc_vs_samples, plot_acc_vs_time
from ftlab.reporting.summary import summarize

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
    return write_frames(df, summarize(df), Path(dir), Path(out) if out else Path(dir), title)


def write_frames(
    df: pd.DataFrame, summary: pd.DataFrame, source: Path, out: Path, title: str | None = None
) -> dict[str, Path]:
    """Write the report of already loaded and summarised runs (see :func:`write_report`)."""
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
