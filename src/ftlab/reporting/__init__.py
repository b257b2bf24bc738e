"""The comparison report's parts: load results, summarise over seeds, format, plot, write.

:mod:`ftlab.report` is the command line that puts them together.
"""

from ftlab.reporting.load import load_results
from ftlab.reporting.summary import summarize
from ftlab.reporting.write import write_report

__all__ = ["load_results", "summarize", "write_report"]
