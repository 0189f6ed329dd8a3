"""How sure a difference between two runs is: a paired bootstrap over the test queries (and over
seeds, when several seeds were trained), and the verdict a claim gets from its interval.

Both runs must have answered the same queries (:mod:`fgr_utils.queries` keeps their values). Each
bootstrap replicate redraws the queries with replacement, the same draw for both runs (that is the
pairing: a hard query stays hard for both), and, with several seeds, also redraws the seeds, paired
by seed index. A metric that is a ``macro`` mean over groups (attributes) redraws queries within each
group, so every group keeps its size. The interval is the percentile interval of the replicated
differences.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fgr_utils.errors import FgrError
from fgr_utils.queries import STATS, statistic

VERDICTS = ("holds", "not shown", "contradicted")


@dataclass(frozen=True)
class Difference:
    """``a - b`` of one metric over the same queries, with its bootstrap interval."""

    a: float  # the metric of the first run (mean over seeds)
    b: float
    diff: float
    low: float
    high: float
    level: float
    queries: int
    seeds: int
    samples: int
    a_seeds: tuple[float, ...] = ()  # the metric per seed (one entry for one seed)
    b_seeds: tuple[float, ...] = ()

    def verdict(self) -> str:
        """For a claim that ``a`` is greater than ``b``: ``holds`` when the whole interval is above 0,
        ``contradicted`` when it is entirely below, ``not shown`` when it spans 0."""
        if self.low > 0:
            return "holds"
        if self.high < 0:
            return "contradicted"
        return "not shown"

    def flipped(self) -> Difference:
        """The same comparison as ``b - a`` (for a claim that a value goes down)."""
        return Difference(self.b, self.a, -self.diff, -self.high, -self.low, self.level, self.queries, self.seeds,
                          self.samples, self.b_seeds, self.a_seeds)


def _as_seeds(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise FgrError(f"{name} must be per-query values, shape (queries,) or (seeds, queries)")
    return arr


def _weights(rng: np.random.Generator, n: int, samples: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each replicate: (samples, n) counts summing to n."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=samples).astype(np.float64)


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, stat: str = "mean",
                     groups: Sequence[str] | None = None, samples: int = 2000, level: float = 0.95,
                     seed: int = 0) -> Difference:
    """The difference ``stat(a) - stat(b)`` with a ``level`` paired bootstrap interval.

    ``a`` and ``b`` hold per-query values in the same query order: shape (queries,) for one seed, or
    (seeds, queries) with row s of both from seed s. ``stat`` is ``mean`` or ``macro`` (the mean of
    the ``groups``' means). Queries whose value is NaN in either run (a landmark query without
    positives) are left out, as the metric leaves them out.
    """
    if stat not in STATS:
        raise FgrError(f"statistic must be one of {', '.join(STATS)}, not {stat!r}")
    if not 0 < level < 1:
        raise FgrError(f"level must be in (0, 1), not {level}")
    if samples < 100:
        raise FgrError(f"samples must be at least 100 for a {level:.0%} interval, not {samples}")
    A, B = _as_seeds(a, "a"), _as_seeds(b, "b")
    if A.shape != B.shape:
        raise FgrError(f"the runs are not paired: {A.shape[0]} seed(s) x {A.shape[1]} queries against "
                       f"{B.shape[0]} x {B.shape[1]}")
    keep = ~(np.isnan(A).any(axis=0) | np.isnan(B).any(axis=0))
    if not keep.any():
        raise FgrError("no query has a value in both runs")
    A, B = A[:, keep], B[:, keep]
    if stat == "macro":
        if groups is None:
            raise FgrError("a macro mean needs the queries' groups")
        g = np.asarray(groups)[keep]
    else:
        g = np.zeros(A.shape[1], dtype=int)
    n_seeds, n_q = A.shape
    a_per = tuple(statistic(row, stat, g) for row in A)
    b_per = tuple(statistic(row, stat, g) for row in B)
    rng = np.random.default_rng(seed)
    D = A - B
    # per replicate and seed: the statistic of the redrawn queries (within each group for macro)
    per_group = []
    for name in dict.fromkeys(g.tolist()):
        cols = np.flatnonzero(g == name)
        w = _weights(rng, cols.size, samples)  # (samples, n_g)
        per_group.append(w @ D[:, cols].T / cols.size)  # (samples, seeds)
    reps = np.mean(per_group, axis=0) if stat == "macro" else per_group[0]
    if n_seeds > 1:
        reps = np.sum(_weights(rng, n_seeds, samples) * reps, axis=1) / n_seeds
    else:
        reps = reps[:, 0]
    lo, hi = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2])
    return Difference(float(np.mean(a_per)), float(np.mean(b_per)), float(np.mean(a_per) - np.mean(b_per)),
                      float(lo), float(hi), level, n_q, n_seeds, samples, a_per, b_per)
