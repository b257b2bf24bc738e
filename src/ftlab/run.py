"""Shared plumbing of the entry points: config resolution and printing, atomic files,
loggers (W&B offline when there are no credentials), and a clean exit for user errors."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftlab.errors import ConfigError, FtlabError, suggest

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|credentials?)$")
SECRET_ENV = re.compile(r"API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("ftlab.cwd"):
        OmegaConf.register_new_resolver("ftlab.cwd", lambda: os.getcwd())
    if not OmegaConf.has_resolver("ftlab.gpu_for_job"):
        from ftlab.sweep import gpu_for_job

        OmegaConf.register_new_resolver("ftlab.gpu_for_job", gpu_for_job)
    if not OmegaConf.has_resolver("ftlab.precision"):
        from ftlab.hardware import best_precision

        OmegaConf.register_new_resolver("ftlab.precision", best_precision)
    if not OmegaConf.has_resolver("ftlab.minilm"):
        from ftlab.backbones.assets import minilm_path

        OmegaConf.register_new_resolver("ftlab.minilm", lambda: str(minilm_path()))


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data, with Hydra's own node dropped and secrets masked."""
    data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    data.pop("hydra", None)
    return mask_secrets(data)


def mask_secrets(data: Any) -> Any:
    """``data`` with the values of secret-looking keys replaced by ``***``, and the value of
    every secret-looking environment variable (``WANDB_API_KEY``, ``HF_TOKEN``, ...) cut out
    of every string, wherever it was interpolated or quoted in an error message."""
    if isinstance(data, dict):
        return {
            k: ("***" if SECRET_KEY.search(str(k).lower()) and v else mask_secrets(v))
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [mask_secrets(v) for v in data]
    if isinstance(data, str):
        for secret in _secret_env_values():
            data = data.replace(secret, "***")
    return data


def _secret_env_values() -> list[str]:
    """Values of environment variables whose names say they hold a secret (8+ characters,
    so that a flag such as TOKENIZERS_PARALLELISM=false is not one), longest first."""
    found = {
        value
        for name, value in os.environ.items()
        if SECRET_ENV.search(name) and len(value) >= 8 and not name.startswith("TOKENIZERS_")
    }
    return sorted(found, key=len, reverse=True)


def print_config_tree(cfg: DictConfig, fields: tuple[str, ...] = ()) -> None:
    """Print the resolved config as a rich tree, one branch per top-level group."""
    import rich
    import rich.syntax
    import rich.tree

    data = resolved(cfg)
    tree = rich.tree.Tree("config", style="bold")
    keys = list(fields) or list(data)
    for key in keys:
        if key not in data:
            continue
        branch = tree.add(str(key), style="bold cyan")
        value = data[key]
        text = OmegaConf.to_yaml(value) if isinstance(value, dict | list) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    rich.print(tree)


def instantiate_list(cfg: DictConfig | None, extra: dict[str, dict] | None = None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-shaped config group; ``extra`` maps a
    ``_target_`` to keyword arguments only that target receives."""
    from hydra.utils import instantiate

    if not cfg:
        return []
    out = []
    for key, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            try:
                out.append(instantiate(node, **(extra or {}).get(node._target_, {})))
            except Exception as err:
                raise ConfigError(f"could not build {key!r} ({node._target_}): {err}") from err
    return out


def wandb_offline_reason() -> str | None:
    """Why W&B must run offline here, or None when credentials exist."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return f"WANDB_MODE={os.environ['WANDB_MODE']}"
    if os.environ.get("WANDB_API_KEY"):
        return None
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return None
    return "no W&B credentials (WANDB_API_KEY or `wandb login`)"


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
        return WandbLogger(
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

    logger = make(mode)
    if mode == "online":
        try:
            _ = logger.experiment  # start the run now, while falling back is still possible
        except Exception as err:  # wandb raises its own CommError/UsageError types
            import warnings

            warnings.warn(
                f"W&B could not start an online run ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:160]}); logging offline in {save_dir} instead "
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


def check_choice(group: str, value: str) -> None:
    """Fail early, listing the options, for a config group name that does not exist."""
    options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    if value not in options:
        raise ConfigError(
            f"{group}={value!r} does not exist.{suggest(value, options)} Valid: {', '.join(options)}."
        )


def exit_on_user_error(fn: Callable) -> Callable:
    """Turn an :class:`FtlabError` (and Hydra's config errors) into one red line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            from hydra.errors import HydraException
            from omegaconf.errors import OmegaConfBaseException

            user = user_error(err)
            if user is not None:
                _fail(f"{type(user).__name__}: {user}")
            if isinstance(err, HydraException | OmegaConfBaseException):
                _fail(f"config error: {err}")
            raise

    return wrapper


def user_error(err: BaseException | None) -> FtlabError | None:
    """The :class:`FtlabError` behind ``err``, also when Hydra's ``instantiate`` wrapped it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, FtlabError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def root_cause(err: BaseException) -> BaseException:
    """What went wrong under Hydra's ``InstantiationException`` wrapper, if it wrapped it."""
    from hydra.errors import InstantiationException

    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def _fail(message: str) -> None:
    print(f"\nftlab: {message}", file=sys.stderr)
    sys.exit(2)
