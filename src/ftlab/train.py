"""``ftlab-train``: compose model + method + data, fine-tune, test, report the cost.

``train(cfg)`` is a plain function (the tests call it); ``main`` is the Hydra app and
returns ``cfg.optimized_metric`` for sweepers.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from ftlab.atomic import atomic_write_json, atomic_write_text
from ftlab.errors import MethodNotApplicable, OutOfMemory
from ftlab.run import (
    CONF_DIR,
    close_wandb,
    exit_on_user_error,
    instantiate_list,
    mask_secrets,
    print_config_tree,
    register_resolvers,
    resolved,
    root_cause,
    user_error,
)
from ftlab.sweep import (
    RESULTS_FILE,
    in_multirun,
    previous_result,
    run_job_in_subprocess,
    spawns_processes,
    sweep_group,
)


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    return {
        "model": str(cfg.model.get("label") or cfg.model.get("name")),
        "method": str(cfg.method.get("name")),
        "data": str(cfg.data.get("name")),
        "seed": cfg.get("seed"),
    }


def build(cfg: DictConfig):
    """Instantiate data, backbone, module and method from a composed config."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    backbone = instantiate(cfg.model)
    method = instantiate(cfg.method)
    method.check(backbone.anatomy, backbone.label)
    datamodule.set_preprocessing(backbone.preprocessing(), model_name=backbone.label)
    datamodule.prepare_data()
    module = instantiate(cfg.module, backbone=backbone, num_classes=datamodule.num_classes)
    return datamodule, backbone, module, method


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fine-tune and test one configuration; always leaves a ``results.json``."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from ftlab.callbacks import CostMetrics, EpochSeed, FeatureCache
    from ftlab.checkpoints import AtomicCheckpointIO

    main_rank = rank_zero_only.rank == 0  # under DDP, files are written once, by rank 0
    out_dir = Path(cfg.paths.output_dir)
    done = previous_result(out_dir)
    if done is not None:  # a resumed sweep: this job finished in an earlier attempt
        print(f"ftlab: {out_dir} already has a finished result; not training it again.")
        return done
    ckpt_path = _checkpoint_to_resume(cfg, out_dir)
    out_dir = Path(cfg.paths.output_dir)  # resuming may continue an earlier run's dir
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        **run_identity(cfg),
        "status": "running",
        "run_dir": str(out_dir),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if ckpt_path is not None:
        results["resumed_from"] = ckpt_path
    run_config = resolved(cfg)
    if main_rank:
        atomic_write_text(out_dir / "config.yaml", _yaml(run_config))
        # a job killed from here on reads as "running" (interrupted), not as an older attempt
        atomic_write_json(out_dir / RESULTS_FILE, results)
    exit_code = 1
    try:
        if cfg.get("seed") is not None:
            pl.seed_everything(cfg.seed, workers=True)
        datamodule, backbone, module, method = build(cfg)
        results["method_label"] = method.label
        results["data/samples_per_class"] = cfg.data.get("samples_per_class")
        module.run_info = {"config": run_config, "class_names": list(datamodule.class_names)}

        cost = CostMetrics()
        cache = FeatureCache(cfg.get("feature_cache", "auto"))
        callbacks = [
            EpochSeed(cfg.get("seed")),  # first: it seeds what the method initialises
            method,
            cache,
            cost,
            *instantiate_list(cfg.get("callbacks")),
        ]
        loggers = instantiate_list(
            cfg.get("logger"), extra={"ftlab.run.wandb_logger": _wandb_extra(cfg, run_config)}
        )
        if not loggers:  # Lightning refuses an LR monitor with nothing to log to
            callbacks = [
                c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)
            ]
        plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
        trainer: pl.Trainer = instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, **plugins
        )

        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if ckpt_path is not None and "val/acc" not in trainer.callback_metrics:
            # resumed from the checkpoint of the last epoch: fit had nothing left to run
            trainer.validate(module, datamodule=datamodule, verbose=False)
        last_val = {k: _num(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        ckpt = trainer.checkpoint_callback
        best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
        test_metrics = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)[0]

        results.update(cost.summary())
        results.update(last_val)
        results.update({k: _num(v) for k, v in test_metrics.items()})
        if module.val_acc_best.update_called:
            results["val/acc_best"] = _num(module.val_acc_best.compute())
        results["checkpoint/path"] = best
        results["checkpoint/bytes"] = os.path.getsize(best) if best else None
        results["epochs"] = trainer.current_epoch
        results["feature_cache_s"] = cache.seconds or None
        results["feature_cache"] = cache.kind  # "backbone", "prefix(k=...)" or None
        results["status"] = "done"
        for logger in trainer.loggers:
            logger.log_metrics(
                {k: v for k, v in results.items() if "/" in k and isinstance(v, int | float)}
            )
        _summarise_to_wandb(results)
        exit_code = 0
        return results
    except MethodNotApplicable as err:
        results.update(status="skipped", reason=str(err))
        exit_code = 0
        raise
    except BaseException as err:
        oom = (
            _out_of_memory(cfg, err)
            if isinstance(root_cause(err), torch.OutOfMemoryError)
            else None
        )
        shown = oom or user_error(err) or root_cause(err)
        results.update(
            status="failed",
            error=f"{type(shown).__name__}: {shown}",
            traceback=traceback.format_exc(limit=8),
        )
        if oom is not None:
            raise oom from err
        raise
    finally:
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        results["wandb_dir"] = close_wandb(exit_code)
        if main_rank:  # an error message may quote a secret a config interpolated
            atomic_write_json(out_dir / RESULTS_FILE, mask_secrets(results))


def _out_of_memory(cfg: DictConfig, err: BaseException) -> OutOfMemory:
    """What to change when the accelerator ran out of memory, instead of a raw stack."""
    first = str(root_cause(err)).strip().splitlines()[0][:200]
    advice = [f"lower data.batch_size (now {cfg.data.get('batch_size')})"]
    if cfg.model.get("grad_checkpointing") is False:
        advice.append("set model.grad_checkpointing=true")
    if "bf16" not in str(cfg.trainer.get("precision")):
        advice.append(f"use trainer.precision=bf16-mixed (now {cfg.trainer.get('precision')})")
    advice.append("or a parameter-efficient method (method=lora)")
    return OutOfMemory(f"out of memory ({first}). To fit: {', '.join(advice)}.")


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
        print(f"ftlab: resuming {run_dir} from {LAST}")
    elif ckpt_path in LIGHTNING_KEYWORDS:
        return ckpt_path
    if ckpt_path is not None:
        load_checkpoint(ckpt_path)  # missing, truncated or foreign: one clear message now
    return None if ckpt_path is None else str(ckpt_path)


def _wandb_extra(cfg: DictConfig, run_config: dict[str, Any]) -> dict[str, Any]:
    # the run config holds `_target_` nodes: pass it as plain data, never instantiated
    extra = {"run_config": run_config, "_recursive_": False, "_convert_": "all"}
    wandb_cfg = cfg.get("logger", {}).get("wandb", {})
    if wandb_cfg.get("group") is None and sweep_group():
        extra["group"] = sweep_group()  # one W&B group per sweep
    return extra


def _summarise_to_wandb(results: dict[str, Any]) -> None:
    import sys

    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is not None:
        for key, value in results.items():
            if "/" in key and isinstance(value, int | float):
                wandb.run.summary[key] = value


def _num(value: Any) -> Any:
    try:
        return float(value.item()) if hasattr(value, "item") else float(value)
    except (TypeError, ValueError):
        return value


def _yaml(data: dict) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(data))


def print_summary(results: dict[str, Any]) -> None:
    import rich
    from rich.table import Table

    table = Table(
        title=f"ftlab: {results['method_label']} on {results['model']} / {results['data']}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    pct = results.get("params/trainable_pct") or 0.0
    rows = [
        ("test accuracy", f"{results.get('test/acc', float('nan')):.4f}"),
        ("best val accuracy", f"{results.get('val/acc_best', float('nan')):.4f}"),
        (
            "trainable / total params",
            f"{results['params/trainable']:,} / {results['params/total']:,} ({pct:.2f}%)",
        ),
        ("train samples/s", f"{results.get('speed/train_samples_per_s') or 0:.1f}"),
        (
            "peak memory",
            f"{(results.get('memory/peak_bytes') or 0) / 2**20:.0f} MiB ({results.get('memory/kind')})",
        ),
        ("checkpoint", f"{(results.get('checkpoint/bytes') or 0) / 2**20:.2f} MiB"),
        ("fit time", f"{results.get('time/fit_s', 0):.1f} s"),
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
    multirun = in_multirun()
    if cfg.get("print_config", True):
        print_config_tree(cfg, ("model", "method", "data", "module", "trainer", "logger", "seed"))
    metric = cfg.get("optimized_metric")
    nothing = float("nan") if metric else None  # a sweeper sees a failed trial, not a crash
    try:
        # DDP re-runs the command line for each rank: a sweep job must not be that command
        own_process = multirun and spawns_processes(cfg)
        results = run_job_in_subprocess(cfg) if own_process else train(cfg)
    except MethodNotApplicable as err:
        if multirun:
            print(f"ftlab: skipped: {err}")
            return nothing
        raise
    except Exception as err:
        if multirun:  # a sweep survives one failing job; results.json says why
            shown = user_error(err) or root_cause(err)
            print(f"ftlab: job failed: {type(shown).__name__}: {shown}")
            return nothing
        raise
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        print_summary(results)
    return results.get(metric, nothing) if metric else None


register_resolvers()

if __name__ == "__main__":
    main()
