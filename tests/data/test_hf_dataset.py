"""data=hf_dataset on real data written to the formats users keep: BBC News as parquet and
JSON lines, Fashion-MNIST as an image folder, sentence pairs; the few-shot controls; and
one sentence for each thing that can be wrong with the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tests.conftest import TINY_CNN, ftlab_cli
from tests.data.conftest import TIMM_CONFIG_96

from ftlab.data import BBCNews, ClassificationDataModule, FashionMNIST, HFDataset
from ftlab.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def bbc(data_dir) -> tuple[list[str], list[str]]:
    """BBC News as a user would have it: texts and topic names, all 2,225 articles."""
    source = BBCNews(data_dir)
    texts, topics = [], []
    for split in ("train", "test"):
        part = source.load(split)
        texts += list(part.items)
        topics += [source.class_names[i] for i in part.labels]
    return texts, topics


@pytest.fixture(scope="module")
def bbc_files(bbc, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bbc")
    frame = pd.DataFrame({"article": bbc[0], "topic": bbc[1]})
    frame.to_parquet(root / "bbc.parquet")
    with open(root / "bbc.jsonl", "w") as f:
        for text, topic in zip(*bbc, strict=True):
            f.write(json.dumps({"article": text, "topic": topic}) + "\n")
    return {"parquet": root / "bbc.parquet", "json": root / "bbc.jsonl", "root": root}


@pytest.mark.parametrize("builder", ["parquet", "json"])
def test_bbc_news_from_local_files_with_the_few_shot_controls(
    bbc, bbc_files, builder, tmp_path, minilm_tokenizer
):
    def module(seed: int) -> ClassificationDataModule:
        source = HFDataset(
            path=builder,
            data_files=str(bbc_files[builder]),
            text_column="article",
            label_column="topic",
            cache_dir=tmp_path / "cache",
        )
        dm = ClassificationDataModule(
            source, samples_per_class=5, val_samples=20, test_samples=50, seed=seed
        )
        dm.set_preprocessing(minilm_tokenizer)
        return dm

    dm = module(seed=0)
    assert dm.modality == "text"
    dm.setup()
    assert dm.class_names == sorted(set(bbc[1]))  # no ClassLabel: the labels, sorted
    train = dm.splits["train"]
    assert np.bincount(train.labels).tolist() == [5] * 5
    assert len(dm.splits["val"]) == 20 and len(dm.splits["test"]) == 50
    texts = dict(zip(*bbc, strict=True))
    for item, label in zip(train.items, train.labels, strict=True):
        assert texts[item] == dm.class_names[label]  # each text keeps its own topic
    other = module(seed=1)
    other.setup()
    assert other.splits["test"].items == dm.splits["test"].items  # fixed across seeds
    assert set(other.splits["train"].items) != set(train.items)  # the few shots move


@pytest.fixture(scope="module")
def fashion_folder(data_dir, tmp_path_factory) -> tuple[Path, list[str]]:
    """Six training and two test images of each Fashion-MNIST class, as PNG files in the
    layout of an image folder (train/<class>/, test/<class>/)."""
    source = FashionMNIST(data_dir)
    root = tmp_path_factory.mktemp("fashion_folder")
    names = [n.replace("/", "-") for n in source.class_names]
    for split, per_class in (("train", 6), ("test", 2)):
        part = source.load(split)
        for label, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True)
            for j, i in enumerate(np.flatnonzero(part.labels == label)[:per_class]):
                Image.fromarray(part.items[i]).save(folder / f"{j}.png")
    return root, names


def test_fashion_mnist_from_an_image_folder(fashion_folder, tmp_path):
    root, names = fashion_folder
    source = HFDataset(path="imagefolder", files_dir=root, cache_dir=tmp_path / "cache")
    assert source.modality == "image"  # the Image feature, found without being named
    dm = ClassificationDataModule(source, samples_per_class=4, val_samples=10, seed=0)
    dm.set_preprocessing(TIMM_CONFIG_96)
    dm.setup()
    assert dm.class_names == sorted(names)  # the folders, as datasets' ClassLabel names them
    assert np.bincount(dm.splits["train"].labels).tolist() == [4] * 10
    assert len(dm.splits["test"]) == 20  # the folder's own test split, not a carve
    batch = next(iter(dm.train_dataloader()))
    assert batch["pixel_values"].shape[1:] == (3, 96, 96)
    path, label = dm.splits["test"].items[0], dm.splits["test"].labels[0]
    assert Path(path).parent.name == dm.class_names[label]


def test_sentence_pairs_reach_the_tokenizer_as_pairs(tmp_path, minilm_tokenizer):
    rows = [
        {"premise": f"the cat sat on mat {i}", "hypothesis": f"a cat {i}", "label": i % 2}
        for i in range(40)
    ]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    source = HFDataset(
        path="json",
        data_files=str(tmp_path / "pairs.jsonl"),
        text_column="premise",
        text_pair_column="hypothesis",
        cache_dir=tmp_path / "cache",
    )
    dm = ClassificationDataModule(source, batch_size=4)
    dm.set_preprocessing(minilm_tokenizer)
    dm.setup()
    assert dm.class_names == ["0", "1"]
    first = dm.splits["train"].items[0]
    assert isinstance(first, tuple) and first[0].startswith("the cat")
    batch = next(iter(dm.train_dataloader()))
    assert (batch["token_type_ids"] == 1).any(), "the second text is a second segment"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_what_is_wrong_with_the_files_is_one_sentence(tmp_path):
    good = [{"text": f"text {i}", "label": "a" if i % 2 else "b"} for i in range(20)]
    train = _write(tmp_path / "train.jsonl", good)
    cache = tmp_path / "cache"

    def load(**kwargs):
        source = HFDataset(path="json", cache_dir=cache, **kwargs)
        return source.load("train")

    with pytest.raises(DataError, match=r"has no column 'txt' \(data.source.text_column\); "):
        load(data_files=str(train), text_column="txt")
    with pytest.raises(DataError, match=r"test_split='tset' is not a split .* Did you mean"):
        load(data_files={"train": str(train), "test": str(train)}, test_split="tset")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match=r"names .*empty.jsonl, which is empty"):
        load(data_files=str(tmp_path / "empty.jsonl"))
    unseen = _write(tmp_path / "test.jsonl", [{"text": "x", "label": "c"}])
    with pytest.raises(DataError, match=r"label\(s\) 'c' that the train split does not have"):
        load(data_files={"train": str(train), "test": str(unseen)})
    with pytest.raises(DataError, match=r"which does not exist"):
        load(data_files=str(tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match="needs data.source.path"):
        HFDataset()
    with pytest.raises(ConfigError, match="set data.source.data_files"):
        HFDataset(path="parquet")


@pytest.mark.slow
def test_ftlab_train_on_a_parquet_file(bbc_files, tmp_path):
    """The whole run through the CLI on the parquet file, as the config's comment shows."""
    tiny_text = [
        "model=minilm",
        "model.pretrained=false",
        "model.config_overrides={num_hidden_layers:2,hidden_size:32,num_attention_heads:2,"
        "intermediate_size:64}",
        "data=hf_dataset",
        "data.source.path=parquet",
        f"data.source.data_files={bbc_files['parquet']}",
        "data.source.text_column=article",
        "data.source.label_column=topic",
        f"data.source.cache_dir={tmp_path / 'cache'}",
        "data.samples_per_class=4",
        "data.val_samples=10",
        "data.test_samples=20",
        "data.max_length=32",
        *[o for o in TINY_CNN if o.startswith(("trainer.", "logger", "callbacks", "print"))],
    ]
    done = ftlab_cli("train", *tiny_text, "method=lora", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (record["data"], record["status"]) == ("hf_dataset", "done")
    assert record["data/samples_per_class"] == 4 and 0 <= record["test/acc"] <= 1
    assert torch.cuda.is_available() or record["memory/kind"] == "process_rss"


def test_embedded_image_bytes_are_decoded_in_the_loader(data_dir, tmp_path):
    """Images stored inside the file (parquet with an Image feature) stay encoded until a
    loader reads them, and give the pixels of the image itself."""
    import datasets

    part = FashionMNIST(data_dir).load("test")
    images = [Image.fromarray(part.items[i]) for i in range(40)]
    table = datasets.Dataset.from_dict({"image": images, "label": part.labels[:40].tolist()})
    table.cast_column("image", datasets.Image()).to_parquet(tmp_path / "fashion.parquet")
    source = HFDataset(
        path="parquet", data_files=str(tmp_path / "fashion.parquet"), cache_dir=tmp_path / "c"
    )
    dm = ClassificationDataModule(source, cache=False)
    dm.set_preprocessing(TIMM_CONFIG_96)
    dm.setup()
    train = dm.splits["train"]
    assert all(isinstance(item, bytes) for item in train.items)  # not decoded up front
    for row in range(3):
        own = dm.pipeline.eval_transform(images[int(train.index[row])].convert("RGB"))
        assert torch.equal(dm._dataset("train").dataset[row]["pixel_values"], own)


# -- records for the generative tasks ------------------------------------------------------------
def _records(tmp_path: Path, rows: list[dict], **columns) -> HFDataset:
    """A source over ``rows``, written to a file of their own (``datasets`` caches by file)."""
    data = _write(tmp_path / f"rows{len(list(tmp_path.glob('rows*')))}.jsonl", rows)
    return HFDataset(path="json", data_files=str(data), cache_dir=tmp_path / "cache", **columns)


def test_prompt_response_pairs_with_a_checked_answer(tmp_path):
    rows = [
        {"question": f"What is {i} + 1000?", "solution": f"{i} + 1000 = {i + 1000:,}",
         "final": f"{i + 1000:,}"}
        for i in range(10)
    ]  # fmt: skip
    source = _records(
        tmp_path, rows, prompt_column="question", response_column="solution",
        answer_column="final", answer_kind="number",
    )  # fmt: skip
    assert (source.modality, source.fields) == ("text", ("prompt", "response", "answer"))
    assert (source.answer_kind, source.class_names) == ("number", ["example"])
    train, test = source.load("train"), source.load("test")
    assert (len(train), len(test)) == (8, 2)  # no test split in the file: a fixed 20%
    everything = {r["prompt"]: r for part in (train, test) for r in part.items}
    assert everything["What is 3 + 1000?"] == {
        "prompt": "What is 3 + 1000?",
        "response": "3 + 1000 = 1,003",
        "answer": "1003",  # as the number extractor writes it
    }
    assert set(train.labels) | set(test.labels) == {0}
    plain = _records(tmp_path, rows, prompt_column="question", response_column="solution")
    first = plain.load("train").items[0]
    assert first["answer"] == first["response"] and plain.answer_kind is None


def test_chats_are_records_of_messages(tmp_path):
    rows = [
        {"chat": [{"role": "user", "content": f"Say {i}."},
                  {"role": "assistant", "content": f"{i}"}], "gold": str(i)}
        for i in range(10)
    ]  # fmt: skip
    source = _records(tmp_path, rows, messages_column="chat", answer_column="gold")
    assert source.fields == ("messages", "answer")
    items = source.load("train").items + source.load("test").items
    assert {"messages": rows[4]["chat"], "answer": "4"} in items
    bad = _records(tmp_path, [*rows, {"chat": [{"role": "user"}], "gold": "x"}],
                   messages_column="chat")  # fmt: skip
    with pytest.raises(DataError, match=r"row 10 of the train split of json has chat=.*a chat is"):
        bad.load("train")


@pytest.mark.parametrize("label", ["index", "text"])
def test_multiple_choice_takes_the_gold_option_by_index_or_text(label, tmp_path):
    rows = [
        {"q": f"Pick {i % 3}.", "choices": [f"{j}" for j in range(3 + i % 2)], "gold": i % 3}
        for i in range(20)
    ]
    if label == "text":
        rows = [{**row, "gold": row["choices"][row["gold"]]} for row in rows]
    source = _records(tmp_path, rows, prompt_column="q", options_column="choices",
                      label_column="gold")  # fmt: skip
    assert source.fields == ("prompt", "response", "answer", "options")
    assert source.class_names == ["A", "B", "C", "D"]  # the longest options list has four
    assert source.answer_kind == "text"  # the gold option's text
    for split in ("train", "test"):
        part = source.load(split)
        for record, gold in zip(part.items, part.labels, strict=True):
            assert record["prompt"] == f"Pick {gold}."
            assert record["options"][gold] == record["answer"] == record["response"] == str(gold)


def test_what_is_wrong_with_the_records_is_one_sentence(tmp_path):
    rows = [{"q": f"q{i}", "a": f"a{i}", "opts": ["x", "y"], "gold": 0} for i in range(10)]
    with pytest.raises(DataError) as error:
        _records(tmp_path, rows, prompt_column="question", response_column="a").load("train")
    assert str(error.value) == (
        "the train split of json has no column 'question' (data.source.prompt_column); its "
        "columns: q, a, opts, gold."
    )
    wrong = [
        *({**r, "gold": "x"} for r in rows),
        {"q": "q", "a": "a", "opts": ["x", "y"], "gold": "z"},
    ]
    with pytest.raises(
        DataError,
        match=r"row 10 of the train split of json has gold='z', which "
        r"is not among its options \['x', 'y'\]: give the gold option's index",
    ):
        _records(tmp_path, wrong, prompt_column="q", options_column="opts",
                 label_column="gold").load("train")  # fmt: skip
    counted = [{**r, "a": "three" if i == 3 else str(i)} for i, r in enumerate(rows)]
    with pytest.raises(DataError, match=r"row 3 .* has a='three', which is not a number"):
        _records(tmp_path, counted, prompt_column="q", response_column="a", answer_column="a",
                 answer_kind="number").load("train")  # fmt: skip


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"prompt_column": "q"}, r"prompt_column='q' needs data.source.response_column"),
        ({"response_column": "a"}, r"need data.source.prompt_column"),
        ({"prompt_column": "q", "response_column": "a", "text_column": "t"},
         r"text_column/image_column \('t'\) is for classification"),
        ({"messages_column": "m", "prompt_column": "q", "response_column": "a"},
         r"messages_column='m' is a whole chat"),
        ({"prompt_column": "q", "response_column": "a", "answer_kind": "numeric"},
         r"answer_kind='numeric' must be one of number, letter, text or null"),
        ({"answer_kind": "number"}, r"answer_kind='number' is for records"),
    ],
)  # fmt: skip
def test_record_columns_that_make_no_record_are_refused(columns, message):
    with pytest.raises(ConfigError, match=message):
        HFDataset(path="json", data_files="rows.jsonl", **columns)
