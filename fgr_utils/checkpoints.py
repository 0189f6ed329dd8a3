"""Checkpoint files: written atomically and flushed to disk, read back or reported as absent.

A checkpoint is a ``torch.save`` payload (the trainer's ``last.pt`` and ``best.pt``). Writing goes to a
temporary name, is fsynced and renamed, so a crash never leaves a torn ``last.pt``; reading a torn or
unreadable file reports it in one line and returns None, as for a missing one. torch is imported when
a checkpoint is touched, so the run record (:mod:`fgr_utils.results`) can name checkpoints cheaply.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fgr_utils import io


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    import torch

    with io.atomic_path(path, suffix=".pt") as tmp:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash never leaves an empty last.pt


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None if absent or unreadable (a torn file is reported and skipped)."""
    import torch

    if not Path(path).exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is treated as absent
        print(f"fgr: ignoring unreadable checkpoint {path} ({io.one_line(e, 120)})")
        return None
