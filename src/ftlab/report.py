"""``ftlab-report DIR``: compare the runs under DIR in a table, plots and a CSV.

Reads every ``results.json`` under DIR (single runs and sweep jobs alike), or the
``results.csv`` an earlier report wrote, and writes ``results.csv``, ``report.md`` and PNG
plots into ``--out`` (default DIR, or the CSV's folder). The command line
only: the report itself is :mod:`ftlab.reporting`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from ftlab.errors import FtlabError
from ftlab.reporting import load_results, summarize
from ftlab.reporting.terminal import LOG_WIDTH, print_table
from ftlab.reporting.write import default_title, write_frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ftlab-report",
        description="Compare fine-tuning runs: read every results.json under DIR and write "
        "results.csv, report.md and plots.",
    )
    parser.add_argument(
        "dir", metavar="DIR", help="a run, sweep or logs directory, or a results.csv it wrote"
    )
    parser.add_argument("--out", metavar="OUT", help="where to write the report (default: DIR)")
    parser.add_argument("--title", metavar="T", help="the report's title")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also create the sweep's W&B dashboard (online, after `wandb sync`)",
    )
    args = parser.parse_args(argv)

    source = Path(args.dir)
    folder = source.parent if source.is_file() else source
    out = Path(args.out) if args.out else folder
    title = args.title or default_title(folder)
    try:
        df = load_results(source)
        summary = summarize(df)
        written = write_frames(df, summary, source, out, title)
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
    if args.wandb:
        return _dashboard(source)
    return 0


def _dashboard(sweep_dir: Path) -> int:
    from ftlab.reporting.dashboard import write_dashboard
    from ftlab.wandb_env import wandb_offline_reason

    reason = wandb_offline_reason()
    if reason is not None:
        print(
            f"ftlab-report: error: --wandb creates the dashboard in W&B, which needs it online "
            f"({reason}); its spec is written to {sweep_dir}/wandb_dashboard.json.",
            file=sys.stderr,
        )
        write_dashboard(sweep_dir, create=False)
        return 2
    _, url = write_dashboard(sweep_dir, create=True)
    print(f"W&B dashboard: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
