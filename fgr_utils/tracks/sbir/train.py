"""Training one sketch-retrieval method: every training sketch once per epoch, test Acc@k after every
epoch (the release selects its epoch on it; both the best and the last epoch are recorded)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from fgr_utils.data.sketches import SketchSet
from fgr_utils.errors import FgrError
from fgr_utils.tracks.base import config_from
from fgr_utils.tracks.sbir.data import ImageStore, SbirInputs
from fgr_utils.tracks.sbir.evaluate import evaluate
from fgr_utils.train import FitResult, TupleDataset, fit

SAMPLERS = ("random", "unique_photo")


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    batch_sampler: str = "unique_photo"
    lr_schedule: str = "constant"  # "constant" (released) or "cosine" (annealed to 0 over the epochs)
    tie_rule: str = "optimistic"
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    eval_train: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any], *, device: str) -> TrainConfig:
        return config_from(cls, params, device=device)


def epoch_batches(pairs: Sequence[tuple[Path, int]], batch_size: int, sampler: str,
                  rng: np.random.Generator) -> list[list[int]]:
    """Indices into ``pairs`` grouped in batches, every sketch once per epoch.

    ``random``: a plain shuffle (two sketches of one photo can share a batch, and then that photo is
    a negative of its own sketch in NT-Xent: the released behaviour). ``unique_photo``: each batch
    holds at most one sketch per photo (a sketch that would repeat a photo waits for a later batch).
    """
    if sampler not in SAMPLERS:
        raise FgrError(f"batch_sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    order = rng.permutation(len(pairs)).tolist()
    if sampler == "random":
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    open_batches: list[tuple[list[int], set[int]]] = []
    for i in order:
        photo = pairs[i][1]
        for items, photos in open_batches:
            if photo not in photos:
                items.append(i)
                photos.add(photo)
                break
        else:
            open_batches.append(([i], {photo}))
        full = [b for b in open_batches if len(b[0]) == batch_size]
        batches.extend(b[0] for b in full)
        open_batches = [b for b in open_batches if len(b[0]) < batch_size]
    batches.extend(b[0] for b in open_batches)
    return batches


def _epoch_loader(method: str, pairs, photos, inputs: SbirInputs, store: ImageStore, cfg: TrainConfig, epoch: int):
    """One epoch's batches: ARNet (skt, skt_aug, img, img_aug) or triplet (skt, img, another photo)."""
    batches = epoch_batches(pairs, cfg.batch_size, cfg.batch_sampler, np.random.default_rng((cfg.seed, epoch, 29)))
    n_photos = len(photos)

    def load(i: int, rng: np.random.Generator):
        sketch, photo = pairs[i]
        skt, img = store(sketch), store(photos[photo])
        if method == "triplet":
            other = (photo + 1 + int(rng.integers(n_photos - 1))) % n_photos  # any other photo
            return inputs.anchor(skt), inputs.anchor(img), inputs.anchor(store(photos[other]))
        return inputs.anchor(skt), inputs.augmented(skt, rng), inputs.anchor(img), inputs.augmented(img, rng)

    dataset = TupleDataset(list(range(len(pairs))), load, seed=cfg.seed, epoch=epoch)
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=cfg.workers)


def train(model, sketches: SketchSet, inputs: SbirInputs, cfg: TrainConfig, method: str, *, checkpoint_dir: Path,
          fingerprint: str, progress: bool = True) -> FitResult:
    """Adam over every trainable parameter (constant rate as released, or cosine-annealed); test Acc@k
    every epoch (the release selects on it)."""
    model.to(cfg.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise FgrError(f"lr_schedule must be 'constant' or 'cosine', not {cfg.lr_schedule!r}")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs) if cfg.lr_schedule == "cosine" else None
    store = ImageStore(inputs.aug_size)
    pairs, photos = sketches.pairs("train"), sketches.photos("train")
    if not pairs:
        raise FgrError("the training split has no sketch-photo pairs: check the dataset with fgr data verify")

    def step(batch):
        batch = [x.to(cfg.device) for x in batch]
        return model.loss(*batch)[0]

    def evaluate_epoch(epoch: int) -> dict[str, float]:
        row = evaluate(model, sketches, "test", inputs, store, tie_rule=cfg.tie_rule, device=cfg.device)
        if cfg.eval_train:
            row.update({f"train/{k}": v for k, v in evaluate(model, sketches, "train", inputs, store,
                                                              tie_rule=cfg.tie_rule, device=cfg.device).items()})
        return row

    return fit(model, opt, epochs=cfg.epochs,
               make_batches=lambda e: _epoch_loader(method, pairs, photos, inputs, store, cfg, e),
               train_step=step, evaluate=evaluate_epoch, select="acc@1", scheduler=sched, checkpoint_dir=checkpoint_dir,
               fingerprint=fingerprint, progress=progress, restore_best=False)
