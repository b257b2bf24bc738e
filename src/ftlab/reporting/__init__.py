"""The comparison report's parts: load results, summarise over seeds, format, plot, write.

:mod:`ftlab.report` is the entry point that puts them together.
"""
