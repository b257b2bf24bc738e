"""The composed config: where it lives, ftlab's resolvers, the resolved form a run records,
its printout, and instantiating a config group's entries.

``${ftlab.asset:NAME}`` (or ``${ftlab.asset:NAME,${paths.data_dir}}``) is where the asset
``NAME`` of :mod:`ftlab.asset_registry` is, a packaged model's folder for instance; a missing
one stops the composition with the sentence that says how to fetch it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftlab.errors import ConfigError
from ftlab.records import mask_secrets

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _asset(name: str, data_dir: str | None = None) -> str:
    from ftlab.asset_registry import asset_path

    return str(asset_path(name, data_dir))


def _task_fact(fact: str, *, _root_: DictConfig) -> Any:
    """A fact the composed config's task class states (``lm_head``, ``monitor``, ...), for
    the configs that depend on it; classification when the config names no task."""
    from hydra.utils import get_class

    target = OmegaConf.select(_root_, "task._target_", default="ftlab.tasks.Classify")
    return getattr(get_class(target), fact)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("ftlab.cwd"):
        OmegaConf.register_new_resolver("ftlab.cwd", lambda: os.getcwd())
    if not OmegaConf.has_resolver("ftlab.gpu_for_job"):
        from ftlab.hardware import gpu_for_job

        OmegaConf.register_new_resolver("ftlab.gpu_for_job", gpu_for_job)
    if not OmegaConf.has_resolver("ftlab.precision"):
        from ftlab.hardware import best_precision

        OmegaConf.register_new_resolver("ftlab.precision", best_precision)
    if not OmegaConf.has_resolver("ftlab.basename"):  # a model dir's name, not its path
        OmegaConf.register_new_resolver("ftlab.basename", lambda p: Path(str(p)).name)
    if not OmegaConf.has_resolver("ftlab.data_dir"):
        from ftlab.paths import default_data_dir

        OmegaConf.register_new_resolver("ftlab.data_dir", lambda: str(default_data_dir()))
    if not OmegaConf.has_resolver("ftlab.shards_name"):  # what data=streaming holds
        from ftlab.data.sources.shards import shards_name

        OmegaConf.register_new_resolver("ftlab.shards_name", shards_name)
    if not OmegaConf.has_resolver("ftlab.asset"):
        OmegaConf.register_new_resolver("ftlab.asset", _asset)
    if not OmegaConf.has_resolver("ftlab.task"):
        OmegaConf.register_new_resolver("ftlab.task", _task_fact)


def compose_config(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The config ``ftlab-train OVERRIDES`` composes, for tools that read part of it
    (``ftlab-data optimize`` builds its ``data``) without running Hydra's app."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    if not GlobalHydra.instance().is_initialized():
        initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
    return compose(config_name=config_name, overrides=list(overrides))


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data, with Hydra's own node dropped and secrets masked."""
    data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    data.pop("hydra", None)
    return mask_secrets(data)


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


def instantiate_list(
    cfg: DictConfig | None, extra: Mapping[Callable, dict[str, Any]] | None = None
) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-shaped config group. ``extra`` maps a
    factory (the object a ``_target_`` names, not its dotted path, so a renamed or aliased
    target still gets it) to keyword arguments only that factory receives."""
    from hydra.utils import get_object, instantiate

    if not cfg:
        return []
    out = []
    for key, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            try:
                kwargs = extra.get(get_object(node._target_), {}) if extra else {}
                out.append(instantiate(node, **kwargs))
            except Exception as err:
                raise ConfigError(f"could not build {key!r} ({node._target_}): {err}") from err
    return out
