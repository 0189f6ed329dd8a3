"""Batched feature extraction with an on-disk cache keyed by model, data and preprocessing.

``extract(model, paths, preprocess, encode=...)`` runs the images through ``encode(model, batch)``
under ``torch.no_grad()`` in eval mode and returns one row per path (global vectors (N, D) or
token maps (N, T, D)). With ``cache_dir`` the result is stored as ``<name>-<key>.npy`` where the key
hashes the model's weights, the file list (with sizes and modification times), the preprocessing
and the caller's extra ``key``: a changed model or image set never reuses a stale cache. The file is
written under a temporary name and renamed; an unreadable or wrongly shaped cache is rebuilt.
:func:`extract_loop` is the released code's one-image-at-a-time loop, kept for the benchmark.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from fgr_utils import io
from fgr_utils.train import loader


def module_fingerprint(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _files_key(paths: Sequence[str | os.PathLike]) -> list:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


def cache_key(model: nn.Module, paths: Sequence, describe: dict, extra: dict | None) -> str:
    blob = json.dumps({"model": module_fingerprint(model), "files": _files_key(paths), "pre": describe,
                       "extra": extra or {}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class _Paths(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence, preprocess: Callable):
        self.paths, self.preprocess = list(paths), preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(self.paths[i])


def _describe(preprocess: Any) -> dict:
    return preprocess.describe() if hasattr(preprocess, "describe") else {"preprocess": repr(preprocess)}


def extract(model: nn.Module, paths: Sequence[Any], preprocess: Callable, *,
            encode: Callable[[nn.Module, torch.Tensor], torch.Tensor] = lambda m, x: m(x),
            batch_size: int = 4, device: str = "cpu", workers: int = 0, cache_dir: str | Path | None = None,
            name: str = "features", key: dict | None = None, dtype: str = "float32",
            progress: bool = True) -> np.ndarray:
    """Embed ``paths`` in batches; cached on disk when ``cache_dir`` is given.

    ``preprocess(item)`` turns each entry into a tensor, so without a cache the entries may be any
    items (e.g. query indices whose images are cropped first); the cache needs file paths.

    The default batch of 4 suits the demo backbone's depthwise convolutions on a CPU (larger
    batches fall out of cache); on a GPU pass a larger one.
    """
    if not paths:
        raise ValueError("extract() needs at least one path")
    run = dict(model=model, paths=paths, preprocess=preprocess, encode=encode, batch_size=batch_size,
               device=device, workers=workers, name=name, dtype=dtype, progress=progress)
    if cache_dir is None:
        return _compute(**run, allocate=lambda shape: np.empty(shape, dtype=dtype))
    cache = Path(cache_dir) / f"{name}-{cache_key(model, paths, _describe(preprocess), key)}.npy"
    if cache.exists():
        try:
            arr = np.load(cache, mmap_mode="r")
            if arr.shape[0] == len(paths):
                return arr
        except (ValueError, OSError, EOFError):  # EOFError: a zero-byte file
            pass
        print(f"fgr: cache {cache.name} is unreadable or incomplete; rebuilding it")
    with io.atomic_path(cache, suffix=".npy") as tmp:
        arr = _compute(**run, allocate=lambda shape: np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype,
                                                                                shape=shape))
        arr.flush()
        del arr
    return np.load(cache, mmap_mode="r")


def _compute(*, model, paths, preprocess, encode, batch_size, device, workers, name, dtype, progress,
             allocate: Callable[[tuple], np.ndarray]) -> np.ndarray:
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    row = 0
    try:
        with torch.no_grad():
            for batch in tqdm(loader(_Paths(paths, preprocess), batch_size, workers=workers),
                              desc=f"extract {name}", disable=not progress, leave=False):
                feats = encode(model, batch.to(device)).float().cpu().numpy().astype(dtype, copy=False)
                if out is None:
                    out = allocate((len(paths),) + feats.shape[1:])
                out[row:row + len(feats)] = feats
                row += len(feats)
    finally:
        model.train(was_training)
    return out


def extract_loop(model: nn.Module, paths: Sequence[str | os.PathLike], preprocess: Callable, *,
                 encode: Callable[[nn.Module, torch.Tensor], torch.Tensor] = lambda m, x: m(x),
                 device: str = "cpu") -> np.ndarray:
    """The released approach: one image at a time through the network (benchmark baseline)."""
    model.eval()
    rows = []
    with torch.no_grad():
        for p in paths:
            rows.append(encode(model, preprocess(p)[None].to(device)).float().cpu().numpy()[0])
    return np.stack(rows)


class StemCache:
    """A frozen network's outputs for a set of inputs, computed once and kept in memory as float16.

    With a backbone whose lower part is a frozen pretrained network, that part's output for an input
    never changes during training: computing it once makes an epoch cost only the trainable layers.
    Rows are keyed by whatever names an input: ``(view, path)`` for the image and its mirror or
    augmented draws, an image index, ``(image, box)`` for a crop. :meth:`fill` computes the keys not
    held yet through :func:`extract` (batched, eval mode, no gradients; kept on disk under
    ``cache_dir`` when the inputs are files); :meth:`add` stores a batch made elsewhere. Every track's
    stem cache is this one.
    """

    def __init__(self, module: nn.Module, encode: Callable[[nn.Module, torch.Tensor], torch.Tensor], *,
                 device: str = "cpu"):
        self.module, self.encode, self.device = module, encode, device
        self._rows: dict[Any, torch.Tensor] = {}

    def __contains__(self, key: Any) -> bool:
        return key in self._rows

    def fill(self, keys: Sequence[Any], items: Sequence[Any], preprocess: Callable, *, batch_size: int | None = None,
             cache_dir: str | Path | None = None, name: str = "stem", progress: bool = False) -> int:
        """Compute the rows of ``keys`` not held yet (``preprocess(item)`` is the network input of the
        key's ``item``), in batches of ``batch_size`` (default: all at once); returns how many were computed."""
        todo = {k: it for k, it in zip(keys, items) if k not in self._rows}
        if not todo:
            return 0
        rows = extract(self.module, list(todo.values()), preprocess, encode=self.encode,
                       batch_size=batch_size or len(todo), device=self.device, cache_dir=cache_dir, name=name,
                       dtype="float16", progress=progress)
        self._rows.update(zip(todo, torch.from_numpy(np.array(rows))))
        return len(todo)

    def missing(self, keys: Sequence[Any]) -> list[Any]:
        """The keys (each once, in order) whose rows are not held yet."""
        return [k for k in dict.fromkeys(keys) if k not in self._rows]

    def add(self, keys: Sequence[Any], batch: torch.Tensor) -> None:
        """Store the rows of ``keys`` from one forward pass over ``batch``, their inputs already stacked
        (inputs made during a training step, such as crops cut where the attention is: no data loader,
        so nothing is drawn from the random number generators the training uses)."""
        with torch.no_grad():
            rows = self.encode(self.module, batch.to(self.device)).to(torch.float16).cpu()
        self._rows.update(zip(keys, rows))

    def __getitem__(self, key: Any) -> torch.Tensor:
        """The row of ``key`` as float32."""
        return self._rows[key].float()

    def stack(self, keys: Sequence[Any]) -> torch.Tensor:
        """The rows of ``keys`` stacked (float32)."""
        return torch.stack([self._rows[k].float() for k in keys])
