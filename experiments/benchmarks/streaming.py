"""data=streaming against data=image_folder on the same JPEG photographs: training-loader
images/s (decode + resize + crop + normalise + batch, what a fit waits for), per epoch,
with 0, 1 and 2 loader workers, on this machine's CPU.

    .venv/bin/python experiments/benchmarks/streaming.py      # writes streaming.json

The images: input_pipeline.py's 2,000 256 px JPEG photographs (written once under
logs/bench/). ``image_folder`` is read three ways: as ``data=image_folder`` runs by default
(the decoded, cropped images kept in shared memory after their first read), with
``data.cache=false`` (every epoch decodes every file, as streaming does), and as
``data=streaming`` over shards ``ftlab-data optimize data=image_folder ...`` wrote from the
same folder (the JPEG bytes themselves, in 64 MB chunks). Same split, same 224 px eval
transform (ViT-B/16's), batch 64, the training loader (shuffled).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from input_pipeline import BATCH, DATA_CONFIG, FOLDER, make_folder  # noqa: E402

ROOT = HERE.parents[1]
SHARDS = ROOT / "logs" / "bench" / "photos_jpeg256_shards"
EPOCHS = 3


def folder_module(workers: int, cache: bool):
    from ftlab.data import ClassificationDataModule, ImageFolder

    return ClassificationDataModule(
        ImageFolder(FOLDER),
        batch_size=BATCH,
        num_workers=workers,
        cache=cache,
        persistent_workers=workers > 0,
    )


def streaming_module(workers: int):
    from ftlab.data import Shards, StreamingDataModule

    return StreamingDataModule(Shards(SHARDS), batch_size=BATCH, num_workers=workers)


def epochs(dm) -> list[float]:
    """Images/s of each of ``EPOCHS`` epochs of ``dm``'s training loader (set-up included
    in the first: the image cache's allocation, litdata's index)."""
    dm.set_preprocessing(DATA_CONFIG)
    started = time.perf_counter()
    dm.setup("fit")
    loader = dm.train_dataloader()
    rates = []
    for _ in range(EPOCHS):
        seen = 0
        for batch in loader:
            seen += len(batch["pixel_values"])
        rates.append(seen / (time.perf_counter() - started))
        started = time.perf_counter()
    return rates


def write_shards() -> dict:
    from ftlab.data.streaming import write_shards as write

    shutil.rmtree(SHARDS, ignore_errors=True)
    started = time.perf_counter()
    meta = write(folder_module(0, cache=False), SHARDS)
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in SHARDS.rglob("chunk-*.bin"))
    files = sum(p.stat().st_size for p in FOLDER.rglob("*.jpg"))
    return {"seconds": seconds, "shard_bytes": size, "jpeg_bytes": files, "splits": meta["splits"]}


def main() -> int:
    torch.set_num_threads(1)
    make_folder()
    written = write_shards()
    print(
        f"shards: {written['splits']} in {written['seconds']:.1f} s, "
        f"{written['shard_bytes'] / 2**20:.1f} MiB (the JPEG files: "
        f"{written['jpeg_bytes'] / 2**20:.1f} MiB)",
        flush=True,
    )
    results = {"cpus": os.cpu_count(), "batch": BATCH, "written": written, "rows": []}
    for workers in (0, 1, 2):
        loaders = {
            "image_folder": lambda w=workers: folder_module(w, cache=True),
            "image_folder, cache=false": lambda w=workers: folder_module(w, cache=False),
            "streaming": lambda w=workers: streaming_module(w),
        }
        for name, build in loaders.items():
            rates = epochs(build())
            results["rows"].append({"loader": name, "workers": workers, "images_per_s": rates})
            print(
                f"{name:26s} workers={workers}  "
                + "  ".join(f"epoch {i + 1}: {r:7.1f}" for i, r in enumerate(rates)),
                flush=True,
            )
    HERE.joinpath("streaming.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
