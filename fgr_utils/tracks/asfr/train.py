"""Training one attribute-specific method: triplets drawn afresh every epoch (or a fixed CSN list), the
validation number every epoch, the best epoch kept; RPF in two stages."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgr_utils.errors import FgrError
from fgr_utils.losses import cosine_triplet, e_infonce
from fgr_utils.tracks.base import config_from
from fgr_utils.tracks.asfr.data import AsfrData
from fgr_utils.tracks.asfr.evaluate import evaluate_split
from fgr_utils.tracks.asfr.features import Crops, Features
from fgr_utils.train import FitResult, fit


# --------------------------------------------------------------------------------------------
# Triplet sampling (asfr_rpf_agman.md section 1.3)
# --------------------------------------------------------------------------------------------

def sample_triplets(groups: dict[int, dict[int, np.ndarray]], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows (anchor, positive, negative, attr, v+, v-): the attribute uniformly, then two
    distinct values v+ != v- (v+ among those with two images or more), anchor and positive two
    distinct images of v+, the negative an image of v-."""
    usable = []
    for a in sorted(groups):
        pos = [v for v, ids in groups[a].items() if len(ids) >= 2]
        if pos and len(groups[a]) >= 2:
            usable.append((a, pos, sorted(groups[a])))
    if not usable:
        raise FgrError("no attribute has two values with images (and one value with two images): "
                       "the training labels cannot make a triplet")
    out = np.empty((n, 6), dtype=np.int64)
    for t in range(n):
        a, pos, values = usable[int(rng.integers(len(usable)))]
        vp = pos[int(rng.integers(len(pos)))]
        others = [v for v in values if v != vp]
        vn = others[int(rng.integers(len(others)))]
        ids = groups[a][vp]
        i, j = rng.choice(len(ids), size=2, replace=False)
        neg = groups[a][vn]
        out[t] = (ids[i], ids[j], neg[int(rng.integers(len(neg)))], a, vp, vn)
    return out


def fixed_triplets(triplets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A CSN list ``a b c`` (a closer to c) as (anchor a, positive c, negative b, condition, v+, v-),
    shuffled. Values are unknown: each triplet gets its own pair of pseudo-values (a and c share one)."""
    rows = triplets[rng.permutation(len(triplets))]
    t = np.arange(len(rows), dtype=np.int64)
    return np.column_stack([rows[:, 0], rows[:, 2], rows[:, 1], rows[:, 3], 2 * t, 2 * t + 1])


@dataclass
class TrainConfig:
    epochs: int
    lr: float
    lr_step: int = 3
    lr_gamma: float = 0.9
    batch_size: int = 16  # triplets per step
    triplets_per_epoch: int = 100_000
    margin: float = 0.2
    flip: bool = True
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    # RPF stage 2
    stage: int = 1
    patch_lr: float = 5.5e-5
    patch_weight: float = 0.1
    infonce_weight: float = 0.04
    tau: float = 0.07
    alpha: float = 12.0
    beta: float = 0.3
    val_flip: bool = False  # RPF s1 as released: the validation images are randomly flipped
    agman_cls: bool = True

    @classmethod
    def from_params(cls, params: dict[str, Any], *, device: str, stage: int = 1) -> TrainConfig:
        """Stage 1 (every method but RPF's patch stage) from the notebook's parameters of the same
        names; ``stage=2``: RPF's stage s2 from its ``s2_*`` parameters, without flips (as the paper)."""
        cfg = config_from(cls, params, device=device)
        if stage == 1:
            return cfg
        return dataclasses.replace(cfg, stage=2, epochs=params["s2_epochs"], lr=params["s2_lr"],
                                   patch_lr=params["s2_patch_lr"], lr_step=params["s2_lr_step"], flip=False,
                                   val_flip=False)


class _Triplets(torch.utils.data.Dataset):
    """One epoch's triplets as model inputs: (stem outputs of a, p, n stacked, attr, values)."""

    def __init__(self, rows: np.ndarray, features: Features, flips: np.ndarray):
        self.rows, self.features, self.flips = rows, features, flips

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, t: int):
        r = self.rows[t]
        items = [self.features.item(int(r[j]), bool(self.flips[t, j])) for j in range(3)]
        return items, int(r[3]), torch.as_tensor(r[4:6]), torch.as_tensor(r[:3])


def _collate(batch):
    """(stem outputs of the 3B images stacked: anchors, then positives, then negatives; attrs (B,);
    values (B, 2); image indices (3B,) in the same order)."""
    feats = {k: torch.stack([b[0][j][k] for j in range(3) for b in batch]) for k in batch[0][0][0]}
    index = torch.stack([b[3] for b in batch]).T.reshape(-1)
    return feats, torch.tensor([b[1] for b in batch]), torch.stack([b[2] for b in batch]), index


def epoch_rows(data: AsfrData, cfg: TrainConfig, epoch: int) -> np.ndarray:
    """The epoch's triplets: redrawn from the groups (splits) or the fixed list reshuffled (triplets)."""
    rng = np.random.default_rng((cfg.seed, epoch, 31))
    if data.protocol == "splits":
        return sample_triplets(data.groups, cfg.triplets_per_epoch, rng)
    rows = fixed_triplets(data.triplets["train"], rng)
    return rows[:cfg.triplets_per_epoch] if cfg.triplets_per_epoch else rows


def _loader(data: AsfrData, features: Features, cfg: TrainConfig, epoch: int):
    rows = epoch_rows(data, cfg, epoch)
    rng = np.random.default_rng((cfg.seed, epoch, 37))
    flips = (rng.random((len(rows), 3)) < 0.5) & cfg.flip
    return torch.utils.data.DataLoader(_Triplets(rows, features, flips), batch_size=cfg.batch_size, shuffle=False,
                                       num_workers=cfg.workers, collate_fn=_collate)


def make_step(model, method: str, features: Features, cfg: TrainConfig, crops: Crops | None = None):
    """The loss of one batch of triplets for ``method`` (and RPF's stage)."""
    def triplet(emb: torch.Tensor) -> torch.Tensor:
        a, p, n = emb.chunk(3)
        return cosine_triplet(a, p, n, cfg.margin)

    def step(batch):
        feats, attr, values, index = batch
        feats = features.stem_outputs(model.trunk, feats)
        attr3 = attr.repeat(3).to(features.device)
        out = model(feats, attr3)
        loss = triplet(out.embedding)
        if method == "agman" and cfg.agman_cls:
            loss = model.loss_weights(loss, model.type_loss(out.logits, attr3))
        if method == "rpf" and cfg.stage == 2:
            patch = model.patch(crops.inputs(index.tolist(), out.attention), attr3, from_stem=crops.cached)
            vals3 = torch.cat([values[:, 0], values[:, 0], values[:, 1]]).to(features.device)
            loss = loss + cfg.patch_weight * triplet(patch) + cfg.infonce_weight * e_infonce(
                out.embedding, patch, out.background, attr3, vals3, tau=cfg.tau, alpha=cfg.alpha)
        return loss

    return step

def _optimizer(model, method: str, cfg: TrainConfig):
    """Adam with StepLR(lr_step, lr_gamma); RPF s2: two groups, region branch + attribute embedding at
    ``lr``, patch branch at ``patch_lr`` (section 4.5)."""
    if method == "rpf" and cfg.stage == 2:
        opt = torch.optim.Adam(model.param_groups(cfg.lr, cfg.patch_lr))
    else:
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    return opt, torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step, cfg.lr_gamma)


def selection_metric(data: AsfrData) -> str:
    return "valid/map/weighted" if data.protocol == "splits" else "valid/triplet_acc"


def train(model, method: str, data: AsfrData, features: Features, cfg: TrainConfig, *, checkpoint_dir: Path,
          fingerprint: str, crops: Crops | None = None, progress: bool = True) -> FitResult:
    """One stage of training: ``triplets_per_epoch`` triplets an epoch, the validation number every
    epoch, the best epoch kept (and restored at the end)."""
    if method == "rpf" and cfg.stage == 2 and crops is None:
        raise FgrError("RPF stage 2 needs the crops of its patch branch")
    model.to(cfg.device)
    opt, sched = _optimizer(model, method, cfg)
    step = make_step(model, method, features, cfg, crops)
    eval_crops = crops if method == "rpf" and cfg.stage == 2 else None

    def evaluate(epoch: int) -> dict[str, float]:
        flips = cfg.val_flip and method == "rpf" and cfg.stage == 1
        rng = np.random.default_rng((cfg.seed, epoch, 41)) if flips else None
        row = evaluate_split(model, data, features, "valid", crops=eval_crops, beta=cfg.beta, flip_rng=rng)
        return {f"valid/{k}": v for k, v in row.items()}

    return fit(model, opt, epochs=cfg.epochs, make_batches=lambda e: _loader(data, features, cfg, e), train_step=step,
               evaluate=evaluate, select=selection_metric(data), scheduler=sched, checkpoint_dir=checkpoint_dir,
               fingerprint=fingerprint, progress=progress, restore_best=True)
