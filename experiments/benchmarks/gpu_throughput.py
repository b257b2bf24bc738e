"""Training throughput and peak memory of ftlab's module + method on one GPU (bf16).

The measured step is exactly what Lightning runs inside ftlab (FineTuneModule forward,
cross-entropy, backward, AdamW), timed in a plain loop with CUDA synchronisation: 10
warm-up steps, then 20 timed ones, synthetic inputs, randomly initialised backbones
(throughput does not depend on the weights). FLOPs per image come from torch's
FlopCounterMode on one training step; MFU against the bf16 dense peak given.

    python experiments/benchmarks/gpu_throughput.py --out results.json [--tiny]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ftlab.backbones import TimmBackbone
from ftlab.methods import Adapter, Full, LinearProbe, LoRA, Prefix
from ftlab.module import FineTuneModule

METHODS = {
    "full": Full,
    "linear_probe": LinearProbe,
    "lora": lambda: LoRA(r=8),
    "adapter": Adapter,
    "prefix": Prefix,
}


def measure(
    name, method, batch, size, compile_=False, ckpt=False, steps=20, warmup=10, peak_tflops=989.0
):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    module = FineTuneModule(TimmBackbone(name, pretrained=False), num_classes=1000)
    (METHODS[method]() if callable(METHODS[method]) else METHODS[method]).apply(module)
    module.to(device).train()
    if device.type == "cuda" and module.backbone.anatomy.family == "cnn":
        module.to(memory_format=torch.channels_last)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    x = {"pixel_values": torch.randn(batch, 3, size, size, device=device)}
    if device.type == "cuda" and module.backbone.anatomy.family == "cnn":
        x["pixel_values"] = x["pixel_values"].contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(module(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # eager: compile must not trace this
        step()
    flops_per_image = counter.get_total_flops() / batch
    if ckpt:  # after counting: MFU counts the model's FLOPs, not the recomputed forward
        module.backbone.set_grad_checkpointing(True)
    if compile_:  # what module.compile=true does: the backbone, compiled in place
        module.backbone.compile()
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ips = batch * steps / seconds
    return {
        "model": name,
        "method": method,
        "compile": compile_,
        "grad_checkpointing": ckpt,
        "batch": batch,
        "image_size": size,
        "images_per_s": ips,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if device.type == "cuda"
        else None,
        "gflop_per_image": flops_per_image / 1e9,
        "mfu": ips * flops_per_image / (peak_tflops * 1e12),
        "trainable": sum(p.numel() for p in params),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test of the script")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    # (model, method, batch, image size, compile, gradient checkpointing)
    if args.tiny:
        plan = [("vit_tiny_patch16_224", m, 2, 224, False, False) for m in METHODS]
        plan += [("vit_tiny_patch16_224", "lora", 2, 224, False, True)]
        plan += [("resnet18", "full", 2, 64, False, False)]
        kw = {"steps": 1, "warmup": 1}
    else:
        vit = "vit_base_patch16_224"
        plan = [(vit, m, 256, 224, False, False) for m in METHODS]
        plan += [(vit, "full", 256, 224, True, False)]
        # PEFT memory with activation recomputation (the 0.6x-of-full goal)
        plan += [(vit, m, 256, 224, False, True) for m in ("lora", "adapter")]
        plan += [("resnet50", "full", 256, 224, False, False)]
        plan += [("resnet50", "full", 256, 224, True, False)]
        kw = {}
    rows = []
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    for name, method, batch, size, comp, ckpt in plan:
        try:
            row = measure(name, method, batch, size, comp, ckpt, **kw)
        except Exception as err:  # one failure must not lose the other figures
            row = {"model": name, "method": method, "compile": comp, "error": repr(err)[:300]}
        print(json.dumps(row), flush=True)
        rows.append(row)
        # written after every row: a run cut short keeps what it measured
        with open(args.out, "w") as fh:
            json.dump({"device": device, "torch": torch.__version__, "rows": rows}, fh, indent=2)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
