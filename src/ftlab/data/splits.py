"""Seeded, stratified selection of example indices.

All functions take integer labels and return sorted index arrays, so the same seed gives
the same examples whatever the order in which they are asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ftlab.errors import DataError


def _rng(seed: int | Sequence[int]) -> np.random.Generator:
    return np.random.default_rng(seed)


def stratified_counts(labels: np.ndarray, n: int) -> dict[int, int]:
    """How many of ``n`` examples each class gets, proportional to its size.

    Largest-remainder rounding, so the counts add up to exactly ``n``.
    """
    classes, sizes = np.unique(labels, return_counts=True)
    total = int(sizes.sum())
    n = min(int(n), total)
    exact = sizes * n / total
    counts = np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    # Ties go to the lower class index, so the result is deterministic.
    order = np.lexsort((classes, -(exact - counts)))
    counts[order[:short]] += 1
    return {int(c): int(k) for c, k in zip(classes, counts)}


def stratified_sample(labels: np.ndarray, n: int, seed: int | Sequence[int]) -> np.ndarray:
    """Indices of ``n`` examples (all if ``n`` >= len), each class in proportion to its size."""
    labels = np.asarray(labels)
    rng = _rng(seed)
    picked = []
    for cls, k in sorted(stratified_counts(labels, n).items()):
        members = np.flatnonzero(labels == cls)
        picked.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held_out)`` indices; ``held_out`` is a stratified ``fraction`` of the examples."""
    labels = np.asarray(labels)
    n_held = int(round(len(labels) * fraction))
    if fraction > 0 and len(labels) > 1:
        n_held = min(max(n_held, 1), len(labels) - 1)
    held = stratified_sample(labels, n_held, seed)
    kept = np.setdiff1d(np.arange(len(labels)), held, assume_unique=True)
    return kept, held


def per_class_sample(
    labels: np.ndarray, k: int, seed: int | Sequence[int], class_names: Sequence[str]
) -> np.ndarray:
    """Exactly ``k`` examples of every class (few-shot); DataError if a class has fewer."""
    labels = np.asarray(labels)
    rng = _rng(seed)
    picked = []
    for cls, name in enumerate(class_names):
        members = np.flatnonzero(labels == cls)
        if len(members) < k:
            raise DataError(
                f"samples_per_class={k} but class {name!r} has only {len(members)} training "
                f"examples (after the validation split); use samples_per_class<={len(members)} "
                "or null for all."
            )
        picked.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)
