"""Data at any size: shards written once, streamed by every rank of every node.

``ftlab-data optimize data=<any data config> <its overrides> out=<dir or URL>`` selects the
splits the way a run would (validation carve, few-shot controls, fixed test subset) and
writes each as Lightning's ``litdata`` shards under ``out/{train,val,test}``, raw: images
as their files' own encoded bytes (or uint8 arrays), texts as text, each with its label
and its id (its position in the split the source read). ``out/ftlab.json`` holds what a
run needs before it reads a sample (modality, class names, split sizes) and is written
last: a folder without it was not written, or not finished, by ``ftlab-data optimize``.

``data=streaming data.source.input_dir=<dir or URL>`` trains from them through litdata's
``StreamingDataset`` / ``StreamingDataLoader``: each rank reads its own share of every
epoch, decoding and transforms run in the loader workers with the backbone's own
preprocessing, and the loader's position is part of every checkpoint, so a run stopped
mid-epoch continues mid-epoch.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ftlab.data.datamodule import DataModule
from ftlab.data.sources.base import Split
from ftlab.data.sources.shards import (
    FORMAT,
    META_FILE,
    Shards,
    is_url,
    local_path,
    remote_client,
    shards_label,
)
from ftlab.errors import ConfigError, DataError

#: Few-shot and subset controls: they select with every label in view, so they apply when
#: the shards are written, not while they stream.
SELECTIONS = (
    "samples_per_class",
    "train_samples",
    "train_fraction",
    "val_fraction",
    "val_samples",
    "test_samples",
)


# --------------------------------------------------------------------------- writing
class ShardWriter:
    """Item ``i`` of one split as a shard record (picklable: litdata's workers call it)."""

    def __init__(self, split: Split, modality: str) -> None:
        self.split, self.modality = split, modality

    def __call__(self, i: int) -> dict[str, Any]:
        item = self.split.items[i]
        assert self.split.index is not None
        record: dict[str, Any] = {
            "id": int(self.split.index[i]),
            "label": int(self.split.labels[i]),
        }
        if self.modality == "text":
            if isinstance(item, tuple):
                record["text"], record["text_pair"] = str(item[0]), str(item[1])
            else:
                record["text"] = str(item)
        elif isinstance(item, np.ndarray):
            record["image"] = np.ascontiguousarray(item, dtype=np.uint8)
        elif isinstance(item, bytes):
            record["image"] = item  # already a file's encoding (embedded in a dataset)
        else:
            record["image"] = Path(item).read_bytes()  # the file's own encoding
        return record


def _check_images(split: Split, name: str) -> None:
    """Every image file of ``split`` opens: a broken file is named now, not by a worker in
    the middle of someone's training run."""
    from PIL import Image

    if isinstance(split.items, np.ndarray):
        return
    for i, item in enumerate(split.items):
        encoded = isinstance(item, bytes)
        try:
            with Image.open(io.BytesIO(item) if encoded else item) as image:
                image.verify()
        except (OSError, ValueError, SyntaxError) as e:
            what = f"#{int(split.index[i])} (embedded bytes)" if encoded else item
            raise DataError(f"data={name}: cannot read image {what}: {e}") from e


def write_shards(
    datamodule: DataModule,
    out: str | os.PathLike,
    chunk_bytes: str | int = "64MB",
    workers: int | None = None,
    overwrite: bool = False,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``datamodule``'s selected splits as litdata shards under ``out``; returns what
    ``out/ftlab.json`` holds.

    A local ``out`` appears whole or not at all: the shards are written into a hidden
    sibling folder that is renamed into place at the end. A URL is written in place, with
    ``ftlab.json`` last.
    """
    from litdata import optimize

    _check_chunk_bytes(chunk_bytes)
    if isinstance(datamodule, StreamingDataModule):
        raise ConfigError(
            "data=streaming is already shards; optimize the data config they were written from "
            "(e.g. data=fashion_mnist), or copy the folder."
        )
    splits = datamodule.select()
    if datamodule.modality == "image":
        for examples in splits.values():
            _check_images(examples, datamodule.name)
    meta = {
        "format": FORMAT,
        "name": datamodule.name,
        "modality": datamodule.modality,
        "class_names": list(datamodule.class_names),
        "splits": {split: len(examples) for split, examples in splits.items()},
        "config": dict(config or {}),
    }
    remote = is_url(out)
    if (
        remote
        and not overwrite
        and remote_client(str(out)).exists(f"{str(out).rstrip('/')}/{META_FILE}")
    ):
        raise DataError(
            f"out={out} already holds shards; name a new location, or add overwrite=true to "
            "replace them."
        )
    target = None if remote else local_path(out)
    if target is not None and target.exists():
        if not target.is_dir():
            raise DataError(f"out={out} is a file; name a folder for the shards.")
        if any(target.iterdir()) and not overwrite:
            raise DataError(
                f"out={out} already holds files; name a new folder, or add overwrite=true to "
                "replace them."
            )
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; shards are meant to be read
        base = str(staging)
    else:
        staging, base = None, str(out).rstrip("/")
    try:
        for split, examples in splits.items():
            _optimize_split(
                optimize,
                fn=ShardWriter(examples, datamodule.modality),
                inputs=list(range(len(examples))),
                output_dir=f"{base}/{split}",
                chunk_bytes=chunk_bytes,
                num_workers=_writers(workers, len(examples)),
                mode="overwrite",
                verbose=False,
                # forked writers start in a fraction of a second; spawned ones re-import
                # torch and ftlab first (seconds per split)
                start_method="fork" if hasattr(os, "fork") else None,
            )
        _write_meta(base, meta)
        if target is not None and staging is not None:
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def _check_chunk_bytes(chunk_bytes: str | int) -> None:
    if isinstance(chunk_bytes, int) and not isinstance(chunk_bytes, bool) and chunk_bytes > 0:
        return
    size = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([tgmk]?b?)\s*", str(chunk_bytes), re.IGNORECASE)
    if size is None or float(size.group(1)) <= 0:
        raise ConfigError(
            f"chunk_bytes={chunk_bytes!r} must be a positive size: a number of bytes, or one with "
            "a unit such as 512kB, 64MB or 1GB."
        )


def _optimize_split(optimize, **kwargs: Any) -> None:
    """litdata's ``optimize``; a writer's failure (a RuntimeError holding the worker's
    traceback as text) becomes a DataError naming the item and the original error."""
    try:
        optimize(**kwargs)
    except RuntimeError as e:
        text = str(e)
        errors = re.findall(r"^(\w+(?:Error|Exception|Interrupt)\b.*)$", text, re.MULTILINE)
        cause = next((m for m in errors if not m.startswith("RuntimeError: Failed processing")), "")
        item = re.search(r"Failed processing item=(\d+)", text)
        where = f" on item {item.group(1)}" if item else ""
        raise DataError(
            f"writing shards to {kwargs['output_dir']} failed{where}: {cause or text.strip()[-300:]}"
        ) from e


def _writers(workers: int | None, items: int) -> int:
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    return max(1, min(workers, items))


def _write_meta(base: str, meta: dict[str, Any]) -> None:
    text = json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
    if not is_url(base):
        from ftlab.atomic import atomic_write_text

        atomic_write_text(Path(base) / META_FILE, text)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / META_FILE
        local.write_text(text)
        remote_client(base).upload_file(str(local), f"{base}/{META_FILE}")


class StreamingDataModule(DataModule):
    """Batches from :class:`Shards`, through litdata's ``StreamingDataLoader``.

    The same batches as :class:`DataModule` gives for the data the shards were
    written from (plus each item's ``sample_id``), shuffled by litdata (chunk order, then
    items within a window; seeded by ``seed`` and the epoch). Under DDP each rank reads its
    own share, and the training split drops the last uneven items so every rank takes the
    same number of steps. Lightning saves the loader's position in checkpoints and restores
    it on resume.
    """

    def __init__(
        self,
        source: Shards | Mapping[str, Any],
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | str = 0,
        seed: int = 0,
        augment: bool = False,
        image_size: int | None = None,
        max_length: int = 128,
        pin_memory: bool | None = None,
        name: str | None = None,
        **selections: Any,
    ) -> None:
        unknown = sorted(set(selections) - set(SELECTIONS))
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        chosen = {k: v for k, v in selections.items() if v is not None}
        if chosen:
            key, value = next(iter(chosen.items()))
            raise ConfigError(
                f"data.{key}={value} selects with every label in view, so data=streaming applies "
                f"it when the shards are written: `ftlab-data optimize data=<data config> "
                f"data.{key}={value} out=<dir>`, then train on that dir with data.{key}=null."
            )
        super().__init__(
            source,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
            augment=augment,
            image_size=image_size,
            max_length=max_length,
            pin_memory=pin_memory,
            cache=False,
            name=name,
        )
        if not isinstance(self.source, Shards):
            raise ConfigError(
                f"data=streaming reads ftlab.data.Shards, got {type(self.source).__name__}; set "
                "data.source._target_=ftlab.data.Shards."
            )
        if not name or name == "streaming":  # built without the config's resolver
            self.name = shards_label(self.source.meta)
        self._train_loader: Any = None
        self._train_loader_state: dict[str, Any] | None = None

    # ------------------------------------------------------- mid-epoch resumption
    def state_dict(self) -> dict[str, Any]:
        """The training loader's position: every checkpoint holds it (Lightning saves a data
        module's state with the model's)."""
        loader = self._train_loader
        return {"train_loader": loader.state_dict()} if loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Kept for the training loader, which may not exist yet.

        Lightning also restores a stateful loader from the fit loop's state, but only when
        the loader is first built after the restore; ftlab's optimizer asks for
        ``trainer.estimated_stepping_batches``, which builds it before (Lightning issue
        #20550), and the loop's saved state is then never applied. The data module's own
        state is restored first, so the loader gets its position whenever it is built."""
        self._train_loader_state = state_dict.get("train_loader")
        self._restore_train_loader()

    def _restore_train_loader(self) -> None:
        if self._train_loader is not None and self._train_loader_state is not None:
            self._train_loader.load_state_dict(self._train_loader_state)
            self._train_loader_state = None

    @property
    def split_sizes(self) -> dict[str, int]:
        return dict(self.source.meta["splits"])

    def select(self) -> dict[str, Split]:
        raise DataError(
            "data=streaming holds no splits in memory; the selection was made when the shards "
            f"were written (see {self.source.input_dir}/{META_FILE})."
        )

    def setup(self, stage: str | None = None) -> None:
        self._require_preprocessing()  # the streams themselves are opened by each loader

    def _loader(self, split: str):
        from litdata import StreamingDataLoader

        self._require_preprocessing()
        train = split == "train"
        dataset = self.source.dataset(
            split,
            shuffle=train,
            seed=self.seed,
            transform=self.pipeline.shard_item(train),
            # training ranks must take equal steps (litdata drops the rest under DDP);
            # evaluation reads every item once: ranks may then take unequal steps
            drop_last=None if train else False,
        )
        loader = StreamingDataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            num_workers=self.num_workers,
            collate_fn=self.pipeline.collate_fn,
            pin_memory=self.pin_memory,
        )
        if train:
            self._train_loader = loader
            self._restore_train_loader()
        return loader

    def feature_serving(self) -> str:
        """A stream cannot serve cached features (see :mod:`ftlab.data.features`): why."""
        return (
            "the data streams from shards (data=streaming): it is read in litdata's order, once "
            "per epoch, with nothing indexed to keep features for"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, source={self.source!r}, sizes={self.split_sizes})"
