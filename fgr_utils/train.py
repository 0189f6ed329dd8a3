"""One trainer for every track: seeded epochs, atomic checkpoints, resume, best-epoch selection.

The caller supplies what differs between methods: ``make_batches(epoch)`` (an iterable of batches;
draw them from an RNG seeded by the epoch so a resumed run sees the same data) and
``train_step(batch) -> loss``; optionally ``evaluate(epoch) -> {metric: value}``. :func:`fit` owns
the loop, the progress bar, the schedule, and the checkpoints:

* ``last.pt`` after every epoch (model, optimiser, scheduler, history, RNG states), written to a
  temporary name and renamed, so a killed run resumes from its last finished epoch and never reads a
  torn file;
* ``best.pt`` whenever the ``select`` metric improves (best-epoch and last-epoch numbers are both
  kept in the history, so a notebook can report both).

A checkpoint whose ``fingerprint`` (a hash of the run's parameters) differs is ignored, not resumed.
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

from fgr_utils import io


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


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with io.atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None if absent or unreadable (a torn file is reported and skipped)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is treated as absent
        print(f"fgr: ignoring unreadable checkpoint {path} ({io.one_line(e, 120)})")
        return None


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, *, epochs: int,
        make_batches: Callable[[int], Iterable[Any]], train_step: Callable[[Any], torch.Tensor],
        evaluate: Callable[[int], dict[str, float]] | None = None, select: str | None = None,
        mode: str = "max", scheduler: Any = None, checkpoint_dir: str | Path | None = None,
        fingerprint: str = "", grad_clip: float | None = None, progress: bool = True,
        restore_best: bool = True, log: Callable[[str], None] = print) -> FitResult:
    """Train for ``epochs`` epochs (resuming from ``checkpoint_dir/last.pt`` when it matches)."""
    from tqdm.auto import tqdm

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
            log(f"resuming from epoch {state['epoch']} ({ckpt_dir / 'last.pt'})")
        elif state is not None:
            log(f"checkpoint {ckpt_dir / 'last.pt'} belongs to other parameters: training from scratch")
    t0 = time.perf_counter()
    for epoch in range(start, epochs + 1):
        e0 = time.perf_counter()
        model.train()
        losses = []
        bar = tqdm(make_batches(epoch), desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            loss = train_step(batch)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if scheduler is not None:
            scheduler.step()
        row: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                               "lr": optimizer.param_groups[0]["lr"]}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                row.update(evaluate(epoch))
        row["seconds"] = round(time.perf_counter() - e0, 3)
        result.history.append(row)
        improved = False
        if select is not None and select in row:
            v = float(row[select])
            improved = best_value is None or (v > best_value if mode == "max" else v < best_value)
            if improved:
                best_value, result.best_epoch, result.best = v, epoch, dict(row)
        log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if ckpt_dir is not None:
            if improved:
                save_checkpoint(ckpt_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch, "row": row,
                                                       "fingerprint": fingerprint})
            save_checkpoint(ckpt_dir / "last.pt", {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch, "history": result.history, "best_epoch": result.best_epoch, "best": result.best,
                "rng": _rng_state(), "fingerprint": fingerprint})
    result.seconds = time.perf_counter() - t0
    if restore_best and ckpt_dir is not None and result.best_epoch is not None \
            and result.best_epoch != (result.history[-1]["epoch"] if result.history else None):
        best = load_checkpoint(ckpt_dir / "best.pt")
        if best is not None:
            model.load_state_dict(best["model"])
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
