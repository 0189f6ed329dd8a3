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

Multi-process (data-parallel) training
--------------------------------------
Under ``torchrun`` (``RANK``/``WORLD_SIZE`` in the environment) :func:`fit` trains data-parallel, and
``torchrun --nproc_per_node N -m fgr_utils.train NOTEBOOK [fgr run's options]`` (:func:`main`) runs a
notebook in every process. The process group is joined once per process (:func:`init_distributed`:
nccl for CUDA, one GPU per process, ``cuda:LOCAL_RANK``; gloo otherwise).

* ``batch_size`` stays the **global** batch. Every process draws the same global batches
  (``make_batches`` is seeded by the epoch) and takes its own contiguous slice of each: a map-style
  ``DataLoader`` with a fixed batch order is re-made over the process's share of each batch's indices,
  so each process loads only its items; any other iterable is sliced after collation with
  :func:`shard`. A last batch not divisible by the number of processes gives unequal slices, even
  empty ones.
* After ``backward`` each process scales its gradient by (its items / the batch's items) and the
  gradients are summed across processes (:func:`_combine_gradients`, bucketed all-reduce): for a loss
  that is a mean over items the update is the single-process update on the whole global batch. A
  process with an empty slice adds a zero gradient but still joins the all-reduce. ``grad_clip``
  clips the combined gradient. Parameters and buffers start from rank 0's; buffers (BatchNorm
  statistics) are re-sent from rank 0 before every step, as DistributedDataParallel does.
* Rank 0 alone logs, evaluates and writes checkpoints; its epoch row (loss, lr, validation numbers)
  is broadcast so every process keeps the same history and best epoch. Every process reads
  ``last.pt`` to resume, so the checkpoint folder must be shared (one machine, or a shared filesystem
  across nodes); processes that disagree on the epoch to resume from stop with one line.

Why not ``torch.nn.parallel.DistributedDataParallel``: DDP synchronises gradients only for backward
passes through its own ``forward``, and the tracks' ``train_step`` closures call the bare model's
other methods (``model.loss``, ``model.patch``, ``model.encode_query``, ``model.attend`` ...). DDP
also averages over processes assuming equal local batches and needs ``Join`` for uneven ones.
The explicit all-reduce is the same averaging (exact for uneven slices), works with any closure,
but does not overlap communication with the backward pass as DDP does.

Caveats. A loss coupled across the batch (in-batch negatives: ARNet's NT-Xent, RPF's E-InfoNCE) sees
only the local slice's negatives, and BatchNorm normalises over the local slice: such runs are valid
data-parallel training but not numerically the single-process run with the same ``batch_size``.
Random operations inside ``train_step`` (dropout) draw from each process's own generator.
"""
from __future__ import annotations

import argparse
import atexit
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from fgr_utils import io
from fgr_utils.errors import FgrError

SESSION_ENV = "FGR_DIST_SESSION"  # names one notebook execution's process group (a store prefix)
TIMEOUT_ENV = "FGR_DIST_TIMEOUT_MIN"  # minutes a process waits for the others (rank 0's evaluation)
BUCKET_BYTES = 25 * 2**20  # gradients are summed in buckets of about this size


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
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash never leaves an empty last.pt


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None if absent or unreadable (a torn file is reported and skipped)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is treated as absent
        print(f"fgr: ignoring unreadable checkpoint {path} ({io.one_line(e, 120)})")
        return None


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise FgrError(f"environment variable {name}={text!r} is not a whole number") from None


def distributed() -> tuple[int, int]:
    """(rank, world size) of this process as torchrun sets them; (0, 1) outside torchrun."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0) if world > 1 else 0
    if world < 1 or not 0 <= rank < world:
        raise FgrError(f"RANK={rank} and WORLD_SIZE={world} do not fit together: start the processes with torchrun")
    return rank, world


def init_distributed(device: str = "cpu") -> str:
    """Join the process group once (nccl for CUDA, gloo otherwise) and return this process's device.

    A no-op returning ``device`` unchanged outside torchrun (no ``WORLD_SIZE``, or 1). On CUDA each
    process takes GPU ``LOCAL_RANK``. The group's store keys live under ``$FGR_DIST_SESSION`` (set
    per notebook execution by :func:`main`), so kernels started one after another on the same
    torchrun store never read each other's keys.
    """
    rank, world = distributed()
    if world == 1:
        return device
    import torch.distributed as dist

    if device.startswith("cuda"):
        local = _env_int("LOCAL_RANK", rank)
        if local >= torch.cuda.device_count():
            raise FgrError(f"process with LOCAL_RANK {local} but {torch.cuda.device_count()} GPU(s) visible: "
                           "start at most one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        timeout = timedelta(minutes=float(os.environ.get(TIMEOUT_ENV) or 60))
        try:
            store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=timeout))
        except ValueError as e:  # MASTER_ADDR / MASTER_PORT missing
            raise FgrError(f"WORLD_SIZE={world} is set but the process group cannot start ({io.one_line(e, 160)}): "
                           "start the processes with torchrun") from None
        store = dist.PrefixStore(os.environ.get(SESSION_ENV) or "fgr", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
        atexit.register(_leave_group)  # a group left to interpreter teardown can abort the process
    return device


def _leave_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _grouped(tensors: Sequence[torch.Tensor], limit: int | None = None) -> Iterator[list[torch.Tensor]]:
    """The tensors in groups of one device and dtype (at most ``limit`` bytes a group, when given)."""
    by_kind: dict[tuple[Any, Any], list[torch.Tensor]] = {}
    for t in tensors:
        by_kind.setdefault((t.device, t.dtype), []).append(t)
    for group in by_kind.values():
        bucket, size = [], 0
        for t in group:
            if bucket and limit is not None and size + t.numel() * t.element_size() > limit:
                yield bucket
                bucket, size = [], 0
            bucket.append(t)
            size += t.numel() * t.element_size()
        if bucket:
            yield bucket


def _broadcast_tensors(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite ``tensors`` in place with rank 0's values (one flat message per device and dtype)."""
    import torch.distributed as dist

    dev = _comm_device()
    with torch.no_grad():
        for group in _grouped(tensors, BUCKET_BYTES):
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            wire = flat.to(dev) if dev.type == "cuda" and flat.device != dev else flat
            dist.broadcast(wire, src=0)
            offset = 0
            for t in group:
                t.copy_(wire[offset:offset + t.numel()].view_as(t))
                offset += t.numel()


def _trained_parameters(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    """Every parameter that can get a gradient: the model's, then any other the optimiser holds, each
    once, in the same order on every process (all of them count in ``grad_clip``'s norm)."""
    seen: set[int] = set()
    out = []
    for p in [*model.parameters(), *(q for group in optimizer.param_groups for q in group["params"])]:
        if id(p) not in seen and p.requires_grad:
            seen.add(id(p))
            out.append(p)
    return out


def _state_tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Everything that must be equal on every process: the model's parameters and buffers and any
    optimised tensor outside the model."""
    own = list(model.parameters())
    ids = {id(p) for p in own}
    extra = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in ids]
    return own + list({id(p): p for p in extra}.values()) + list(model.buffers())


def _combine_gradients(params: Sequence[nn.Parameter], weight: float, loss: float) -> float:
    """Make every process's gradients the item-weighted sum of all processes' gradients.

    ``weight`` = this process's items / the global batch's items; returns the global batch's loss
    (the same weighting of each process's loss). A parameter with a gradient on some process gets a
    zero one where it has none; one without a gradient anywhere keeps none (the optimiser skips it,
    as it would in one process).
    """
    import torch.distributed as dist

    head = torch.tensor([loss * weight] + [float(p.grad is not None) for p in params], dtype=torch.float64,
                        device=_comm_device())
    dist.all_reduce(head)
    grads = []
    for p, present in zip(params, (head[1:] > 0).tolist()):
        if not present:
            p.grad = None
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        if p.grad.is_sparse:
            raise FgrError("multi-process training does not support sparse gradients (nn.Embedding(sparse=True))")
        grads.append(p.grad)
    for bucket in _grouped(grads, BUCKET_BYTES):
        flat = torch.cat([g.reshape(-1) for g in bucket]).mul_(weight)
        dist.all_reduce(flat)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
    return float(head[0])


def _broadcast_object(obj: Any) -> Any:
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _check_same_resume(resumed_from: int | None, where: Path | None) -> None:
    """Stop (on every process) when the processes would resume from different epochs."""
    import torch.distributed as dist

    seen: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(seen, resumed_from)
    if len(set(seen)) > 1:
        epochs = ", ".join(f"rank {r}: {'epoch ' + str(e) if e is not None else 'from scratch'}"
                           for r, e in enumerate(seen))
        raise FgrError(f"the processes disagree on resuming from {where / 'last.pt' if where else 'a checkpoint'} "
                       f"({epochs}): every process must see the same run folder (a shared filesystem on "
                       "multi-node runs) and the same code")


# --------------------------------------------------------------------------------------------
# Sharding a global batch
# --------------------------------------------------------------------------------------------

_PLAIN = (str, bytes, int, float, bool, Path, type(None))


def _is_sequence_leaf(x: Any) -> bool:
    """A list or tuple of plain items (paths, names, numbers) is one leaf along the batch."""
    return isinstance(x, (list, tuple)) and not hasattr(x, "_fields") and len(x) > 0 and all(
        isinstance(v, _PLAIN) for v in x)


def _leading_sizes(batch: Any) -> list[int]:
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return [int(batch.shape[0])] if batch.ndim > 0 else []
    if _is_sequence_leaf(batch):
        return [len(batch)]
    if isinstance(batch, dict):
        return [n for v in batch.values() for n in _leading_sizes(v)]
    if isinstance(batch, (list, tuple)):
        return [n for v in batch for n in _leading_sizes(v)]
    return []


def batch_items(batch: Any) -> int:
    """The number of items in a collated batch: the smallest leading size of its tensors, arrays and
    lists of plain values (a leaf may hold k stacked blocks of the items, e.g. anchors, positives,
    negatives one after the other)."""
    sizes = _leading_sizes(batch)
    if not sizes:
        raise FgrError(f"cannot split a batch of type {type(batch).__name__} between processes: "
                       "it holds no tensor, array or list with a batch dimension")
    return min(sizes)


def _bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous share of ``n`` items for ``rank`` (the first n % world ranks take one more)."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _take(x: Any, n: int, lo: int, hi: int) -> Any:
    m = len(x)
    if m % n:
        raise FgrError(f"cannot split a batch of {n} items between processes: one of its entries has "
                       f"{m} rows, not a multiple of {n} (every entry must lead with the batch dimension, "
                       "or with k stacked blocks of it)")
    k = m // n
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if k == 1:
            return x[lo:hi]
        part = x.reshape(k, n, *x.shape[1:])[:, lo:hi]
        return part.reshape(k * (hi - lo), *x.shape[1:])
    return type(x)(x[b * n + i] for b in range(k) for i in range(lo, hi))


def _slice(batch: Any, n: int, lo: int, hi: int) -> Any:
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return _take(batch, n, lo, hi) if batch.ndim > 0 else batch
    if _is_sequence_leaf(batch):
        return _take(batch, n, lo, hi)
    if isinstance(batch, dict):
        return type(batch)((k, _slice(v, n, lo, hi)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_slice(v, n, lo, hi) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_slice(v, n, lo, hi) for v in batch)
    return batch  # anything else (a flag, a mode name) goes to every process unchanged


def shard(batch: Any, rank: int, world: int) -> Any:
    """Process ``rank``'s contiguous slice of a collated batch (of ``world`` processes).

    Tensors, arrays and lists of plain values are sliced along dim 0; dicts, lists and tuples of them
    are walked. A leaf of k x n rows (n = :func:`batch_items`) is read as k stacked blocks of the n
    items and sliced in every block, so a batch laid out as (anchors; positives; negatives) keeps that
    layout. Scalars and other objects are passed unchanged. The slices of ranks 0..world-1 put back
    together are the batch; with fewer items than processes the last slices are empty.
    """
    n = batch_items(batch)
    lo, hi = _bounds(n, rank, world)
    return _slice(batch, n, lo, hi) if n else batch


def _index_batches(loader: torch.utils.data.DataLoader) -> list[list[Any]] | None:
    """The item indices of each batch of a map-style loader whose batch order is fixed, else None."""
    from torch.utils.data import BatchSampler, DataLoader, IterableDataset, SequentialSampler

    if type(loader) is not DataLoader or isinstance(loader.dataset, IterableDataset) or loader.batch_sampler is None:
        return None
    sampler = loader.batch_sampler
    if isinstance(sampler, (list, tuple)) or (type(sampler) is BatchSampler
                                              and isinstance(sampler.sampler, SequentialSampler)):
        return [list(b) for b in sampler]
    return None  # a shuffling sampler: its order would cost extra draws; slice the collated batches


def _local_batches(batches: Iterable[Any], rank: int, world: int) -> Iterator[tuple[int, int, Any]]:
    """(global items, local items, local batch or None when empty) for each global batch."""
    plan = _index_batches(batches) if isinstance(batches, torch.utils.data.DataLoader) else None
    if plan is None:
        for batch in batches:
            n = batch_items(batch)
            lo, hi = _bounds(n, rank, world)
            yield n, hi - lo, (_slice(batch, n, lo, hi) if hi > lo else None)
        return
    bounds = [_bounds(len(b), rank, world) for b in plan]
    mine = [b[lo:hi] for b, (lo, hi) in zip(plan, bounds) if hi > lo]
    src = batches
    kwargs = dict(batch_sampler=mine, num_workers=src.num_workers, collate_fn=src.collate_fn,
                  pin_memory=src.pin_memory, timeout=src.timeout, worker_init_fn=src.worker_init_fn,
                  multiprocessing_context=src.multiprocessing_context, generator=src.generator,
                  prefetch_factor=src.prefetch_factor, persistent_workers=src.persistent_workers,
                  pin_memory_device=src.pin_memory_device)
    if hasattr(src, "in_order"):
        kwargs["in_order"] = src.in_order
    local = iter(torch.utils.data.DataLoader(src.dataset, **kwargs))
    for b, (lo, hi) in zip(plan, bounds):
        yield len(b), hi - lo, (next(local) if hi > lo else None)


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
    parallel = world > 1
    lead = rank == 0
    if parallel:
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
    if parallel:
        _check_same_resume(result.resumed_from, ckpt_dir)
        _broadcast_tensors(_state_tensors(model, optimizer))
        trained = _trained_parameters(model, optimizer)
        buffers = list(model.buffers())
    t0 = time.perf_counter()
    for epoch in range(start, epochs + 1):
        e0 = time.perf_counter()
        model.train()
        losses = []
        batches = make_batches(epoch)
        # (global items, local items, local batch); one process: every batch whole (item counts unused)
        steps = _local_batches(batches, rank, world) if parallel else ((1, 1, b) for b in batches)
        bar = tqdm(steps, total=len(batches) if hasattr(batches, "__len__") else None,
                   desc=f"epoch {epoch}/{epochs}", disable=not progress or not lead, leave=False)
        for n_global, n_local, batch in bar:
            optimizer.zero_grad(set_to_none=True)
            if buffers:
                _broadcast_tensors(buffers)
            value = 0.0
            if n_local:
                loss = train_step(batch)
                loss.backward()
                value = float(loss.detach())
            if parallel:
                value = _combine_gradients(trained, n_local / n_global if n_global else 0.0, value)
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
            _broadcast_tensors(buffers)  # every process ends the epoch with rank 0's statistics
        if evaluate is not None and lead:
            model.eval()
            with torch.no_grad():
                row.update(evaluate(epoch))
        row["seconds"] = round(time.perf_counter() - e0, 3)
        if parallel:
            row = _broadcast_object(row)  # rank 0's evaluation: the same best epoch everywhere
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
    if parallel:  # rank 0's (restored) weights everywhere; also waits for its last checkpoint write
        _broadcast_tensors(_state_tensors(model, optimizer))
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


# --------------------------------------------------------------------------------------------
# The torchrun entry
# --------------------------------------------------------------------------------------------

def _run_parser() -> argparse.ArgumentParser:
    """``fgr run``'s arguments, named for this entry."""
    from fgr_utils import cli

    return cli.add_run_arguments(argparse.ArgumentParser(
        prog="torchrun [--nproc_per_node N ...] -m fgr_utils.train",
        description="Execute one notebook in every process of a torchrun job: its training is data-parallel, "
                    "rank 0 writes the run folder. The options are fgr run's."))


def main(argv: list[str] | None = None) -> int:
    """``torchrun --nproc_per_node N -m fgr_utils.train NOTEBOOK [-p KEY=VALUE ...] [--profile P] ...``

    Every process plans the same runs as ``fgr run`` and executes the notebook through papermill; the
    kernel inherits torchrun's environment, so :func:`fit` trains data-parallel. Rank 0 produces the
    run folder (executed notebook, run.json, metrics.json, figures, checkpoints); rank N executes
    into ``<run>/rank<N>/`` and writes nothing else there. Without torchrun it is ``fgr run``.
    """
    from fgr_utils import cli, runner

    args = _run_parser().parse_args(argv)
    rank = 0
    try:
        rank, world = distributed()
        nb = runner.find_notebook(args.notebook)
        runs = runner.plan_runs(nb, args.profile, cli.parse_overrides(args.param or []), args.variant, args.name)
        runner.assign_fingerprints(runs)
        for i, run in enumerate(runs):
            if rank == 0:
                how = f"{run.profile} profile" + (f", {world} processes" if world > 1 else "")
                print(f"{run.name}: running {nb.stem} ({how}) -> {run.output}", flush=True)
            with runner._env({SESSION_ENV: f"fgr/{i}/{run.name}"}):
                seconds = runner.execute(run, progress=not args.no_progress and rank == 0, rank=rank)
            if rank == 0:
                print(f"{run.name}: done in {seconds:.1f} s", flush=True)
        return 0
    except runner.NotebookFailed as e:  # this process's kernel failed: every rank says so
        print(f"fgr: {e}" if rank == 0 else f"fgr (rank {rank}): {e}", file=sys.stderr)
        return 1
    except FgrError as e:  # planning fails alike in every process: rank 0 says it once
        if rank == 0:
            print(f"fgr: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fgr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
