"""A finished fabric run, loaded: ``10_fabric_global`` (stage 1) or ``11_fabric_rerank`` (both stages).

The served collection is the test fabrics under stage 1's global descriptor; an ``11`` run also
re-ranks a query's shortlist with its query-guided attention, by the rule its notebook used (the
stage-2 score alone, or fused with the global one by ``fuse_global``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from fgr_utils import rerank
from fgr_utils.attention import AttentionProbe
from fgr_utils.results import RunRecord
from fgr_utils.tracks.base import BenchSet, Catalogue, TrainedRun
from fgr_utils.tracks.fabric.data import inputs_from_params, load_dataset
from fgr_utils.tracks.fabric.figures import browser_inputs, encoder_attention
from fgr_utils.tracks.fabric.models import GlobalModel, QGAModel, global_from_params, qga_from_params
from fgr_utils.tracks.fabric.retrieval import (Reranked, candidate_tokens, evaluate_rankings, global_descriptors,
                                               id_rankings, load_stage1, query_cls, rerank_queries, rerank_stage1,
                                               search_index)


def trained_global(run: RunRecord, device: str = "cpu") -> GlobalModel:
    """The stage-1 model of a ``10_fabric_global`` run: its best epoch (what the notebook evaluated), eval mode."""
    model = global_from_params(run.params, trained=True)
    model.load_state_dict(run.checkpoint()["model"])
    return model.to(device).eval()


def stage1_attention(run: RunRecord, n_images: int, *, device: str = "cpu") -> tuple[AttentionProbe, list[str]]:
    """The attention of a ``10_fabric_global`` run's ViT (its best epoch) over the first ``n_images``
    test fabrics, and their file names: an encoder whose transformer reads a pretrained CNN stem."""
    model = trained_global(run, device)
    fs = load_dataset(run.params["dataset"], run.params["size"], run.params["data_seed"]).items
    paths = fs.fabric_paths("test")[:n_images]
    return encoder_attention(model, paths, inputs_from_params(run.params).fabric), [Path(p).name for p in paths]


def trained_qga(run: RunRecord, device: str = "cpu") -> QGAModel:
    """The stage-2 model of an ``11_fabric_rerank`` run: its best epoch, eval mode."""
    model = qga_from_params(run.params, trained=True)
    model.load_state_dict(run.checkpoint()["model"])
    return model.to(device).eval()


class FabricRun(TrainedRun):
    track = "fabric"
    notebooks = ("10_fabric_global", "11_fabric_rerank")
    bench_metrics = ("map",)

    def __init__(self, run: RunRecord, *, device: str = "cpu", progress: bool = False):
        super().__init__(run, device=device, progress=progress)
        reranks = run.notebook == "11_fabric_rerank"
        self.stage1 = run.upstream("stage1") if reranks else run
        p = self.stage1.params
        self.loaded = load_dataset(p["dataset"], p["size"], p["data_seed"])
        self.fs = self.loaded.items
        self.inputs = inputs_from_params(p)
        self.model = trained_global(self.stage1, device)
        self.qga = trained_qga(run, device) if reranks else None
        if self.qga is not None:
            self.qga_inputs = inputs_from_params(self.params)
            self.rerank_depth = int(self.params["shortlist_k"])
        self._tokens: np.ndarray | None = None

    @property
    def rgba_background(self) -> str:
        return self.stage1.params["rgba_background"]

    def _global(self, items, pre, name: str | None) -> np.ndarray:
        """Stage-1 descriptors; the test split's are cached in the stage-1 run, as its notebook wrote them."""
        return global_descriptors(self.model, items, pre, device=self.device,
                                  cache_dir=self.stage1.dir / "cache" if name else None, name=name or "query",
                                  progress=self.progress)

    def catalogue(self) -> Catalogue:
        paths = self.fs.fabric_paths("test")
        vectors = {"image": self._global(paths, self.inputs.fabric, "fabrics-test")}
        return Catalogue(list(self.fs.fabric_ids("test")), [str(Path(p).relative_to(self.root)) for p in paths],
                         vectors, {"shortlist_k": self.rerank_depth} if self.qga is not None else {})

    def embed(self, img: Image.Image, groups: Sequence[str]) -> np.ndarray:
        return self._global([img], self.inputs.query, None)

    def rerank(self, img: Image.Image, positions: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 2 over the first ``shortlist_k`` results; the tail keeps its global order and scores."""
        if self.qga is None:
            return super().rerank(img, positions, scores)
        if self._tokens is None:
            self._tokens = candidate_tokens(self.qga, self.fs.fabric_paths("test"), self.qga_inputs.fabric,
                                            device=self.device, cache_dir=self.run.dir / "cache", name="tokens-test",
                                            progress=self.progress)
        k = min(self.rerank_depth, len(positions))
        q_cls = query_cls(self.qga, [img], self.qga_inputs.query, device=self.device, progress=False)
        s2 = rerank_queries(self.qga, q_cls, self._tokens, positions[None, :k], device=self.device)[0]
        fused = rerank.fuse(s2, scores[:k], self.params["fuse_global"])
        order = np.argsort(-fused, kind="stable")
        return (np.concatenate([positions[:k][order], positions[k:]]),
                np.concatenate([fused[order], scores[k:]]))

    def bench_sets(self, catalogue: Catalogue) -> list[BenchSet]:
        q = self._global(self.fs.query_paths("test"), self.inputs.query, "queries-test")
        where = {fid: r for r, fid in enumerate(catalogue.ids)}
        rel = [np.array(sorted(where[f] for f in self.fs.relevant(rec, gt_key="element_id")))
               for rec in self.fs.queries_of("test")]
        return [BenchSet("image", q, catalogue.vectors["image"], rel)]

    def _reranked(self) -> Reranked:
        stage1 = load_stage1(self.stage1)
        stage1.check(self.fs)
        return rerank_stage1(self.qga, self.fs, self.qga_inputs, stage1, shortlist_k=self.rerank_depth,
                             fuse_global=self.params["fuse_global"], device=self.device,
                             cache_dir=self.run.dir / "cache")

    def _stage1_positions(self) -> np.ndarray:
        q = self._global(self.fs.query_paths("test"), self.inputs.query, "queries-test")
        db = self._global(self.fs.fabric_paths("test"), self.inputs.fabric, "fabrics-test")
        return search_index(db, q, kind=self.stage1.params["index_kind"])[1]

    def evaluate(self) -> dict[str, float]:
        """``stage1/...`` (and for an 11 run ``stage2/...``): full-ranking mAP and AP/P/R/F1@k on the test split."""
        stages = {"stage1": self._stage1_positions()}
        if self.qga is not None:
            stages["stage2"] = self._reranked().positions
        return {f"{stage}/{k}": v for stage, positions in stages.items()
                for k, v in evaluate_rankings(id_rankings(self.fs, "test", positions), self.fs, "test").items()}

    def browser_inputs(self, *, depth: int = 20) -> dict[str, Any]:
        """Every test query's top ``depth`` (an 11 run: re-ranked, with the attention over its shortlist)."""
        if self.qga is None:
            return browser_inputs(self.fs, "test", id_rankings(self.fs, "test", self._stage1_positions()), None, None,
                                  None, self.inputs.fabric, depth=depth)
        r = self._reranked()
        return browser_inputs(self.fs, "test", id_rankings(self.fs, "test", r.positions), r.shortlist, r.attention,
                              self.qga.backbone.grid, self.qga_inputs.fabric, depth=depth)
