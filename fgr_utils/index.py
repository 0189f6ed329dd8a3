"""Nearest-neighbour search behind one interface: exact, FAISS (flat, IVF, HNSW, IVF-PQ, LSH), KD-tree.

Every track (retrieval shortlists, the search service, the index benchmark) builds its index
through :func:`build_index` and searches it through :meth:`Index.search`::

    index = build_index(gallery, kind="ivf", metric="ip", nlist=64, nprobe=8, seed=0)
    scores, ids = index.search(queries, k=10)
    index.set_params(nprobe=64)          # sweep a search parameter without rebuilding
    index.save("runs/x/index.faiss")     # index file + JSON sidecar, both written atomically
    index = load_index("runs/x/index.faiss", dim=256, metric="ip")

Conventions (the same for every kind)
-------------------------------------
* Input vectors and queries are 2-D arrays ``(n, dim)`` of any real dtype and memory layout; they
  are converted once to C-contiguous ``float32``.  Torch CPU tensors are accepted too.
* ``metric="ip"``: scores are inner products, sorted **descending** (best first).  Callers that
  want cosine similarity L2-normalise both sides first.
* ``metric="l2"``: scores are **squared** Euclidean distances, sorted **ascending** (best first),
  as FAISS ``IndexFlatL2`` returns them.
* :meth:`Index.search` returns ``(scores, ids)`` with shapes ``(nq, k)``, ``float32`` and
  ``int64``.  Slots without a result (``k > ntotal``, or an approximate index that found fewer
  than ``k`` candidates) hold id ``-1`` and score ``-inf`` (ip) / ``+inf`` (l2), so the rows stay
  sorted.

Kinds and their parameters (``build_index(..., **params)``; search-time ones marked *)
--------------------------------------------------------------------------------------
``exact``   NumPy matrix product, processed in query blocks whose score matrix stays under
            ``block_bytes``* (default 64 MiB, at least one query row); the top ``k`` of each
            row is found with ``argpartition`` and only those are sorted (ties: smaller id
            first).
``flat``    FAISS ``IndexFlatIP`` / ``IndexFlatL2`` (exact).
``ivf``     FAISS IVF-Flat.  ``nlist`` (default ``min(4*sqrt(n), n/39)``, at least 1),
            ``nprobe``* (default ``min(8, nlist)``), ``train_size`` (train k-means on a seeded
            random subsample of this many vectors; default: all), ``seed`` (subsample and
            k-means seed, default 0).
``hnsw``    FAISS HNSW-Flat.  ``M`` (32), ``ef_construction`` (80), ``ef_search``* (64).  The
            graph built with several threads depends on thread timing; pass ``threads=1`` for a
            reproducible graph.
``ivfpq``   FAISS IVF-PQ.  ``nlist``, ``nprobe``*, ``train_size``, ``seed`` as for ``ivf``;
            ``m`` sub-quantisers (default 8, must divide ``dim``), ``nbits`` per code (8);
            ``refine`` (False): wrap in ``IndexRefineFlat`` so the ``k * k_factor``* (default 4)
            best PQ candidates are re-scored exactly (scores are then exact, memory includes the
            full vectors).
``lsh``     FAISS ``IndexLSH`` (random-rotation hyperplane hashing, ``nbits`` bits, default
            ``2 * dim``; the rotation is drawn from ``seed``, default 0).  Hamming distances are
            meaningless to callers, so the LSH index is always wrapped in an exact refinement
            (``IndexRefineFlat``): the ``k * k_factor``* (default 10) best hash candidates are
            re-scored exactly, and the returned scores are true inner products / squared L2
            distances.  Memory therefore includes the full vectors.
``kdtree``  ``sklearn.neighbors.KDTree`` (euclidean, ``leaf_size`` 40).  For ``metric="l2"`` the
            tree distances are squared.  For ``metric="ip"`` the identity
            ``||q - x||^2 = ||q||^2 + 1 - 2 q.x`` (for unit ``x``) turns the distance ranking into
            the inner-product ranking and the distances back into inner products; it is only
            exact-equivalent when the **indexed vectors are L2-normalised**, so building or
            adding non-unit vectors with ``metric="ip"`` raises :class:`FgrError`.  ``add``
            rebuilds the tree.

Every kind accepts ``threads``: when given (at build or in :meth:`Index.set_params`) it calls
``faiss.omp_set_num_threads(threads)``, a process-wide setting that affects the FAISS kinds only.
It is not stored in :attr:`Index.params`.

Files
-----
:meth:`Index.save` writes the index to ``path`` (FAISS kinds: ``faiss.write_index`` format;
``exact`` and ``kdtree``: the vectors as ``.npy``, the tree is rebuilt deterministically on load)
and a sidecar ``<path>.json`` with kind, metric, dim, ntotal, params, the index file's size and
SHA-256, and a format version.  Both are written to a temporary name beside the destination and
renamed into place.  :func:`load_index` checks the sidecar, the caller's expectations and the file
before reading it; every problem is reported as a one-line :class:`FgrError`.
"""
from __future__ import annotations

import abc
import json
import math
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np
from numpy.typing import ArrayLike, NDArray

from fgr_utils.errors import FgrError
from fgr_utils import io
from fgr_utils.io import atomic_path, write_json

__all__ = ["KINDS", "METRICS", "Index", "build_index", "load_index", "recall_at_k"]

KINDS: tuple[str, ...] = ("exact", "flat", "ivf", "hnsw", "ivfpq", "lsh", "kdtree")
METRICS: tuple[str, ...] = ("ip", "l2")

FORMAT_NAME = "fgr-index"
FORMAT_VERSION = 1

_FAISS_METRIC = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
_UNIT_NORM_TOL = 1e-3

FloatArray = NDArray[np.float32]
IdArray = NDArray[np.int64]


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _join(parts: list[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _as_matrix(x: Any, *, what: str, dim: int | None = None) -> FloatArray:
    """Return ``x`` as a C-contiguous float32 ``(n, dim)`` matrix of finite values."""
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise FgrError(f"{what} cannot be read as an array: {io.one_line(exc)}") from None
    if arr.ndim != 2:
        raise FgrError(f"{what} must be a 2-D array (n, dim), got shape {tuple(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise FgrError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise FgrError(f"{what} have dim {arr.shape[1]}, expected dim {dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise FgrError(f"{what} contain NaN or infinite values ({bad} of {arr.shape[0]} rows)")
    return arr


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise FgrError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _int_param(params: Mapping[str, Any], name: str, kind: str, lo: int, hi: int | None = None) -> int:
    value = params[name]
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if ok and value >= lo and (hi is None or value <= hi):
        return int(value)
    bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
    raise FgrError(f"index kind {kind!r}: {name} must be an integer {bound}, got {value!r}")


def _worst_score(metric: str) -> float:
    return -math.inf if metric == "ip" else math.inf


def _set_threads(threads: Any) -> None:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise FgrError(f"threads must be a positive integer, got {threads!r}")
    faiss.omp_set_num_threads(int(threads))


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


# --------------------------------------------------------------------------------------------
# the interface
# --------------------------------------------------------------------------------------------


class Index(abc.ABC):
    """A searchable set of vectors; build one with :func:`build_index` or :func:`load_index`.

    Subclasses (one per family) declare ``kind``, their parameter defaults and which parameters
    may change after build, and implement the ``_build`` / ``_search`` / ``_add`` / ``_write`` /
    ``_read`` hooks.  Input checking, padding, the score convention and file handling live here.
    """

    kind: ClassVar[str]
    #: every accepted build parameter with its default (``None`` = resolved from the data)
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: parameters :meth:`set_params` may change
    search_param_names: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, dim: int, metric: str, params: Mapping[str, Any]) -> None:
        self._dim = int(dim)
        self._metric = metric
        self._params = dict(params)

    # -- public attributes -------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def params(self) -> dict[str, Any]:
        """The resolved parameters (a copy)."""
        return dict(self._params)

    @property
    @abc.abstractmethod
    def ntotal(self) -> int:
        """Number of indexed vectors."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return (f"<{type(self).__name__} kind={self.kind!r} metric={self.metric!r} "
                f"dim={self.dim} ntotal={self.ntotal} {params}>")

    # -- public methods ----------------------------------------------------------------------

    def search(self, queries: ArrayLike, k: int) -> tuple[FloatArray, IdArray]:
        """Return ``(scores, ids)`` of the ``k`` best matches of every query, best first.

        Shapes ``(nq, k)``; scores are inner products (descending) for ``metric="ip"`` and
        squared L2 distances (ascending) for ``metric="l2"``; missing results are id ``-1``
        with score ``-inf`` / ``+inf``.
        """
        q = _as_matrix(queries, what="queries", dim=self.dim)
        k = _check_k(k)
        nq = q.shape[0]
        worst = _worst_score(self.metric)
        scores = np.full((nq, k), worst, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        kk = min(k, self.ntotal)
        if nq and kk:
            found_scores, found_ids = self._search(q, kk)
            ids[:, :kk] = found_ids
            scores[:, :kk] = found_scores
            scores[ids < 0] = worst  # FAISS pads with +-FLT_MAX; make it +-inf
        return scores, ids

    def add(self, vectors: ArrayLike) -> None:
        """Append vectors; they get ids ``ntotal, ntotal + 1, ...``."""
        v = _as_matrix(vectors, what="vectors", dim=self.dim)
        if v.shape[0]:
            self._add(v)

    def set_params(self, **params: Any) -> None:
        """Change search-time parameters (see the module docs), e.g. ``set_params(nprobe=16)``."""
        if "threads" in params:
            _set_threads(params.pop("threads"))
        unknown = sorted(set(params) - self.search_param_names)
        if unknown:
            allowed = ", ".join(sorted(self.search_param_names)) or "none"
            raise FgrError(f"index kind {self.kind!r} cannot change {', '.join(unknown)} after "
                           f"build (search parameters: {allowed}, plus threads)")
        merged = {**self._params, **params}
        self._check_search_params(merged)
        self._params = merged
        self._apply_search_params()

    @abc.abstractmethod
    def memory_bytes(self) -> int:
        """Approximate size of the index in bytes."""

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` and its sidecar to ``<path>.json``, each atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            self._write(tmp)
            file_bytes = tmp.stat().st_size
            digest = io.file_sha256(tmp)
        write_json(_sidecar_path(path), {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "metric": self.metric,
            "dim": self.dim,
            "ntotal": self.ntotal,
            "params": self._params,
            "file_bytes": file_bytes,
            "sha256": digest,
        })

    # -- parameter handling ------------------------------------------------------------------

    @classmethod
    def _resolve_params(cls, given: Mapping[str, Any], vectors: FloatArray) -> dict[str, Any]:
        unknown = sorted(set(given) - set(cls.defaults))
        if unknown:
            known = ", ".join(cls.defaults) or "none"
            raise FgrError(f"index kind {cls.kind!r} has no parameter {', '.join(unknown)} "
                           f"(parameters: {known}, threads)")
        params = {**cls.defaults, **given}
        cls._check_build_params(params, vectors)
        cls._check_search_params(params)
        return params

    @classmethod
    def _check_build_params(cls, params: dict[str, Any], vectors: FloatArray) -> None:
        """Validate build parameters in place, filling ``None`` defaults from the data."""

    @classmethod
    def _check_search_params(cls, params: dict[str, Any]) -> None:
        """Validate search parameters in place."""

    def _apply_search_params(self) -> None:
        """Push ``self._params`` search parameters into the underlying index."""

    # -- family hooks ------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def _build(cls, vectors: FloatArray, metric: str, params: dict[str, Any]) -> Index:
        """Build from checked float32 vectors and resolved params."""

    @abc.abstractmethod
    def _search(self, queries: FloatArray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search with ``1 <= k <= ntotal``; return arrays of shape ``(nq, k)``."""

    @abc.abstractmethod
    def _add(self, vectors: FloatArray) -> None:
        """Append checked float32 vectors."""

    @abc.abstractmethod
    def _write(self, path: Path) -> None:
        """Write the index file to ``path``."""

    @classmethod
    @abc.abstractmethod
    def _read(cls, path: Path, *, metric: str, params: dict[str, Any]) -> Index:
        """Read an index file written by :meth:`_write`."""


# --------------------------------------------------------------------------------------------
# exact search with NumPy
# --------------------------------------------------------------------------------------------


def _top_k(scores: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns of each row of ``scores``, sorted best first, ties by smaller id."""
    key = -scores if metric == "ip" else scores  # smaller key = better
    n = key.shape[1]
    if k < n:
        cand = np.argpartition(key, k - 1, axis=1)[:, :k]
        cand.sort(axis=1)  # so the stable sort below breaks ties by id
    else:
        cand = np.broadcast_to(np.arange(n), key.shape).copy()
    order = np.argsort(np.take_along_axis(key, cand, axis=1), axis=1, kind="stable")
    ids = np.take_along_axis(cand, order, axis=1)
    return np.take_along_axis(scores, ids, axis=1), ids


class ExactIndex(Index):
    """Brute force with a blocked matrix product; the ground truth for the other kinds."""

    kind = "exact"
    defaults = {"block_bytes": 64 << 20}
    search_param_names = frozenset({"block_bytes"})

    def __init__(self, vectors: FloatArray, *, metric: str, params: Mapping[str, Any]) -> None:
        super().__init__(dim=vectors.shape[1], metric=metric, params=params)
        self._vectors = vectors
        self._sq_norms = np.einsum("ij,ij->i", vectors, vectors) if metric == "l2" else None

    @property
    def ntotal(self) -> int:
        return self._vectors.shape[0]

    @classmethod
    def _check_search_params(cls, params: dict[str, Any]) -> None:
        _int_param(params, "block_bytes", cls.kind, 1)

    @classmethod
    def _build(cls, vectors: FloatArray, metric: str, params: dict[str, Any]) -> ExactIndex:
        return cls(vectors, metric=metric, params=params)

    def _search(self, queries: FloatArray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nq = queries.shape[0]
        rows = max(1, self._params["block_bytes"] // (4 * self.ntotal))
        scores = np.empty((nq, k), dtype=np.float32)
        ids = np.empty((nq, k), dtype=np.int64)
        for start in range(0, nq, rows):
            block = queries[start:start + rows]
            s = block @ self._vectors.T
            if self._sq_norms is not None:  # ||q||^2 - 2 q.x + ||x||^2
                s *= -2.0
                s += self._sq_norms[None, :]
                s += np.einsum("ij,ij->i", block, block)[:, None]
                np.maximum(s, 0.0, out=s)
            scores[start:start + rows], ids[start:start + rows] = _top_k(s, k, self.metric)
        return scores, ids

    def _add(self, vectors: FloatArray) -> None:
        self._vectors = np.concatenate([self._vectors, vectors])
        if self._sq_norms is not None:
            self._sq_norms = np.concatenate(
                [self._sq_norms, np.einsum("ij,ij->i", vectors, vectors)])

    def memory_bytes(self) -> int:
        extra = 0 if self._sq_norms is None else self._sq_norms.nbytes
        return int(self._vectors.nbytes + extra)

    def _write(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, self._vectors, allow_pickle=False)

    @classmethod
    def _read(cls, path: Path, *, metric: str, params: dict[str, Any]) -> ExactIndex:
        return cls(_read_vectors(path), metric=metric, params=params)


def _read_vectors(path: Path) -> FloatArray:
    vectors = np.load(path, allow_pickle=False)
    if vectors.ndim != 2 or vectors.dtype != np.float32:
        raise ValueError(f"expected a 2-D float32 array, found {vectors.dtype} {vectors.shape}")
    return np.ascontiguousarray(vectors)


# --------------------------------------------------------------------------------------------
# KD-tree (scikit-learn)
# --------------------------------------------------------------------------------------------


class KDTreeIndex(Index):
    """``sklearn.neighbors.KDTree``; exact, useful as a (slow in high dim) negative control."""

    kind = "kdtree"
    defaults = {"leaf_size": 40}

    def __init__(self, vectors: FloatArray, *, metric: str, params: Mapping[str, Any]) -> None:
        super().__init__(dim=vectors.shape[1], metric=metric, params=params)
        self._fit(vectors)

    def _fit(self, vectors: FloatArray) -> None:
        from sklearn.neighbors import KDTree

        if self.metric == "ip":
            self._require_unit(vectors)
        self._tree = KDTree(vectors, leaf_size=self._params["leaf_size"], metric="euclidean")
        self._vectors = vectors

    @property
    def ntotal(self) -> int:
        return self._vectors.shape[0]

    @staticmethod
    def _require_unit(vectors: FloatArray) -> None:
        norms = np.linalg.norm(vectors, axis=1)
        bad = np.abs(norms - 1.0) > _UNIT_NORM_TOL
        if bad.any():
            raise FgrError(f"kdtree with metric 'ip' needs L2-normalised vectors, but {int(bad.sum())}"
                           f" of {len(norms)} have norm != 1: normalise them or use metric 'l2'")

    @classmethod
    def _check_build_params(cls, params: dict[str, Any], vectors: FloatArray) -> None:
        _int_param(params, "leaf_size", cls.kind, 1)

    @classmethod
    def _build(cls, vectors: FloatArray, metric: str, params: dict[str, Any]) -> KDTreeIndex:
        return cls(vectors, metric=metric, params=params)

    def _search(self, queries: FloatArray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist, ids = self._tree.query(queries, k=k, return_distance=True, sort_results=True)
        sq = dist * dist
        if self.metric == "l2":
            return sq, ids
        q_sq = np.einsum("ij,ij->i", queries, queries, dtype=np.float64)
        return (q_sq[:, None] + 1.0 - sq) / 2.0, ids  # q.x for unit x

    def _add(self, vectors: FloatArray) -> None:
        self._fit(np.concatenate([self._vectors, vectors]))  # KDTree has no add: rebuild

    def memory_bytes(self) -> int:
        return len(pickle.dumps(self._tree, protocol=pickle.HIGHEST_PROTOCOL))

    def _write(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, self._vectors, allow_pickle=False)

    @classmethod
    def _read(cls, path: Path, *, metric: str, params: dict[str, Any]) -> KDTreeIndex:
        return cls(_read_vectors(path), metric=metric, params=params)


# --------------------------------------------------------------------------------------------
# FAISS kinds
# --------------------------------------------------------------------------------------------


class FaissIndex(Index):
    """Shared code of the FAISS kinds; subclasses only create the index and set its knobs."""

    #: FAISS classes a file of this kind may hold (checked on load)
    faiss_types: ClassVar[tuple[type, ...]] = ()

    def __init__(self, index: faiss.Index, *, metric: str, params: Mapping[str, Any]) -> None:
        super().__init__(dim=index.d, metric=metric, params=params)
        self._index = index
        self._apply_search_params()

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying FAISS index (for FAISS-specific inspection)."""
        return self._index

    @classmethod
    @abc.abstractmethod
    def _create(cls, dim: int, metric: str, params: dict[str, Any]) -> faiss.Index:
        """Return an empty (untrained) FAISS index."""

    @classmethod
    def _build(cls, vectors: FloatArray, metric: str, params: dict[str, Any]) -> FaissIndex:
        index = cls._create(vectors.shape[1], metric, params)
        if not index.is_trained:
            index.train(_training_sample(vectors, params))
        index.add(vectors)
        return cls(index, metric=metric, params=params)

    def _search(self, queries: FloatArray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._index.search(queries, k)

    def _add(self, vectors: FloatArray) -> None:
        self._index.add(vectors)

    def memory_bytes(self) -> int:
        return int(faiss.serialize_index(self._index).nbytes)

    def _write(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def _read(cls, path: Path, *, metric: str, params: dict[str, Any]) -> FaissIndex:
        index = faiss.read_index(str(path))
        if not isinstance(index, cls.faiss_types):
            raise ValueError(f"holds a {type(index).__name__}, not a {cls.kind} index")
        if index.metric_type != _FAISS_METRIC[metric]:
            raise ValueError("its FAISS metric differs from the sidecar's")
        return cls(index, metric=metric, params=params)


def _training_sample(vectors: FloatArray, params: Mapping[str, Any]) -> FloatArray:
    """All vectors, or a seeded random subsample of ``train_size`` of them."""
    size = params.get("train_size")
    if size is None or size >= vectors.shape[0]:
        return vectors
    rng = np.random.default_rng(params["seed"])
    rows = np.sort(rng.choice(vectors.shape[0], size=size, replace=False))
    return np.ascontiguousarray(vectors[rows])


def _check_ivf_build(kind: str, params: dict[str, Any], vectors: FloatArray, min_train: int = 1) -> None:
    """Resolve and check ``train_size``, ``seed``, ``nlist`` and the default ``nprobe``."""
    n = vectors.shape[0]
    _int_param(params, "seed", kind, 0)
    if params["train_size"] is not None:
        _int_param(params, "train_size", kind, 1)
    n_train = n if params["train_size"] is None else min(n, params["train_size"])
    if params["nlist"] is None:
        params["nlist"] = max(1, int(min(4 * math.sqrt(n_train), n_train / 39)))
    nlist = _int_param(params, "nlist", kind, 1)
    need = max(nlist, min_train)
    if n_train < need:
        raise FgrError(f"index kind {kind!r} needs at least {need} training vectors "
                       f"(nlist {nlist}), got {n_train}: lower nlist or give more vectors")
    if params["nprobe"] is None:
        params["nprobe"] = min(8, nlist)


def _check_nprobe(kind: str, params: dict[str, Any]) -> None:
    _int_param(params, "nprobe", kind, 1, params["nlist"])


class FlatIndex(FaissIndex):
    kind = "flat"
    faiss_types = (faiss.IndexFlat,)

    @classmethod
    def _create(cls, dim: int, metric: str, params: dict[str, Any]) -> faiss.Index:
        return faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)


class IVFIndex(FaissIndex):
    kind = "ivf"
    faiss_types = (faiss.IndexIVFFlat,)
    defaults = {"nlist": None, "nprobe": None, "train_size": None, "seed": 0}
    search_param_names = frozenset({"nprobe"})

    @classmethod
    def _check_build_params(cls, params: dict[str, Any], vectors: FloatArray) -> None:
        _check_ivf_build(cls.kind, params, vectors)

    @classmethod
    def _check_search_params(cls, params: dict[str, Any]) -> None:
        _check_nprobe(cls.kind, params)

    @classmethod
    def _create(cls, dim: int, metric: str, params: dict[str, Any]) -> faiss.Index:
        quantizer = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], _FAISS_METRIC[metric])
        index.cp.seed = params["seed"]
        return index

    def _apply_search_params(self) -> None:
        faiss.extract_index_ivf(self._index).nprobe = self._params["nprobe"]


class HNSWIndex(FaissIndex):
    kind = "hnsw"
    faiss_types = (faiss.IndexHNSWFlat,)
    defaults = {"M": 32, "ef_construction": 80, "ef_search": 64}
    search_param_names = frozenset({"ef_search"})

    @classmethod
    def _check_build_params(cls, params: dict[str, Any], vectors: FloatArray) -> None:
        _int_param(params, "M", cls.kind, 2)
        _int_param(params, "ef_construction", cls.kind, 1)

    @classmethod
    def _check_search_params(cls, params: dict[str, Any]) -> None:
        _int_param(params, "ef_search", cls.kind, 1)

    @classmethod
    def _create(cls, dim: int, metric: str, params: dict[str, Any]) -> faiss.Index:
        index = faiss.IndexHNSWFlat(dim, params["M"], _FAISS_METRIC[metric])
        index.hnsw.efConstruction = params["ef_construction"]
        return index

    def _apply_search_params(self) -> None:
        self._index.hnsw.efSearch = self._params["ef_search"]


class IVFPQIndex(FaissIndex):
    kind = "ivfpq"
    faiss_types = (faiss.IndexIVFPQ, faiss.IndexRefineFlat)
    defaults = {"nlist": None, "nprobe": None, "m": 8, "nbits": 8, "refine": False,
                "k_factor": None, "train_size": None, "seed": 0}
    search_param_names = frozenset({"nprobe", "k_factor"})

    @classmethod
    def _check_build_params(cls, params: dict[str, Any], vectors: FloatArray) -> None:
        dim = vectors.shape[1]
        m = _int_param(params, "m", cls.kind, 1)
        if dim % m:
            raise FgrError(f"index kind 'ivfpq': m={m} sub-quantisers must divide dim {dim}: "
                           f"choose m among the divisors of {dim}")
        nbits = _int_param(params, "nbits", cls.kind, 1, 16)
        if not isinstance(params["refine"], bool):
            raise FgrError(f"index kind 'ivfpq': refine must be True or False, got {params['refine']!r}")
        if params["k_factor"] is None and params["refine"]:
            params["k_factor"] = 4
        _check_ivf_build(cls.kind, params, vectors, min_train=1 << nbits)

    @classmethod
    def _check_search_params(cls, params: dict[str, Any]) -> None:
        _check_nprobe(cls.kind, params)
        if params["k_factor"] is not None:
            if not params["refine"]:
                raise FgrError("index kind 'ivfpq': k_factor needs refine=True at build time")
            _int_param(params, "k_factor", cls.kind, 1)

    @classmethod
    def _create(cls, dim: int, metric: str, params: dict[str, Any]) -> faiss.Index:
        quantizer = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
        ivfpq = faiss.IndexIVFPQ(quantizer, dim, params["nlist"], params["m"], params["nbits"],
                                 _FAISS_METRIC[metric])
        ivfpq.cp.seed = params["seed"]
        ivfpq.pq.cp.seed = params["seed"]
        return faiss.IndexRefineFlat(ivfpq) if params["refine"] else ivfpq

    def _apply_search_params(self) -> None:
        faiss.extract_index_ivf(self._index).nprobe = self._params["nprobe"]
        if self._params["refine"]:
            self._index.k_factor = float(self._params["k_factor"])


class LSHIndex(FaissIndex):
    kind = "lsh"
    faiss_types = (faiss.IndexRefineFlat,)
    defaults = {"nbits": None, "k_factor": 10, "seed": 0}
    search_param_names = frozenset({"k_factor"})

    @classmethod
    def _check_build_params(cls, params: dict[str, Any], vectors: FloatArray) -> None:
        if params["nbits"] is None:
            params["nbits"] = 2 * vectors.shape[1]
        _int_param(params, "nbits", cls.kind, 1)
        _int_param(params, "seed", cls.kind, 0)

    @classmethod
    def _check_search_params(cls, params: dict[str, Any]) -> None:
        _int_param(params, "k_factor", cls.kind, 1)

    @classmethod
    def _create(cls, dim: int, metric: str, params: dict[str, Any]) -> faiss.Index:
        lsh = faiss.IndexLSH(dim, params["nbits"])  # rotate_data=True, thresholds at 0
        lsh.rrot.init(params["seed"])
        # IndexLSH ranks by Hamming distance whatever its metric_type; the metric only tells
        # the refinement wrapper how to score and sort the re-ranked candidates.
        lsh.metric_type = _FAISS_METRIC[metric]
        return faiss.IndexRefineFlat(lsh)

    def _apply_search_params(self) -> None:
        self._index.k_factor = float(self._params["k_factor"])


_CLASSES: dict[str, type[Index]] = {
    cls.kind: cls
    for cls in (ExactIndex, FlatIndex, IVFIndex, HNSWIndex, IVFPQIndex, LSHIndex, KDTreeIndex)
}
assert tuple(_CLASSES) == KINDS


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------


def build_index(vectors: ArrayLike, kind: str = "exact", metric: str = "ip", **params: Any) -> Index:
    """Build an index of ``kind`` (one of :data:`KINDS`) over ``vectors`` ``(n, dim)``.

    ``metric`` is ``"ip"`` (inner product; L2-normalise for cosine) or ``"l2"`` (squared
    Euclidean).  ``params`` are the kind's parameters (see the module docs) plus ``threads``.
    Raises :class:`FgrError` for an unknown kind, metric or parameter, empty or non-2-D input,
    NaN/inf values, or parameters that do not fit the data.
    """
    if kind not in _CLASSES:
        raise FgrError(f"unknown index kind {kind!r}: choose one of {', '.join(KINDS)}")
    if metric not in METRICS:
        raise FgrError(f"unknown metric {metric!r}: choose 'ip' (inner product) or 'l2' (squared L2)")
    threads = params.pop("threads", None)
    if threads is not None:
        _set_threads(threads)
    x = _as_matrix(vectors, what="vectors")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise FgrError(f"cannot build an index from an empty array of shape {x.shape}")
    cls = _CLASSES[kind]
    resolved = cls._resolve_params(params, x)
    try:
        return cls._build(x, metric, resolved)
    except FgrError:
        raise
    except RuntimeError as exc:  # FAISS errors
        raise FgrError(f"building a {kind} index failed: {io.one_line(exc)}") from None


def load_index(path: str | os.PathLike, *, dim: int | None = None, metric: str | None = None,
               kind: str | None = None) -> Index:
    """Load an index saved by :meth:`Index.save`, checking it against the caller's expectations.

    Raises :class:`FgrError` (one line) if the file or its sidecar is missing or corrupt, the
    file is truncated or does not match its sidecar, or its dim/metric/kind differ from the
    expected values given here.
    """
    path = Path(path)
    sidecar = _sidecar_path(path)
    if not path.is_file():
        raise FgrError(f"index file {path} not found: build and save the index first")
    meta = _read_sidecar(path, sidecar)

    expected = {"kind": kind, "dim": dim, "metric": metric}
    differ = [name for name, want in expected.items() if want is not None and meta[name] != want]
    if differ:
        has = _join([f"{name} {meta[name]}" for name in differ])
        want = _join([f"{name} {expected[name]}" for name in differ])
        raise FgrError(f"index {path} has {has}, expected {want}: rebuild it")

    size = path.stat().st_size
    if size != meta["file_bytes"] or io.file_sha256(path) != meta["sha256"]:
        raise FgrError(f"index file {path} ({size} bytes) does not match its sidecar "
                       f"({meta['file_bytes']} bytes, sha256 {meta['sha256'][:12]}): it is "
                       f"truncated or was changed after saving; rebuild it")
    cls = _CLASSES[meta["kind"]]
    try:
        index = cls._read(path, metric=meta["metric"], params=meta["params"])
    except Exception as exc:
        raise FgrError(f"index file {path} cannot be read as a {meta['kind']} index "
                       f"({io.one_line(exc)}): rebuild it") from None
    if index.dim != meta["dim"] or index.ntotal != meta["ntotal"]:
        raise FgrError(f"index file {path} holds {index.ntotal} vectors of dim {index.dim} but its "
                       f"sidecar says {meta['ntotal']} of dim {meta['dim']}: rebuild it")
    return index


def _read_sidecar(path: Path, sidecar: Path) -> dict[str, Any]:
    """Read and check ``<path>.json``; raise a one-line FgrError for anything wrong."""
    if not sidecar.is_file():
        raise FgrError(f"index {path} has no sidecar {sidecar.name}: re-save it with Index.save")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FgrError(f"sidecar {sidecar} is not valid JSON ({io.one_line(exc)}): "
                       f"re-save the index") from None
    checks = {
        "format": lambda v: v == FORMAT_NAME,
        "format_version": lambda v: isinstance(v, int) and 1 <= v,
        "kind": lambda v: v in KINDS,
        "metric": lambda v: v in METRICS,
        "dim": lambda v: isinstance(v, int) and v >= 1,
        "ntotal": lambda v: isinstance(v, int) and v >= 0,
        "params": lambda v: isinstance(v, dict),
        "file_bytes": lambda v: isinstance(v, int) and v >= 0,
        "sha256": lambda v: isinstance(v, str) and len(v) == 64,
    }
    if not isinstance(meta, dict):
        raise FgrError(f"sidecar {sidecar} is not a JSON object: re-save the index")
    bad = [name for name, ok in checks.items() if name not in meta or not ok(meta[name])]
    if bad:
        raise FgrError(f"sidecar {sidecar} has missing or invalid {', '.join(bad)}: re-save the index")
    if meta["format_version"] > FORMAT_VERSION:
        raise FgrError(f"sidecar {sidecar} has format version {meta['format_version']}, this fgr "
                       f"reads up to {FORMAT_VERSION}: upgrade fgr or rebuild the index")
    return meta


def recall_at_k(found_ids: ArrayLike, true_ids: ArrayLike, k: int) -> float:
    """Mean over queries of ``|found top-k ∩ true top-k| / k`` (the ANN-benchmarks recall@k).

    Both arrays are ``(nq, >= k)`` id matrices (a 1-D array is one query); only the first ``k``
    columns count.  Ids ``< 0`` (padding) never match, and a repeated found id counts once.
    """
    k = _check_k(k)
    found = np.atleast_2d(np.asarray(found_ids))
    true = np.atleast_2d(np.asarray(true_ids))
    if found.ndim != 2 or true.ndim != 2 or found.shape[0] != true.shape[0]:
        raise FgrError(f"recall_at_k needs two (nq, k) id arrays with the same nq, got shapes "
                       f"{found.shape} and {true.shape}")
    if found.shape[1] < k or true.shape[1] < k:
        raise FgrError(f"recall_at_k with k={k} needs at least {k} columns, got shapes "
                       f"{found.shape} and {true.shape}")
    if found.shape[0] == 0:
        raise FgrError("recall_at_k needs at least one query")
    found = np.sort(found[:, :k].astype(np.int64), axis=1)
    true = true[:, :k].astype(np.int64)
    valid = found >= 0
    valid[:, 1:] &= found[:, 1:] != found[:, :-1]  # count each found id once
    hits = 0
    step = max(1, (1 << 24) // (k * k))  # bound the (rows, k, k) comparison
    for start in range(0, found.shape[0], step):
        f, t, v = found[start:start + step], true[start:start + step], valid[start:start + step]
        hits += int(((f[:, :, None] == t[:, None, :]).any(axis=2) & v).sum())
    return hits / (k * found.shape[0])
