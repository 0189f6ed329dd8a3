"""Retrieval in the fabric track: global descriptors and their ranking (stage 1), cached candidate
tokens and query-guided re-ranking of the shortlist (stage 2), and the paper's metrics.

The candidate's tokens do not depend on the query, so every fabric is encoded once
(:func:`candidate_tokens`) and a query's shortlist is re-ranked in one attention call
(:func:`rerank_queries`); the released code re-encoded the query and the candidate for every pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from fgr_utils import io, metrics, rerank
from fgr_utils import index as fgr_index
from fgr_utils.data.fabrics import FabricSet
from fgr_utils.data.transforms import Preprocess
from fgr_utils.embed import extract
from fgr_utils.errors import FgrError
from fgr_utils.results import RunRecord
from fgr_utils.runner import remake_hint
from fgr_utils.tracks.fabric.data import FabricInputs
from fgr_utils.tracks.fabric.models import GlobalModel, QGAModel


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def global_descriptors(model: GlobalModel, paths: Sequence[Path], pre: Preprocess, *, device: str = "cpu",
                       cache_dir: Path | None = None, name: str = "global", batch_size: int = 4,
                       progress: bool = True) -> np.ndarray:
    """L2-normalised stage-1 descriptors (cosine = inner product)."""
    feats = extract(model, paths, pre, batch_size=batch_size, device=device, cache_dir=cache_dir, name=name,
                    progress=progress)
    return normalise(feats)


def global_similarities(model: GlobalModel, fs: FabricSet, split: str, inputs: FabricInputs, *, device: str = "cpu",
                        cache_dir: Path | None = None, progress: bool = True) -> np.ndarray:
    q = global_descriptors(model, fs.query_paths(split), inputs.query, device=device, cache_dir=cache_dir,
                           name=f"global-queries-{split}", progress=progress)
    db = global_descriptors(model, fs.fabric_paths(split), inputs.fabric, device=device, cache_dir=cache_dir,
                            name=f"global-fabrics-{split}", progress=progress)
    return q @ db.T


def rank_all(scores: np.ndarray, ids: Sequence[str]) -> list[list[str]]:
    """Full rankings of fabric ids per query, by descending score (ties in database order)."""
    order = np.argsort(-np.asarray(scores), axis=1, kind="stable")
    ids = np.asarray(ids, dtype=object)
    return [list(ids[row]) for row in order]


def search_index(db: np.ndarray, queries: np.ndarray, kind: str = "flat") -> tuple[np.ndarray, np.ndarray]:
    """Full ranking (scores, positions) of every database item per query through an index."""
    idx = fgr_index.build_index(db, kind=kind, metric="ip")
    return idx.search(queries, db.shape[0])


def candidate_tokens(model: QGAModel, paths: Sequence[Path], pre: Preprocess, *, device: str = "cpu",
                     cache_dir: Path | None = None, name: str = "tokens", progress: bool = True) -> np.ndarray:
    """Stage-2 patch tokens of every candidate, computed once (float32 on disk).

    Not float16: its rounding, amplified by a trained model's sharp attention, moves the scores away
    from the per-pair forward's by more than the 1e-4 ``fgr bench rerank`` checks.
    """
    return extract(model, paths, pre, encode=lambda m, x: m.encode_candidates(x), device=device,
                   cache_dir=cache_dir, name=name, progress=progress)


def query_cls(model: QGAModel, paths: Sequence[Path], pre: Preprocess, *, device: str = "cpu",
              progress: bool = True) -> np.ndarray:
    return extract(model, paths, pre, encode=lambda m, x: m.encode_query(x), device=device, progress=progress)


def rerank_queries(model: QGAModel, q_cls: np.ndarray, tokens: np.ndarray, candidates: np.ndarray, *,
                   device: str = "cpu", return_attention: bool = False):
    """Score each query against its own candidate rows of ``tokens`` in one attention call.

    ``candidates``: (n_queries, K) row indices into ``tokens``. Returns scores (n_queries, K) and,
    optionally, the attention maps (n_queries, K, N).
    """
    model.eval()
    scores = np.zeros(candidates.shape, dtype=np.float32)
    maps = np.zeros(candidates.shape + (tokens.shape[1],), dtype=np.float32) if return_attention else None
    with torch.no_grad():
        for i, rows in enumerate(candidates):
            t = torch.from_numpy(np.asarray(tokens[np.asarray(rows)], dtype=np.float32)).to(device)
            s, att = model.score_cached(torch.from_numpy(np.asarray(q_cls[i], dtype=np.float32)).to(device), t)
            scores[i] = s.cpu().numpy()
            if maps is not None:
                maps[i] = att.cpu().numpy()
    return (scores, maps) if return_attention else scores


def qga_scores_all(model: QGAModel, fs: FabricSet, split: str, inputs: FabricInputs, *,
                   device: str = "cpu") -> np.ndarray:
    """Stage-2 score of every (query, fabric) pair of a split (used for validation)."""
    tokens = candidate_tokens(model, fs.fabric_paths(split), inputs.fabric, device=device, progress=False)
    q = query_cls(model, fs.query_paths(split), inputs.query, device=device, progress=False)
    rows = np.tile(np.arange(tokens.shape[0]), (q.shape[0], 1))
    return rerank_queries(model, q, tokens, rows, device=device)


def rerank_rankings(global_rank_pos: np.ndarray, global_scores: np.ndarray, qga_scores: np.ndarray,
                    fuse_global: float | None) -> np.ndarray:
    """Re-order each query's first K positions by the (fused) stage-2 score; the tail keeps its order."""
    k = qga_scores.shape[1]
    out = np.empty_like(global_rank_pos)
    for i in range(global_rank_pos.shape[0]):
        top = rerank.reorder(global_rank_pos[i, :k], rerank.fuse(qga_scores[i], global_scores[i, :k], fuse_global))
        out[i] = rerank.merge(global_rank_pos[i], top)
    return out


@dataclass
class Reranked:
    """Stage 2 over stage 1's test ranking: the final ranking and what stage 2 saw."""

    positions: np.ndarray  # (n_queries, n_fabrics) indices into the test fabrics, best first
    shortlist: np.ndarray  # (n_queries, K) the stage-1 rows stage 2 scored
    attention: np.ndarray  # (n_queries, K, N) the query's attention over each candidate's patch tokens


def rerank_stage1(model: QGAModel, fs: FabricSet, inputs: FabricInputs, stage1: Stage1, *, shortlist_k: int,
                  fuse_global: float | None, device: str = "cpu", cache_dir: Path | None = None) -> Reranked:
    """Re-rank the top ``shortlist_k`` of every test query of a stage-1 ranking: every test fabric is
    encoded once (its tokens cached in ``cache_dir``), every query once, and each query's shortlist is
    scored in one attention call; the tail keeps its stage-1 order."""
    tokens = candidate_tokens(model, fs.fabric_paths("test"), inputs.fabric, device=device, cache_dir=cache_dir,
                              name="tokens-test")
    q_cls = query_cls(model, fs.query_paths("test"), inputs.query, device=device)
    k = min(shortlist_k, stage1.positions.shape[1])
    shortlist = stage1.positions[:, :k]
    scores, attention = rerank_queries(model, q_cls, tokens, shortlist, device=device, return_attention=True)
    return Reranked(rerank_rankings(stage1.positions, stage1.scores, scores, fuse_global), shortlist, attention)


def id_rankings(fs: FabricSet, split: str, positions: np.ndarray) -> list[list[str]]:
    """Rankings of fabric positions as fabric ids."""
    ids = np.array(fs.fabric_ids(split))
    return [list(ids[row]) for row in positions]


def query_values(rankings: Sequence[Sequence[str]], fs: FabricSet, split: str, *, gt_key: str = "element_id",
                 ks: Sequence[int] = (1, 10, 100)) -> dict[str, np.ndarray]:
    """Per query of ``split`` (in ``fs.query_ids(split)`` order): full-ranking AP (``map``) and the
    fabric paper's AP@k / P@k / R@k / F1@k for each k."""
    relevant = [fs.relevant(q, gt_key=gt_key) for q in fs.queries_of(split)]
    out = {"map": np.array([metrics.full_ap(r, rel) for r, rel in zip(rankings, relevant)], dtype=np.float64)}
    for k in ks:
        m = metrics.per_query_at_k(rankings, relevant, k)
        out[f"ap@{k}"], out[f"p@{k}"], out[f"r@{k}"], out[f"f1@{k}"] = m["map"], m["precision"], m["recall"], m["f1"]
    return out


def evaluate_rankings(rankings: Sequence[Sequence[str]], fs: FabricSet, split: str, *, gt_key: str = "element_id",
                      ks: Sequence[int] = (1, 10, 100)) -> dict[str, float]:
    """The means over queries of :func:`query_values`."""
    return {k: float(v.mean()) for k, v in query_values(rankings, fs, split, gt_key=gt_key, ks=ks).items()}


PROTOCOLS = {
    "map": "full-ranking AP (every relevant fabric counts; mean over queries)",
    "ap@k": "fabric paper AP@k: sum of P@i at hits in the top k / min(|relevant|, k)",
    "p@k": "precision in the top k", "r@k": "recall in the top k", "f1@k": "F1 of P@k and R@k",
}


def protocol_of(metric: str) -> str:
    base = metric.split("/")[-1]
    key = base if base == "map" else base.split("@")[0] + "@k"
    return PROTOCOLS.get(key, "value")


@dataclass
class Stage1:
    """What a finished stage-1 run left for stage 2: its parameters and full test ranking."""

    params: dict[str, Any]
    positions: np.ndarray  # (n_queries, n_fabrics) indices into the test fabrics, best first
    scores: np.ndarray  # the matching cosine similarities
    query_ids: list[str]
    fabric_ids: list[str]

    run: RunRecord

    def check(self, fs: FabricSet) -> None:
        """Stage 2 reads this ranking by position: the test queries and fabrics must be the ones it ranked."""
        if list(fs.query_ids("test")) != self.query_ids or list(fs.fabric_ids("test")) != self.fabric_ids:
            raise FgrError(f"the test split changed since {self.run.name} ranked it (images added, removed or "
                           f"left out as unreadable): make it again; {remake_hint(self.run.name, self.run.profile)}")


def save_stage1(run, fs: FabricSet, positions: np.ndarray, scores: np.ndarray) -> None:
    """Keep stage 1's full test ranking for stage 2 (``stage1_ranking.npz``; atomically, rank 0 only)."""
    if run.rank != 0:
        return
    with io.atomic_path(run.path("stage1_ranking.npz"), suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, positions=positions, scores=scores, query_ids=np.array(fs.query_ids("test")),
                     fabric_ids=np.array(fs.fabric_ids("test")))


def load_stage1(run: RunRecord) -> Stage1:
    """The ranking a finished ``10_fabric_global`` run stored, with its parameters."""
    with np.load(run.dir / "stage1_ranking.npz") as z:
        return Stage1(run.params, z["positions"], z["scores"], list(z["query_ids"]), list(z["fabric_ids"]), run)
