"""Every asset ftlab knows by name: the data sources with a fixed place and the packaged
weights. ``ftlab-data fetch`` and ``list`` loop over it, and a config names an asset's place
as ``${ftlab.asset:NAME}`` (or ``${ftlab.asset:NAME,DATA_DIR}``), resolved here.

Each part of the tree lists its own assets (:data:`ftlab.data.sources.DATASETS`,
:data:`ftlab.backbones.assets.WEIGHTS`); a new one is a class there and its line in that
list, with no edit here or in the configs' resolvers.
"""

from __future__ import annotations

import os
from pathlib import Path

from ftlab.assets import Asset
from ftlab.backbones.assets import WEIGHTS
from ftlab.data.sources import DATASETS
from ftlab.errors import ConfigError, suggest

#: Every asset, by name: first the ones a plain ``ftlab-data fetch`` gets, in their lists' order.
ASSETS: dict[str, type[Asset]] = {
    asset.name: asset
    for asset in sorted((*DATASETS, *WEIGHTS), key=lambda asset: not asset.default_fetch)
}
#: What a plain ``ftlab-data fetch`` gets: what the offline default configs need.
DEFAULT_ASSETS = tuple(name for name, asset in ASSETS.items() if asset.default_fetch)


def get(name: str, data_dir: str | os.PathLike | None = None) -> Asset:
    """The asset called ``name``, looking in ``data_dir`` (default: the data dir rule);
    an unknown name is a ConfigError that names the known ones."""
    if name not in ASSETS:
        raise ConfigError(
            f"unknown asset {name!r}; known: {', '.join(ASSETS)}.{suggest(name, ASSETS)}"
        )
    return ASSETS[name](data_dir)


def asset_path(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Where asset ``name`` is: what ``${ftlab.asset:NAME[,DATA_DIR]}`` resolves to. An
    asset that is not here is the asset's own sentence saying how to fetch it."""
    return get(name, data_dir or None).located()
