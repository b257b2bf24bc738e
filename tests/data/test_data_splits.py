import numpy as np
import pytest

from ftlab.data.sources import Split
from ftlab.data.splits import (
    per_class_sample,
    stratified_counts,
    stratified_sample,
    stratified_split,
)
from ftlab.errors import DataError

LABELS = np.repeat(np.arange(3), [50, 30, 20])


def test_stratified_counts_add_up_and_follow_class_sizes():
    counts = stratified_counts(LABELS, 10)
    assert counts == {0: 5, 1: 3, 2: 2}
    assert sum(stratified_counts(LABELS, 17).values()) == 17


def test_stratified_sample_is_seeded():
    a, b = stratified_sample(LABELS, 10, 0), stratified_sample(LABELS, 10, 0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, stratified_sample(LABELS, 10, 1))
    assert np.bincount(LABELS[a]).tolist() == [5, 3, 2]


def test_stratified_split_is_disjoint_and_complete():
    kept, held = stratified_split(LABELS, 0.2, [7, 1])
    assert len(held) == 20 and len(kept) == 80
    assert not set(kept) & set(held)
    assert sorted(np.concatenate([kept, held])) == list(range(100))
    assert np.bincount(LABELS[held]).tolist() == [10, 6, 4]


def test_per_class_sample_takes_exactly_k_and_names_a_short_class():
    picked = per_class_sample(LABELS, 20, 3, ["a", "b", "c"])
    assert np.bincount(LABELS[picked]).tolist() == [20, 20, 20]
    with pytest.raises(DataError, match=r"samples_per_class=21 .*class 'c' has only 20"):
        per_class_sample(LABELS, 21, 3, ["a", "b", "c"])


def test_split_subset_keeps_the_original_positions():
    split = Split(["a", "b", "c", "d"], [0, 1, 0, 1])
    sub = split.subset([3, 1]).subset([1])
    assert sub.items == ["b"] and sub.index.tolist() == [1] and sub.labels.tolist() == [1]
