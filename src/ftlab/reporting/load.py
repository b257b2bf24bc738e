"""Read the ``results.json`` every run writes into one tidy table, one row per run."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from ftlab.errors import FtlabError
from ftlab.records import RESULTS_FILE, find_records, load_record

TEXT_COLUMNS = ("model", "method", "method_label", "data", "status", "reason", "error")
FLOAT_COLUMNS = (
    "val/acc_best",
    "test/acc",
    "test/f1",
    "params/trainable_pct",
    "speed/train_samples_per_s",
    "time/fit_s",
)
INT_COLUMNS = (
    "seed",
    "params/trainable",
    "params/total",
    "memory/peak_bytes",
    "checkpoint/bytes",
    "data/samples_per_class",
)
# The documented keys, in the order results.csv shows them; extra keys follow.
KNOWN_COLUMNS = (
    "model", "method", "method_label", "data", "data/samples_per_class", "seed", "status",
    "val/acc_best", "test/acc", "test/f1",
    "params/trainable", "params/total", "params/trainable_pct",
    "speed/train_samples_per_s", "memory/peak_bytes", "checkpoint/bytes", "time/fit_s",
    "reason", "error", "run_dir", "overrides",
)  # fmt: skip
# Added by the loader: the name rows are compared under, and where the row came from.
DERIVED_COLUMNS = ("method_name", "results_file")


def find_results(root: str | os.PathLike) -> list[Path]:
    """Every ``results.json`` under ``root``, sorted; raises :class:`FtlabError` if none."""
    root = Path(root)
    if not root.exists():
        raise FtlabError(f"results directory not found: {root}")
    if not root.is_dir():
        raise FtlabError(f"not a directory: {root} (expected a directory of run dirs)")
    found = find_records(root)
    if not found:
        raise FtlabError(f"no {RESULTS_FILE} found under {root}")
    return found


def load_results(root: str | os.PathLike) -> pd.DataFrame:
    """All runs under ``root``: one row per ``results.json``, every key a column.

    Missing keys are NaN, extra keys are kept. ``method_name`` is ``method_label`` where a
    run has one, else ``method``; ``params/trainable_pct`` is computed where it is absent.
    """
    records = [load_record(p) for p in find_results(root)]
    return normalize(pd.DataFrame.from_records(records))


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Give a frame of run records the known columns with their types (idempotent)."""
    df = df.copy()
    for col in (*KNOWN_COLUMNS, "results_file"):
        if col not in df.columns:
            df[col] = None
    for col in TEXT_COLUMNS + ("run_dir", "results_file"):
        df[col] = df[col].map(_text).astype(object)
    for col in FLOAT_COLUMNS + INT_COLUMNS:
        df[col] = df[col].map(_number).astype(float)
    for col in INT_COLUMNS:
        if _all_integral(df[col]):
            df[col] = df[col].astype("Int64")

    df["status"] = df["status"].fillna("unknown")
    label = df["method_label"].where(df["method_label"].notna(), df["method"])
    df["method_name"] = label.astype(object)

    total = df["params/total"].astype(float)
    computed = 100.0 * df["params/trainable"].astype(float) / total.where(total > 0)
    df["params/trainable_pct"] = df["params/trainable_pct"].fillna(computed)

    extras = sorted(c for c in df.columns if c not in KNOWN_COLUMNS + DERIVED_COLUMNS)
    return df[[*KNOWN_COLUMNS, *extras, *DERIVED_COLUMNS]].reset_index(drop=True)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def _number(value: object) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    try:  # numpy / pandas scalars
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _all_integral(values: pd.Series) -> bool:
    finite = values.dropna()
    finite = finite[finite.map(math.isfinite)]
    return bool((finite == finite.round()).all()) and len(finite) == values.notna().sum()
