"""Streaming shards: ``ftlab-data optimize`` writes what a run would read, ``data=streaming``
reads it back item for item through litdata, every rank its own share, and a run killed
mid-epoch resumes mid-epoch without repeating or skipping a sample."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import REPO, ftlab_cli
from tests.data.conftest import TIMM_CONFIG_96, write_images

from ftlab.callbacks import FeatureCache
from ftlab.data import (
    BBCNews,
    ClassificationDataModule,
    FashionMNIST,
    HFDataset,
    ImageFolder,
    Shards,
    StreamingDataModule,
)
from ftlab.data.sources.shards import META_FILE
from ftlab.data.streaming import write_shards
from ftlab.errors import ConfigError, DataError

TIMM_CONFIG_32 = {**TIMM_CONFIG_96, "input_size": (3, 32, 32)}


def streamed(dm: StreamingDataModule, split: str) -> dict[int, dict[str, torch.Tensor]]:
    """Every item of ``split`` as the streaming loader yields it, by sample id."""
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}
    items: dict[int, dict[str, torch.Tensor]] = {}
    for batch in loader[split]():
        for row, sample_id in enumerate(batch["sample_id"].tolist()):
            assert sample_id not in items, f"{split}: sample {sample_id} read twice"
            items[sample_id] = {k: v[row] for k, v in batch.items() if k != "sample_id"}
    return items


def in_memory(dm: ClassificationDataModule, split: str) -> dict[int, dict[str, torch.Tensor]]:
    """Every item of ``split`` as the in-memory data module gives it, by sample id."""
    dataset = dm._dataset(split).dataset
    index = dm.splits[split].index
    return {int(index[i]): dataset[i] for i in range(len(dataset))}


@pytest.fixture(scope="module")
def fashion_shards(data_dir, tmp_path_factory) -> tuple[ClassificationDataModule, Path]:
    """Fashion-MNIST, 3 per class, 10 validation and 20 test images, written as shards."""
    dm = ClassificationDataModule(
        FashionMNIST(data_dir), samples_per_class=3, val_samples=10, test_samples=20, cache=False
    )
    out = tmp_path_factory.mktemp("shards") / "fashion"
    write_shards(dm, out, chunk_bytes="8kB", workers=2)
    return dm, out


def test_the_shards_hold_what_a_run_would_read_item_for_item(fashion_shards):
    dm, out = fashion_shards
    meta = json.loads((out / META_FILE).read_text())
    assert meta["splits"] == {"train": 30, "val": 10, "test": 20}
    assert meta["class_names"] == dm.class_names and meta["modality"] == "image"
    assert len(list((out / "train").glob("chunk-*.bin"))) > 1  # 8 kB chunks: several files
    dm.set_preprocessing(TIMM_CONFIG_32)
    dm.setup()
    shards = StreamingDataModule(Shards(out), batch_size=7, seed=3)
    shards.set_preprocessing(TIMM_CONFIG_32)
    assert (shards.name, shards.num_classes) == ("fashion_mnist(shards)", 10)
    for split in ("train", "val", "test"):
        expected, got = in_memory(dm, split), streamed(shards, split)
        assert got.keys() == expected.keys(), split  # every sample once, no other
        for sample_id, item in got.items():
            assert int(item["labels"]) == int(expected[sample_id]["labels"])
            assert torch.equal(item["pixel_values"], expected[sample_id]["pixel_values"])


def test_the_stream_is_shuffled_per_epoch_by_the_seed(fashion_shards):
    _, out = fashion_shards

    def orders(seed: int) -> list[list[int]]:
        dm = StreamingDataModule(Shards(out), batch_size=30, seed=seed)
        dm.set_preprocessing(TIMM_CONFIG_32)
        loader = dm.train_dataloader()
        return [next(iter(loader))["sample_id"].tolist() for _ in range(2)]

    first, second = orders(0)
    assert sorted(first) == sorted(second) and first != second  # a new order each epoch
    assert orders(0) == [first, second]  # the same seed, the same orders
    assert orders(1)[0] != first


def test_texts_and_sentence_pairs_stream_tokenized_as_in_memory(
    data_dir, tmp_path, minilm_tokenizer
):
    news = ClassificationDataModule(BBCNews(data_dir), samples_per_class=2, test_samples=10)
    rows = [{"premise": f"the cat sat on mat {i}", "hypothesis": f"a cat {i}", "label": i % 2}
            for i in range(30)]  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pairs = ClassificationDataModule(
        HFDataset(
            path="json",
            data_files=str(tmp_path / "pairs.jsonl"),
            text_column="premise",
            text_pair_column="hypothesis",
            cache_dir=tmp_path / "cache",
        )
    )
    for name, dm in (("news", news), ("pairs", pairs)):
        write_shards(dm, tmp_path / name, workers=1)
        dm.set_preprocessing(minilm_tokenizer)
        dm.setup()
        shards = StreamingDataModule(Shards(tmp_path / name), batch_size=4, max_length=128)
        shards.set_preprocessing(minilm_tokenizer)
        for split in ("train", "test"):
            expected, got = in_memory(dm, split), streamed(shards, split)
            assert got.keys() == expected.keys()
            for sample_id, item in got.items():
                n = int(item["attention_mask"].sum())  # the batch pads; the item does not
                for key in ("input_ids", "token_type_ids"):
                    assert torch.equal(item[key][:n], expected[sample_id][key]), (name, key)
    assert (item["token_type_ids"] == 1).any(), "a pair streams as two segments"


def test_encoded_images_stream_as_their_files_bytes(tmp_path):
    root = tmp_path / "pets"
    for name, value in (("cat", 40), ("dog", 200)):
        write_images(root / "train" / name, 6, value)
    dm = ClassificationDataModule(ImageFolder(root), cache=False)
    write_shards(dm, tmp_path / "shards", workers=1)
    dm.set_preprocessing(TIMM_CONFIG_32)
    dm.setup()
    shards = StreamingDataModule(Shards(tmp_path / "shards"), batch_size=5)
    shards.set_preprocessing(TIMM_CONFIG_32)
    expected, got = in_memory(dm, "test"), streamed(shards, "test")
    assert got.keys() == expected.keys()
    for sample_id, item in got.items():
        assert torch.equal(item["pixel_values"], expected[sample_id]["pixel_values"])
    size = sum(p.stat().st_size for p in (tmp_path / "shards").rglob("chunk-*.bin"))
    assert size < 12 * (20 * 16 * 3) / 2  # the PNG files' bytes, not decoded pixels


def test_a_broken_image_is_named_and_nothing_is_left_behind(tmp_path):
    root = tmp_path / "pets"
    for name, value in (("cat", 40), ("dog", 200)):
        write_images(root / "train" / name, 6, value)
    (root / "train" / "dog" / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dm = ClassificationDataModule(ImageFolder(root))
    with pytest.raises(DataError, match=r"cannot read image .*dog/003\.png"):
        write_shards(dm, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets"]


def test_a_writer_that_fails_midway_leaves_nothing_behind(fashion_shards, tmp_path, monkeypatch):
    dm, _ = fashion_shards
    from ftlab.data import streaming

    real = streaming.ShardWriter.__call__

    def fail_on_seventh(self, i):
        if i == 7:
            raise OSError("disk went away")
        return real(self, i)

    monkeypatch.setattr(streaming.ShardWriter, "__call__", fail_on_seventh)
    with pytest.raises(
        DataError, match=r"writing shards to .*/train failed on item 7: OSError: disk went away"
    ):
        write_shards(dm, tmp_path / "out", workers=2)
    assert list(tmp_path.iterdir()) == []


def test_what_streaming_refuses_is_one_sentence(fashion_shards, tmp_path):
    dm, out = fashion_shards
    with pytest.raises(ConfigError, match=r"needs data.source.input_dir"):
        Shards(None)
    with pytest.raises(DataError, match=r"is not a folder; write shards there"):
        Shards(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"has no ftlab.json: it was not written by"):
        Shards(tmp_path)
    (tmp_path / META_FILE).write_text('{"format": 0}')
    with pytest.raises(DataError, match=r"has format 0; this ftlab reads format 1"):
        Shards(tmp_path)
    with pytest.raises(ConfigError) as error:
        StreamingDataModule(Shards(out), samples_per_class=5)
    assert "ftlab-data optimize data=<data config> data.samples_per_class=5 out=<dir>" in str(
        error.value
    )
    with pytest.raises(ConfigError, match=r"chunk_bytes='lots' must be a positive size"):
        write_shards(dm, tmp_path / "sized", chunk_bytes="lots")
    with pytest.raises(ConfigError, match=r"data=streaming is already shards"):
        write_shards(StreamingDataModule(Shards(out)), tmp_path / "again")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"already holds files; .* overwrite=true"):
        write_shards(dm, tmp_path / "full")
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"


def test_features_are_not_cached_from_a_stream(fashion_shards):
    class Trainer:  # what FeatureCache.plan reads of a trainer
        datamodule = StreamingDataModule(Shards(fashion_shards[1]))

    plan = FeatureCache("auto").plan(Trainer(), module=None)
    assert isinstance(plan, str) and "data streams from shards" in plan


def test_ftlab_data_optimize_takes_ftlab_trains_overrides(tmp_path, data_dir):
    out = tmp_path / "fm"
    proc = ftlab_cli(
        "data_cli", "optimize", "data=fashion_mnist", "data.samples_per_class=2",
        "data.val_samples=5", "data.test_samples=10", "seed=4", f"out={out}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"ftlab-train data=streaming data.source.input_dir={out}" in proc.stdout
    meta = json.loads((out / META_FILE).read_text())
    assert meta["splits"] == {"train": 20, "val": 5, "test": 10}
    assert meta["config"]["seed"] == 4 and meta["config"]["samples_per_class"] == 2
    again = ftlab_cli("data_cli", "optimize", "data=fashion_mnist", f"outt={out}")
    assert again.returncode == 2 and "Did you mean 'out'" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr


# -- many processes -----------------------------------------------------------------------
#: a tiny CNN on streamed Fashion-MNIST: 2 ranks x 4 images x 10 steps an epoch, 2 epochs,
#: the last checkpoint every 3 steps
STREAMED_DDP = [
    "data=streaming", "model=timm", "model.name=tf_efficientnet_lite0", "model.pretrained=false",
    "data.image_size=32", "data.batch_size=4", "data.num_workers=2", "trainer=ddp_cpu",
    "trainer.max_epochs=2", "logger=none", "print_config=false",
    "callbacks.last_checkpoint.every_n_train_steps=3",
    "+callbacks.ids._target_=tests.probes.SampleIds",
]  # fmt: skip


def _steps(path: Path, rank: int, split: str = "") -> list[dict]:
    lines = Path(f"{path}{split}.rank{rank}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_two_ranks_share_each_epoch_and_a_killed_run_resumes_mid_epoch(data_dir, tmp_path):
    shards = tmp_path / "shards"
    write_shards(
        ClassificationDataModule(
            FashionMNIST(data_dir), samples_per_class=8, val_samples=17, test_samples=17
        ),
        shards,
        chunk_bytes="4kB",
        workers=2,
    )

    def train(name: str, *extra: str, kill_at: int | None = None):
        env = {"FTLAB_TEST_KILL_AT_STEP": str(kill_at)} if kill_at is not None else {}
        cmd = [sys.executable, "-m", "ftlab.train", *STREAMED_DDP, *extra,
               f"data.source.input_dir={shards}", f"+callbacks.ids.path={tmp_path / name}",
               f"hydra.run.dir={tmp_path / name}"]  # fmt: skip
        return subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**os.environ, "HYDRA_FULL_ERROR": "0", **env},
            start_new_session=True,  # its own process group: the kill takes every rank, no more
        )  # fmt: skip

    whole = train("whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    ranks = [_steps(tmp_path / "whole", rank) for rank in (0, 1)]
    assert [len(r) for r in ranks] == [20, 20]
    for epoch in (0, 1):
        seen = [[i for s in r if s["epoch"] == epoch for i in s["ids"]] for r in ranks]
        assert not set(seen[0]) & set(seen[1]), "the ranks read disjoint samples"
        assert len(seen[0]) + len(seen[1]) == len(set(seen[0]) | set(seen[1])) == 80
        # evaluation reads each of its 17 items once, ranks taking unequal shares
        val = [[i for s in _steps(tmp_path / "whole", r, ".val") if s["epoch"] == epoch
                for i in s["ids"]] for r in (0, 1)]  # fmt: skip
        assert (
            sorted(val[0] + val[1]) == sorted(set(val[0] + val[1])) and len(val[0] + val[1]) == 17
        )

    # killed at the start of step 14 (epoch 2, batch 5); its last checkpoint is step 12's
    cut = train("cut", kill_at=14)
    assert cut.returncode == -signal.SIGKILL, cut.stderr[-3000:]
    assert (
        not (tmp_path / "cut" / "results.json").exists()
        or json.loads((tmp_path / "cut" / "results.json").read_text())["status"] != "done"
    )
    resumed = train("cut", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout + resumed.stderr
    for rank in (0, 1):
        steps = _steps(tmp_path / "cut", rank)
        before, after = steps[:14], steps[14:]
        assert [s["step"] for s in after] == list(range(12, 20))  # from the checkpoint on
        assert before[:12] + after == ranks[rank], f"rank {rank} saw another sequence"
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["status"] == "done"
    assert np.isfinite(json.loads((tmp_path / "cut" / "results.json").read_text())["test/acc"])
