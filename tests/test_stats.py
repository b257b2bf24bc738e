"""The report's seed statistics: a mean's t interval, differences paired by seed, and how
many seeds would separate two rows, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from ftlab.reporting.fmt import versus
from ftlab.reporting.stats import MAX_SEEDS, mean_ci, paired, seeds_to_separate, t_quantile


def test_t_quantiles_are_students():
    # the two-sided 95% critical values every statistics table prints
    assert t_quantile(1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile(29) == pytest.approx(2.045, abs=1e-3)


def test_a_mean_and_its_interval():
    ci = mean_ci([0.86, 0.87, 0.91])
    sd = math.sqrt(((0.86 - 0.88) ** 2 + (0.87 - 0.88) ** 2 + (0.91 - 0.88) ** 2) / 2)
    half = 4.3027 * sd / math.sqrt(3)
    assert (ci.mean, ci.n) == (pytest.approx(0.88), 3)
    assert (ci.low, ci.high) == (
        pytest.approx(0.88 - half, abs=1e-4),
        pytest.approx(0.88 + half, abs=1e-4),
    )
    one = mean_ci([0.5, float("nan")])  # NaN is not a seed; one seed has no interval
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    assert mean_ci([]).n == 0


def test_pairing_by_seed_removes_the_luck_two_rows_share():
    # b's seeds are a's less 5 points, each with the same seed luck: unpaired, the two
    # intervals overlap widely; paired, the difference is exactly 5 with no spread
    a = {0: 0.70, 1: 0.80, 2: 0.75}
    b = {0: 0.65, 1: 0.75, 2: 0.70, 3: 0.90}  # seed 3: only b has it, so it is not paired
    found = paired(a, b)
    assert found.n == 3 and found.diff == pytest.approx(0.05)
    assert found.low == pytest.approx(0.05) and found.high == pytest.approx(0.05)
    assert found.distinguishable and found.seeds_needed is None
    assert mean_ci(a.values()).high > mean_ci(b.values()).low  # unpaired: overlapping
    flipped = found.flipped()
    assert (flipped.diff, flipped.low, flipped.high) == pytest.approx((-0.05, -0.05, -0.05))
    assert paired(a, {7: 0.5}) is None  # no shared seed


def test_a_seed_free_reference_is_taken_from_every_seed():
    found = paired({0: 0.30, 1: 0.34, 2: 0.32}, 0.10)  # the untouched model scores 0.10
    assert found.diff == pytest.approx(0.22) and found.n == 3
    half = 4.3027 * 0.02 / math.sqrt(3)
    assert found.low == pytest.approx(0.22 - half, abs=1e-4)


def test_an_interval_across_zero_is_not_distinguishable_and_says_how_many_seeds_would_tell():
    found = paired({0: 0.70, 1: 0.74, 2: 0.69}, {0: 0.68, 1: 0.70, 2: 0.70})  # +.02 +.04 -.01
    assert found.has_interval and not found.distinguishable
    needed = found.seeds_needed
    # the n at which t(n-1) * sd / sqrt(n) first reaches |diff|, and not before
    sd, diff = found.sd, abs(found.diff)
    assert t_quantile(needed - 1) * sd / math.sqrt(needed) <= diff
    assert t_quantile(needed - 2) * sd / math.sqrt(needed - 1) > diff
    assert versus(found, 100.0) == f"+1.67 (n.d., ≈{needed} seeds)"


def test_seeds_to_separate_limits():
    assert seeds_to_separate(0.0, 0.1) == MAX_SEEDS + 1  # no difference never separates
    assert seeds_to_separate(0.001, 1.0) == MAX_SEEDS + 1
    assert seeds_to_separate(0.1, math.nan) is None
    assert seeds_to_separate(1.0, 0.1) == 2


def test_the_cells_a_difference_is_shown_as():
    assert versus(None, 100.0) == "—"
    assert versus(paired({0: 0.8}, {0: 0.7}), 100.0) == "+10.00 (1 seed)"
    clear = paired({0: 0.80, 1: 0.82, 2: 0.81}, {0: 0.70, 1: 0.71, 2: 0.70})
    assert versus(clear, 100.0) == f"+10.67 [{100 * clear.low:.2f}, {100 * clear.high:.2f}]"
    assert clear.low > 0
    tie = paired({0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.5})  # +.1 and -.1: a zero mean
    assert versus(tie, 100.0) == f"+0.00 (n.d., >{MAX_SEEDS} seeds)"
