"""Which process this is under torchrun, and joining the process group.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; outside it a process is rank 0 of 1.
The run record (:func:`fgr_utils.results.start_run`) joins the group once per notebook process and
the trainer (:mod:`fgr_utils.train`) combines gradients over it. torch is imported only when a
group is joined, so reading the rank stays cheap.
"""
from __future__ import annotations

import atexit
import os
from datetime import timedelta

from fgr_utils import io
from fgr_utils.errors import FgrError

SESSION_ENV = "FGR_DIST_SESSION"  # names one notebook execution's process group (a store prefix)
TIMEOUT_ENV = "FGR_DIST_TIMEOUT_MIN"  # minutes a process waits for the others (rank 0's evaluation)


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
    per notebook execution by ``python -m fgr_utils.train``), so kernels started one after another on
    the same torchrun store never read each other's keys.
    """
    rank, world = distributed()
    if world == 1:
        return device
    import torch
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
