"""Data-parallel mechanics of :func:`fgr_utils.train.fit`: slicing a global batch between processes,
combining their gradients, sharing rank 0's state.

Every process draws the same global batches and takes its own contiguous slice of each
(:func:`local_batches`: a map-style ``DataLoader`` with a fixed batch order is re-made over the
process's share of each batch's indices, so each process loads only its items; any other iterable
is sliced after collation with :func:`shard`). After ``backward`` each process scales its gradient by
its share of the batch's items and the gradients are summed (:func:`combine_gradients`), which for a
loss that is a mean over items is the single-process update on the whole batch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from fgr_utils.errors import FgrError

BUCKET_BYTES = 25 * 2**20  # gradients are summed in buckets of about this size


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


def broadcast_tensors(tensors: Sequence[torch.Tensor]) -> None:
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


def trained_parameters(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    """Every parameter that can get a gradient: the model's, then any other the optimiser holds, each
    once, in the same order on every process (all of them count in ``grad_clip``'s norm)."""
    seen: set[int] = set()
    out = []
    for p in [*model.parameters(), *(q for group in optimizer.param_groups for q in group["params"])]:
        if id(p) not in seen and p.requires_grad:
            seen.add(id(p))
            out.append(p)
    return out


def state_tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Everything that must be equal on every process: the model's parameters and buffers and any
    optimised tensor outside the model."""
    own = list(model.parameters())
    ids = {id(p) for p in own}
    extra = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in ids]
    return own + list({id(p): p for p in extra}.values()) + list(model.buffers())


def combine_gradients(params: Sequence[nn.Parameter], weight: float, loss: float) -> float:
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


def broadcast_object(obj: Any) -> Any:
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_same_resume(resumed_from: int | None, where: Path | None) -> None:
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


def local_batches(batches: Iterable[Any], rank: int, world: int) -> Iterator[tuple[int, int, Any]]:
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
