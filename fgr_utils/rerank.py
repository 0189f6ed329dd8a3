"""Shortlist -> re-rank -> fuse, keeping every ranking full length (the metrics need all of it).

A re-ranker only reorders the first ``K`` items of a global ranking; the rest keep their global
order. For the revisited landmark protocol the shortlist can be *protocol-aware* (that protocol's
junk moved out of the way before the first K are taken, as DELG / RRT / CVNet / AMES do, which is
what published re-ranking numbers use) or *blind* (the raw global top K, the same for every
protocol: the deployment-honest number). Both are labelled wherever they are reported.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from fgr_utils.errors import FgrError

SHORTLIST_MODES = ("blind", "protocol_aware")


def shortlist(ranking: np.ndarray, k: int, exclude: Iterable[int] = ()) -> np.ndarray:
    """The first ``k`` ids of ``ranking`` that are not in ``exclude``."""
    ranking = np.asarray(ranking)
    excluded = np.fromiter(exclude, dtype=np.int64)
    keep = ranking if excluded.size == 0 else ranking[~np.isin(ranking, excluded)]
    return keep[:k]


def merge(ranking: np.ndarray, top: np.ndarray) -> np.ndarray:
    """``top`` first, then the rest of ``ranking`` in its original order (same length as ranking)."""
    ranking = np.asarray(ranking)
    top = np.asarray(top)
    rest = ranking[~np.isin(ranking, top)]
    return np.concatenate([top, rest])


def fuse(stage2: np.ndarray, stage1: np.ndarray, weight: float | None) -> np.ndarray:
    """``weight * stage1 + (1 - weight) * stage2``; ``None`` keeps the stage-2 score alone (as released)."""
    if weight is None:
        return np.asarray(stage2, dtype=np.float64)
    if not 0.0 <= weight <= 1.0:
        raise FgrError(f"fusion weight must lie in [0, 1], got {weight}")
    return weight * np.asarray(stage1, dtype=np.float64) + (1 - weight) * np.asarray(stage2, dtype=np.float64)


def reorder(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Candidates sorted by descending score; ties keep the incoming (global) order."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return np.asarray(candidates)[order]
