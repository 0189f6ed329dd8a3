"""Tests for fgr_utils.index: exactness, recall, conventions, persistence and error messages."""
from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np
import pytest

import fgr_utils.index as fgr_index
from fgr_utils.errors import FgrError
from fgr_utils.io import file_sha256
from fgr_utils.index import KINDS, build_index, load_index, recall_at_k

N, NQ, DIM, K = 2000, 100, 32, 10
EXACT_KINDS = ("exact", "flat", "kdtree")
APPROX_KINDS = ("ivf", "hnsw", "ivfpq", "lsh")

# parameters small enough to build on a few hundred vectors quickly
SMALL_PARAMS: dict[str, dict] = {
    "exact": {},
    "flat": {},
    "kdtree": {},
    "ivf": {"nlist": 8, "nprobe": 4},
    "hnsw": {"M": 8},
    "ivfpq": {"nlist": 4, "nprobe": 2, "m": 4, "nbits": 4},
    "lsh": {"nbits": 32},
}


def clustered_unit_vectors(n: int, dim: int, seed: int, n_clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    x = centres[rng.integers(0, n_clusters, n)] + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def single_faiss_thread():
    """One OpenMP thread: on tiny data, FAISS threads only spin-wait on a busy 2-core machine."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = clustered_unit_vectors(N + NQ, DIM, seed=0)
    return x[:N], x[N:]


def brute_force(db: np.ndarray, q: np.ndarray, k: int, metric: str):
    """Float64 reference: full score matrix and its top-k (best first)."""
    db64, q64 = db.astype(np.float64), q.astype(np.float64)
    if metric == "ip":
        full = q64 @ db64.T
        order = np.argsort(-full, axis=1, kind="stable")[:, :k]
    else:
        full = ((q64[:, None, :] - db64[None, :, :]) ** 2).sum(-1)
        order = np.argsort(full, axis=1, kind="stable")[:, :k]
    return full, np.take_along_axis(full, order, axis=1), order


@pytest.fixture(scope="module")
def reference(data):
    db, q = data
    return {metric: brute_force(db, q, K, metric) for metric in ("ip", "l2")}


def assert_exact_topk(scores, ids, full, ref_scores, ref_ids, tol=1e-5):
    """Scores equal the reference; ids equal it too, except swaps inside score ties (< tol)."""
    np.testing.assert_allclose(scores, ref_scores, atol=tol, rtol=0)
    differ = ids != ref_ids
    if differ.any():  # allowed only where the found id truly scores the same
        rows = np.nonzero(differ)[0]
        true_of_found = full[rows, ids[differ]]
        np.testing.assert_allclose(true_of_found, ref_scores[differ], atol=tol, rtol=0)
    assert differ.mean() < 0.01
    assert all(len(set(row)) == len(row) for row in ids.tolist())


def assert_sorted_best_first(scores: np.ndarray, metric: str) -> None:
    with np.errstate(invalid="ignore"):  # inf - inf in the padding
        step = np.nan_to_num(np.diff(scores.astype(np.float64), axis=1), nan=0.0)
    assert (step <= 0).all() if metric == "ip" else (step >= 0).all()


# --------------------------------------------------------------------------------------------
# correctness of the search
# --------------------------------------------------------------------------------------------


def test_kinds_tuple():
    assert KINDS == ("exact", "flat", "ivf", "hnsw", "ivfpq", "lsh", "kdtree")


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("kind", EXACT_KINDS)
def test_exact_kinds_match_brute_force(data, reference, kind, metric):
    db, q = data
    full, ref_scores, ref_ids = reference[metric]
    index = build_index(db, kind=kind, metric=metric)
    scores, ids = index.search(q, K)
    assert scores.shape == ids.shape == (NQ, K)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert_exact_topk(scores, ids, full, ref_scores, ref_ids)
    assert (index.kind, index.metric, index.dim, index.ntotal) == (kind, metric, DIM, N)


def test_exact_small_blocks_same_result(data, reference):
    db, q = data
    full, ref_scores, ref_ids = reference["l2"]
    index = build_index(db, kind="exact", metric="l2", block_bytes=1)  # one query row per block
    scores, ids = index.search(q, K)
    assert_exact_topk(scores, ids, full, ref_scores, ref_ids)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_approximate_recall(data, reference, metric):
    db, q = data
    true_ids = reference[metric][2]

    def recall(kind, **params):
        return recall_at_k(build_index(db, kind, metric, **params).search(q, K)[1], true_ids, K)

    assert recall("ivf", nlist=32, nprobe=32) == 1.0  # probing every list is exhaustive
    assert recall("hnsw", M=16, ef_construction=80, ef_search=64) >= 0.95
    pq = dict(nlist=16, nprobe=16, m=8, nbits=5)
    plain, refined = recall("ivfpq", **pq), recall("ivfpq", refine=True, k_factor=4, **pq)
    assert refined >= plain + 0.2 and refined >= 0.75  # measured ~0.4/0.5 -> ~0.85/0.93
    few_bits, many_bits = recall("lsh", nbits=32, k_factor=2), recall("lsh", nbits=64, k_factor=10)
    assert few_bits > 0.2 > 20 * (K / N)  # far above random (0.005)
    assert many_bits >= 0.9 and many_bits > few_bits


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("kind", ["ivf", "hnsw", "lsh", "ivfpq-refine"])
def test_returned_scores_are_true_metric_values(data, reference, kind, metric):
    """Approximate kinds that keep full vectors return exact scores of the ids they return."""
    db, q = data
    full = reference[metric][0]
    params = {"ivf": {"nlist": 32, "nprobe": 2}, "hnsw": {"ef_search": 8}, "lsh": {"nbits": 32},
              "ivfpq-refine": {"nlist": 16, "m": 8, "nbits": 5, "refine": True}}[kind]
    scores, ids = build_index(db, kind.split("-")[0], metric, **params).search(q, K)
    valid = ids >= 0
    assert valid.mean() > 0.99
    rows = np.nonzero(valid)[0]
    np.testing.assert_allclose(scores[valid], full[rows, ids[valid]], atol=1e-5, rtol=0)
    assert_sorted_best_first(scores, metric)


@pytest.mark.parametrize("kind", KINDS)
def test_ip_and_l2_conventions(data, kind):
    """ip: inner products, descending; l2: squared distances, ascending; same ranking on unit vectors."""
    db, q = data
    params = {"ivf": {"nlist": 32, "nprobe": 32}, "ivfpq": {"m": 8, "nbits": 5, "refine": True}}
    s_ip, i_ip = build_index(db, kind, "ip", **params.get(kind, {})).search(q, K)
    s_l2, i_l2 = build_index(db, kind, "l2", **params.get(kind, {})).search(q, K)
    assert_sorted_best_first(s_ip, "ip")
    assert_sorted_best_first(s_l2, "l2")
    assert (s_l2 >= -1e-6).all() and (s_ip <= 1 + 1e-5).all()
    # on unit vectors ||q - x||^2 = 2 - 2 q.x, so the top-1 agrees and scores convert
    # (approximate kinds build different structures for the two metrics, so allow some slack)
    agree = 1.0 if kind in EXACT_KINDS + ("ivf",) else 0.85
    assert (i_ip[:, 0] == i_l2[:, 0]).mean() >= agree
    same = i_ip == i_l2
    np.testing.assert_allclose(s_l2[same], 2 - 2 * s_ip[same], atol=1e-5)


def test_convention_on_hand_example():
    db = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    q = np.array([[1.0, 1.0]])
    s, i = build_index(db, "exact", "ip").search(q, 3)
    assert i.tolist() == [[2, 1, 0]] and s.tolist() == [[3.0, 2.0, 1.0]]
    s, i = build_index(db, "flat", "l2").search(q, 3)
    assert i.tolist() == [[0, 1, 2]] and s.tolist() == [[1.0, 2.0, 5.0]]  # squared distances
    s, i = build_index(db, "kdtree", "l2").search(q, 3)
    assert i.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(s, [[1.0, 2.0, 5.0]], atol=1e-6)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("kind", KINDS)
def test_k_larger_than_ntotal_is_padded(kind, metric):
    db = clustered_unit_vectors(300, 16, seed=1)
    q = clustered_unit_vectors(5, 16, seed=2)
    index = build_index(db, kind, metric, **SMALL_PARAMS[kind])
    scores, ids = index.search(q, 310)
    assert scores.shape == ids.shape == (5, 310)
    worst = -np.inf if metric == "ip" else np.inf
    assert (ids[:, 300:] == -1).all() and (scores[:, 300:] == worst).all()
    assert (scores[ids == -1] == worst).all()  # every empty slot, not only the padding
    assert np.isfinite(scores[ids >= 0]).all()
    assert_sorted_best_first(scores, metric)
    if kind in EXACT_KINDS:  # exact kinds return every vector once
        assert all(sorted(row[:300]) == list(range(300)) for row in ids.tolist())


def test_set_params_changes_results(data, reference):
    db, q = data
    true_ids = reference["ip"][2]
    index = build_index(db, "ivf", "ip", nlist=32, nprobe=1)
    ids_1 = index.search(q, K)[1]
    index.set_params(nprobe=32)
    assert index.params["nprobe"] == 32
    ids_all = index.search(q, K)[1]
    assert not np.array_equal(ids_1, ids_all)
    assert recall_at_k(ids_1, true_ids, K) < recall_at_k(ids_all, true_ids, K) == 1.0

    hnsw = build_index(db, "hnsw", "ip", M=8, ef_search=1)
    low = recall_at_k(hnsw.search(q, K)[1], true_ids, K)
    hnsw.set_params(ef_search=128)
    assert recall_at_k(hnsw.search(q, K)[1], true_ids, K) > low

    with pytest.raises(FgrError, match="nlist"):
        index.set_params(nlist=4)  # build-time only
    with pytest.raises(FgrError, match="nprobe"):
        index.set_params(nprobe=33)  # more lists than exist
    with pytest.raises(FgrError):
        build_index(db, "flat").set_params(nprobe=2)
    with pytest.raises(FgrError, match="k_factor"):
        build_index(db, "ivfpq", m=8, nbits=5).set_params(k_factor=4)  # built without refine


def test_threads_param_only_when_given(data, monkeypatch):
    db, _ = data
    calls: list[int] = []
    monkeypatch.setattr(faiss, "omp_set_num_threads", calls.append)
    build_index(db[:200], "flat")
    assert calls == []
    index = build_index(db[:200], "hnsw", threads=1)
    index.set_params(threads=2, ef_search=10)
    assert calls == [1, 2]
    assert "threads" not in index.params


@pytest.mark.parametrize("kind", KINDS)
def test_add_appends_vectors(data, kind):
    db, q = data
    params = {"ivf": {"nlist": 16, "nprobe": 16}, "ivfpq": {"m": 8, "nbits": 5, "refine": True}}
    index = build_index(db[:1500], kind, "ip", **params.get(kind, {}))
    index.add(db[1500:])
    assert index.ntotal == N
    scores, ids = index.search(db[1500:1600], 1)  # every added vector finds itself
    assert (ids[:, 0] == np.arange(1500, 1600)).mean() >= 0.95
    if kind in EXACT_KINDS:
        expected = build_index(db, kind, "ip").search(q, K)
        np.testing.assert_array_equal(index.search(q, K)[1], expected[1])


def test_input_conversion(data):
    db, q = data
    ref = build_index(db, "exact", "ip").search(q, K)
    as_f64_fortran = np.asfortranarray(db.astype(np.float64))
    strided = np.repeat(db, 2, axis=0)[::2]  # non-contiguous view
    torch = pytest.importorskip("torch")
    for x in (as_f64_fortran, strided, torch.from_numpy(db.copy())):
        for kind in ("exact", "flat"):
            got = build_index(x, kind, "ip").search(q.astype(np.float64)[:, :], K)
            np.testing.assert_array_equal(got[1], ref[1])
            np.testing.assert_allclose(got[0], ref[0], atol=1e-6)


def test_memory_bytes(data):
    db, _ = data
    exact = build_index(db, "exact", "ip")
    assert exact.memory_bytes() == db.nbytes
    flat = build_index(db, "flat", "ip").memory_bytes()
    pq = build_index(db, "ivfpq", "ip", nlist=16, m=8, nbits=5).memory_bytes()
    pq_refine = build_index(db, "ivfpq", "ip", nlist=16, m=8, nbits=5, refine=True).memory_bytes()
    assert flat >= db.nbytes and pq < flat / 4 < pq_refine  # PQ codes: 8 bytes + id per vector
    assert build_index(db, "kdtree", "ip").memory_bytes() > db.nbytes
    assert build_index(db, "hnsw", "ip", M=16).memory_bytes() > flat


# --------------------------------------------------------------------------------------------
# build errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vectors, kwargs, message", [
    (np.ones((5, 4)), {"kind": "annoy"}, "unknown index kind 'annoy'"),
    (np.ones((5, 4)), {"metric": "cosine"}, "unknown metric 'cosine'"),
    (np.ones((0, 4)), {}, "empty"),
    (np.ones(4), {}, "2-D"),
    (np.ones((2, 3, 4)), {}, "2-D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, "NaN"),
    (np.array([["a", "b"]]), {}, "real numbers"),
    (np.ones((300, 30)), {"kind": "ivfpq", "m": 8}, "m=8 sub-quantisers must divide dim 30"),
    (np.ones((200, 32)), {"kind": "ivfpq", "m": 8, "nbits": 8}, "at least 256 training vectors"),
    (np.ones((10, 4)), {"kind": "ivf", "nlist": 20}, "at least 20 training vectors"),
    (np.ones((10, 4)), {"kind": "ivf", "nprob": 2}, "no parameter nprob"),
    (np.ones((10, 4)), {"kind": "hnsw", "M": 0}, "M must be an integer"),
    (np.ones((10, 4)), {"kind": "kdtree", "metric": "ip"}, "L2-normalised"),
])
def test_build_errors(vectors, kwargs, message):
    with pytest.raises(FgrError, match=message):
        build_index(vectors, **kwargs)


def test_search_errors(data):
    db, q = data
    index = build_index(db, "flat")
    with pytest.raises(FgrError, match="dim 16, expected dim 32"):
        index.search(q[:, :16], K)
    with pytest.raises(FgrError, match="k must be a positive integer"):
        index.search(q, 0)
    with pytest.raises(FgrError, match="NaN"):
        index.search(np.full((1, DIM), np.nan), K)
    scores, ids = index.search(q[:0], K)
    assert scores.shape == ids.shape == (0, K)


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("kind", KINDS + ("ivfpq-refine",))
def test_save_load_round_trip(data, tmp_path, kind, metric):
    db, q = data
    params = {"ivf": {"nlist": 16, "nprobe": 3}, "hnsw": {"M": 8, "ef_search": 20},
              "ivfpq": {"nlist": 16, "nprobe": 3, "m": 8, "nbits": 5},
              "ivfpq-refine": {"nlist": 16, "nprobe": 3, "m": 8, "nbits": 5, "refine": True,
                               "k_factor": 3},
              "lsh": {"nbits": 48, "k_factor": 3, "seed": 5}}.get(kind, {})
    index = build_index(db, kind.split("-")[0], metric, **params)
    if "nprobe" in params:  # a search parameter changed after build survives the round trip
        index.set_params(nprobe=5)
    path = tmp_path / "runs" / "x" / "index.bin"
    index.save(path)
    sidecar = json.loads(Path(f"{path}.json").read_text())
    assert {k: sidecar[k] for k in ("kind", "metric", "dim", "ntotal")} == {
        "kind": index.kind, "metric": metric, "dim": DIM, "ntotal": N}
    assert sidecar["format_version"] == 1 and sidecar["params"] == index.params

    loaded = load_index(path, dim=DIM, metric=metric, kind=index.kind)
    assert (loaded.kind, loaded.metric, loaded.dim, loaded.ntotal) == (index.kind, metric, DIM, N)
    assert loaded.params == index.params
    before, after = index.search(q, K), loaded.search(q, K)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[0], before[0])
    assert sorted(os.listdir(path.parent)) == ["index.bin", "index.bin.json"]  # no temp files


@pytest.fixture()
def saved(data, tmp_path):
    db, _ = data
    path = tmp_path / "runs" / "x" / "index.faiss"
    build_index(db, "ivf", "l2", nlist=8, nprobe=2).save(path)
    return path


def test_load_with_wrong_expectations(saved):
    with pytest.raises(FgrError) as err:
        load_index(saved, dim=256, metric="ip")
    message = str(err.value)
    assert "\n" not in message
    assert "has dim 32 and metric l2, expected dim 256 and metric ip: rebuild it" in message
    assert str(saved) in message
    with pytest.raises(FgrError, match="has kind ivf, expected kind hnsw"):
        load_index(saved, kind="hnsw")
    with pytest.raises(FgrError, match="has metric l2, expected metric ip"):
        load_index(saved, dim=32, metric="ip")
    assert load_index(saved, dim=32, metric="l2", kind="ivf").ntotal == N


def _one_line_fgr_error(path, match):
    with pytest.raises(FgrError, match=match) as err:
        load_index(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["ivf", "exact", "kdtree"])
def test_truncated_index_file(data, tmp_path, kind):
    db, _ = data
    path = tmp_path / "index.bin"
    build_index(db, kind, "l2", **SMALL_PARAMS[kind]).save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _one_line_fgr_error(path, "truncated")
    # even if the sidecar is made to agree, the reader's own failure becomes one FgrError line
    meta = json.loads(Path(f"{path}.json").read_text())
    meta.update(file_bytes=len(raw) // 2, sha256=file_sha256(path))
    Path(f"{path}.json").write_text(json.dumps(meta))
    _one_line_fgr_error(path, "cannot be read as")


def test_missing_or_corrupt_files(saved):
    sidecar = Path(f"{saved}.json")
    good = sidecar.read_text()
    _one_line_fgr_error(saved.parent / "nope.faiss", "not found")
    sidecar.write_text(good[: len(good) // 2])
    _one_line_fgr_error(saved, "not valid JSON")
    sidecar.write_text('["a list"]')
    _one_line_fgr_error(saved, "not a JSON object")
    meta = json.loads(good)
    sidecar.write_text(json.dumps({**meta, "kind": "annoy", "dim": "32"}))
    _one_line_fgr_error(saved, "invalid kind, dim")
    sidecar.write_text(json.dumps({**meta, "format_version": 99}))
    _one_line_fgr_error(saved, "format version 99")
    sidecar.write_text(json.dumps({**meta, "kind": "hnsw"}))  # sidecar lies about the kind
    _one_line_fgr_error(saved, "cannot be read as a hnsw index")
    sidecar.write_text(json.dumps({**meta, "ntotal": 5}))
    _one_line_fgr_error(saved, "holds 2000 vectors of dim 32 but its sidecar says 5")
    sidecar.unlink()
    _one_line_fgr_error(saved, "no sidecar")


def test_save_is_atomic(data, saved, monkeypatch):
    db, q = data
    old_bytes, old_meta = saved.read_bytes(), Path(f"{saved}.json").read_text()
    old_result = load_index(saved).search(q, K)
    replacement = build_index(db[:500], "ivf", "l2", nlist=4, nprobe=4)

    def write_half_then_fail(index, fname):
        Path(fname).write_bytes(b"\x00" * 100)
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        replacement.save(saved)
    monkeypatch.undo()
    assert saved.read_bytes() == old_bytes and Path(f"{saved}.json").read_text() == old_meta
    assert sorted(p.name for p in saved.parent.iterdir()) == ["index.faiss", "index.faiss.json"]
    new_result = load_index(saved).search(q, K)
    np.testing.assert_array_equal(new_result[1], old_result[1])

    # a failure between the two files leaves a pair that load_index refuses, not a wrong index
    def fail_json(dest, obj):
        raise OSError("disk full")

    monkeypatch.setattr(fgr_index, "write_json", fail_json)
    with pytest.raises(OSError):
        replacement.save(saved)
    monkeypatch.undo()
    assert Path(f"{saved}.json").read_text() == old_meta
    _one_line_fgr_error(saved, "does not match its sidecar")
    replacement.save(saved)  # saving again repairs it
    assert load_index(saved).ntotal == 500


# --------------------------------------------------------------------------------------------
# recall_at_k
# --------------------------------------------------------------------------------------------


def test_recall_at_k_hand_example():
    found = np.array([[1, 2, 3, 4], [4, 5, 6, 7]])
    true = np.array([[3, 2, 9, 1], [7, 8, 9, 4]])
    # k=3: {1,2,3} & {3,2,9} = 2 ; {4,5,6} & {7,8,9} = 0  -> (2/3 + 0) / 2
    assert recall_at_k(found, true, 3) == pytest.approx(1 / 3)
    # k=2: {1,2} & {3,2} = 1 ; {4,5} & {7,8} = 0 -> (1/2 + 0) / 2
    assert recall_at_k(found, true, 2) == pytest.approx(0.25)
    # k=4: {1,2,3,4} & {3,2,9,1} = 3 ; {4,5,6,7} & {7,8,9,4} = 2 -> (3/4 + 2/4) / 2
    assert recall_at_k(found, true, 4) == pytest.approx(0.625)
    assert recall_at_k(true, true, 4) == 1.0
    # padding (-1) never matches, a repeated id counts once, 1-D is one query
    assert recall_at_k([[-1, -1]], [[-1, 5]], 2) == 0.0
    assert recall_at_k([5, 5], [5, 6], 2) == 0.5
    with pytest.raises(FgrError):
        recall_at_k(found, true, 5)
    with pytest.raises(FgrError):
        recall_at_k(found[:1], true, 2)


def test_index_benchmark_times_every_kind_and_names_the_best_ann(capsys):
    import re

    from fgr_utils import bench, cli

    x = bench.clustered_unit_vectors(500, 16, seed=3)
    assert x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert np.array_equal(x, bench.clustered_unit_vectors(500, 16, seed=3))
    q = bench.clustered_unit_vectors(500, 16, seed=3, draw=1)
    assert not np.array_equal(x, q)
    # queries come from the collection's clusters: their nearest neighbour is much closer than a random item
    assert (q @ x.T).max(1).mean() > (q @ x.T).mean() + 0.3

    rows = bench.bench_index(4000, 32, queries=100, kdtree_queries=10, say=lambda s: None)
    by = {r["config"]: r for r in rows}
    assert by["faiss flat-ip"]["recall"] == 1.0 and by["sklearn kdtree"]["recall"] == 1.0  # both exact
    assert {r["kind"] for r in rows} == {"exact", "flat", "ivf", "hnsw", "ivfpq", "lsh", "kdtree"}
    ivf = [r for r in rows if r["kind"] == "ivf"]
    assert [r["recall"] for r in ivf] == sorted(r["recall"] for r in ivf)  # more probes, more recall
    assert all(r["build_s"] >= 0 and r["memory_mb"] > 0 and r["qps"] > 0 for r in rows)

    assert cli.main(["bench", "index", "--n", "3000", "--dim", "16", "--queries", "50"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^best ann: .+ recall@10 \d\.\d{3} qps \d+ \(\d+\.\dx flat, \d+\.\dx kdtree\)$", out, re.M)


@pytest.mark.notebook
def test_index_benchmark_notebook_smoke(isolated_dirs):
    from conftest import read_json

    from fgr_utils import cli

    assert cli.main(["run", "40_index_benchmark", "--profile", "smoke", "--no-progress"]) == 0
    run_dir = isolated_dirs / "runs/smoke/40_index_benchmark"
    rec = read_json(run_dir / "metrics.json")
    m = rec["metrics"]
    assert m["flat/qps"] > 0 and m["kdtree/qps"] > 0
    assert {k.split("/")[1] for k in m if k.startswith("build_seconds/")} == {
        "exact", "flat", "ivf", "hnsw", "ivfpq", "lsh", "kdtree"}
    if "best_ann/qps" in m:  # some configuration reached recall@10 0.95
        assert m["best_ann/recall@10"] >= 0.95
        assert m["best_ann/speedup_vs_flat"] == pytest.approx(m["best_ann/qps"] / m["flat/qps"])
    assert (run_dir / "figures/recall-qps.png").stat().st_size > 5_000
