"""Seed statistics: a mean's confidence interval, and two rows' difference paired by seed.

Runs of one (model, data, task, samples per class) that share a seed see the same split
and the same shuffle, so the difference of two methods' scores on one seed leaves out the
part of the seed's luck they share; the interval of the mean difference over the seeds both
have is then narrower than the two rows' own intervals suggest. Intervals are Student t
with n - 1 degrees of freedom, at :data:`LEVEL`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

LEVEL = 0.95
#: past this many seeds, "how many would separate them" reads ">50": the difference is lost
#: in the seed noise for any study anyone would run
MAX_SEEDS = 50


@lru_cache(maxsize=256)
def t_quantile(dof: int, level: float = LEVEL) -> float:
    """The two-sided Student t critical value: 4.303 for 2 degrees of freedom at 95%."""
    return float(stats.t.ppf(0.5 + level / 2, dof))


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values and its confidence interval (NaN bounds for fewer than 2)."""

    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: Iterable[float], level: float = LEVEL) -> Interval:
    """The mean of the finite ``values`` and its t interval (n - 1 degrees of freedom)."""
    x = _finite(values)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(mean, math.nan, math.nan, len(x))
    half = t_quantile(len(x) - 1, level) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return Interval(mean, mean - half, mean + half, len(x))


@dataclass(frozen=True)
class Paired:
    """The mean of ``a - b`` over ``n`` seeds, its interval, and the differences' sd."""

    diff: float
    low: float
    high: float
    n: int
    sd: float
    level: float = LEVEL

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def distinguishable(self) -> bool:
        """The interval lies on one side of 0 (never with one seed: nothing to say)."""
        return self.has_interval and (self.low > 0 or self.high < 0)

    @property
    def seeds_needed(self) -> int | None:
        """Roughly how many seeds would tell the two apart, when they are not already:
        :func:`seeds_to_separate` at the observed difference and sd; ``MAX_SEEDS + 1`` for
        "more than the cap"; None when they are distinguishable or there is no sd."""
        if not self.has_interval or self.distinguishable:
            return None
        return seeds_to_separate(self.diff, self.sd, self.level)

    def flipped(self) -> Paired:
        """``b - a`` instead of ``a - b``."""
        return Paired(-self.diff, -self.high, -self.low, self.n, self.sd, self.level)


def paired(
    a: Mapping[object, float], b: Mapping[object, float] | float, level: float = LEVEL
) -> Paired | None:
    """``a - b`` over the seeds both have (``a`` and ``b`` map a seed to its score).

    ``b`` may be one number: a score that does not depend on the seed (the untouched model,
    which trains nothing), taken away from every seed of ``a``. None when no seed is shared.
    """
    if isinstance(b, Mapping):
        shared = [s for s in a if s in b and _ok(a[s]) and _ok(b[s])]
        d = np.array([float(a[s]) - float(b[s]) for s in shared], dtype=float)
    else:
        if not _ok(b):
            return None
        d = np.array([float(v) - float(b) for v in a.values() if _ok(v)], dtype=float)
    if len(d) == 0:
        return None
    ci = mean_ci(d, level)
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    return Paired(ci.mean, ci.low, ci.high, ci.n, sd, level)


def seeds_to_separate(
    diff: float, sd: float, level: float = LEVEL, cap: int = MAX_SEEDS
) -> int | None:
    """The smallest n (from 2) at which the paired interval's half-width,
    t(n - 1) * sd / sqrt(n), would be no wider than ``|diff|``: how many seeds would
    separate two rows if the difference and its spread stayed as observed. ``cap + 1``
    where even ``cap`` seeds would not (a zero difference never separates); None without
    an sd."""
    if not (math.isfinite(diff) and math.isfinite(sd)):
        return None
    if diff == 0:
        return cap + 1
    for n in range(2, cap + 1):
        if t_quantile(n - 1, level) * sd / math.sqrt(n) <= abs(diff):
            return n
    return cap + 1


def _ok(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _finite(values: Iterable[float]) -> np.ndarray:
    x = np.asarray([float(v) for v in values if _ok(v)], dtype=float)
    return x
