"""Attention maps of a timm ViT and the two "mean attention distance" metrics.

:func:`capture_attention` records every block's post-softmax attention ``[B, H, N, N]`` with
forward hooks: each timm ``Attention`` is switched to its explicit (non-fused) path for the call,
and the input of its ``attn_drop`` — the softmax of q·kᵀ·scale — is kept. Nothing about the model
changes afterwards.

:func:`mean_attention_distance` has two modes, which measure different things and must not be
compared with each other (``shared/reference/fgsbir_arnet.md`` §9):

* ``"pixel_euclidean"`` — the ViT papers' metric (Dosovitskiy et al. App. D.7; Raghu et al.): the
  class token's rows and columns are dropped, each patch attends over the others at pixel distance
  ``patch · ‖p_i − p_j‖₂``; one value per head, averaged over query patches and images. After the
  class column is dropped the rows no longer sum to 1: ``renormalise=True`` (default) rescales them,
  ``False`` keeps the raw weights (as the keras-io probing example does). Uniform attention over a
  14 x 14 grid of 16-px patches gives 116.49 px renormalised (about 115.9 px without).
* ``"token_index_arnet"`` — what ARNet plots: ``Σ_{b,i,j} A[b,h,i,j]·|i − j| / (B·N)`` with the class
  token kept, a 1-D distance between token indices. Uniform attention over 197 tokens gives
  ``(N² − 1) / (3N)`` = 65.66.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fgr_utils.errors import FgrError

MODES = ("pixel_euclidean", "token_index_arnet")


@contextlib.contextmanager
def capture_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, forward passes of ``model`` append each block's attention to the yielded list.

    Works for any module holding timm ``Attention`` layers (``qkv``, ``attn_drop``, ``fused_attn``).
    """
    layers = [m for m in model.modules() if hasattr(m, "fused_attn") and hasattr(m, "attn_drop")]
    if not layers:
        raise FgrError("capture_attention: the model has no timm Attention layers")
    maps: list[torch.Tensor] = []
    fused = [m.fused_attn for m in layers]
    hooks = [m.attn_drop.register_forward_hook(lambda _m, inputs, _out: maps.append(inputs[0].detach()))
             for m in layers]
    for m in layers:
        m.fused_attn = False
    try:
        yield maps
    finally:
        for m, f in zip(layers, fused):
            m.fused_attn = f
        for h in hooks:
            h.remove()


def _grid_distances(grid: tuple[int, int], patch: float) -> np.ndarray:
    rows, cols = np.divmod(np.arange(grid[0] * grid[1]), grid[1])
    pos = np.stack([rows, cols], axis=1).astype(np.float64)
    return patch * np.linalg.norm(pos[:, None] - pos[None], axis=-1)


def _as_attention(attn) -> np.ndarray:
    a = attn.detach().cpu().double().numpy() if isinstance(attn, torch.Tensor) else np.asarray(attn, np.float64)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise FgrError(f"attention must be [B, H, N, N], got shape {tuple(a.shape)}")
    return a


def mean_attention_distance(attn, *, mode: str, grid: tuple[int, int] | None = None, patch: float = 16,
                            prefix_tokens: int = 1, renormalise: bool = True, per_image: bool = False) -> np.ndarray:
    """One layer's attention ``[B, H, N, N]`` -> the mean distance per head ``(H,)`` (``per_image``:
    per image and head, ``(B, H)``, whose mean over images is the former).

    ``pixel_euclidean`` needs ``grid`` (patch rows, cols) and ``patch`` (pixels per patch) and drops
    the first ``prefix_tokens`` tokens; ``token_index_arnet`` uses every token.
    """
    a = _as_attention(attn)
    if mode == "token_index_arnet":
        n = a.shape[-1]
        idx = np.arange(n)
        dist = np.abs(idx[:, None] - idx[None])
        per = np.einsum("bhij,ij->bh", a, dist) / n
        return per if per_image else per.mean(axis=0)
    if mode != "pixel_euclidean":
        raise FgrError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if grid is None:
        raise FgrError("pixel_euclidean needs grid=(rows, cols) of the patch tokens")
    a = a[:, :, prefix_tokens:, prefix_tokens:]
    if a.shape[-1] != grid[0] * grid[1]:
        raise FgrError(f"{a.shape[-1]} patch tokens after dropping {prefix_tokens} prefix token(s), "
                       f"but grid {grid} has {grid[0] * grid[1]}")
    if renormalise:
        a = a / np.maximum(a.sum(-1, keepdims=True), 1e-12)
    per_query = np.einsum("bhij,ij->bhi", a, _grid_distances(grid, patch))
    return per_query.mean(axis=2) if per_image else per_query.mean(axis=(0, 2))


def distance_from_uniform(attn) -> np.ndarray:
    """How far one layer's attention ``[B, H, N, N]`` is from uniform, per image and head ``(B, H)``:
    the total-variation distance ``½ Σ_j |A_ij − 1/N|`` of each query token's row from uniform
    attention, averaged over the query tokens. 0: uniform; towards 1: all weight on one token. (The
    mean attention distance can sit at its uniform value while the attention is far from uniform.)"""
    a = _as_attention(attn)
    return 0.5 * np.abs(a - 1.0 / a.shape[-1]).sum(axis=-1).mean(axis=-1)


@dataclass
class AttentionProbe:
    """What :func:`probe_attention` measured over a set of images, per layer."""

    distance: dict[str, list[np.ndarray]]  # mode -> per layer, (images, heads) mean attention distances
    from_uniform: list[np.ndarray]  # per layer, (images, heads) :func:`distance_from_uniform`
    uniform: dict[str, float]  # mode -> the distance uniform attention gives

    def per_head(self, mode: str) -> list[np.ndarray]:
        """Per layer, each head's distance averaged over the images (what the figures plot)."""
        return [d.mean(axis=0) for d in self.distance[mode]]


def probe_attention(backbone: nn.Module, batches, *, patch: float) -> AttentionProbe:
    """Run ``backbone`` (a timm ViT with ``grid`` and ``num_prefix_tokens``) over ``batches`` of input
    tensors and measure every layer's attention under both distance metrics and against uniform."""
    kw = {"grid": backbone.grid, "patch": patch, "prefix_tokens": backbone.num_prefix_tokens}
    rows = []  # per batch, per layer: ({mode: (B, H) distances}, (B, H) distance from uniform)
    with torch.no_grad():
        for x in batches:
            with capture_attention(backbone) as maps:
                backbone(x)
            rows.append([({m: mean_attention_distance(a, mode=m, per_image=True, **kw) for m in MODES},
                          distance_from_uniform(a)) for a in maps])
            n_tokens = maps[0].shape[-1]
    if not rows:
        raise FgrError("probe_attention: no images")
    layers = range(len(rows[0]))
    flat = torch.full((1, 1, n_tokens, n_tokens), 1.0 / n_tokens)
    uniform = {m: float(mean_attention_distance(flat, mode=m, **kw)[0]) for m in MODES}
    return AttentionProbe({m: [np.concatenate([r[li][0][m] for r in rows]) for li in layers] for m in MODES},
                          [np.concatenate([r[li][1] for r in rows]) for li in layers], uniform)


def token_similarity_variance(tokens: torch.Tensor) -> tuple[np.ndarray, float]:
    """The cosine-similarity matrix of one image's tokens ``[N, D]`` and the variance of its entries.

    ARNet's measure of token diversity (the figure that motivates MSTR): higher variance = patch
    tokens less alike.
    """
    t = torch.nn.functional.normalize(tokens.detach().float(), dim=-1)
    sim = (t @ t.T).cpu().numpy()
    return sim, float(sim.var())
