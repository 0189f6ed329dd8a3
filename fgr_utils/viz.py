"""Figures shared by every track: image grids (samples, retrieval results), curves."""
from __future__ import annotations

import os
from typing import Any, Sequence

import matplotlib

if not os.environ.get("DISPLAY") and "MPLBACKEND" not in os.environ and "ipykernel" not in matplotlib.get_backend():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

HIT = "#1a9850"
MISS = "#d73027"
QUERY = "#4575b4"


def _as_image(item: Any):
    from PIL import Image

    if isinstance(item, (str, os.PathLike)):
        from fgr_utils.data.images import load_rgb

        return load_rgb(item)
    if isinstance(item, Image.Image):
        return item
    return item  # a numpy array


def image_grid(images: Sequence[Any], *, titles: Sequence[str] | None = None,
               boxes: Sequence[tuple[float, float, float, float] | None] | None = None,
               frames: Sequence[str | None] | None = None, ncols: int = 6, cell: float = 1.9,
               suptitle: str | None = None):
    """A grid of images (paths, PIL images or arrays) with optional titles, boxes and coloured frames.

    ``boxes`` draws an (x1, y1, x2, y2) rectangle on an image (a query's region of interest);
    ``frames`` colours the border of an image (``HIT`` green / ``MISS`` red in retrieval grids).
    """
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    for i, item in enumerate(images):
        ax = axes.flat[i]
        img = _as_image(item)
        ax.imshow(img, cmap="gray" if getattr(img, "mode", "") == "L" else None)
        if titles is not None and titles[i]:
            ax.set_title(titles[i], fontsize=7)
        if boxes is not None and boxes[i] is not None:
            x1, y1, x2, y2 = boxes[i]
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=QUERY, linewidth=1.5))
        if frames is not None and frames[i]:
            for s in ax.spines.values():
                s.set_visible(True)
                s.set_edgecolor(frames[i])
                s.set_linewidth(3)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def training_curves(history: Sequence[dict], keys: Sequence[str], *, title: str = ""):
    """One panel per key (loss, validation metrics...) against the epoch."""
    keys = [k for k in keys if any(k in row for row in history)]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.6 * max(1, len(keys)), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        rows = [row for row in history if key in row]
        ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def retrieval_grid(queries: Sequence[Any], results: Sequence[Sequence[Any]], hits: Sequence[Sequence[bool]], *,
                   query_titles: Sequence[str] | None = None, cell: float = 1.3, suptitle: str | None = None):
    """One row per query: the query (blue frame) then its ranked results, hits green, misses red."""
    n = len(queries)
    k = max(len(r) for r in results)
    fig, axes = plt.subplots(n, k + 1, figsize=(cell * (k + 1), cell * n + (0.4 if suptitle else 0)), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    for i in range(n):
        row = [(queries[i], QUERY, query_titles[i] if query_titles else "query")]
        row += [(img, HIT if hit else MISS, f"{j + 1}") for j, (img, hit) in enumerate(zip(results[i], hits[i]))]
        for ax, (img, colour, title) in zip(axes[i], row):
            ax.imshow(_as_image(img))
            ax.set_title(title, fontsize=7)
            for s in ax.spines.values():
                s.set_visible(True)
                s.set_edgecolor(colour)
                s.set_linewidth(2.5)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def attention_overlays(images: Sequence[Any], maps: Sequence[Any], grid: tuple[int, int], *,
                       titles: Sequence[str] | None = None, query: Any = None, cell: float = 1.6,
                       suptitle: str | None = None):
    """Attention maps (one weight per patch token) upsampled over their images; the query first."""
    import numpy as np

    items = ([(query, None, "query")] if query is not None else []) + [
        (img, m, titles[i] if titles else "") for i, (img, m) in enumerate(zip(images, maps))]
    fig, axes = plt.subplots(1, len(items), figsize=(cell * len(items), cell + 0.4), squeeze=False)
    for ax, (img, m, title) in zip(axes[0], items):
        pil = _as_image(img)
        ax.imshow(pil)
        if m is not None:
            w, h = getattr(pil, "size", (None, None))
            heat = np.asarray(m, dtype=float).reshape(grid)
            ax.imshow(heat, cmap="magma", alpha=0.55, extent=(0, w, h, 0) if w else None, interpolation="bilinear")
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig
