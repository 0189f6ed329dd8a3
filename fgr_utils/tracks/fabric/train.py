"""Training the fabric track's two stages: category-level triplets for the global descriptor (stage
1), motif-level triplets with hard negatives for the query-guided attention (stage 2)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from fgr_utils.data.fabrics import FabricSet
from fgr_utils.data.transforms import Augment, Preprocess
from fgr_utils.embed import StemCache
from fgr_utils.losses import cosine_triplet
from fgr_utils.tracks.base import config_from
from fgr_utils.tracks.fabric.data import FabricInputs
from fgr_utils.tracks.fabric.models import GlobalModel, QGAModel
from fgr_utils.tracks.fabric.retrieval import evaluate_rankings, global_similarities, qga_scores_all, rank_all
from fgr_utils.train import FitResult, TupleDataset, fit, loader


@dataclass
class TrainConfig:
    """The training settings both stages share; the notebooks' parameters of the same names."""

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

    @classmethod
    def from_params(cls, params: dict[str, Any], *, device: str) -> TrainConfig:
        return config_from(cls, params, device=device)


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


def _stem_views(model, paths: Sequence[Path], pre: Preprocess, views: int, *, seed: int, device: str,
                augment: Augment | None = None) -> Callable[..., torch.Tensor]:
    """The frozen stem's features of ``views`` fixed views of each image (0: the image, 1: its mirror,
    2 and up: ``augment`` draws seeded per image and view), computed once; returns
    ``lookup(path, rng=None, view=None)``, which draws the view from ``rng`` when it is not given."""
    stems = StemCache(model.backbone, lambda bb, x: bb.stem_features(x), device=device)
    unique = list(dict.fromkeys(str(p) for p in paths))
    index = {p: i for i, p in enumerate(unique)}
    for view in range(views):
        if view == 0:
            make = pre
        elif view == 1:
            make = pre.mirrored()
        else:
            def make(p, view=view):
                return augment(p, np.random.default_rng((seed, view, index[p])))
        stems.fill([(view, p) for p in unique], unique, make, batch_size=4)

    def lookup(path, rng: np.random.Generator | None = None, view: int | None = None) -> torch.Tensor:
        if view is None:
            view = int(rng.integers(views)) if rng is not None else 0
        return stems[(view, str(path))]

    return lookup


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
        views = dict(seed=cfg.seed, device=cfg.device)
        motifs = _stem_views(model, motif_paths, inputs.query, max(2, cfg.motif_views), augment=aug_query, **views)
        fabrics = _stem_views(model, fs.fabric_paths("train"), inputs.fabric, 2, **views)
        val_queries = _stem_views(model, fs.query_paths("validation"), inputs.query, 1, **views)
        val_fabrics = _stem_views(model, fs.fabric_paths("validation"), inputs.fabric, 1, **views)
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
    """Stage 2: cosine triplet on query-guided attention with instance-level (motif id) positives.

    ``anchor_index_bug`` reproduces the released loss: sample 0's projected query is the anchor of
    every triplet of the batch (``[0]`` on a B x 256 tensor, then broadcasting).
    """
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
