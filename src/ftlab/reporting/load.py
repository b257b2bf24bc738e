"""Read the ``results.json`` every run writes into one tidy table, one row per run.

Besides the recorded keys, each row gets what the report compares by: its score (the
value under the record's ``score`` key, the task's headline test metric), which way that
score is better, and its best validation value (whichever ``val/*_best`` the run has).
Records written before runs stated them get their method's kind (from its name) and their
training budget (from the run's ``config.yaml``) where these can be told.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from ftlab.errors import FtlabError, one_line
from ftlab.records import CONFIG_FILE, DONE, RESULTS_FILE, find_records, load_record

TEXT_COLUMNS = (
    "model", "method", "method_label", "method_kind", "data", "task", "score", "stage",
    "budget", "status", "reason", "error",
)  # fmt: skip
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
    "model", "method", "method_label", "method_kind", "data", "task",
    "data/samples_per_class", "seed", "status", "score", "stage", "budget",
    "val/acc_best", "test/acc", "test/f1",
    "params/trainable", "params/total", "params/trainable_pct",
    "speed/train_samples_per_s", "memory/peak_bytes", "checkpoint/bytes", "time/fit_s",
    "reason", "error", "run_dir", "overrides",
)  # fmt: skip
# Added by the loader: the name rows are compared under, where the row came from, and the
# score it is compared by (see the module's docstring).
DERIVED_COLUMNS = (
    "method_name", "results_file",
    "score_key", "score_value", "higher_is_better", "val_best_key", "val_best",
)  # fmt: skip

#: what every record before tasks were recorded was, and what such a record is scored by
DEFAULT_TASK, DEFAULT_SCORE = "classify", "test/acc"
#: the tasks that predict through a decoder's own LM head: their baseline is method=zero_shot
GENERATIVE_TASKS = ("sft", "choice")
ZERO_SHOT = "zero_shot"
#: metric names (the part after ``split/``) for which a lower value is better
LOWER_IS_BETTER = frozenset({"loss", "ppl", "perplexity", "forgetting", "general_ce", "ce"})
#: what an sft run on data without checkable answers (no exact match) is scored by instead
SFT_FALLBACK_SCORE = "test/loss"
#: a tuned sweep's learning-rate selection runs (fit and validate only) and its final runs
SELECT, FINAL = "select", "final"

#: the kinds of mechanism a method's record names (``method_kind``), in the order reports
#: list them; "none" is the untouched model's
KINDS = ("unfreezing", "reparameterising", "additive", "soft prompts", "selective", "other")
NO_KIND = "none"
#: the kind of each shipped method config, for records written before runs named theirs
KIND_BY_METHOD = {
    **dict.fromkeys(("linear_probe", "last_n", "full", "full_llrd", "gradual"), "unfreezing"),
    **dict.fromkeys(
        (
            "lora",
            "dora",
            "pissa",
            "olora",
            "loha",
            "lokr",
            "oft",
            "boft",
            "hra",
            "vera",
            "fourierft",
            "adalora",
            "peft",
        ),
        "reparameterising",
    ),  # fmt: skip
    "ia3": "additive",
    **dict.fromkeys(("bitfit", "ln_tuning"), "selective"),
    "zero_shot": NO_KIND,
}
KIND_BY_PREFIX = (("adapter", "additive"), ("prompt", "soft prompts"), ("prefix", "soft prompts"))


def metric_name(key: str) -> str:
    """``test/exact_match`` -> ``exact_match``; ``val/loss_best`` -> ``loss``."""
    return str(key).partition("/")[2].removesuffix("_best")


def higher_is_better(key: str) -> bool:
    """Whether a larger value of the metric ``key`` is better (accuracy, exact match), or a
    smaller one (a loss, a perplexity, forgetting)."""
    return metric_name(key) not in LOWER_IS_BETTER


def find_results(root: str | os.PathLike) -> list[Path]:
    """Every ``results.json`` under ``root``, sorted; raises :class:`FtlabError` if none."""
    root = Path(root)
    if not root.exists():
        raise FtlabError(f"results directory not found: {root}")
    if not root.is_dir():
        raise FtlabError(
            f"not a directory: {root} (expected a directory of run dirs, or a results.csv)"
        )
    found = find_records(root)
    if not found:
        raise FtlabError(f"no {RESULTS_FILE} found under {root}")
    return found


def load_results(root: str | os.PathLike) -> pd.DataFrame:
    """All runs under ``root``: one row per ``results.json``, every key a column.

    Missing keys are NaN, extra keys are kept. ``method_name`` is ``method_label`` where a
    run has one, else ``method``; ``params/trainable_pct`` is computed where it is absent;
    ``score_key``, ``score_value``, ``higher_is_better``, ``val_best_key`` and ``val_best``
    say what the run is compared by (:func:`normalize`).

    ``root`` may also be a ``results.csv`` an earlier report wrote (a committed study's): its
    rows are the runs, so a report can be rewritten where the run folders are long gone.
    """
    if Path(root).is_file() and Path(root).suffix == ".csv":
        return load_results_csv(Path(root))
    records = [load_record(p) for p in find_results(root)]
    for record in records:
        if record.get("status") == DONE and not _text(record.get("budget")):
            record["budget"] = budget_from_config(record)
    return normalize(pd.DataFrame.from_records(records))


def load_results_csv(path: Path) -> pd.DataFrame:
    """The runs of a ``results.csv`` the report wrote, as :func:`load_results` gives them."""
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise FtlabError(f"cannot read {path} as a results.csv: {one_line(err)}") from err
    if "status" not in df.columns or "method" not in df.columns:
        raise FtlabError(
            f"{path} is not a results.csv written by ftlab-report (it has no status and "
            "method columns); give a directory of runs or such a file."
        )
    return normalize(df)


def method_kind(method: object) -> str:
    """The kind of mechanism of a method config's name (``lora`` -> ``reparameterising``),
    for records that predate ``method_kind``; ``other`` for a name it does not know."""
    name = _text(method) or ""
    if name in KIND_BY_METHOD:
        return KIND_BY_METHOD[name]
    return next((kind for prefix, kind in KIND_BY_PREFIX if name.startswith(prefix)), "other")


def budget_from_config(record: dict) -> str | None:
    """A run's budget as ``train`` states it (``"200 steps"``, else ``"3 epochs"``), read
    from the ``config.yaml`` beside its results; None where there is none to read."""
    trainer = (run_config(record) or {}).get("trainer")
    if not isinstance(trainer, dict):
        return None
    steps, epochs = trainer.get("max_steps"), trainer.get("max_epochs")
    if isinstance(steps, int) and steps > 0:
        return f"{steps} step{'s' if steps != 1 else ''}"
    if isinstance(epochs, int) and epochs > 0:
        return f"{epochs} epoch{'s' if epochs != 1 else ''}"
    return None


def run_config(record: dict) -> dict | None:
    """The resolved config a run saved beside its results (plain YAML: no Hydra needed),
    or None where it has none that can be read."""
    import yaml

    for where in (record.get("results_file"), record.get("run_dir")):
        if not isinstance(where, str) or not where:
            continue
        path = Path(where)
        path = (path.parent if path.name == RESULTS_FILE else path) / CONFIG_FILE
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if isinstance(config, dict):
            return config
    return None


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Give a frame of run records the known columns with their types (idempotent).

    A run's score is the value under its record's ``score`` key (``test/acc`` for a record
    written before runs named theirs); an sft run without an exact match (its data has no
    checkable answers) is scored by its test loss. ``higher_is_better`` follows the score's
    metric name (:data:`LOWER_IS_BETTER`). ``val_best`` is the run's ``val/<score>_best``
    when it has one, else the first ``val/*_best`` it has (sft's ``val/loss_best``).
    """
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
    kinds = df["method"].map(method_kind)
    df["method_kind"] = df["method_kind"].where(df["method_kind"].notna(), kinds).astype(object)

    total = df["params/total"].astype(float)
    computed = 100.0 * df["params/trainable"].astype(float) / total.where(total > 0)
    df["params/trainable_pct"] = df["params/trainable_pct"].fillna(computed)

    scores = [run_score(record) for record in df.to_dict("records")]
    df["score_key"] = pd.Series([k for k, _ in scores], index=df.index, dtype=object)
    df["score_value"] = pd.Series([v for _, v in scores], index=df.index, dtype=float)
    df["higher_is_better"] = df["score_key"].map(higher_is_better).astype(bool)
    best = [_val_best(record, key) for record, (key, _) in zip(df.to_dict("records"), scores)]
    df["val_best_key"] = pd.Series([k for k, _ in best], index=df.index, dtype=object)
    df["val_best"] = pd.Series([v for _, v in best], index=df.index, dtype=float)

    extras = sorted(c for c in df.columns if c not in KNOWN_COLUMNS + DERIVED_COLUMNS)
    return df[[*KNOWN_COLUMNS, *extras, *DERIVED_COLUMNS]].reset_index(drop=True)


def run_score(record: dict) -> tuple[str, float]:
    """A run record's score: its key and value (NaN where the run has none)."""
    key = _text(record.get("score")) or DEFAULT_SCORE
    value = _number(record.get(key))
    if math.isnan(value) and record.get("task") == "sft":
        fallback = _number(record.get(SFT_FALLBACK_SCORE))
        if not math.isnan(fallback):
            return SFT_FALLBACK_SCORE, fallback
    return key, value


def _val_best(record: dict, score_key: str) -> tuple[str | None, float]:
    own = f"val/{metric_name(score_key)}_best"
    keys = [own] + sorted(k for k in record if k.startswith("val/") and k.endswith("_best"))
    for key in keys:
        value = _number(record.get(key))
        if not math.isnan(value):
            return key, value
    return None, math.nan


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
