"""Retrieval metrics of every paper fgr reproduces, each one written to its protocol's exact rules.

All values are fractions in [0, 1], never percents. Inputs are numpy arrays (or anything
``np.asarray`` accepts); outputs are plain Python floats, ints and dicts, or numpy arrays for
per-query values. A malformed input raises :class:`~fgr_utils.errors.FgrError` with a one-line
message.

Families (see ``shared/reference``):

* **Landmarks** (``landmarks_protocol.md`` §5): :func:`revisited_map`, :func:`revisited_map_all`,
  :func:`protocol_sets` -- revisitop's trapezoidal AP with junk removal and its mP@k quirk.
* **Fabric QGA** (``fabric_qga.md`` §4): :func:`ap_at_k`, :func:`precision_at_k`,
  :func:`recall_at_k`, :func:`f1_at_k`, :func:`mean_ap_at_k`, :func:`metrics_at_k` (the
  repo-style @k metrics) and :func:`full_ap` (plain AP over a full ranking).
* **FG-SBIR** (``fgsbir_arnet.md`` §5): :func:`acc_at_k`, :func:`ranks_of_true` -- paired Acc@k
  with an explicit tie rule.
* **Attribute-specific fashion retrieval** (``asfr_rpf_agman.md`` §1.2, §1.6):
  :func:`attribute_map`, :func:`combine_attribute_maps`, :func:`triplet_accuracy`.
* **Search indexes** (``asfr_rpf_agman.md`` §6 rule 8): :func:`returned_list_metrics` -- AP and
  hit ranks of what an (approximate) index returned, unreturned items counting as misses.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike

from fgr_utils.errors import FgrError

__all__ = [
    "PROTOCOLS",
    "protocol_sets",
    "revisited_map",
    "revisited_map_all",
    "ap_at_k",
    "precision_at_k",
    "recall_at_k",
    "f1_at_k",
    "full_ap",
    "mean_ap_at_k",
    "metrics_at_k",
    "ranks_of_true",
    "acc_at_k",
    "attribute_map",
    "combine_attribute_maps",
    "triplet_accuracy",
    "returned_list_metrics",
]

Protocol = Literal["easy", "medium", "hard", "old"]
TieRule = Literal["optimistic", "pessimistic"]

#: The ground-truth protocols :func:`revisited_map` understands and the gnd keys each one needs.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "easy": ("easy", "hard", "junk"),
    "medium": ("easy", "hard", "junk"),
    "hard": ("easy", "hard", "junk"),
    "old": ("ok", "junk"),
}

# Largest number of matrix elements one block of the chunked computations holds (a few temporaries
# of this size exist at once, so peak memory stays around 50-100 MB whatever the input size).
_BLOCK_ELEMS = 1 << 20


# --------------------------------------------------------------------------------------------
# Shared validation helpers
# --------------------------------------------------------------------------------------------


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    try:
        out = tuple(ks)
    except TypeError:
        raise FgrError(f"ks must be a sequence of positive integers, got {ks!r}") from None
    if not out:
        raise FgrError("ks is empty; give at least one cut-off, e.g. ks=(1, 5, 10)")
    for k in out:
        if not _is_int(k) or k < 1:
            raise FgrError(f"ks must hold positive integers, got {k!r} in {out!r}")
    return tuple(int(k) for k in out)


def _check_k(k: Any) -> int:
    if not _is_int(k) or k < 1:
        raise FgrError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_tie_rule(ties: str) -> None:
    if ties not in ("optimistic", "pessimistic"):
        raise FgrError(f"ties must be 'optimistic' or 'pessimistic', got {ties!r}")


def _as_matrix(x: ArrayLike, name: str) -> np.ndarray:
    """A 2-D, finite, real-valued array."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise FgrError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise FgrError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise FgrError(f"{name} contains NaN or infinite values")
    return arr


def _as_int_vector(x: ArrayLike, name: str, length: int | None = None) -> np.ndarray:
    """A 1-D integer array (an empty list is accepted as an empty integer array)."""
    arr = np.asarray(x)
    if arr.size == 0:
        arr = arr.astype(np.int64).reshape(-1)
    if arr.ndim != 1:
        raise FgrError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise FgrError(f"{name} must hold integers, got dtype {arr.dtype}")
    if length is not None and arr.shape[0] != length:
        raise FgrError(f"{name} has {arr.shape[0]} entries, expected {length}")
    return arr.astype(np.int64, copy=False)


# --------------------------------------------------------------------------------------------
# Landmarks: revisited Oxford / Paris (revisitop compute_map)
# --------------------------------------------------------------------------------------------


def protocol_sets(entry: Mapping[str, Any], protocol: Protocol) -> tuple[np.ndarray, np.ndarray]:
    """The (positives, junk) database indices of one ground-truth entry under ``protocol``.

    ``entry`` is one per-query dict of a revisitop ``gnd_*.pkl`` file (``cfg['gnd'][i]``).

    ============  ================  ================
    protocol      positives         junk
    ============  ================  ================
    ``"old"``     ``ok``            ``junk``
    ``"easy"``    ``easy``          ``junk ∪ hard``
    ``"medium"``  ``easy ∪ hard``   ``junk``
    ``"hard"``    ``hard``          ``junk ∪ easy``
    ============  ================  ================

    Both arrays are sorted and free of duplicates. Useful on its own for protocol-aware re-ranking
    shortlists (``landmarks_protocol.md`` §6).
    """
    if protocol not in PROTOCOLS:
        raise FgrError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if not isinstance(entry, Mapping):
        raise FgrError(f"a ground-truth entry must be a dict, got {type(entry).__name__}")
    missing = [key for key in PROTOCOLS[protocol] if key not in entry]
    if missing:
        raise FgrError(
            f"ground-truth entry lacks key(s) {missing} needed by protocol {protocol!r} "
            f"(it has {sorted(entry)}); 'old' needs ok/junk, easy/medium/hard need easy/hard/junk"
        )
    sets = {key: _as_int_vector(entry[key], f"gnd[{key!r}]") for key in PROTOCOLS[protocol]}
    if protocol == "old":
        pos, junk = sets["ok"], sets["junk"]
    elif protocol == "easy":
        pos, junk = sets["easy"], np.concatenate([sets["junk"], sets["hard"]])
    elif protocol == "medium":
        pos, junk = np.concatenate([sets["easy"], sets["hard"]]), sets["junk"]
    else:  # hard
        pos, junk = sets["hard"], np.concatenate([sets["junk"], sets["easy"]])
    return np.unique(pos), np.unique(junk)


def _check_ranks(ranks: ArrayLike, n_queries: int, n_db: int | None) -> tuple[np.ndarray, int]:
    """Validate a (n_queries, L) ranking matrix; return it and the database size."""
    arr = np.asarray(ranks)
    if arr.ndim != 2:
        raise FgrError(f"ranks must be a 2-D (n_queries, n_db) array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise FgrError(f"ranks must hold integer database indices, got dtype {arr.dtype}")
    if arr.shape[0] != n_queries:
        raise FgrError(
            f"ranks has {arr.shape[0]} rows but gnd has {n_queries} queries; rows must be queries "
            "(revisitop's compute_map takes the transpose: pass ranks.T)"
        )
    length = arr.shape[1]
    if n_db is None:
        n_db = length
    elif not _is_int(n_db) or n_db < length:
        raise FgrError(f"n_db must be an integer >= the ranking length {length}, got {n_db!r}")
    n_db = int(n_db)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n_db:
            bad = lo if lo < 0 else hi
            raise FgrError(
                f"ranks holds index {bad}, outside the database [0, {n_db}); pass n_db= "
                "when the rankings are truncated shortlists"
            )
    arr = arr.astype(np.int64, copy=False)
    for q, row in enumerate(arr):
        counts = np.bincount(row, minlength=n_db)
        if counts.max(initial=0) > 1:
            dup = int(np.argmax(counts))
            raise FgrError(f"ranking row {q} lists database index {dup} {counts[dup]} times")
    return arr, n_db


def _check_gnd(gnd: Any) -> list[Mapping[str, Any]]:
    if isinstance(gnd, Mapping):
        hint = " (pass cfg['gnd'], the per-query list)" if "gnd" in gnd else ""
        raise FgrError(f"gnd must be a list of per-query dicts, got a dict{hint}")
    if not isinstance(gnd, Sequence) or isinstance(gnd, (str, bytes)):
        raise FgrError(f"gnd must be a list of per-query dicts, got {type(gnd).__name__}")
    return list(gnd)


def _revisited_positions(row: np.ndarray, pos: np.ndarray, junk: np.ndarray,
                         label: np.ndarray) -> np.ndarray:
    """Sorted 0-based positions of the positives in ``row`` once junk is deleted from it.

    Deleting junk is the same as decrementing each positive's position by the number of junk
    images ranked before it. ``label`` is a zeroed int8 buffer of length n_db, left zeroed. An
    index listed as both positive and junk counts as a positive.
    """
    label[junk] = 2
    label[pos] = 1
    ranked = label[row]
    label[junk] = 0
    label[pos] = 0
    kept = ranked[ranked != 2]
    return np.flatnonzero(kept == 1)


def _trapezoid_ap(positions: np.ndarray, n_pos: int) -> float:
    j = np.arange(positions.size, dtype=np.float64)
    r = positions.astype(np.float64)
    prec_after = (j + 1.0) / (r + 1.0)
    prec_before = np.ones_like(prec_after)
    np.divide(j, r, out=prec_before, where=r > 0)  # r == 0 only for j == 0: prec_0 = 1
    return float(np.sum((prec_before + prec_after) / 2.0) / n_pos)


def _rectangular_ap(positions: np.ndarray, n_pos: int) -> float:
    j = np.arange(positions.size, dtype=np.float64)
    return float(np.sum((j + 1.0) / (positions + 1.0)) / n_pos)


def _revisited_precisions(positions: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """revisitop's mP@k per query: k_q = min(max(pos), k), P = |{pos <= k_q}| / k_q (1-based)."""
    if positions.size == 0:  # no positive was ranked at all
        return np.zeros(len(ks))
    one_based = positions + 1
    k_q = np.minimum(one_based[-1], np.asarray(ks))
    return np.searchsorted(one_based, k_q, side="right") / k_q


def _revisited(ranks: np.ndarray, n_db: int, gnd: list, protocol: str,
               ks: tuple[int, ...], ap: str) -> dict[str, Any]:
    n_q = ranks.shape[0]
    ap_fn = _trapezoid_ap if ap == "trapezoid" else _rectangular_ap
    aps = np.full(n_q, np.nan)
    prs = np.full((n_q, len(ks)), np.nan)
    label = np.zeros(n_db, dtype=np.int8)
    for q in range(n_q):
        try:
            pos, junk = protocol_sets(gnd[q], protocol)  # type: ignore[arg-type]
        except FgrError as err:
            raise FgrError(f"gnd[{q}]: {err}") from None
        for name, idx in (("positive", pos), ("junk", junk)):
            if idx.size and (idx[0] < 0 or idx[-1] >= n_db):
                bad = int(idx[0] if idx[0] < 0 else idx[-1])
                raise FgrError(f"gnd[{q}] has {name} index {bad}, outside the database [0, {n_db})")
        if pos.size == 0:
            continue  # no positives: AP is NaN and the query is left out of the mean
        positions = _revisited_positions(ranks[q], pos, junk, label)
        aps[q] = ap_fn(positions, pos.size)
        prs[q] = _revisited_precisions(positions, ks)
    valid = ~np.isnan(aps)
    n_valid = int(valid.sum())
    result: dict[str, Any] = {"map": float(aps[valid].mean()) if n_valid else float("nan")}
    result["aps"] = aps
    for i, k in enumerate(ks):
        result[f"mp@{k}"] = float(prs[valid, i].mean()) if n_valid else float("nan")
    result["prs"] = prs
    return result


def revisited_map(
    ranks: ArrayLike,
    gnd: Sequence[Mapping[str, Any]],
    protocol: Protocol,
    ks: Sequence[int] = (1, 5, 10),
    ap: Literal["trapezoid", "rectangular"] = "trapezoid",
    *,
    n_db: int | None = None,
) -> dict[str, Any]:
    """mAP and mP@k of Oxford/Paris rankings under revisitop's ``compute_map`` protocol.

    ``ranks`` is an integer array of shape (n_queries, L): row q lists database indices best
    first. **Rows are queries** -- revisitop's ``compute_map`` takes the transpose. Rows must
    hold distinct indices in [0, n_db); ``n_db`` defaults to L, i.e. every row is a full ranking
    of the database, as the protocol requires. Pass a larger ``n_db`` to score truncated
    shortlists: positives missing from a row then silently contribute nothing.

    ``gnd`` is the per-query list of a gnd pickle (``cfg['gnd']``). ``protocol`` picks the
    positive and junk sets (:func:`protocol_sets`): ``"old"`` uses ok/junk; ``"easy"`` uses
    pos = easy, junk = junk ∪ hard; ``"medium"`` pos = easy ∪ hard, junk = junk; ``"hard"``
    pos = hard, junk = junk ∪ easy.

    Per query:

    1. No positives: AP and the precisions are NaN and the query is left out of every mean.
    2. Junk images are deleted from the ranking, i.e. each positive's 0-based position is
       decreased by the number of junk images ranked before it. Junk neither helps nor hurts.
    3. ``ap="trapezoid"`` (the published convention): for the j-th ranked positive (j = 0, 1, ...)
       at adjusted position r, ``prec_0 = 1 if r == 0 else j / r``, ``prec_1 = (j+1) / (r+1)``,
       ``AP += (prec_0 + prec_1) / 2 / n_pos``, with n_pos = the number of ground-truth
       positives (so positives absent from the ranking count as misses).
       ``ap="rectangular"``: plain non-interpolated AP, ``AP = Σ_j prec_1 / n_pos``.
    4. mP@k, with revisitop's quirk: with 1-based adjusted positions ``pos``,
       ``k_q = min(max(pos), k)`` and ``P = |{pos <= k_q}| / k_q``. When no positive is ranked
       at all (possible only for truncated rankings) P is 0.

    Returns ``{"map": float, "aps": (n_queries,) array, "mp@<k>": float for each k in ks,
    "prs": (n_queries, len(ks)) array}``; means are over queries with positives (NaN if none).
    """
    gnd_list = _check_gnd(gnd)
    if protocol not in PROTOCOLS:
        raise FgrError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if ap not in ("trapezoid", "rectangular"):
        raise FgrError(f"ap must be 'trapezoid' or 'rectangular', got {ap!r}")
    ks_t = _check_ks(ks)
    arr, n = _check_ranks(ranks, len(gnd_list), n_db)
    return _revisited(arr, n, gnd_list, protocol, ks_t, ap)


def revisited_map_all(
    ranks: ArrayLike,
    gnd: Sequence[Mapping[str, Any]],
    ks: Sequence[int] = (1, 5, 10),
    ap: Literal["trapezoid", "rectangular"] = "trapezoid",
    *,
    n_db: int | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`revisited_map` under the Easy, Medium and Hard protocols (validating once).

    Returns ``{"easy": result, "medium": result, "hard": result}``.
    """
    gnd_list = _check_gnd(gnd)
    if ap not in ("trapezoid", "rectangular"):
        raise FgrError(f"ap must be 'trapezoid' or 'rectangular', got {ap!r}")
    ks_t = _check_ks(ks)
    arr, n = _check_ranks(ranks, len(gnd_list), n_db)
    return {p: _revisited(arr, n, gnd_list, p, ks_t, ap) for p in ("easy", "medium", "hard")}


# --------------------------------------------------------------------------------------------
# Fabric QGA: repo-style @k metrics over ranked id lists
# --------------------------------------------------------------------------------------------


def _hits(ranking: Iterable[Hashable], relevant: Iterable[Hashable],
          k: int | None) -> tuple[np.ndarray, int]:
    """Hit mask of the first k ranked ids (all of them for k=None) and |relevant|."""
    try:
        rel = set(relevant)
        top = list(ranking if k is None else islice(ranking, k))
        distinct = len(set(top))
    except TypeError as err:
        raise FgrError(f"ranked and relevant ids must be hashable (str, int): {err}") from None
    if distinct != len(top):
        raise FgrError("the ranking lists an id more than once; ranked ids must be distinct")
    return np.fromiter((r in rel for r in top), dtype=bool, count=len(top)), len(rel)


def _sum_precision_at_hits(hits: np.ndarray) -> float:
    """Σ over hit positions i (1-based) of P@i = hits in the top i / i."""
    if not hits.any():
        return 0.0
    cum = np.cumsum(hits)
    return float(np.sum(cum[hits] / (np.flatnonzero(hits) + 1)))


def ap_at_k(ranking: Iterable[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """The fabric release's AP@k (GLDv2-style mAP@k for one query).

    Over the first k ranked ids: ``AP@k = Σ_{i <= k, ranked[i] relevant} P@i / min(|Rel|, k)``,
    where ``P@i`` = relevant ids in the top i divided by i. 0 if ``relevant`` is empty. A ranking
    shorter than k is scored as if padded with misses. Ranked ids must be distinct.
    """
    k = _check_k(k)
    hits, n_rel = _hits(ranking, relevant, k)
    if n_rel == 0:
        return 0.0
    return _sum_precision_at_hits(hits) / min(n_rel, k)


def precision_at_k(ranking: Iterable[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """``P@k = hits in the top k / k`` (k, not the ranking length, is the denominator)."""
    k = _check_k(k)
    hits, _ = _hits(ranking, relevant, k)
    return float(hits.sum()) / k


def recall_at_k(ranking: Iterable[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """``R@k = hits in the top k / |Rel|``; 0 if ``relevant`` is empty."""
    k = _check_k(k)
    hits, n_rel = _hits(ranking, relevant, k)
    return float(hits.sum()) / n_rel if n_rel else 0.0


def f1_at_k(ranking: Iterable[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """``F1@k = 2·P@k·R@k / (P@k + R@k)``; 0 if P@k + R@k = 0."""
    k = _check_k(k)
    hits, n_rel = _hits(ranking, relevant, k)
    n_hit = float(hits.sum())
    if n_hit == 0:
        return 0.0
    p, r = n_hit / k, n_hit / n_rel
    return 2.0 * p * r / (p + r)


def full_ap(ranking: Iterable[Hashable], relevant: Iterable[Hashable]) -> float:
    """Plain (non-interpolated) AP over the whole ranking: ``Σ_{hits i} P@i / |Rel|``.

    Relevant ids that are never ranked count as misses (they stay in the denominator). 0 if
    ``relevant`` is empty (the same convention as :func:`ap_at_k`). This is the full-ranking AP
    reported next to the repo-style AP@k.
    """
    hits, n_rel = _hits(ranking, relevant, None)
    return _sum_precision_at_hits(hits) / n_rel if n_rel else 0.0


def _check_pairs(rankings: Sequence[Any], relevants: Sequence[Any]) -> None:
    if len(rankings) != len(relevants):
        raise FgrError(f"got {len(rankings)} rankings but {len(relevants)} relevant sets")
    if len(rankings) == 0:
        raise FgrError("no queries: rankings is empty")


def mean_ap_at_k(rankings: Sequence[Iterable[Hashable]],
                 relevants: Sequence[Iterable[Hashable]], k: int) -> float:
    """Mean of :func:`ap_at_k` over queries (the fabric release's "MAP"; with k = 1 it is P@1)."""
    _check_pairs(rankings, relevants)
    return float(np.mean([ap_at_k(r, rel, k) for r, rel in zip(rankings, relevants)]))


def per_query_at_k(rankings: Sequence[Iterable[Hashable]],
                   relevants: Sequence[Iterable[Hashable]], k: int) -> dict[str, np.ndarray]:
    """The repo-style metrics of every query: ``{"map", "precision", "recall", "f1"}`` arrays of
    AP@k, P@k, R@k and F1@k (the release's per-query rows ``[query, class, AP, P, R, F1]``)."""
    _check_pairs(rankings, relevants)
    k = _check_k(k)
    rows = []
    for ranking, relevant in zip(rankings, relevants):
        rel = set(relevant)
        top = list(islice(ranking, k))
        rows.append((ap_at_k(top, rel, k), precision_at_k(top, rel, k),
                     recall_at_k(top, rel, k), f1_at_k(top, rel, k)))
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return {name: table[:, j] for j, name in enumerate(("map", "precision", "recall", "f1"))}


def metrics_at_k(rankings: Sequence[Iterable[Hashable]],
                 relevants: Sequence[Iterable[Hashable]], k: int) -> dict[str, float]:
    """Means over queries of :func:`per_query_at_k`: ``map`` is the mean AP@k, the others the
    means of the per-query P@k, R@k and F1@k (as the release averages its rows)."""
    return {name: float(v.mean()) for name, v in per_query_at_k(rankings, relevants, k).items()}


# --------------------------------------------------------------------------------------------
# FG-SBIR: paired Acc@k
# --------------------------------------------------------------------------------------------


def ranks_of_true(similarity: ArrayLike, true_index: ArrayLike,
                  ties: TieRule = "optimistic") -> np.ndarray:
    """1-based rank of each query's true gallery item (for Acc@k, MRR, median rank).

    ``similarity`` is (n_queries, n_gallery), higher = more similar (for distances pass their
    negation); ``true_index[q]`` is the gallery index of query q's true match.

    * ``ties="optimistic"``: rank = 1 + #gallery items scoring strictly higher than the true one.
    * ``ties="pessimistic"``: rank = 1 + #other gallery items scoring >= the true one (the
      Bhunia/SketchX rule ``#{d <= d_true}``).

    ARNet's ``argsort`` rule lies between the two (its order among ties is the sort's). Without
    ties all three agree. Computed against the true score column in row blocks: no sort, bounded
    memory.
    """
    sim = _as_matrix(similarity, "similarity")
    n_q, n_g = sim.shape
    if n_g == 0:
        raise FgrError("similarity has no gallery columns")
    idx = _as_int_vector(true_index, "true_index", n_q)
    if idx.size and (idx.min() < 0 or idx.max() >= n_g):
        bad = int(idx.min() if idx.min() < 0 else idx.max())
        raise FgrError(f"true_index holds {bad}, outside the gallery [0, {n_g})")
    _check_tie_rule(ties)
    true_scores = sim[np.arange(n_q), idx]
    out = np.empty(n_q, dtype=np.int64)
    step = max(1, _BLOCK_ELEMS // n_g)
    for s in range(0, n_q, step):
        block, t = sim[s:s + step], true_scores[s:s + step, None]
        if ties == "optimistic":
            out[s:s + step] = 1 + np.count_nonzero(block > t, axis=1)
        else:  # the true item itself is among the >= ones
            out[s:s + step] = np.count_nonzero(block >= t, axis=1)
    return out


def acc_at_k(similarity: ArrayLike, true_index: ArrayLike, ks: Sequence[int] = (1, 5, 10),
             ties: TieRule = "optimistic") -> dict[int, float]:
    """Paired cross-modal Acc@k: the fraction of queries whose true item ranks within the top k.

    ``Acc@k = #{q : rank_q <= k} / n_queries`` with ``rank_q`` from :func:`ranks_of_true` under
    the tie rule ``ties``. Returns ``{k: fraction}`` in the order of ``ks``. (ARNet prints
    ``100 · Acc@k`` rounded to 3 decimals.)
    """
    ks_t = _check_ks(ks)
    ranks = ranks_of_true(similarity, true_index, ties)
    if ranks.size == 0:
        raise FgrError("similarity has no query rows")
    return {k: float(np.mean(ranks <= k)) for k in ks_t}


# --------------------------------------------------------------------------------------------
# Attribute-specific fashion retrieval (ASEN / RPF / AG-MAN)
# --------------------------------------------------------------------------------------------


def _full_ranking_ap(rel: np.ndarray) -> np.ndarray:
    """Per-row AP of a (rows, n) relevance matrix in ranked order; 0 for rows with no relevant."""
    cum = np.cumsum(rel, axis=1)
    n_rel = cum[:, -1]
    prec_sum = np.sum(np.where(rel, cum / np.arange(1, rel.shape[1] + 1), 0.0), axis=1)
    return np.divide(prec_sum, n_rel, out=np.zeros(rel.shape[0]), where=n_rel > 0)


def attribute_map(
    q_emb: ArrayLike, q_attr: ArrayLike, q_val: ArrayLike,
    c_emb: ArrayLike, c_attr: ArrayLike, c_val: ArrayLike,
) -> dict[str, Any]:
    """Attribute-specific MAP of ASEN, ASEN++, RPF and AG-MAN (``asfr_rpf_agman.md`` §1.2).

    Row i of ``q_emb`` is query i embedded under its own attribute ``q_attr[i]`` (likewise for
    the candidates). Embeddings are used **as given**: the caller L2-normalises them so that the
    dot product is the cosine similarity. Attributes and values are integers.

    For each attribute a, let Q_a / C_a be the queries / candidates with attribute a (candidates
    of other attributes are never ranked). Each query ranks **all** of C_a by descending dot
    product, with ties broken by candidate input order (a stable sort; ASEN's ``argsort(-S)`` and
    RPF's ``argsort(S)[::-1]`` differ only there). A candidate is relevant iff its value equals
    the query's. ``AP(q) = (1/R_q) Σ_{i: rel_i} (relevant in top i) / i`` with R_q = the number
    of relevant candidates in C_a; ``AP = 0`` when R_q = 0 (ASEN's rule -- pytorch-metric-learning
    instead drops such queries). ``MAP_a = mean_{q in Q_a} AP(q)``.

    Returns ``{"per_attribute": {a: MAP_a}, "weighted": Σ|Q_a|·MAP_a / Σ|Q_a|`` (the papers'
    official overall number, equal to the mean AP over all queries), ``"macro": mean_a MAP_a,
    "queries": {a: |Q_a|}, "aps": per-query AP array in input order}``. Queries are processed
    attribute by attribute in row blocks, so memory stays bounded.
    """
    q = _as_matrix(q_emb, "q_emb")
    c = _as_matrix(c_emb, "c_emb")
    if q.shape[1] != c.shape[1]:
        raise FgrError(f"q_emb has dimension {q.shape[1]} but c_emb has {c.shape[1]}")
    if q.shape[0] == 0:
        raise FgrError("q_emb has no query rows")
    qa = _as_int_vector(q_attr, "q_attr", q.shape[0])
    qv = _as_int_vector(q_val, "q_val", q.shape[0])
    ca = _as_int_vector(c_attr, "c_attr", c.shape[0])
    cv = _as_int_vector(c_val, "c_val", c.shape[0])

    aps = np.zeros(q.shape[0])
    per_attribute: dict[int, float] = {}
    counts: dict[int, int] = {}
    for a in np.unique(qa):
        rows = np.flatnonzero(qa == a)
        cols = np.flatnonzero(ca == a)
        if cols.size:  # with no candidates every R_q is 0 and every AP stays 0
            cand, cand_val = c[cols], cv[cols]
            step = max(1, _BLOCK_ELEMS // cols.size)
            for s in range(0, rows.size, step):
                block = rows[s:s + step]
                scores = q[block] @ cand.T
                order = np.argsort(-scores, axis=1, kind="stable")
                aps[block] = _full_ranking_ap(cand_val[order] == qv[block, None])
        per_attribute[int(a)] = float(aps[rows].mean())
        counts[int(a)] = int(rows.size)
    weighted, macro = combine_attribute_maps(per_attribute, counts)
    return {"per_attribute": per_attribute, "weighted": weighted, "macro": macro,
            "queries": counts, "aps": aps}


def combine_attribute_maps(per_attribute: Mapping[Any, float],
                           counts: Mapping[Any, int]) -> tuple[float, float]:
    """Overall MAP from per-attribute MAPs: ``(weighted, macro)``.

    ``weighted = Σ_a |Q_a|·MAP_a / Σ_a |Q_a|`` is the official number (the code's averaging
    meter is updated with n = |Q_a|); ``macro = mean_a MAP_a`` is the unweighted mean. Works on
    fractions or percents alike (both are linear).
    """
    if not per_attribute:
        raise FgrError("per_attribute is empty")
    if set(per_attribute) != set(counts):
        raise FgrError(
            f"per_attribute and counts name different attributes: "
            f"{sorted(map(str, per_attribute))} vs {sorted(map(str, counts))}"
        )
    keys = list(per_attribute)
    maps = np.array([per_attribute[a] for a in keys], dtype=np.float64)
    n = np.array([counts[a] for a in keys])
    if not np.isfinite(maps).all():
        raise FgrError("per_attribute holds a NaN or infinite MAP")
    if n.dtype.kind not in "iu" or (n < 1).any():
        raise FgrError(f"counts must be positive integers, got {dict(counts)}")
    return float(np.sum(n * maps) / np.sum(n)), float(np.mean(maps))


@overload
def triplet_accuracy(sim_close: ArrayLike, sim_far: ArrayLike,
                     conditions: None = None) -> float: ...


@overload
def triplet_accuracy(sim_close: ArrayLike, sim_far: ArrayLike,
                     conditions: ArrayLike) -> dict[str, Any]: ...


def triplet_accuracy(sim_close: ArrayLike, sim_far: ArrayLike,
                     conditions: ArrayLike | None = None) -> float | dict[str, Any]:
    """Zappos50k / CSN triplet accuracy (``asfr_rpf_agman.md`` §1.6).

    For a triplet line ``a b c`` (a is more similar to c than to b under the line's condition),
    ``sim_close = sim(a, c)`` and ``sim_far = sim(a, b)``. A triplet is correct iff
    ``sim_close > sim_far`` **strictly**: ties count as wrong. For CSN's distance form
    (``dist(a, b) > dist(a, c)``) pass ``sim_close = -dist(a, c)``, ``sim_far = -dist(a, b)``.

    Without ``conditions`` returns the fraction of correct triplets. With ``conditions`` (one
    integer per triplet, e.g. 0 class, 1 closure, 2 gender, 3 heel) returns
    ``{"accuracy": overall, "per_condition": {c: accuracy}, "counts": {c: n_triplets}}``.
    """
    close = np.asarray(sim_close, dtype=np.float64)
    far = np.asarray(sim_far, dtype=np.float64)
    if close.ndim != 1 or close.shape != far.shape:
        raise FgrError(
            f"sim_close and sim_far must be 1-D arrays of one length, got {close.shape} and "
            f"{far.shape}"
        )
    if close.size == 0:
        raise FgrError("no triplets: sim_close is empty")
    if not (np.isfinite(close).all() and np.isfinite(far).all()):
        raise FgrError("sim_close or sim_far contains NaN or infinite values")
    correct = close > far
    overall = float(correct.mean())
    if conditions is None:
        return overall
    cond = _as_int_vector(conditions, "conditions", close.size)
    values, inverse, n = np.unique(cond, return_inverse=True, return_counts=True)
    hits = np.bincount(inverse, weights=correct, minlength=values.size)
    return {
        "accuracy": overall,
        "per_condition": {int(v): float(h / m) for v, h, m in zip(values, hits, n)},
        "counts": {int(v): int(m) for v, m in zip(values, n)},
    }


# --------------------------------------------------------------------------------------------
# Metrics of what an index returned (approximate search)
# --------------------------------------------------------------------------------------------


def returned_list_metrics(found: ArrayLike, relevant: Sequence[ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    """Per-query AP and rank of the first relevant item, from the id lists an index returned.

    ``found`` is (n_queries, k) database positions, best first, ``-1`` where the index returned
    nothing (FAISS pads that way); ``relevant[q]`` the positions relevant to query q. AP divides by
    **all** relevant items, so those never returned count as misses (``asfr_rpf_agman.md`` §6 rule
    8): with k equal to the database size and an exact index it is the full-ranking AP. Returns
    ``(ap, first_hit)``, ``first_hit`` 1-based and ``k + 1`` when no relevant item was returned
    (Acc@k = ``mean(first_hit <= k)``).
    """
    ids = np.asarray(found)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise FgrError(f"found must be a 2-D integer array of positions, got shape {ids.shape} ({ids.dtype})")
    if len(relevant) != ids.shape[0]:
        raise FgrError(f"got {ids.shape[0]} returned lists but {len(relevant)} relevant sets")
    k = ids.shape[1]
    ap = np.zeros(ids.shape[0])
    first = np.full(ids.shape[0], k + 1, dtype=np.int64)
    for q, (row, rel) in enumerate(zip(ids, relevant)):
        rel = np.unique(np.asarray(rel, dtype=np.int64))
        hits = np.isin(row, rel) & (row >= 0)
        if hits.any():
            first[q] = int(np.argmax(hits)) + 1
            ap[q] = _sum_precision_at_hits(hits) / rel.size
    return ap, first
