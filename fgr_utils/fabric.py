"""The printed-fabric track: data, the two models, their training, re-ranking and evaluation.

Stage 1 learns *category-level* similarity (a motif and the fabrics that contain a motif of its
category); stage 2 learns *instance-level* "this fabric contains this very motif" and re-ranks the
stage-1 shortlist with query-guided attention over cached candidate tokens. The notebooks
``10_fabric_global``, ``11_fabric_rerank`` and ``12_landmarks`` call what is here.

Faithful-vs-fixed switches (``shared/reference/fabric_qga.md`` §5), default fixed:

* ``anchor_index_bug`` — the released stage-2 loss compares sample 0's anchor with every positive
  and negative of the batch (``[0]`` on a B x 256 tensor, then broadcasting);
* ``rgba_background`` — ``raw`` drops alpha as ``convert('RGB')`` did; ``white`` composites;
* ``resize`` — ``squash`` (aspect not kept, as released) or ``keep_aspect``;
* ``fuse_global`` — None ranks the shortlist by the stage-2 score alone (as released), a weight λ
  fuses λ·s_global + (1-λ)·s_qga.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from fgr_utils import index as fgr_index
from fgr_utils import metrics, rerank
from fgr_utils.data import registry, synth
from fgr_utils.data.fabrics import FabricSet, load_fabrics
from fgr_utils.data.transforms import Augment, Preprocess
from fgr_utils.embed import StemCache, extract
from fgr_utils.errors import FgrError
from fgr_utils.results import read_record
from fgr_utils.losses import cosine_triplet
from fgr_utils.models.backbones import create_backbone, set_trainable
from fgr_utils.models.qga import GlobalModel, QGAModel
from fgr_utils.train import FitResult, TupleDataset, fit, load_checkpoint, loader

DATASETS = ("sim-fabrics", "printed-fabrics")


def load_dataset(dataset: str, size: str = "demo", seed: int = 0) -> tuple[FabricSet, Path]:
    """The generated simulator set (``sim-fabrics``) or the real Kaggle set (``printed-fabrics``).

    Images that cannot be decoded are left out (:meth:`FabricSet.without_unreadable`: the fabric leaves
    its split, the motif its query) and listed in ``.skipped`` for ``run.skip_images``. Every notebook
    loads through here, so on unchanged files stage 1's stored ranking and stage 2 index the same fabrics.
    """
    if dataset == "sim-fabrics":
        root = synth.require_synth("sim-fabrics", size, seed)
    elif dataset == "printed-fabrics":
        root = registry.require("printed-fabrics")
    else:
        raise FgrError(f"dataset must be one of {', '.join(DATASETS)}, not {dataset!r}")
    return load_fabrics(root).without_unreadable(), root


@dataclass(frozen=True)
class FabricInputs:
    """How fabric images and query motifs become network inputs (each a path -> tensor callable).

    The released code squashed both to 224 px, so a motif that covers a tenth of a fabric's width
    reaches the network ten times larger as a query than in the fabric. ``query_size`` below
    ``img_size`` shows the query near the scale it is printed at (the ViT resamples its position
    embedding for the smaller grid).
    """

    fabric: Callable[[Any], torch.Tensor]
    query: Callable[[Any], torch.Tensor]


def fabric_inputs(img_size: int, query_size: int | None = None, *, resize: str = "keep_aspect",
                  rgba_background: str = "white") -> FabricInputs:
    """The same preprocessing for both sides; the query at ``query_size`` (None: ``img_size``, as released)."""
    return FabricInputs(fabric=Preprocess(size=img_size, resize=resize, rgba_background=rgba_background),
                        query=Preprocess(size=query_size or img_size, resize=resize, rgba_background=rgba_background))


def describe_inputs(inputs: FabricInputs) -> dict[str, Any]:
    return {"fabric": inputs.fabric.describe(), "query": inputs.query.describe()}


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def build_global(backbone: str, *, pretrained: bool = False, weights_path: str | None = None,
                 img_size: int | None = None, trainable_blocks: int | None = 2, out_dim: int = 256) -> GlobalModel:
    bb = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path, img_size=img_size)
    set_trainable(bb, trainable_blocks)
    return GlobalModel(bb, out_dim)


def build_qga(backbone: str, *, pretrained: bool = False, weights_path: str | None = None,
              img_size: int | None = None, trainable_blocks: int | None = 2, heads: int = 8,
              init_backbone: dict | None = None, attention_init: str = "pytorch") -> QGAModel:
    """A separate stage-2 network; ``init_backbone`` (a backbone state dict) starts it from stage 1's.

    ``attention_init``: ``"pytorch"`` (as released) or ``"matching"`` (see :meth:`QGAModel.matching_init`).
    """
    bb = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path, img_size=img_size)
    if init_backbone is not None:
        bb.load_state_dict(init_backbone)
    set_trainable(bb, trainable_blocks)
    return QGAModel(bb, heads=heads, attention_init=attention_init)


def backbone_state(checkpoint: Path) -> dict:
    """The backbone weights of a saved stage-1 model."""
    state = load_checkpoint(checkpoint)
    if state is None:
        raise FgrError(f"no readable checkpoint at {checkpoint}: run 10_fabric_global first")
    prefix = "backbone."
    return {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}


def _param_groups(model: torch.nn.Module, lrs: dict[str, float]) -> list[dict]:
    """AdamW groups: the trainable backbone parameters at lrs['backbone'], each named head at its own."""
    groups = []
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    if backbone:
        groups.append({"params": backbone, "lr": lrs["backbone"], "name": "backbone"})
    for name, lr in lrs.items():
        if name == "backbone":
            continue
        params = [p for n, p in model.named_parameters() if n.split(".")[0] in name.split("+") and p.requires_grad]
        groups.append({"params": params, "lr": lr, "name": name})
    return groups


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    epochs: int
    triplets_per_epoch: int
    batch_size: int
    weight_decay: float
    t_max: int
    eta_min: float = 1e-7
    margin: float = 0.2
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    hard_fraction: float = 0.5
    cache_stem: bool = True  # backbones with a frozen pretrained stem: compute its features once
    motif_views: int = 2  # cached views per training motif: image, mirror, then flip + colour-jitter draws


class _TrainInputs:
    """How training and validation images become inputs.

    Without a cached stem, every use of a training image draws the full augmentation afresh (flip +
    colour jitter) and validation images go through the whole network. With a frozen pretrained stem
    (the demo backbone) its feature maps are computed once: a few fixed views per training image and
    one per validation image, and the backbone runs on them inside :attr:`mode`.
    """

    def __init__(self, model, fs: FabricSet, inputs: FabricInputs, cfg: TrainConfig):
        motif_paths = [m.path for m in fs.motifs_of("train")]
        motif_set = {str(p) for p in motif_paths}
        aug_query, aug_fabric = Augment(inputs.query), Augment(inputs.fabric)
        if not (cfg.cache_stem and model.backbone.frozen_stem is not None):
            self.mode = contextlib.nullcontext
            self.train = lambda path, rng: (aug_query if str(path) in motif_set else aug_fabric)(path, rng)
            self.validation = inputs
            return
        model.to(cfg.device)

        def cache(paths, pre, views, augment=None):
            return StemCache(model.backbone, paths, pre, views=views, augment=augment, seed=cfg.seed, device=cfg.device)

        motifs = cache(motif_paths, inputs.query, max(2, cfg.motif_views), aug_query)
        fabrics = cache(fs.fabric_paths("train"), inputs.fabric, 2)
        val_queries = cache(fs.query_paths("validation"), inputs.query, 1)
        val_fabrics = cache(fs.fabric_paths("validation"), inputs.fabric, 1)
        self.mode = model.backbone.stem_inputs
        self.train = lambda path, rng: (motifs if str(path) in motif_set else fabrics)(path, rng)
        self.validation = FabricInputs(fabric=lambda p: val_fabrics(p, view=0), query=lambda p: val_queries(p, view=0))


def _triplet_loader(fs: FabricSet, split: str, level: str, cfg: TrainConfig, make_input, epoch: int):
    rng = np.random.default_rng((cfg.seed, epoch, 17))
    n = cfg.triplets_per_epoch or None  # 0: one triplet per training motif, as the paper's samplers
    records = fs.sample_triplets(split, level, n, rng, hard_fraction=cfg.hard_fraction)

    def load(rec, item_rng):
        return tuple(make_input(p, item_rng) for p in rec)

    return loader(TupleDataset(records, load, seed=cfg.seed, epoch=epoch), cfg.batch_size, workers=cfg.workers)


def train_global(model: GlobalModel, fs: FabricSet, inputs: FabricInputs, cfg: TrainConfig, *, lr_head: float,
                 lr_backbone: float, checkpoint_dir: Path, fingerprint: str, progress: bool = True) -> FitResult:
    """Stage 1: cosine triplet with category-level positives; validation mAP selects the epoch."""
    model.to(cfg.device)
    opt = torch.optim.AdamW(_param_groups(model, {"backbone": lr_backbone, "head": lr_head}),
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.t_max, eta_min=cfg.eta_min)
    data = _TrainInputs(model, fs, inputs, cfg)

    def step(batch):
        a, p, n = (x.to(cfg.device) for x in batch)
        with data.mode():
            return cosine_triplet(model(a), model(p), model(n), cfg.margin)

    def evaluate(epoch: int) -> dict[str, float]:
        with data.mode():
            sims = global_similarities(model, fs, "validation", data.validation, device=cfg.device, progress=False)
        return {"val/map": evaluate_rankings(rank_all(sims, fs.fabric_ids("validation")), fs, "validation")["map"]}

    return fit(model, opt, epochs=cfg.epochs,
               make_batches=lambda e: _triplet_loader(fs, "train", "category", cfg, data.train, e),
               train_step=step, evaluate=evaluate, select="val/map", scheduler=sched, checkpoint_dir=checkpoint_dir,
               fingerprint=fingerprint, progress=progress)


def train_qga(model: QGAModel, fs: FabricSet, inputs: FabricInputs, cfg: TrainConfig, *, lr_backbone: float,
              lr_projections: float, lr_attention: float, anchor_index_bug: bool, checkpoint_dir: Path,
              fingerprint: str, progress: bool = True) -> FitResult:
    """Stage 2: cosine triplet on query-guided attention with instance-level (motif id) positives."""
    model.to(cfg.device)
    opt = torch.optim.AdamW(_param_groups(model, {
        "backbone": lr_backbone, "query_projection+target_projection+attention_align": lr_projections,
        "attention": lr_attention}), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.t_max, eta_min=cfg.eta_min)
    data = _TrainInputs(model, fs, inputs, cfg)

    def step(batch):
        a, p, n = (x.to(cfg.device) for x in batch)
        with data.mode():
            q = model.encode_query(a)
            pos_ctx, _ = model.attend(q, model.encode_candidates(p))
            neg_ctx, _ = model.attend(q, model.encode_candidates(n))
        anchor = model.project_query(q)
        if anchor_index_bug:
            anchor = anchor[0]  # the release: row 0 only, broadcast against the whole batch
        return cosine_triplet(anchor, model.project_target(pos_ctx), model.project_target(neg_ctx), cfg.margin)

    def evaluate(epoch: int) -> dict[str, float]:
        with data.mode():
            scores = qga_scores_all(model, fs, "validation", data.validation, device=cfg.device)
        return {"val/map": evaluate_rankings(rank_all(scores, fs.fabric_ids("validation")), fs, "validation")["map"]}

    return fit(model, opt, epochs=cfg.epochs,
               make_batches=lambda e: _triplet_loader(fs, "train", "instance", cfg, data.train, e),
               train_step=step, evaluate=evaluate, select="val/map", scheduler=sched, checkpoint_dir=checkpoint_dir,
               fingerprint=fingerprint, progress=progress)


# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------

def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def global_descriptors(model: GlobalModel, paths: Sequence[Path], pre: Preprocess, *, device: str = "cpu",
                       cache_dir: Path | None = None, name: str = "global", batch_size: int = 4,
                       progress: bool = True) -> np.ndarray:
    """L2-normalised stage-1 descriptors (cosine = inner product)."""
    feats = extract(model, paths, pre, batch_size=batch_size, device=device, cache_dir=cache_dir, name=name,
                    progress=progress)
    return _normalise(feats)


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

    float16 would halve the file, but it moved the trained demo model's scores by up to 2.2e-4 against
    the per-pair forward (its sharp attention amplifies the rounding); float32 keeps them within 1e-4.
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


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

def evaluate_rankings(rankings: Sequence[Sequence[str]], fs: FabricSet, split: str, *, gt_key: str = "element_id",
                      ks: Sequence[int] = (1, 10, 100)) -> dict[str, float]:
    """Full-ranking mAP plus the fabric paper's AP@k / P@k / R@k / F1@k for each k."""
    relevant = [fs.relevant(q, gt_key=gt_key) for q in fs.queries_of(split)]
    out = {"map": float(np.mean([metrics.full_ap(r, rel) for r, rel in zip(rankings, relevant)]))}
    for k in ks:
        m = metrics.metrics_at_k(rankings, relevant, k)
        out[f"ap@{k}"], out[f"p@{k}"], out[f"r@{k}"], out[f"f1@{k}"] = m["map"], m["precision"], m["recall"], m["f1"]
    return out


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

    def check(self, fs: FabricSet, stage1_run: str) -> None:
        """Stage 2 reads this ranking by position: the test queries and fabrics must be the ones it ranked."""
        if list(fs.query_ids("test")) != self.query_ids or list(fs.fabric_ids("test")) != self.fabric_ids:
            raise FgrError(f"the test split changed since {stage1_run} ranked it (images added, removed or "
                           f"left out as unreadable): run `fgr run {stage1_run.split('-')[0]}` again first")


def save_stage1(run, fs: FabricSet, positions: np.ndarray, scores: np.ndarray) -> None:
    """Keep stage 1's full test ranking for stage 2 (``stage1_ranking.npz``; atomically, rank 0 only)."""
    from fgr_utils import io

    if run.rank != 0:
        return
    with io.atomic_path(run.path("stage1_ranking.npz"), suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, positions=positions, scores=scores, query_ids=np.array(fs.query_ids("test")),
                     fabric_ids=np.array(fs.fabric_ids("test")))


def load_stage1(run_dir: Path) -> Stage1:
    record = read_record(run_dir)
    with np.load(Path(run_dir) / "stage1_ranking.npz") as z:
        return Stage1(record["params"], z["positions"], z["scores"], list(z["query_ids"]), list(z["fabric_ids"]))


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def retrieval_rows(fs: FabricSet, split: str, rankings: Sequence[Sequence[str]], picks: Sequence[int],
                   k: int) -> dict[str, list]:
    """The queries ``picks`` of ``split``: motif paths, their top ``k`` fabric paths, whether each
    holds the query's motif, and a title per query."""
    queries = fs.queries_of(split)
    rows, hits = [], []
    for i in picks:
        rel = fs.relevant(queries[i])
        rows.append([fs.fabric_path(f) for f in rankings[i][:k]])
        hits.append([f in rel for f in rankings[i][:k]])
    return {"queries": [queries[i].path for i in picks], "rankings": rows, "hits": hits,
            "query_titles": [f"query {queries[i].query_id}" for i in picks]}


def retrieval_figure(fs: FabricSet, split: str, rankings: Sequence[Sequence[str]], *, n_queries: int = 4,
                     k: int = 10, pre: Preprocess | None = None, title: str | None = None):
    """Query motifs and their top ``k`` fabrics, hits framed green and misses red."""
    from fgr_utils import viz

    rows = retrieval_rows(fs, split, rankings, viz.spread(len(fs.queries_of(split)), n_queries), k)
    load = pre.load if pre is not None else (lambda p: p)
    return viz.retrieval_grid([load(q) for q in rows["queries"]], [[load(p) for p in r] for r in rows["rankings"]],
                              rows["hits"], query_titles=rows["query_titles"], suptitle=title)


def browser_inputs(fs: FabricSet, split: str, rankings: Sequence[Sequence[str]], candidate_rows: np.ndarray,
                   attention: np.ndarray, grid: tuple[int, int], pre: Preprocess, *, depth: int = 20) -> dict[str, Any]:
    """What :func:`fgr_utils.browser.retrieval_browser` needs to browse every query of ``split``.

    ``rankings``: fabric ids per query, best first (the top ``depth`` are browsed).
    ``candidate_rows[i]``: the rows of ``fs.fabric_ids(split)`` that stage 2 scored for query ``i``
    and ``attention[i]`` their attention maps (one weight per patch of ``grid``): a result shows the
    query's attention over it when it was in the shortlist. Images are read as the network saw them.
    """
    row_of = {f: r for r, f in enumerate(fs.fabric_ids(split))}

    def over(i: int, j: int):
        where = np.flatnonzero(np.asarray(candidate_rows[i]) == row_of[rankings[i][j]])
        return np.asarray(attention[i][where[0]]).reshape(grid) if len(where) else None

    rows = retrieval_rows(fs, split, rankings, range(len(fs.queries_of(split))), depth)
    return {**rows, "attention": over, "load": pre.load}


# --------------------------------------------------------------------------------------------
# The two-stage pipeline on landmark sets (revisited Oxford/Paris, old Oxford5k/Paris6k)
# --------------------------------------------------------------------------------------------

LANDMARK_SETS = ("sim-revisited", "photo-landmarks", "roxford5k", "rparis6k", "oxford5k", "paris6k")


def load_landmark_set(name: str, size: str = "demo", seed: int = 0):
    """A landmark set checked whole: an unreadable image stops here with one line naming it (the
    protocol's ground truth indexes every image, so none can be left out as the other tracks do)."""
    from fgr_utils.data.landmarks import load_landmarks

    if name not in LANDMARK_SETS:
        raise FgrError(f"landmark set must be one of {', '.join(LANDMARK_SETS)}, not {name!r}")
    synthetic = name in ("sim-revisited", "photo-landmarks")
    root = synth.require_synth(name, size, seed) if synthetic else registry.require(name)
    ds = load_landmarks(root)
    if not synthetic:
        ds.check_counts()
    ds.check_images(fix=f"generate it again with `fgr data synth {name} --size {size} --seed {seed} --force`"
                    if synthetic else f"re-download it with `fgr data download {name} --force`")
    return ds, root


def landmark_inputs(ds, inputs: FabricInputs, *, imsize: int, crop_query: bool):
    """Functions i -> network input for database images and (cropped, scaled) queries.

    Database images go through ``inputs.fabric``; a query (its box crop, the sub-element) through
    ``inputs.query``, at the query scale the models were trained with.
    """
    return (lambda i: inputs.fabric.tensor(ds.db_image(i, imsize)),
            lambda i: inputs.query.tensor(ds.query_image(i, imsize, crop=crop_query)))


def landmark_global(model: GlobalModel, ds, inputs: FabricInputs, *, imsize: int, crop_query: bool,
                    device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Full global ranking (n_queries, n_db) of database indices, best first, and its scores."""
    db_in, q_in = landmark_inputs(ds, inputs, imsize=imsize, crop_query=crop_query)
    db = _normalise(extract(model, range(ds.n_db), db_in, device=device, name="landmark-db"))
    q = _normalise(extract(model, range(ds.n_queries), q_in, device=device, name="landmark-queries"))
    sims = q @ db.T
    order = np.argsort(-sims, axis=1, kind="stable")
    return order, np.take_along_axis(sims, order, axis=1)


def landmark_rerank(model: QGAModel, ds, inputs: FabricInputs, ranks: np.ndarray, scores: np.ndarray, *, imsize: int,
                    crop_query: bool, k: int, modes: Sequence[str], fuse_global: float | None,
                    device: str = "cpu") -> dict[tuple[str, str], np.ndarray]:
    """Re-ranked full rankings per (shortlist mode, protocol).

    ``blind``: the raw global top ``k`` (one ranking serves every protocol). ``protocol_aware``: the
    protocol's junk is moved out of the way before the top ``k`` is taken (how published re-ranking
    numbers are made).
    """
    from fgr_utils.metrics import protocol_sets

    db_in, q_in = landmark_inputs(ds, inputs, imsize=imsize, crop_query=crop_query)
    tokens = extract(model, range(ds.n_db), db_in, encode=lambda m, x: m.encode_candidates(x), device=device,
                     name="landmark-tokens")
    q_cls = extract(model, range(ds.n_queries), q_in, encode=lambda m, x: m.encode_query(x), device=device,
                    name="landmark-queries")
    score_of = {i: dict(zip(ranks[i].tolist(), scores[i].tolist())) for i in range(len(ranks))}
    protocols = ("easy", "medium", "hard") if ds.protocol == "revisited" else ("old",)
    out: dict[tuple[str, str], np.ndarray] = {}
    for mode in modes:
        if mode not in rerank.SHORTLIST_MODES:
            raise FgrError(f"shortlist mode must be one of {', '.join(rerank.SHORTLIST_MODES)}, not {mode!r}")
        for protocol in protocols if mode == "protocol_aware" else protocols[:1]:
            final = np.empty_like(ranks)
            for i in range(len(ranks)):
                junk = protocol_sets(ds.gnd[i], protocol)[1] if mode == "protocol_aware" else ()
                top = rerank.shortlist(ranks[i], k, exclude=junk)
                s2 = rerank_queries(model, q_cls[i:i + 1], tokens, top[None], device=device)[0]
                s1 = np.array([score_of[i][j] for j in top])
                final[i] = rerank.merge(ranks[i], rerank.reorder(top, rerank.fuse(s2, s1, fuse_global)))
            if mode == "blind":
                for p in protocols:
                    out[(mode, p)] = final
            else:
                out[(mode, protocol)] = final
    return out


def landmark_table(table: dict[tuple[str, str, str], float]):
    """A (dataset, stage) x protocol table of mAP in percent."""
    import pandas as pd

    rows: dict[tuple[str, str], dict[str, float]] = {}
    for (name, stage, protocol), value in table.items():
        rows.setdefault((name, stage), {})[protocol] = round(100 * value, 2)
    return pd.DataFrame.from_dict(rows, orient="index")
