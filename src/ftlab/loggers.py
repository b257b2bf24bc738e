"""The run's loggers: W&B (offline when there are no credentials, its run inside the run
dir, always closed) and whatever else the ``logger`` group lists."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ftlab.config import instantiate_list
from ftlab.errors import ConfigError, one_line
from ftlab.wandb_env import wandb_offline_reason


def build_loggers(cfg: DictConfig, run_config: dict[str, Any]) -> list[Any]:
    """Every logger of ``cfg.logger``; W&B receives the resolved run config at ``init`` (so
    offline runs sync with it) and, inside a sweep, the sweep's group."""
    # the run config holds `_target_` nodes: pass it as plain data, never instantiated
    extra = {"run_config": run_config, "_recursive_": False, "_convert_": "all"}
    wandb_cfg = cfg.get("logger", {}).get("wandb", {})
    if wandb_cfg.get("group") is None:
        from ftlab.sweep import sweep_group

        group = sweep_group()
        if group:
            extra["group"] = group  # one W&B group per sweep
    return instantiate_list(cfg.get("logger"), extra={wandb_logger: extra})


def log_results(loggers: list[Any], results: dict[str, Any]) -> None:
    """The run's final numbers (every ``split/name`` key) to each logger, and into the W&B
    run's summary, where dashboards read them."""
    numbers = {k: v for k, v in results.items() if "/" in k and isinstance(v, int | float)}
    for logger in loggers:
        logger.log_metrics(numbers)
    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is not None:
        for key, value in numbers.items():
            wandb.run.summary[key] = value


def wandb_logger(
    save_dir: str,
    project: str = "ftlab",
    mode: str = "auto",
    run_config: dict | None = None,
    init_timeout: float = 60,
    **kwargs: Any,
):
    """A Lightning ``WandbLogger`` whose run lives in the run dir; ``mode=auto`` goes
    offline when there are no credentials. ``run_config`` (the resolved run config) goes to
    ``wandb.init`` so offline runs sync with it. An online run that cannot start (server
    unreachable, bad key) falls back to offline with a warning: logging never kills training."""
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    modes = ("auto", "online", "offline", "disabled")
    if mode not in modes:
        raise ConfigError(f"logger.wandb.mode={mode!r} is not one of {list(modes)}.")
    if mode == "auto":
        mode = "offline" if wandb_offline_reason() else "online"
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_SILENT", "true")
    tags = [str(t) for t in kwargs.pop("tags", None) or []]

    def make(run_mode: str) -> WandbLogger:
        logger = WandbLogger(
            save_dir=save_dir,
            dir=save_dir,
            project=project,
            mode=run_mode,
            offline=run_mode == "offline",
            config=run_config,
            tags=tags,
            settings=wandb.Settings(init_timeout=init_timeout),
            **kwargs,
        )
        # Lightning passes anonymous=None, which wandb (deprecated, no effect) warns about
        # on every run unless the key is absent
        if "anonymous" not in kwargs and logger._wandb_init.get("anonymous") is None:
            logger._wandb_init.pop("anonymous", None)
        return logger

    logger = make(mode)
    if mode == "online":
        try:
            _ = logger.experiment  # start the run now, while falling back is still possible
        except Exception as err:  # wandb raises its own CommError/UsageError types
            import warnings

            warnings.warn(
                f"W&B could not start an online run ({type(err).__name__}: "
                f"{one_line(err, 160)}); logging offline in {save_dir} instead "
                "(upload later with `wandb sync`).",
                stacklevel=2,
            )
            close_wandb(1)
            logger = make("offline")
    return logger


def close_wandb(exit_code: int = 0) -> str | None:
    """Finish the active W&B run (if any) and return its local directory."""
    if "wandb" not in sys.modules:
        return None
    import wandb

    run = wandb.run
    if run is None:
        return None
    run_dir = str(Path(run.dir).parent)
    wandb.finish(exit_code=exit_code)
    return run_dir
