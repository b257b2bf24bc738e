"""``ftlab-train``: compose model + method + data, fine-tune, test, report the cost.

``train(cfg)`` is a plain function (the tests call it); ``main`` is the Hydra app and
returns ``cfg.optimized_metric`` for sweepers.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from ftlab.config import (
    CONF_DIR,
    instantiate_list,
    print_config_tree,
    register_resolvers,
    resolved,
)
from ftlab.console import log, quiet_console
from ftlab.errors import (
    ConfigError,
    MethodNotApplicable,
    exit_on_user_error,
    root_cause,
    user_error,
)
from ftlab.loggers import build_loggers, close_wandb, log_results
from ftlab.records import RunRecord, finished_record
from ftlab.settings import check_trainer
from ftlab.sweep import in_multirun, run_job_in_subprocess, spawns_processes
from ftlab.tasks import Classify


def build(cfg: DictConfig):
    """Instantiate data, backbone, module and method from a composed config."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    task, backbone, method = build_parts(cfg, datamodule)
    datamodule.use_task(task)
    datamodule.set_preprocessing(backbone.preprocessing(), model_name=backbone.label)
    datamodule.prepare_data()
    module = build_module(cfg, task, backbone, datamodule.num_classes)
    return datamodule, backbone, module, method


def build_parts(cfg: DictConfig, datamodule: Any = None):
    """The task, the backbone and the method, each checked against the others."""
    from hydra.utils import instantiate

    # a config written before tasks were a group (an old checkpoint's) classifies
    task = instantiate(cfg.task) if cfg.get("task") else Classify()
    backbone = instantiate(cfg.model)
    method = instantiate(cfg.method)
    method.check(backbone.anatomy, backbone.label)
    task.check(backbone, method, datamodule)
    return task, backbone, method


def build_module(cfg: DictConfig, task, backbone, num_classes: int):
    """The LightningModule around ``backbone`` for ``task``, with ``cfg.module``'s settings."""
    from hydra.utils import instantiate

    settings = copy.copy(cfg.module)  # shallow: its interpolations still resolve in cfg
    with open_dict(settings):
        settings.pop("loss_check", None)  # the LossWatchdog's (see _trainer), not the module's
    return instantiate(settings, backbone=backbone, num_classes=num_classes, task=task)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fine-tune and test one configuration; always leaves a ``results.json``."""
    import lightning.pytorch as pl
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    budget = apply_budget(cfg)
    check_trainer(cfg.trainer)  # a GPU it lacks, a run that trains nothing: before any file
    out_dir = Path(cfg.paths.output_dir)
    done = finished_record(out_dir)
    if done is not None:  # a resumed sweep: this job finished in an earlier attempt
        log.info(f"{out_dir} already has a finished result; not training it again.")
        return done
    ckpt_path = _checkpoint_to_resume(cfg, out_dir)  # may continue an earlier run's dir
    run_config = resolved(cfg)
    record = RunRecord(
        cfg,
        run_config,
        write=rank_zero_only.rank == 0,  # under DDP, files are written once, by rank 0
        on_close=lambda ok: {"wandb_dir": close_wandb(0 if ok else 1)},
        resumed_from=ckpt_path,
    )
    with record:
        if cfg.get("seed") is not None:
            pl.seed_everything(cfg.seed, workers=True)
        datamodule, backbone, module, method = build(cfg)
        record.update(method_label=method.label, method_kind=method.kind, budget=budget)
        record.update(stage=cfg.get("stage"), tuning=_plain(cfg.get("tuning")))
        record.update(task=module.task.name, score=module.task.score)
        record.update(**{"data/samples_per_class": cfg.data.get("samples_per_class")})
        module.run_info = {"config": run_config, "class_names": list(datamodule.class_names)}
        trainer, cost, cache = _trainer(cfg, method, run_config)
        test = bool(cfg.get("test", True))
        if ckpt_path is None and test:  # the untouched model, before the method is applied
            record.update(**module.task.measure_before(module, trainer.strategy.root_device))
        record.update(**_fit_and_test(trainer, module, method, datamodule, ckpt_path, test))
        if test:
            record.update(**_also_test(cfg, trainer, module, backbone))
        record.update(**cost.summary())
        record.update(feature_cache_s=cache.seconds or None, feature_cache=cache.kind)
        truncation = getattr(datamodule.pipeline, "truncation", None)
        if truncation is not None:  # examples cut at task.max_length, counted
            record.update(**truncation())
        log_results(trainer.loggers, record.data)
    return record.data


def _trainer(cfg: DictConfig, method, run_config: dict[str, Any]):
    """The Trainer, with ftlab's callbacks around the method plus the configured callbacks
    and loggers; also the cost and feature-cache callbacks, whose figures the run records."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from ftlab.callbacks import CostMetrics, EpochSeed, FeatureCache, LossWatchdog
    from ftlab.checkpoints import AtomicCheckpointIO

    cost = CostMetrics()
    cache = FeatureCache(cfg.get("feature_cache", "auto"))
    callbacks = [
        EpochSeed(cfg.get("seed")),  # first: it seeds what the method initialises
        method,
        cache,
        cost,
        LossWatchdog(cfg.module.get("loss_check", "auto")),  # in every run, callbacks=none too
        *instantiate_list(cfg.get("callbacks")),
    ]
    loggers = build_loggers(cfg, run_config)
    if not loggers:  # Lightning refuses an LR monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **plugins)
    return trainer, cost, cache


def _fit_and_test(
    trainer, module, method, datamodule, ckpt_path: str | None, test: bool = True
) -> dict[str, Any]:
    """Fit (or continue from ``ckpt_path``), then test the best checkpoint (``test``): the
    numbers."""
    task = module.task
    if not method.trains:  # method=zero_shot: the untouched model is tested
        log.info(
            f"method={method.name} trains nothing: the model is validated and tested as it is."
        )
        trainer.validate(module, datamodule=datamodule, verbose=False)
    else:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if ckpt_path is not None and task.monitor not in trainer.callback_metrics:
        # resumed from the checkpoint of the last epoch: fit had nothing left to run
        trainer.validate(module, datamodule=datamodule, verbose=False)
    out = {k: _num(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    ckpt = trainer.checkpoint_callback
    best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    if test:
        metrics = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
        out.update({k: _num(v) for k, v in metrics.items()})
    if module.val_best.update_called:
        out[task.best] = _num(module.val_best.compute())
    out["checkpoint/path"] = best
    out["checkpoint/bytes"] = os.path.getsize(best) if best else None
    out["epochs"] = trainer.current_epoch
    return out


def _also_test(cfg: DictConfig, trainer, module, backbone) -> dict[str, Any]:
    """The tested model (the best checkpoint's weights) scored on more data configs
    (``also_test=[gsm8k]``, each entry a data config's name and its overrides:
    ``"gsm8k data.test_samples=50"``), with the same task; their metrics as
    ``<data>/test/...``."""
    from hydra.utils import instantiate

    from ftlab.config import compose_config

    out: dict[str, Any] = {}
    for entry in cfg.get("also_test") or []:
        name, *overrides = str(entry).split()  # "gsm8k data.test_samples=50"
        seed = f"seed={cfg.get('seed') or 0}"
        data = instantiate(compose_config([f"data={name}", seed, *overrides]).data)
        data.use_task(module.task)
        data.set_preprocessing(backbone.preprocessing(), model_name=backbone.label)
        data.prepare_data()
        metrics = trainer.test(module, datamodule=data, verbose=False)[0]
        out.update({f"{data.name}/{k}": _num(v) for k, v in metrics.items()})
    return out


def _checkpoint_to_resume(cfg: DictConfig, out_dir: Path) -> str | None:
    """The checkpoint ``fit`` continues from, checked before anything is built.

    ``resume=true``, ``ckpt_path=last`` or a job SLURM requeued: this run dir's last
    checkpoint, else the newest
    unfinished run of the same config (whose dir this run then continues in; a sweep job
    only ever continues its own dir). An explicit path must be a readable ftlab checkpoint.
    """
    from ftlab.checkpoints import LAST, LIGHTNING_KEYWORDS, find_resumable, load_checkpoint
    from ftlab.errors import CheckpointError

    ckpt_path = cfg.get("ckpt_path")
    # SLURM requeued this job after preemption or a timeout (submitit's max_num_timeout)
    requeued = os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")
    asked = bool(cfg.get("resume")) or ckpt_path == "last"
    if asked or requeued:
        multirun = in_multirun()
        run_dir = find_resumable(out_dir, resolved(cfg), search_siblings=not multirun)
        if run_dir is None:
            if multirun or not asked:  # it never reached a checkpoint: start from the beginning
                return None
            raise CheckpointError(
                f"resume=true: no unfinished run with this config and a {LAST} under "
                f"{out_dir.parent}. Point hydra.run.dir at the run to continue, pass "
                "ckpt_path=<file>, or drop resume=true to start afresh."
            )
        if run_dir != out_dir:
            cfg.paths.output_dir = str(run_dir)
        ckpt_path = str(run_dir / LAST)
        log.info(f"resuming {run_dir} from {LAST}")
    elif ckpt_path in LIGHTNING_KEYWORDS:
        return ckpt_path
    if ckpt_path is not None:
        load_checkpoint(ckpt_path)  # missing, truncated or foreign: one clear message now
    return None if ckpt_path is None else str(ckpt_path)


def _num(value: Any) -> Any:
    try:
        return float(value.item()) if hasattr(value, "item") else float(value)
    except (TypeError, ValueError):
        return value


BUDGET_UNITS = {"epoch": "epochs", "epochs": "epochs", "step": "steps", "steps": "steps",
                "second": "seconds", "seconds": "seconds", "s": "seconds"}  # fmt: skip


def apply_budget(cfg: DictConfig) -> str:
    """The training budget (``budget="200 steps"``, ``"3 epochs"``, ``"600 seconds"``) set
    on the trainer, so every job of a comparison gets the same; returns it as the run
    records it (the trainer's own epochs or steps when no budget is given). A budget in
    seconds caps the time; the learning-rate schedule still spans ``trainer.max_epochs``."""
    budget = cfg.get("budget")
    trainer = cfg.trainer
    if budget is None:
        steps = trainer.get("max_steps", -1)
        if steps not in (None, -1):
            return budget_text(steps, "steps")
        return budget_text(trainer.get("max_epochs"), "epochs")
    amount, _, unit = str(budget).strip().partition(" ")
    unit = BUDGET_UNITS.get(unit.strip().lower())
    try:
        value = int(amount)
    except ValueError:
        value = -1
    if unit is None or value < 1:
        raise ConfigError(
            f"budget={budget!r} is not a number and a unit; use e.g. budget='200 steps', "
            "budget='3 epochs' or budget='600 seconds'."
        )
    with open_dict(trainer):
        if unit == "epochs":
            trainer.max_epochs, trainer.max_steps = value, -1
        elif unit == "steps":
            trainer.max_epochs, trainer.max_steps = -1, value
        else:
            trainer.max_time = {"seconds": value}
    return budget_text(value, unit)


def budget_text(value: object, unit: str) -> str:
    """``"200 steps"``, ``"1 epoch"``: a budget as the records and the report say it."""
    return f"{value} {unit[:-1] if value == 1 else unit}"


def _plain(value: Any) -> Any:
    from ftlab.plain import plain

    return plain(value)


def _metric_name(key: str) -> str:
    """``test/acc`` -> ``accuracy``, ``val/loss_best`` -> ``loss``, as the summary says them."""
    name = key.partition("/")[2].removesuffix("_best")
    return {"acc": "accuracy", "exact_match": "exact match"}.get(name, name.replace("_", " "))


def print_summary(results: dict[str, Any]) -> None:
    import rich
    from rich.table import Table

    from ftlab.reporting.fmt import human_bytes

    table = Table(
        title=f"ftlab: {results['method_label']} on {results['model']} / {results['data']}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    pct = results.get("params/trainable_pct") or 0.0
    score = results.get("score") or "test/acc"
    best = next((k for k in results if k.startswith("val/") and k.endswith("_best")), "")
    rows = [
        (f"test {_metric_name(score)}", f"{results.get(score, float('nan')):.4f}"),
        (f"best val {_metric_name(best)}", f"{results.get(best, float('nan')):.4f}"),
        (
            "trainable / total params",
            f"{results.get('params/trainable') or 0:,} / {results.get('params/total') or 0:,} "
            f"({pct:.2f}%)",
        ),
        ("train samples/s", f"{results.get('speed/train_samples_per_s') or 0:.1f}"),
        (
            "peak memory",
            f"{human_bytes(results.get('memory/peak_bytes'))} ({results.get('memory/kind')})",
        ),
        ("checkpoint", human_bytes(results.get("checkpoint/bytes"), digits=2)),
        ("fit time", f"{results.get('time/fit_s', 0):.1f} s"),
        *(
            [("forgetting (general-text CE change)", f"{results['test/forgetting']:+.4f}")]
            if results.get("test/forgetting") is not None
            else []
        ),
        ("run dir", results["run_dir"]),
    ]
    if results.get("wandb_dir"):
        rows.append(("W&B run", results["wandb_dir"]))
    for row in rows:
        table.add_row(*row)
    rich.print(table)
    if results.get("wandb_dir") and "offline" in Path(results["wandb_dir"]).name:
        rich.print(f"Upload to W&B: [bold]wandb sync {results['wandb_dir']}[/bold]")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    quiet_console()
    multirun = in_multirun()
    if cfg.get("print_config", True):
        print_config_tree(
            cfg, ("task", "model", "method", "data", "module", "trainer", "logger", "seed")
        )
    metric = cfg.get("optimized_metric")
    nothing = float("nan") if metric else None  # a sweeper sees a failed trial, not a crash
    try:
        # DDP re-runs the command line for each rank: a sweep job must not be that command
        own_process = multirun and spawns_processes(cfg)
        results = run_job_in_subprocess(cfg) if own_process else train(cfg)
    except MethodNotApplicable as err:
        if multirun:
            log.info(f"skipped: {err}")
            return nothing
        raise
    except Exception as err:
        if multirun:  # a sweep survives one failing job; results.json says why
            shown = user_error(err) or root_cause(err)
            log.error(f"job failed: {type(shown).__name__}: {shown}")
            return nothing
        raise
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        print_summary(results)
    return results.get(metric, nothing) if metric else None


register_resolvers()

if __name__ == "__main__":
    main()
