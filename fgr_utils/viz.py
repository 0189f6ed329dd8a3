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
