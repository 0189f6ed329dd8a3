"""Figures shared by every track: image grids (samples, retrieval results), curves, t-SNE, attention distance."""
from __future__ import annotations

import os
from typing import Any, Sequence

import matplotlib

if not os.environ.get("DISPLAY") and "MPLBACKEND" not in os.environ and "ipykernel" not in matplotlib.get_backend():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from fgr_utils.data.images import load_rgb  # noqa: E402

HIT = "#1a9850"
MISS = "#d73027"
QUERY = "#4575b4"


def _as_image(item: Any):
    from PIL import Image

    if isinstance(item, (str, os.PathLike)):
        return load_rgb(item)
    if isinstance(item, Image.Image):
        return item
    return item  # a numpy array


def image_grid(images: Sequence[Any], *, titles: Sequence[str] | None = None,
               boxes: Sequence[tuple[float, float, float, float] | None] | None = None,
               frames: Sequence[str | None] | None = None, ncols: int = 6, cell: float = 1.9,
               suptitle: str | None = None):
    """A grid of images (paths, PIL images or arrays; None leaves a cell empty) with optional titles,
    boxes and coloured frames.

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
        if item is None:  # an empty cell (rows of unequal length)
            continue
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


def spread(n_total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(n_total)``, first and last included: which queries a
    figure shows, so that it does not show only the first few."""
    import numpy as np

    return sorted({int(i) for i in np.linspace(0, n_total - 1, num=min(n, n_total))})


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


def joint_tsne(a, b, *, labels: Sequence[str] = ("sketch", "photo"), links: Sequence[tuple[int, int]] = (),
               thumbnails: dict[int, Any] | None = None, seed: int = 0, perplexity: float = 30.0,
               title: str = ""):
    """One 2-D t-SNE (PCA init, fixed seed) of two embedding sets, coloured by set; ``links`` are
    (row of ``a``, row of ``b``) pairs drawn as black lines; ``thumbnails`` maps rows of ``b`` to images."""
    import numpy as np
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    from sklearn.manifold import TSNE

    x = np.concatenate([a, b]).astype(np.float64)
    xy = TSNE(2, perplexity=min(perplexity, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(x)
    pa, pb = xy[:len(a)], xy[len(a):]
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    ax.scatter(pa[:, 0], pa[:, 1], s=9, c="#3b6fd4", label=labels[0], alpha=0.75)
    ax.scatter(pb[:, 0], pb[:, 1], s=9, c="#e377c2", label=labels[1], alpha=0.75)
    for i, j in links:
        ax.plot([pa[i, 0], pb[j, 0]], [pa[i, 1], pb[j, 1]], c="k", lw=0.7)
    for j, img in (thumbnails or {}).items():
        box = OffsetImage(np.asarray(_as_image(img).convert("RGB").resize((28, 28))), zoom=1.0)
        ax.add_artist(AnnotationBbox(box, pb[j], frameon=True, pad=0.1))
    ax.legend(fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def attention_distance_figure(per_layer: dict[str, Sequence[Sequence[float]]], *, metric: str, unit: str = "",
                              ylim: tuple[float, float] | None = None):
    """One panel per model: each head's mean attention distance (dots) and the heads' mean (line) per layer.

    ``per_layer[name]`` is a list over layers of per-head values.
    """
    import numpy as np

    fig, axes = plt.subplots(1, len(per_layer), figsize=(3.4 * len(per_layer), 3.0), squeeze=False, sharey=True)
    for ax, (name, layers) in zip(axes[0], per_layer.items()):
        for li, heads in enumerate(layers, start=1):
            ax.scatter([li] * len(heads), heads, s=10, alpha=0.7, c="#4575b4")
        means = [float(np.mean(h)) for h in layers]
        ax.plot(range(1, len(layers) + 1), means, c="#d73027", lw=1.2, label="mean over heads")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("layer")
        ax.set_xticks(range(1, len(layers) + 1))
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
    axes[0][0].set_ylabel(f"{metric}{f' ({unit})' if unit else ''}", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def similarity_heatmaps(matrices: Sequence[Any], titles: Sequence[str], *, suptitle: str | None = None):
    """Token-by-token cosine-similarity matrices side by side (one colour scale, -1 to 1)."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(2.8 * len(matrices), 2.9), squeeze=False)
    for ax, m, t in zip(axes[0], matrices, titles):
        im = ax.imshow(m, cmap="viridis", vmin=-1, vmax=1)
        ax.set_title(t, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), fraction=0.02)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def recall_qps(rows: Sequence[dict], *, title: str = "", k: int = 10):
    """Recall@k against queries per second (log scale), one line per index kind through its
    search-parameter sweep: up and to the right is better."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    for kind in kinds:
        pts = [r for r in rows if r["kind"] == kind]
        ax.plot([r["qps"] for r in pts], [r["recall"] for r in pts], marker="o", markersize=4, label=kind)
    ax.set_xscale("log")
    ax.set_xlabel("queries per second (log)")
    ax.set_ylabel(f"recall@{k}")
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
