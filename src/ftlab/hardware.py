"""Defaults that depend on the machine: precision, data-loading workers, fused kernels.

Each is what a config gets when it says ``auto`` (or, for precision, uses the
``${ftlab.precision:}`` resolver), so a config stays the same from a laptop to an H100.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def best_precision() -> str:
    """``bf16-mixed`` on a GPU that supports bf16, ``16-mixed`` on an older one, else
    ``32-true`` (the CPU: bf16 autocast there is slower than fp32 on most machines)."""
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def data_workers(requested: Any = "auto") -> int:
    """Loader processes: ``auto`` keeps the GPU fed (a share of the CPUs per visible GPU,
    one left for the training process, at most 8); on a CPU-only machine the training
    process needs every core, so 0."""
    if requested != "auto":
        return requested
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus == 0:
        return 0
    return max(1, min(8, usable_cpus() // gpus - 1))


def fused_optimizer_kwargs(factory: Any, device: torch.device) -> dict[str, Any]:
    """``fused=True`` for torch's Adam/AdamW when the parameters live on a CUDA device (one
    kernel per step instead of one per tensor), unless the config already chose."""
    func = getattr(factory, "func", factory)
    chosen = getattr(factory, "keywords", {})
    if device.type != "cuda" or func not in (torch.optim.Adam, torch.optim.AdamW):
        return {}
    if "fused" in chosen or "foreach" in chosen:
        return {}
    return {"fused": True}


def gpu_for_job(job_num: Any) -> int:
    """GPU index for sweep job ``job_num``: jobs share the visible GPUs round-robin."""
    count = torch.cuda.device_count()
    return int(job_num) % count if count else 0


# what to use instead, per trainer option that asks for a GPU
_GPU_TRAINERS = {
    "gpu": "use trainer=cpu, or trainer=default to take a GPU when there is one",
    "gpu_per_job": "use trainer=cpu, or trainer=default to take a GPU when there is one",
    "ddp": "use trainer=ddp_cpu (data-parallel CPU processes, gloo) or trainer=cpu",
    "fsdp": "use trainer=cpu, or trainer=ddp_cpu for data-parallel CPU processes",
}


def check_accelerator(accelerator: Any, choice: str | None = None) -> None:
    """Refuse a trainer that asks for a GPU this machine lacks, saying what to set
    (Lightning's ``No supported gpu backend found!`` names neither). ``choice``: the
    ``trainer=`` option, named when it is the one that asks."""
    from ftlab.errors import ConfigError

    accelerator = str(accelerator).lower()
    if accelerator == "gpu":  # Lightning's "gpu" is CUDA or Apple's MPS
        present = torch.cuda.is_available() or torch.backends.mps.is_available()
    elif accelerator == "cuda":
        present = torch.cuda.is_available()
    else:
        return
    if present:
        return
    if choice in _GPU_TRAINERS:
        asked, advice = f"trainer={choice}", _GPU_TRAINERS[choice]
    else:
        asked = f"trainer.accelerator={accelerator}"
        advice = "use trainer.accelerator=cpu, or auto to take a GPU when there is one"
    raise ConfigError(
        f"{asked} needs a CUDA GPU and this machine has none (torch.cuda.is_available() is "
        f"False); {advice}."
    )
