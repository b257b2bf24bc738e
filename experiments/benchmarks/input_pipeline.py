"""The image input pipeline, decode + resize + crop + normalise, in images/s per loader
worker: ftlab's data module against a plain torchvision ``ImageFolder`` loader and timm's
loader, on the same JPEG folder, with the same 224 px eval transform (ViT-B/16's).

    .venv/bin/python experiments/benchmarks/input_pipeline.py      # writes input_pipeline.json

The folder: 2,000 256 px JPEG photographs (quality 90; crops of scikit-learn's two sample
photos), written once under logs/bench/. Each loader reads the folder for
``EPOCHS`` epochs with batch 64 and 0, 1 and 2 workers; the first epoch decodes every file,
later ones show what a loader does on epoch 2 and beyond (ftlab keeps the decoded,
resized images of a non-augmented split in memory, see ``CachedImageDataset``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "logs" / "bench" / "photos_jpeg256"
PER_CLASS, SIZE, BATCH, EPOCHS = 200, 256, 64, 3
#: ViT-B/16's eval preprocessing (timm): 224 px, bicubic, crop_pct 0.9, mean/std 0.5
DATA_CONFIG = {
    "input_size": (3, 224, 224),
    "interpolation": "bicubic",
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "crop_pct": 0.9,
    "crop_mode": "center",
}


def make_folder() -> Path:
    """Photographs, not thumbnails: 256 px crops at random places and scales of the two
    photos scikit-learn ships (china.jpg, flower.jpg, 427 x 640), mirrored at random, as
    JPEG files in 10 class folders (the classes mean nothing; the decoding is the point)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    if (FOLDER / "done").is_file():
        return FOLDER
    photos = [Image.fromarray(p) for p in load_sample_images().images]
    rng = np.random.default_rng(0)
    for label in range(10):
        folder = FOLDER / "train" / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(PER_CLASS):
            photo = photos[(label + j) % len(photos)]
            side = int(rng.integers(200, 420))
            x = int(rng.integers(0, photo.width - side))
            y = int(rng.integers(0, photo.height - side))
            crop = photo.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), Image.BICUBIC)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            crop.save(folder / f"{j:04d}.jpg", quality=90)
    (FOLDER / "done").write_text("ok")
    return FOLDER


def epochs(loader) -> list[float]:
    """Images/s of each epoch over ``loader``."""
    rates = []
    for _ in range(EPOCHS):
        seen, started = 0, time.perf_counter()
        for batch in loader:
            images = batch["pixel_values"] if isinstance(batch, dict) else batch[0]
            seen += len(images)
        rates.append(seen / (time.perf_counter() - started))
    return rates


def ftlab_loader(workers: int):
    from ftlab.data import ClassificationDataModule, ImageFolder

    dm = ClassificationDataModule(
        ImageFolder(FOLDER, test_fraction=0.5),
        batch_size=BATCH,
        num_workers=workers,
        val_fraction=0.01,
        persistent_workers=workers > 0,
    )
    dm.set_preprocessing(DATA_CONFIG)
    dm.setup("test")
    return dm.test_dataloader(), len(dm.splits["test"])


def torchvision_loader(workers: int, n: int):
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.Resize(248, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(DATA_CONFIG["mean"], DATA_CONFIG["std"]),
        ]
    )
    dataset = datasets.ImageFolder(FOLDER / "train", transform=transform)
    subset = torch.utils.data.Subset(dataset, range(0, len(dataset), len(dataset) // n))
    return torch.utils.data.DataLoader(
        subset, batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0
    )


def timm_loader(workers: int, n: int):
    from timm.data import create_dataset, create_loader

    dataset = create_dataset("", root=str(FOLDER / "train"))
    subset = torch.utils.data.Subset(dataset, range(0, len(dataset), len(dataset) // n))
    subset.transform = None  # timm's loader sets the transform on what it is given
    loader = create_loader(
        dataset,
        input_size=DATA_CONFIG["input_size"],
        batch_size=BATCH,
        is_training=False,
        use_prefetcher=False,
        interpolation="bicubic",
        mean=DATA_CONFIG["mean"],
        std=DATA_CONFIG["std"],
        crop_pct=DATA_CONFIG["crop_pct"],
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    return loader


def main() -> int:
    torch.set_num_threads(1)
    make_folder()
    results = {
        "folder": str(FOLDER),
        "images": PER_CLASS * 10,
        "cpus": os.cpu_count(),
        "batch": BATCH,
        "rows": [],
    }
    for workers in (0, 1, 2):
        loader, n = ftlab_loader(workers)
        rows = {"ftlab": epochs(loader), "torchvision": epochs(torchvision_loader(workers, n))}
        timm = timm_loader(workers, n)
        rows["timm (whole folder)"] = epochs(timm)
        for name, rates in rows.items():
            per_worker = [r / max(workers, 1) for r in rates]
            row = {"loader": name, "workers": workers, "images_per_s": rates}
            row["per_worker_first_epoch"] = per_worker[0]
            results["rows"].append(row)
            print(
                f"{name:22s} workers={workers}  epoch 1: {rates[0]:7.1f} img/s "
                f"({per_worker[0]:6.1f} per worker)  later: "
                + ", ".join(f"{r:7.1f}" for r in rates[1:]),
                flush=True,
            )
    out = Path(__file__).with_name("input_pipeline.json")
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
