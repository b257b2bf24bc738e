"""The W&B dashboard a sweep builds for its group: the panels the README describes.

``dashboard_spec`` says what each panel plots, as the keys the runs log (summary metrics
and config paths): the sweep's score (``test/acc``, or the generative task's own, such as
``test/exact_match``, as the runs' records name it) and, where the runs measured it,
forgetting; ``write_dashboard`` writes it into the sweep dir as
``wandb_dashboard.json`` and, when W&B is online with credentials, creates it as a W&B
workspace view through ``wandb-workspaces`` (``build_workspace``). Offline, the file is
created later, after ``wandb sync``: ``ftlab-report DIR --wandb``.

A tuned sweep (``tune=lr``) gets a section of its own: stage 1's validation score against
the learning rate, per method, and stage 2's score by method at its chosen rate.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ftlab.atomic import atomic_write_json
from ftlab.errors import ConfigError

SPEC_FILE = "wandb_dashboard.json"
#: the summary metrics the panels plot (what ftlab's runs log at the end)
ACCURACY, TRAINABLE = "test/acc", "params/trainable"
SPEED, MEMORY = "speed/train_samples_per_s", "memory/peak_bytes"
FORGETTING = "test/forgetting"
METHOD = "method.name"  # a config path: the run config nests the method group
#: a tuned sweep's config paths: the run's stage (select, final) and the rate it chose
STAGE, CHOSEN, LR = "stage", "tuning.chosen", "method.lr"
#: method settings that are never knobs of a comparison
NOT_KNOBS = {"_target_", "_recursive_", "name"}


def method_knobs(configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Config paths of the numeric method settings that vary across the runs (their
    learning rate always): the axes of the parallel-coordinates panel."""
    values: dict[str, set] = {}
    for config in configs:
        for key, value in (config.get("method") or {}).items():
            if key in NOT_KNOBS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            values.setdefault(f"method.{key}", set()).add(value)
    varying = [k for k, v in values.items() if len(v) > 1]
    return sorted({"method.lr", *varying})


def sweep_metrics(records: Iterable[Mapping[str, Any]]) -> tuple[str, bool]:
    """What the sweep's ``done`` runs are scored by (the key most of them name, as the
    report reads it; ``test/acc`` for classification and records written before runs named
    theirs) and whether they measured forgetting."""
    from ftlab.reporting.load import run_score

    done = [r for r in records if r.get("status") == "done"]
    keys = Counter(k for k, v in map(run_score, done) if not math.isnan(v))
    forgetting = any(isinstance(r.get(FORGETTING), int | float) for r in done)
    return (keys.most_common(1)[0][0] if keys else ACCURACY), forgetting


def tuned_validation_key(records: Iterable[Mapping[str, Any]]) -> str | None:
    """The validation key a tuned sweep chose by (``val/acc_best``), from its stage-1
    runs; None for a sweep that did not tune."""
    for record in records:
        if record.get("stage") == "select" and record.get("status") == "done":
            key = next((k for k in record if k.startswith("val/") and k.endswith("_best")), None)
            if key:
                return key
    return None


def dashboard_spec(
    group: str,
    project: str,
    knobs: list[str],
    entity: str | None = None,
    score: str = ACCURACY,
    forgetting: bool = False,
    tuned_on: str | None = None,
) -> dict[str, Any]:
    """The dashboard of one sweep group: panels name summary keys (``summary``) and config
    paths (``config``), so a test can check them against what the runs log. ``score`` is
    what the runs are compared by; ``forgetting`` adds a panel of ``test/forgetting``;
    ``tuned_on`` (the validation key a ``tune=lr`` sweep chose by) adds the section of its
    two stages."""
    from ftlab.reporting.fmt import SCORE_TITLES, score_label

    title = SCORE_TITLES.get(score, score_label(score))
    title = title[0].upper() + title[1:]
    panels = [
        scatter(f"{title} vs trainable parameters", {"summary": TRAINABLE}, score, log_x=True),
        by_method(f"{title} by method (mean, min-max over seeds)", score),
        parallel("Method knobs", METHOD, *knobs, {"summary": score}),
        scatter("Training speed vs peak memory", {"summary": MEMORY}, SPEED),
    ]
    if forgetting:
        panels.append(
            by_method(
                "Forgetting by method: general-text cross-entropy change (lower is better)",
                FORGETTING,
            )
        )
    spec = {
        "entity": entity,
        "project": project,
        "name": f"ftlab sweep {group}",
        "group": group,
        "panels": panels,
    }
    if tuned_on:
        spec["tuning_panels"] = _tuning_panels(title, score, tuned_on)
    return spec


def _tuning_panels(title: str, score: str, tuned_on: str) -> list[dict[str, Any]]:
    """Stage 1: the validation score of every (method, rate) it tried, as a scatter
    against the rate and as lines from method to rate to score (one per run, so each
    method's curve reads across); stage 2: the score by method, each at its chosen rate
    (selection runs are never tested, so only stage 2 has a test score)."""
    return [
        scatter(
            f"Stage 1: {tuned_on} vs learning rate (every method's grid)",
            {"config": LR},
            tuned_on,
            log_x=True,
        ),
        parallel(
            f"Stage 1 per method: learning rate -> {tuned_on}",
            METHOD,
            STAGE,
            LR,
            {"summary": tuned_on},
        ),  # fmt: skip
        by_method(
            f"Stage 2: {title.lower()} by method at its chosen rate (mean, min-max over seeds)",
            score,
        ),
        parallel(
            "Stage 2: each method's chosen rate and its score", METHOD, CHOSEN, {"summary": score}
        ),
    ]


def scatter(title: str, x: dict[str, str], y: str, log_x: bool = False) -> dict[str, Any]:
    """A scatter panel of a summary metric ``y`` against ``x`` (a summary key or config path)."""
    panel = {"kind": "scatter", "title": title, "x": x, "y": {"summary": y}}
    return {**panel, "log_x": True} if log_x else panel


def by_method(title: str, metric: str) -> dict[str, Any]:
    """A bar panel of a summary metric grouped by method (mean, min-max over seeds)."""
    return {
        "kind": "bar",
        "title": title,
        "metrics": [{"summary": metric}],
        "groupby": {"config": METHOD},
    }


def parallel(title: str, *columns: str | dict[str, str]) -> dict[str, Any]:
    """A parallel-coordinates panel; a plain string column is a config path."""
    refs = [c if isinstance(c, dict) else {"config": c} for c in columns]
    return {"kind": "parallel_coordinates", "title": title, "columns": refs}


def spec_keys(spec: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(summary keys, config paths) every panel of ``spec`` reads."""
    summary, config = set(), set()

    def take(ref: Mapping[str, str]) -> None:
        (summary if "summary" in ref else config).add(ref.get("summary") or ref["config"])

    for panel in (*spec["panels"], *spec.get("tuning_panels", ())):
        for field in ("x", "y", "groupby"):
            if field in panel:
                take(panel[field])
        for ref in (*panel.get("metrics", ()), *panel.get("columns", ())):
            take(ref)
    return summary, config


def build_workspace(spec: Mapping[str, Any]):
    """The spec as a ``wandb-workspaces`` workspace view (built offline; ``.save()`` needs
    W&B online and credentials)."""
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
        from wandb_workspaces import expr
    except ImportError as err:
        raise ConfigError(
            "building the W&B dashboard needs wandb-workspaces: pip install wandb-workspaces."
        ) from err

    def key(ref: Mapping[str, str]) -> str:
        return ref["summary"] if "summary" in ref else f"c::{ref['config']}"

    def build(panel: Mapping[str, Any]):
        if panel["kind"] == "scatter":
            return wr.ScatterPlot(
                title=panel["title"],
                x=key(panel["x"]),
                y=key(panel["y"]),
                log_x=panel.get("log_x", False),
            )
        if panel["kind"] == "bar":
            return wr.BarPlot(
                title=panel["title"],
                metrics=[key(m) for m in panel["metrics"]],
                groupby=wr.Config(panel["groupby"]["config"]),
                groupby_aggfunc="mean",
                groupby_rangefunc="minmax",
            )
        return wr.ParallelCoordinatesPlot(
            title=panel["title"],
            columns=[wr.ParallelCoordinatesPlotColumn(metric=key(c)) for c in panel["columns"]],
        )

    sections = [
        ws.Section(
            name="Which method wins", panels=[build(p) for p in spec["panels"]], is_open=True
        )
    ]
    if spec.get("tuning_panels"):
        sections.append(
            ws.Section(
                name="Learning rate chosen on validation (tune=lr)",
                panels=[build(p) for p in spec["tuning_panels"]],
                is_open=True,
            )
        )
    return ws.Workspace(
        entity=spec["entity"] or "",
        project=spec["project"],
        name=spec["name"],
        sections=sections,
        runset_settings=ws.RunsetSettings(filters=[expr.Metric("Group") == spec["group"]]),
    )


def _run_configs(sweep_dir: Path) -> list[dict[str, Any]]:
    import yaml

    configs = []
    for path in sorted(sweep_dir.glob("*/config.yaml")):
        loaded = yaml.safe_load(path.read_text())
        if isinstance(loaded, dict):
            configs.append(loaded)
    return configs


def write_dashboard(sweep_dir: Path, create: bool | None = None) -> tuple[Path, str | None]:
    """Write the sweep's dashboard spec; create it in W&B when ``create`` (default: when
    W&B is online with credentials). Returns the spec's path and the view's URL, if made."""
    from ftlab.records import RESULTS_FILE, load_record
    from ftlab.wandb_env import wandb_offline_reason

    configs = _run_configs(sweep_dir)
    if not configs:
        raise ConfigError(f"{sweep_dir} holds no job config.yaml: is it a sweep directory?")
    logger = configs[0].get("logger") or {}
    wandb_cfg = logger.get("wandb", logger) if isinstance(logger, dict) else {}
    records = [load_record(p) for p in sorted(sweep_dir.glob(f"*/{RESULTS_FILE}"))]
    score, forgetting = sweep_metrics(r for r in records if r.get("stage") != "select")
    spec = dashboard_spec(
        group=sweep_dir.name,
        project=str(wandb_cfg.get("project") or "ftlab"),
        knobs=method_knobs(configs),
        entity=wandb_cfg.get("entity"),
        score=score,
        forgetting=forgetting,
        tuned_on=tuned_validation_key(records),
    )
    path = sweep_dir / SPEC_FILE
    atomic_write_json(path, spec)
    if create is None:
        create = wandb_cfg.get("mode") not in ("offline", "disabled") and (
            wandb_offline_reason() is None
        )
    return path, (create_dashboard(path) if create else None)


def create_dashboard(spec_path: Path) -> str:
    """Create the view a spec file describes in W&B (online, with credentials)."""
    spec = json.loads(Path(spec_path).read_text())
    workspace = build_workspace(spec)
    workspace.save()
    return str(workspace.url)
