"""Tests of fgr_utils.metrics: hand-worked cases, independent oracles, properties, validation.

Oracles: torchmetrics' functional retrieval metrics and pytorch-metric-learning's
AccuracyCalculator, plus a literal loop transcription of revisitop's junk-decrement algorithm
(landmarks_protocol.md §5). Note that torchmetrics >= 1.x treats items with ``preds <= 0`` as
non-relevant, so every oracle score below is made strictly positive.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning.distances import DotProductSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from torchmetrics.functional.retrieval import (
    retrieval_average_precision,
    retrieval_hit_rate,
    retrieval_precision,
    retrieval_recall,
)

from fgr_utils import metrics as M
from fgr_utils.errors import FgrError
from fgr_utils.metrics import (
    acc_at_k,
    ap_at_k,
    attribute_map,
    combine_attribute_maps,
    f1_at_k,
    full_ap,
    mean_ap_at_k,
    metrics_at_k,
    precision_at_k,
    ranks_of_true,
    recall_at_k,
    revisited_map,
    revisited_map_all,
    triplet_accuracy,
)

HYPO = settings(max_examples=60, deadline=None)


def _tm_ap(scores, target, top_k=None) -> float:
    return float(retrieval_average_precision(
        torch.as_tensor(np.asarray(scores, dtype=np.float64)), torch.as_tensor(target),
        top_k=top_k))


# ============================================================================================
# Revisited Oxford / Paris: hand-worked cases
# ============================================================================================


def test_junk_ranked_before_a_positive():
    # ranking 3 0 1 2 4 ; ok = {1, 4}, junk = {3}.  Deleting junk leaves 0 1 2 4, so the positives
    # sit at adjusted 0-based positions r = 1 and r = 3 (n_pos = 2).
    #   j=0, r=1: prec_0 = 0/1 = 0,  prec_1 = 1/2  -> (0 + 1/2)/2/2   = 3/24
    #   j=1, r=3: prec_0 = 1/3,      prec_1 = 2/4  -> (1/3 + 1/2)/2/2 = 5/24
    #   trapezoid AP = 8/24 = 1/3 ; rectangular AP = (1/2 + 2/4)/2 = 1/2
    # mP@k: 1-based positions [2, 4]. k=1: k_q = 1, 0 positives <= 1 -> 0.
    #   k=5: k_q = min(4, 5) = 4 -> 2/4 = 0.5 (the quirk; a plain P@5 would be 2/5).  k=10 -> 0.5.
    ranks = np.array([[3, 0, 1, 2, 4]])
    gnd = [{"ok": [1, 4], "junk": [3]}]
    res = revisited_map(ranks, gnd, "old")
    assert res["map"] == pytest.approx(1 / 3)
    assert res["aps"] == pytest.approx([1 / 3])
    np.testing.assert_allclose(res["prs"], [[0.0, 0.5, 0.5]])
    assert (res["mp@1"], res["mp@5"], res["mp@10"]) == pytest.approx((0.0, 0.5, 0.5))
    assert revisited_map(ranks, gnd, "old", ap="rectangular")["map"] == pytest.approx(0.5)
    # Without the junk label, image 3 is a plain miss and AP drops:
    #   r=2: (0/2 + 1/3)/2 = 1/6 ; r=4: (1/4 + 2/5)/2 = 13/40 ; AP = (1/6 + 13/40)/2 = 59/240
    no_junk = revisited_map(ranks, [{"ok": [1, 4], "junk": []}], "old")
    assert no_junk["map"] == pytest.approx(59 / 240)


def test_positive_at_rank_zero():
    # ranking 2 0 1 3 ; ok = {1, 2}, no junk. Positives at r = 0 and r = 2.
    #   j=0, r=0: prec_0 = 1 (r == 0), prec_1 = 1/1   -> (1 + 1)/2/2     = 12/24
    #   j=1, r=2: prec_0 = 1/2,        prec_1 = 2/3   -> (1/2 + 2/3)/2/2 =  7/24
    #   trapezoid AP = 19/24 ; rectangular AP = (1 + 2/3)/2 = 5/6
    # mP@k: positions [1, 3]; k=1: k_q=1 -> 1/1 ; k=5: k_q=3 -> 2/3 ; k=10: 2/3
    ranks = np.array([[2, 0, 1, 3]])
    gnd = [{"ok": [2, 1], "junk": []}]
    res = revisited_map(ranks, gnd, "old")
    assert res["map"] == pytest.approx(19 / 24)
    np.testing.assert_allclose(res["prs"], [[1.0, 2 / 3, 2 / 3]])
    assert revisited_map(ranks, gnd, "old", ap="rectangular")["map"] == pytest.approx(5 / 6)


def test_query_without_positives_is_nan_and_excluded():
    # query 0 is the 19/24 case above; query 1 has no positives -> NaN, excluded from every mean;
    # query 2 ranks its only positive first -> AP 1, precisions 1.
    ranks = np.array([[2, 0, 1, 3], [0, 1, 2, 3], [3, 2, 1, 0]])
    gnd = [{"ok": [1, 2], "junk": []}, {"ok": [], "junk": [0]}, {"ok": [3], "junk": []}]
    res = revisited_map(ranks, gnd, "old")
    assert np.isnan(res["aps"][1]) and np.isnan(res["prs"][1]).all()
    assert res["aps"][[0, 2]] == pytest.approx([19 / 24, 1.0])
    assert res["map"] == pytest.approx((19 / 24 + 1) / 2)  # mean over 2 queries, not 3
    assert res["mp@5"] == pytest.approx((2 / 3 + 1) / 2)
    # every query empty: means are NaN, not an exception
    empty = revisited_map(ranks[:1], [{"ok": [], "junk": []}], "old")
    assert np.isnan(empty["map"]) and np.isnan(empty["mp@1"])


def test_easy_medium_hard_set_construction():
    # ranking 0 1 2 3 4 5 ; easy = {1}, hard = {3}, junk = {0}.
    #   Easy   : pos {1},    junk {0, 3} -> list 1 2 4 5: positive at r=0        -> AP 1
    #   Medium : pos {1, 3}, junk {0}    -> list 1 2 3 4 5: positives at r=0, 2  -> AP 19/24
    #   Hard   : pos {3},    junk {0, 1} -> list 2 3 4 5: positive at r=1
    #            (0 + 1/2)/2/1 = 1/4 ; mP@1: k_q = 1 -> 0 ; mP@5: k_q = 2 -> 1/2
    ranks = np.array([[0, 1, 2, 3, 4, 5]])
    gnd = [{"easy": [1], "hard": [3], "junk": [0], "bbx": [0, 0, 1, 1]}]
    res = revisited_map_all(ranks, gnd)
    assert {p: r["map"] for p, r in res.items()} == pytest.approx(
        {"easy": 1.0, "medium": 19 / 24, "hard": 0.25})
    np.testing.assert_allclose(res["hard"]["prs"], [[0.0, 0.5, 0.5]])
    np.testing.assert_allclose(res["medium"]["prs"], [[1.0, 2 / 3, 2 / 3]])
    for p in ("easy", "medium", "hard"):
        single = revisited_map(ranks, gnd, p)
        assert single["map"] == res[p]["map"]
        np.testing.assert_array_equal(single["prs"], res[p]["prs"])


def test_positive_missing_from_truncated_ranking():
    # shortlist 0 1 of a 4-image database; ok = {1, 3}: image 3 is never ranked but n_pos = 2.
    #   j=0, r=1: (0 + 1/2)/2/2 = 1/8 ; rectangular: (1/2)/2 = 1/4
    #   mP@k: positions [2]; k=1 -> k_q=1 -> 0 ; k=5 -> k_q=2 -> 1/2
    ranks = np.array([[0, 1]])
    res = revisited_map(ranks, [{"ok": [1, 3], "junk": []}], "old", n_db=4)
    assert res["map"] == pytest.approx(1 / 8)
    np.testing.assert_allclose(res["prs"], [[0.0, 0.5, 0.5]])
    rect = revisited_map(ranks, [{"ok": [1, 3], "junk": []}], "old", ap="rectangular", n_db=4)
    assert rect["map"] == pytest.approx(1 / 4)
    # no positive ranked at all: AP 0 and precisions 0 (revisitop would crash on max([]))
    none = revisited_map(ranks, [{"ok": [3], "junk": []}], "old", n_db=4)
    assert none["map"] == 0.0 and (none["prs"] == 0).all()


def test_mp_at_k_quirk():
    # 20 images, positives at 1-based positions 2 and 7, no junk, ks = (1, 5, 10, 20):
    #   k=1 : k_q = 1  -> 0/1 = 0
    #   k=5 : k_q = 5  -> 1/5
    #   k=10: k_q = min(7, 10) = 7 -> 2/7   (a plain P@10 would be 2/10)
    #   k=20: k_q = 7  -> 2/7
    ranks = np.arange(20)[None]
    res = revisited_map(ranks, [{"ok": [1, 6], "junk": []}], "old", ks=(1, 5, 10, 20))
    np.testing.assert_allclose(res["prs"], [[0.0, 1 / 5, 2 / 7, 2 / 7]])
    assert res["mp@10"] == pytest.approx(2 / 7)
    # junk shifts the 1-based positions: junk at position 1 moves the first positive to 1
    res = revisited_map(ranks, [{"ok": [1, 6], "junk": [0]}], "old", ks=(1, 5))
    np.testing.assert_allclose(res["prs"], [[1.0, 1 / 5]])  # positions [1, 6]


def test_index_listed_as_positive_and_junk_counts_as_positive():
    # Easy protocol with image 2 in both easy and hard: junk = junk ∪ hard contains it too.
    ranks = np.array([[2, 0, 1]])
    res = revisited_map(ranks, [{"easy": [2], "hard": [2], "junk": []}], "easy")
    assert res["map"] == 1.0


def _literal_revisited_ap(row, pos_set, junk_set, trapezoid=True):
    """landmarks_protocol.md §5 step by step, with explicit loops (independent of the module)."""
    if not pos_set:
        return float("nan")
    pos = [i for i, x in enumerate(row) if x in pos_set]
    junk = [i for i, x in enumerate(row) if x in junk_set and x not in pos_set]
    adjusted, n_junk_before, ij = [], 0, 0
    for p in pos:
        while ij < len(junk) and junk[ij] < p:
            n_junk_before += 1
            ij += 1
        adjusted.append(p - n_junk_before)
    ap = 0.0
    for j, r in enumerate(adjusted):
        prec_1 = (j + 1) / (r + 1)
        if trapezoid:
            prec_0 = 1.0 if r == 0 else j / r
            ap += (prec_0 + prec_1) / 2 / len(pos_set)
        else:
            ap += prec_1 / len(pos_set)
    return ap


_SETS = {  # protocol -> (positives, junk), written out independently of fgr_utils
    "easy": lambda g: (set(g["easy"]), set(g["junk"]) | set(g["hard"])),
    "medium": lambda g: (set(g["easy"]) | set(g["hard"]), set(g["junk"])),
    "hard": lambda g: (set(g["hard"]), set(g["junk"]) | set(g["easy"])),
}


def _random_landmarks(seed, n_q=15, n_db=80):
    rng = np.random.default_rng(seed)
    ranks = np.stack([rng.permutation(n_db) for _ in range(n_q)])
    gnd = []
    for q in range(n_q):
        labels = rng.choice(4, size=n_db, p=[0.7, 0.1, 0.1, 0.1])  # 0 neg, 1 easy, 2 hard, 3 junk
        if q % 5 == 0:
            labels[labels == 1] = 0  # some queries without easy images (NaN under Easy)
        if q % 7 == 0:
            labels[labels == 2] = 0
        gnd.append({k: np.flatnonzero(labels == v).tolist()
                    for k, v in (("easy", 1), ("hard", 2), ("junk", 3))})
    return ranks, gnd


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_revisited_map_matches_torchmetrics_and_literal_algorithm(seed):
    ranks, gnd = _random_landmarks(seed)
    n_db = ranks.shape[1]
    for protocol, sets in _SETS.items():
        rect = revisited_map(ranks, gnd, protocol, ap="rectangular")
        trap = revisited_map(ranks, gnd, protocol)
        for q, row in enumerate(ranks):
            pos, junk = sets(gnd[q])
            if not pos:
                assert np.isnan(rect["aps"][q]) and np.isnan(trap["aps"][q])
                continue
            # torchmetrics oracle: drop the junk from its input; score = n_db - position > 0
            kept = [(n_db - i, x in pos) for i, x in enumerate(row) if x not in junk]
            scores, target = zip(*kept)
            assert rect["aps"][q] == pytest.approx(_tm_ap(scores, target), abs=1e-6)
            assert rect["aps"][q] == pytest.approx(_literal_revisited_ap(row, pos, junk, False))
            assert trap["aps"][q] == pytest.approx(_literal_revisited_ap(row, pos, junk, True))
            assert trap["aps"][q] <= rect["aps"][q] + 1e-12  # prec_0 <= prec_1 always
        assert trap["map"] == pytest.approx(np.nanmean(trap["aps"]))


# ============================================================================================
# Revisited: properties
# ============================================================================================


@st.composite
def _landmark_query(draw):
    """(ranking of the non-junk images, positives, junk ids, interleaving choices)."""
    n = draw(st.integers(1, 25))
    labels = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n))  # 1 pos, 2 junk
    order = draw(st.permutations(range(n)))
    pos = [i for i in range(n) if labels[i] == 1]
    junk = [i for i in range(n) if labels[i] == 2]
    return order, pos, junk


@HYPO
@given(_landmark_query(), st.sampled_from(["trapezoid", "rectangular"]))
def test_revisited_ap_in_unit_interval(query, ap):
    order, pos, junk = query
    res = revisited_map(np.array([order]), [{"ok": pos, "junk": junk}], "old", ap=ap)
    if pos:
        assert 0.0 <= res["map"] <= 1.0 + 1e-12
        assert ((res["prs"] >= 0) & (res["prs"] <= 1)).all()
    else:
        assert np.isnan(res["map"])


@HYPO
@given(_landmark_query(), st.randoms(use_true_random=False))
def test_revisited_ap_is_invariant_to_junk_placement(query, rnd):
    order, pos, junk = query
    junk_set = set(junk)
    clean = [x for x in order if x not in junk_set]
    shuffled_junk = list(junk)
    rnd.shuffle(shuffled_junk)
    other = list(clean)
    for x in shuffled_junk:  # reinsert every junk image at a random slot
        other.insert(rnd.randint(0, len(other)), x)
    gnd = [{"ok": pos, "junk": junk}] * 2
    for ap in ("trapezoid", "rectangular"):
        res = revisited_map(np.array([order, other]), gnd, "old", ap=ap, ks=(1, 3, 7))
        np.testing.assert_allclose(res["aps"][0], res["aps"][1])
        np.testing.assert_allclose(res["prs"][0], res["prs"][1])


@HYPO
@given(_landmark_query(), st.randoms(use_true_random=False))
def test_revisited_perfect_ranking_scores_one(query, rnd):
    order, pos, junk = query
    if not pos:
        return
    n = len(order)
    negatives = [x for x in range(n) if x not in set(pos) | set(junk)]
    ranking = list(pos) + negatives
    for x in junk:  # junk anywhere, even before the positives
        ranking.insert(rnd.randint(0, len(ranking)), x)
    for ap in ("trapezoid", "rectangular"):
        res = revisited_map(np.array([ranking]), [{"ok": pos, "junk": junk}], "old", ap=ap)
        assert res["map"] == pytest.approx(1.0)
        assert (res["prs"] == 1.0).all()  # with the quirk, P@k = 1 for every k


# ============================================================================================
# Fabric AP@k / P@k / R@k / F1@k / full AP
# ============================================================================================


def test_fabric_metrics_hand_worked():
    ranking = ["a", "x", "b", "y", "c"]
    rel = {"a", "b", "c", "d"}  # "d" is never ranked
    # hits at 1, 3, 5: P@1 = 1, P@3 = 2/3, P@5 = 3/5 -> sum 34/15
    assert ap_at_k(ranking, rel, 5) == pytest.approx((34 / 15) / 4)  # / min(4, 5)
    assert ap_at_k(ranking, rel, 3) == pytest.approx((1 + 2 / 3) / 3)  # / min(4, 3)
    assert ap_at_k(ranking, rel, 1) == 1.0
    assert precision_at_k(ranking, rel, 5) == pytest.approx(3 / 5)
    assert recall_at_k(ranking, rel, 5) == pytest.approx(3 / 4)
    assert f1_at_k(ranking, rel, 5) == pytest.approx(2 * 0.6 * 0.75 / 1.35)  # 2/3
    assert full_ap(ranking, rel) == pytest.approx((34 / 15) / 4)  # "d" counts as a miss
    # short ranking: k is the P@k denominator, min(|Rel|, k) the AP@k one
    assert precision_at_k(["a"], {"a"}, 10) == pytest.approx(0.1)
    assert ap_at_k(["a"], {"a"}, 10) == 1.0
    # empty relevant set: everything is 0
    for fn in (ap_at_k, precision_at_k, recall_at_k, f1_at_k):
        assert fn(ranking, set(), 5) == 0.0
    assert full_ap(ranking, set()) == 0.0
    assert f1_at_k(ranking, {"z"}, 5) == 0.0  # P + R = 0
    # means over queries; with k = 1 the release's "MAP" equals P@1
    rankings, rels = [ranking, ["x", "a"]], [rel, {"a"}]
    assert mean_ap_at_k(rankings, rels, 1) == pytest.approx(0.5)
    out = metrics_at_k(rankings, rels, 5)
    assert out["map"] == pytest.approx(((34 / 15) / 4 + 1 / 2) / 2)
    assert out["precision"] == pytest.approx((3 / 5 + 1 / 5) / 2)
    assert out["recall"] == pytest.approx((3 / 4 + 1) / 2)
    assert out["f1"] == pytest.approx((2 / 3 + 2 * 0.2 * 1 / 1.2) / 2)


@pytest.mark.parametrize("seed", range(4))
def test_fabric_metrics_match_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    n = 40
    for _ in range(25):
        ranking = rng.permutation(1000)[:n]  # ids; a shortlist of 40
        rel = set(rng.choice(ranking, size=rng.integers(0, 8), replace=False).tolist())
        rel |= set(rng.integers(1000, 1003, size=rng.integers(0, 2)).tolist())  # never ranked
        scores = torch.arange(n, 0, -1, dtype=torch.float64)  # > 0, descending with position
        target = torch.tensor([x in rel for x in ranking.tolist()])
        for k in (1, 5, 10, 50):
            hits_k = int(target[:k].sum())
            assert precision_at_k(ranking, rel, k) == pytest.approx(
                float(retrieval_precision(scores, target, top_k=k)))
            if rel:
                # torchmetrics' recall divides by the relevant items in ITS input, so unranked
                # relevant ids must be counted by hand
                tm_recall = float(retrieval_recall(scores, target, top_k=k))
                assert recall_at_k(ranking, rel, k) == pytest.approx(
                    tm_recall * int(target.sum()) / len(rel))
            # AP@k differs from torchmetrics' top-k AP only in the denominator: torchmetrics
            # divides the sum of P@i at hits by the hits in the top k, AP@k by min(|Rel|, k).
            if hits_k:
                tm = _tm_ap(scores, target, top_k=k)
                assert ap_at_k(ranking, rel, k) == pytest.approx(tm * hits_k / min(len(rel), k))
            else:
                assert ap_at_k(ranking, rel, k) == 0.0
        if target.any():
            # full AP: torchmetrics divides by the relevant items it was given (the ranked ones)
            assert full_ap(ranking, rel) == pytest.approx(
                _tm_ap(scores, target) * int(target.sum()) / len(rel))


@HYPO
@given(st.lists(st.integers(0, 30), unique=True, max_size=30),
       st.sets(st.integers(0, 40)), st.integers(1, 35))
def test_fabric_ap_bounds_and_perfect_ranking(ranking, rel, k):
    for value in (ap_at_k(ranking, rel, k), full_ap(ranking, rel),
                  precision_at_k(ranking, rel, k), recall_at_k(ranking, rel, k),
                  f1_at_k(ranking, rel, k)):
        assert 0.0 <= value <= 1.0 + 1e-12
    if rel:
        perfect = sorted(rel) + [x for x in range(100, 120)]
        assert ap_at_k(perfect, rel, k) == pytest.approx(1.0)
        assert full_ap(perfect, rel) == pytest.approx(1.0)


# ============================================================================================
# FG-SBIR Acc@k
# ============================================================================================


def test_acc_at_k_tie_rules_hand_worked():
    sim = np.array([[0.5, 0.9, 0.9, 0.1],    # true 2 ties with 1: optimistic 1, pessimistic 2
                    [0.2, 0.2, 0.2, 0.2],    # true 3, four-way tie: 1 vs 4
                    [0.3, 0.1, 0.2, 0.4]])   # true 1, no ties: rank 4 either way
    true = np.array([2, 3, 1])
    np.testing.assert_array_equal(ranks_of_true(sim, true), [1, 1, 4])
    np.testing.assert_array_equal(ranks_of_true(sim, true, "pessimistic"), [2, 4, 4])
    assert acc_at_k(sim, true, ks=(1, 2, 4)) == pytest.approx({1: 2 / 3, 2: 2 / 3, 4: 1.0})
    assert acc_at_k(sim, true, ks=(1, 2, 4), ties="pessimistic") == pytest.approx(
        {1: 0.0, 2: 1 / 3, 4: 1.0})


def _tm_acc(sim, true, k):
    target = torch.zeros(sim.shape[1], dtype=torch.bool)
    hits = []
    for row, t in zip(torch.as_tensor(sim), true):
        target.zero_()
        target[t] = True
        hits.append(float(retrieval_hit_rate(row, target, top_k=k)))
    return float(np.mean(hits))


def test_acc_at_k_matches_torchmetrics_and_pml_without_ties():
    rng = np.random.default_rng(5)
    sketches = rng.standard_normal((150, 16))
    photos = rng.standard_normal((120, 16))
    true = rng.integers(0, 120, size=150)
    sketches[:, :] += 1.5 * photos[true]  # make the task non-trivial but imperfect
    sim = sketches @ photos.T
    ks = (1, 5, 10)
    opt, pes = acc_at_k(sim, true, ks), acc_at_k(sim, true, ks, "pessimistic")
    assert opt == pes  # no ties
    assert 0.0 < opt[1] < 1.0
    for k in ks:
        assert opt[k] == pytest.approx(_tm_acc(sim, true, k))
    # pytorch-metric-learning: gallery labels are the gallery indices, so P@1 is Acc@1
    calc = AccuracyCalculator(include=("precision_at_1",), k=1,
                              knn_func=CustomKNN(DotProductSimilarity(normalize_embeddings=False)))
    pml = calc.get_accuracy(torch.as_tensor(sketches), torch.as_tensor(true),
                            torch.as_tensor(photos), torch.arange(120))
    assert opt[1] == pytest.approx(pml["precision_at_1"])


def test_acc_at_k_with_ties_brackets_the_oracle():
    rng = np.random.default_rng(6)
    sim = rng.integers(0, 5, size=(200, 60)).astype(np.float32)  # heavy ties
    true = rng.integers(0, 60, size=200)
    ks = (1, 3, 10)
    opt, pes = acc_at_k(sim, true, ks), acc_at_k(sim, true, ks, "pessimistic")
    assert any(pes[k] < opt[k] for k in ks)  # the ties do matter here
    for k in ks:
        assert pes[k] <= _tm_acc(sim, true, k) <= opt[k]  # any sort order lies in between
    # brute force: optimistic = best position among tied items, pessimistic = worst
    r_opt, r_pes = ranks_of_true(sim, true), ranks_of_true(sim, true, "pessimistic")
    for q in range(20):
        t = sim[q, true[q]]
        assert r_opt[q] == 1 + sum(s > t for s in sim[q])
        assert r_pes[q] == sum(s >= t for s in sim[q])


def test_acc_at_k_is_chunked_correctly(monkeypatch):
    rng = np.random.default_rng(7)
    sim = rng.integers(0, 9, size=(300, 50))
    true = rng.integers(0, 50, size=300)
    expected = {t: ranks_of_true(sim, true, t) for t in ("optimistic", "pessimistic")}
    monkeypatch.setattr(M, "_BLOCK_ELEMS", 120)  # 2 rows per block
    for t, ranks in expected.items():
        np.testing.assert_array_equal(ranks_of_true(sim, true, t), ranks)


@HYPO
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_acc_at_k_properties(n_q, n_g, seed):
    rng = np.random.default_rng(seed)
    sim = rng.integers(0, 3, size=(n_q, n_g))
    true = rng.integers(0, n_g, size=n_q)
    ks = (1, 2, 5, 100)
    opt, pes = acc_at_k(sim, true, ks), acc_at_k(sim, true, ks, "pessimistic")
    assert all(0.0 <= pes[k] <= opt[k] <= 1.0 for k in ks)
    assert [opt[k] for k in ks] == sorted(opt[k] for k in ks)  # monotone in k
    assert opt[100] == pes[100] == 1.0  # k beyond the gallery size


# ============================================================================================
# Attribute-specific MAP (ASEN protocol) and triplet accuracy
# ============================================================================================


def _asfr_data(seed, n_q=90, n_c=240, n_attr=3, n_val=5, quantised=True, d=4):
    rng = np.random.default_rng(seed)
    if quantised:  # entries in {-1, 0, 1}: many exactly tied dot products
        q = rng.integers(-1, 2, size=(n_q, d)).astype(np.float64)
        c = rng.integers(-1, 2, size=(n_c, d)).astype(np.float64)
    else:
        q = rng.standard_normal((n_q, d))
        c = rng.standard_normal((n_c, d))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        c /= np.linalg.norm(c, axis=1, keepdims=True)
    qa, ca = rng.integers(0, n_attr, n_q), rng.integers(0, n_attr, n_c)
    qv, cv = rng.integers(0, n_val, n_q), rng.integers(0, n_val, n_c)
    return q, qa, qv, c, ca, cv


def test_attribute_map_matches_torchmetrics_with_explicit_tie_break():
    q, qa, qv, c, ca, cv = _asfr_data(0)
    qv[:4] = 99  # values no candidate has: R_q = 0 -> AP 0 (ASEN's rule)
    qa[-3:] = 7  # an attribute with queries but no candidates: AP 0 as well
    res = attribute_map(q, qa, qv, c, ca, cv)
    flipped = 0
    for i in range(len(q)):
        cols = np.flatnonzero(ca == qa[i])
        if cols.size == 0:
            assert res["aps"][i] == 0.0
            continue
        s = c[cols] @ q[i]  # integer-valued scores
        # stable tie-break made explicit: among equal scores the earlier candidate wins
        preds = (s - s.min() + 1.0) - np.arange(cols.size) / (cols.size + 1.0)
        target = cv[cols] == qv[i]
        # torchmetrics returns 0 for a query without relevant items (empty_target_action='neg')
        assert res["aps"][i] == pytest.approx(_tm_ap(preds, target), abs=1e-6)
        # the reverse tie-break (RPF's argsort(S)[::-1]) gives a different AP on this data
        reverse = (s - s.min() + 1.0) + np.arange(cols.size) / (cols.size + 1.0)
        flipped += abs(_tm_ap(reverse, target) - res["aps"][i]) > 1e-6
    assert flipped > 0
    assert (res["aps"][:4] == 0).all() and (res["aps"][-3:] == 0).all()
    for a, n in res["queries"].items():
        assert n == int((qa == a).sum())
        assert res["per_attribute"][a] == pytest.approx(res["aps"][qa == a].mean())
    assert res["weighted"] == pytest.approx(res["aps"].mean())  # Σ|Q_a| MAP_a / Σ|Q_a|
    assert res["macro"] == pytest.approx(np.mean(list(res["per_attribute"].values())))


def test_attribute_map_matches_pytorch_metric_learning():
    q, qa, qv, c, ca, cv = _asfr_data(1, n_q=60, n_c=300, quantised=False, d=8)
    res = attribute_map(q, qa, qv, c, ca, cv)
    calc = AccuracyCalculator(include=("mean_average_precision", "precision_at_1"), k=None,
                              knn_func=CustomKNN(DotProductSimilarity()))
    for a in res["per_attribute"]:
        qi, ci = qa == a, ca == a
        assert set(qv[qi]) <= set(cv[ci])  # every query has matches on this data
        pml = calc.get_accuracy(torch.as_tensor(q[qi]), torch.as_tensor(qv[qi]),
                                torch.as_tensor(c[ci]), torch.as_tensor(cv[ci]))
        assert res["per_attribute"][a] == pytest.approx(pml["mean_average_precision"])
    # A query with no relevant candidate: ASEN scores it 0 and keeps it; PML drops it as a
    # "lone query". So the two per-attribute values now differ by exactly that exclusion.
    qv2 = qv.copy()
    qv2[np.flatnonzero(qa == 0)[0]] = 42
    res2 = attribute_map(q, qa, qv2, c, ca, cv)
    qi, ci = qa == 0, ca == 0
    pml = calc.get_accuracy(torch.as_tensor(q[qi]), torch.as_tensor(qv2[qi]),
                            torch.as_tensor(c[ci]), torch.as_tensor(cv[ci]))
    kept = res2["aps"][qi & (qv2 != 42)]
    assert pml["mean_average_precision"] == pytest.approx(kept.mean())
    assert res2["per_attribute"][0] == pytest.approx(kept.sum() / qi.sum())
    assert res2["per_attribute"][0] < pml["mean_average_precision"]


def test_attribute_map_chunking_and_fashionai_scale(monkeypatch):
    # FashionAI test-split shape: 3,600 queries and 14,400 candidates over 8 attributes
    rng = np.random.default_rng(3)
    n_q = [422, 623, 535, 422, 341, 289, 703, 265]
    n_c = [1703, 2383, 2088, 1722, 1401, 1269, 2734, 1100]
    n_vals = [6, 9, 8, 6, 5, 5, 10, 5]
    qa, ca = np.repeat(np.arange(8), n_q), np.repeat(np.arange(8), n_c)
    qv = np.concatenate([rng.integers(0, v, n) for v, n in zip(n_vals, n_q)])
    cv = np.concatenate([rng.integers(0, v, n) for v, n in zip(n_vals, n_c)])
    q = rng.standard_normal((3600, 16)).astype(np.float32)
    c = rng.standard_normal((14400, 16)).astype(np.float32)
    q[:, 0] += qv  # make value-related similarity so MAP is well above chance
    c[:, 0] += cv
    res = attribute_map(q, qa, qv, c, ca, cv)
    assert res["queries"] == dict(enumerate(n_q))
    weighted, _ = combine_attribute_maps(res["per_attribute"], res["queries"])
    assert res["weighted"] == pytest.approx(weighted)
    chance = np.mean([1 / v for v in n_vals])
    assert res["macro"] > chance
    # a tiny block size (many chunks per attribute) gives the same per-query APs
    sub = np.isin(qa, [4, 7])  # keep it quick: two attributes
    monkeypatch.setattr(M, "_BLOCK_ELEMS", 5000)
    small = attribute_map(q[sub], qa[sub], qv[sub], c, ca, cv)
    np.testing.assert_allclose(small["aps"], res["aps"][sub], rtol=0, atol=1e-12)


@HYPO
@given(st.integers(0, 2**32 - 1))
def test_attribute_ap_in_unit_interval(seed):
    q, qa, qv, c, ca, cv = _asfr_data(seed, n_q=12, n_c=20, n_attr=2, n_val=3)
    res = attribute_map(q, qa, qv, c, ca, cv)
    assert ((res["aps"] >= 0) & (res["aps"] <= 1 + 1e-12)).all()
    # a candidate pool sorted perfectly: embed value v as a one-hot; every AP is 1 when R_q > 0
    res = attribute_map(np.eye(3)[qv], qa, qv, np.eye(3)[cv], ca, cv)
    has_rel = np.array([np.any((ca == a) & (cv == v)) for a, v in zip(qa, qv)])
    np.testing.assert_allclose(res["aps"][has_rel], 1.0)
    assert (res["aps"][~has_rel] == 0).all()


def test_rpf_fashionai_overall_map_arithmetic():
    # asfr_rpf_agman.md §0: RPF README per-attribute MAPs, FashionAI test query counts (§1.4)
    maps = {"skirt": 66.75, "sleeve": 67.86, "coat": 59.65, "pant": 73.23,
            "collar": 75.72, "lapel": 73.18, "neckline": 74.40, "neck": 75.01}
    counts = dict(zip(maps, [422, 623, 535, 422, 341, 289, 703, 265]))
    weighted, macro = combine_attribute_maps(maps, counts)
    assert round(weighted, 3) == 70.114  # README: 70.11 (official, query-weighted)
    assert round(macro, 3) == 70.725     # unweighted mean


@HYPO
@given(st.lists(st.floats(0, 1), min_size=1, max_size=10), st.integers(1, 1000))
def test_weighted_equals_macro_for_equal_counts(values, n):
    per = dict(enumerate(values))
    weighted, macro = combine_attribute_maps(per, dict.fromkeys(per, n))
    assert weighted == pytest.approx(macro)


def test_triplet_accuracy():
    close = np.array([0.9, 0.5, 0.3, 0.7])
    far = np.array([0.1, 0.5, 0.4, 0.2])  # correct, tie (wrong), wrong, correct
    assert triplet_accuracy(close, far) == 0.5
    out = triplet_accuracy(close, far, conditions=[0, 1, 1, 1])
    assert out["accuracy"] == 0.5
    assert out["per_condition"] == pytest.approx({0: 1.0, 1: 1 / 3})
    assert out["counts"] == {0: 1, 1: 3}
    # CSN's distance form: dist(a, b) > dist(a, c) <=> -dist(a, c) > -dist(a, b)
    d_far, d_close = np.array([2.0, 1.0, 1.0]), np.array([1.0, 1.0, 3.0])
    assert triplet_accuracy(-d_close, -d_far) == pytest.approx(1 / 3)


# ============================================================================================
# Input validation
# ============================================================================================

_GND = [{"easy": [0], "hard": [1], "junk": [2]}]
_RANKS = np.array([[0, 1, 2, 3]])


@pytest.mark.parametrize("call, message", [
    (lambda: revisited_map(np.arange(4), _GND, "medium"), "2-D"),
    (lambda: revisited_map(_RANKS.astype(float), _GND, "medium"), "integer database indices"),
    (lambda: revisited_map(_RANKS, _GND, "extreme"), "unknown protocol"),
    (lambda: revisited_map(_RANKS, _GND, "old"), "lacks key"),
    (lambda: revisited_map(_RANKS, [{"easy": [0], "junk": []}], "hard"), "lacks key"),
    (lambda: revisited_map(np.array([[0, 1, 1, 3]]), _GND, "medium"), "index 1 2 times"),
    (lambda: revisited_map(np.array([[0, 1, 2, 4]]), _GND, "medium"), "outside the database"),
    (lambda: revisited_map(np.array([[0, -1, 2, 3]]), _GND, "medium"), "outside the database"),
    (lambda: revisited_map(_RANKS, [{"ok": [9], "junk": []}], "old"), "positive index 9"),
    (lambda: revisited_map(np.zeros((4, 2), int), _GND * 2, "medium"), "pass ranks.T"),
    (lambda: revisited_map(_RANKS, {"gnd": _GND, "imlist": []}, "medium"), "cfg['gnd']"),
    (lambda: revisited_map(_RANKS, _GND, "medium", ap="interp"), "trapezoid"),
    (lambda: revisited_map(_RANKS, _GND, "medium", ks=()), "ks is empty"),
    (lambda: revisited_map(_RANKS, _GND, "medium", ks=(0, 5)), "positive integers"),
    (lambda: revisited_map(_RANKS, _GND, "medium", n_db=2), "n_db"),
    (lambda: revisited_map(_RANKS, [{"easy": [0.5], "hard": [], "junk": []}], "easy"), "integers"),
    (lambda: revisited_map_all(_RANKS, _GND * 2), "rows must be queries"),
    (lambda: ap_at_k(["a", "b"], {"a"}, 0), "positive integer"),
    (lambda: precision_at_k(["a", "a"], {"a"}, 2), "more than once"),
    (lambda: mean_ap_at_k([["a"]], [{"a"}, {"b"}], 1), "1 rankings but 2"),
    (lambda: acc_at_k(np.ones(3), [0], (1,)), "2-D"),
    (lambda: acc_at_k(np.ones((2, 3)), [0], (1,)), "expected 2"),
    (lambda: acc_at_k(np.ones((2, 3)), [0, 3], (1,)), "outside the gallery"),
    (lambda: acc_at_k(np.ones((2, 3)), [0, 1], (1,), ties="argsort"), "ties must be"),
    (lambda: acc_at_k(np.ones((2, 3)), [0, 1], (1.5,)), "positive integers"),
    (lambda: acc_at_k(np.array([[np.nan, 1.0]]), [0], (1,)), "NaN"),
    (lambda: attribute_map(np.ones((2, 3)), [0, 0], [0, 0], np.ones((2, 4)), [0, 0], [0, 0]),
     "dimension"),
    (lambda: attribute_map(np.ones((2, 3)), [0], [0, 0], np.ones((2, 3)), [0, 0], [0, 0]),
     "q_attr has 1 entries"),
    (lambda: attribute_map(np.ones((2, 3)), [0.0, 1.0], [0, 0], np.ones((2, 3)), [0, 0], [0, 0]),
     "q_attr must hold integers"),
    (lambda: combine_attribute_maps({"a": 1.0}, {"b": 3}), "different attributes"),
    (lambda: combine_attribute_maps({"a": 1.0}, {"a": 0}), "positive integers"),
    (lambda: triplet_accuracy([0.1, 0.2], [0.3]), "one length"),
    (lambda: triplet_accuracy([np.nan], [0.3]), "NaN"),
    (lambda: triplet_accuracy([0.1], [0.3], conditions=[0, 1]), "conditions has 2 entries"),
])
def test_invalid_input_raises_fgr_error(call, message):
    with pytest.raises(FgrError, match=re.escape(message)) as info:
        call()
    assert "\n" not in str(info.value)
