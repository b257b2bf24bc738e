"""Config values handed on to libraries that want plain Python data."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """An OmegaConf container as plain dicts and lists (resolved); anything else as it is.
    For values handed on to libraries that check ``isinstance(x, dict)`` (peft, datasets)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
