"""One trainer for every track: seeded epochs, atomic checkpoints, resume, best-epoch selection.

The caller supplies what differs between methods: ``make_batches(epoch)`` (an iterable of batches;
draw them from an RNG seeded by the epoch so a resumed run sees the same data) and
``train_step(batch) -> loss``; optionally ``evaluate(epoch) -> {metric: value}``. :func:`fit` owns
the loop, the progress bar, the schedule, and the checkpoints:

* ``last.pt`` after every epoch (model, optimiser, scheduler, history, RNG states), written to a
  temporary name, flushed to disk and renamed, so a killed run resumes from its last finished epoch and
  never reads a torn file (a failed write leaves the previous checkpoint as it was);
* ``best.pt`` whenever the ``select`` metric improves (best-epoch and last-epoch numbers are both
  kept in the history, so a notebook can report both).

A checkpoint whose ``fingerprint`` (a hash of the run's parameters) differs is ignored, not resumed.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) :func:`fit` trains data-parallel
(:mod:`fgr_utils.train.parallel`): ``batch_size`` stays the global batch, every process takes its
slice of each batch, the gradients are combined by each slice's share of the batch, and rank 0 alone
evaluates and writes checkpoints (its epoch row is sent to the others, so all keep the same best
epoch). Every process reads ``last.pt`` to resume, so the checkpoint folder must be shared.
``python -m fgr_utils.train`` (:mod:`fgr_utils.train.__main__`) runs a notebook in every process.

The gradients are summed explicitly rather than through ``DistributedDataParallel``, whose
synchronisation covers only backward passes through its own ``forward``, while the tracks'
``train_step`` closures call several methods of the bare model (``model.loss``, ``model.patch``,
``model.attend`` ...). The cost is no overlap of communication with the backward pass. A loss coupled
across the batch (in-batch negatives: ARNet's NT-Xent, RPF's E-InfoNCE) sees only the local slice's
negatives, and BatchNorm normalises over the local slice: such runs are valid data-parallel training
but not numerically the single-process run with the same ``batch_size``.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from fgr_utils.checkpoints import load_checkpoint, save_checkpoint
from fgr_utils.distributed import distributed, init_distributed
from fgr_utils.train import parallel


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int | None = None
    best: dict[str, Any] = field(default_factory=dict)
    resumed_from: int | None = None
    seconds: float = 0.0

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _model_device(model: nn.Module) -> str:
    for t in list(model.parameters()) + list(model.buffers()):
        return str(t.device)
    return "cpu"


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

def fit(model: nn.Module, optimizer: torch.optim.Optimizer, *, epochs: int,
        make_batches: Callable[[int], Iterable[Any]], train_step: Callable[[Any], torch.Tensor],
        evaluate: Callable[[int], dict[str, float]] | None = None, select: str | None = None,
        mode: str = "max", scheduler: Any = None, checkpoint_dir: str | Path | None = None,
        fingerprint: str = "", grad_clip: float | None = None, progress: bool = True,
        restore_best: bool = True, log: Callable[[str], None] = print) -> FitResult:
    """Train for ``epochs`` epochs (resuming from ``checkpoint_dir/last.pt`` when it matches).

    Under torchrun, data-parallel over the processes (see the module docstring): every process
    returns the same weights and history; only rank 0 logs, evaluates and writes checkpoints.
    """
    from tqdm.auto import tqdm

    rank, world = distributed()
    many = world > 1
    lead = rank == 0
    if many:
        init_distributed(_model_device(model))
        say: Callable[[str], None] = log if lead else (lambda _: None)
    else:
        say = log
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else None
    result = FitResult(history=[])
    start = 1
    best_value: float | None = None
    if ckpt_dir is not None:
        state = load_checkpoint(ckpt_dir / "last.pt")
        if state is not None and state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            _set_rng_state(state["rng"])
            result.history = state["history"]
            result.best_epoch, result.best = state.get("best_epoch"), state.get("best", {})
            best_value = result.best.get(select) if select else None
            start = state["epoch"] + 1
            result.resumed_from = state["epoch"]
            say(f"resuming from epoch {state['epoch']} ({ckpt_dir / 'last.pt'})")
        elif state is not None:
            say(f"checkpoint {ckpt_dir / 'last.pt'} belongs to other parameters: training from scratch")
    trained, buffers = [], []  # what processes combine and share (nothing in one process)
    if many:
        parallel.check_same_resume(result.resumed_from, ckpt_dir)
        parallel.broadcast_tensors(parallel.state_tensors(model, optimizer))
        trained = parallel.trained_parameters(model, optimizer)
        buffers = list(model.buffers())
    t0 = time.perf_counter()
    for epoch in range(start, epochs + 1):
        e0 = time.perf_counter()
        model.train()
        losses = []
        batches = make_batches(epoch)
        # (global items, local items, local batch); one process: every batch whole (item counts unused)
        steps = parallel.local_batches(batches, rank, world) if many else ((1, 1, b) for b in batches)
        bar = tqdm(steps, total=len(batches) if hasattr(batches, "__len__") else None,
                   desc=f"epoch {epoch}/{epochs}", disable=not progress or not lead, leave=False)
        for n_global, n_local, batch in bar:
            optimizer.zero_grad(set_to_none=True)
            if buffers:
                parallel.broadcast_tensors(buffers)
            value = 0.0
            if n_local:
                loss = train_step(batch)
                loss.backward()
                value = float(loss.detach())
            if many:
                value = parallel.combine_gradients(trained, n_local / n_global if n_global else 0.0, value)
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            losses.append(value)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if scheduler is not None:
            scheduler.step()
        row: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                               "lr": optimizer.param_groups[0]["lr"]}
        if buffers:
            parallel.broadcast_tensors(buffers)  # every process ends the epoch with rank 0's statistics
        if evaluate is not None and lead:
            model.eval()
            with torch.no_grad():
                row.update(evaluate(epoch))
        row["seconds"] = round(time.perf_counter() - e0, 3)
        if many:
            row = parallel.broadcast_object(row)  # rank 0's evaluation: the same best epoch everywhere
        result.history.append(row)
        improved = False
        if select is not None and select in row:
            v = float(row[select])
            improved = best_value is None or (v > best_value if mode == "max" else v < best_value)
            if improved:
                best_value, result.best_epoch, result.best = v, epoch, dict(row)
        say(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if ckpt_dir is not None and lead:
            if improved:
                save_checkpoint(ckpt_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch, "row": row,
                                                       "fingerprint": fingerprint})
            save_checkpoint(ckpt_dir / "last.pt", {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch, "history": result.history, "best_epoch": result.best_epoch, "best": result.best,
                "rng": _rng_state(), "fingerprint": fingerprint})
    result.seconds = time.perf_counter() - t0
    if restore_best and ckpt_dir is not None and result.best_epoch is not None and lead \
            and result.best_epoch != (result.history[-1]["epoch"] if result.history else None):
        best = load_checkpoint(ckpt_dir / "best.pt")
        if best is not None:
            model.load_state_dict(best["model"])
    if many:  # rank 0's (restored) weights everywhere; also waits for its last checkpoint write
        parallel.broadcast_tensors(parallel.state_tensors(model, optimizer))
    return result


class TupleDataset(torch.utils.data.Dataset):
    """Items built by ``load(record, rng)`` with an RNG seeded from (seed, epoch, index).

    The per-item seed makes augmentations identical whatever the number of loader workers and
    whether or not the run was resumed.
    """

    def __init__(self, records: list[Any], load: Callable[[Any, np.random.Generator], Any], *,
                 seed: int = 0, epoch: int = 0):
        self.records, self.load, self.seed, self.epoch = records, load, seed, epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        rng = np.random.default_rng((self.seed, self.epoch, i))
        return self.load(self.records[i], rng)


def loader(dataset: torch.utils.data.Dataset, batch_size: int, *, workers: int = 0,
           shuffle: bool = False) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                       persistent_workers=False, drop_last=False)
