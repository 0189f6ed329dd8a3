"""Pseudo-sketches: edge maps of a photo drawn as black lines on white.

Edge maps of the photos are the usual stand-in for sketches where no hand-drawn ones exist;
:func:`xdog` (eXtended Difference of Gaussians) and :func:`canny_sketch` (Canny edges) make them, so
that the designer sketches of :mod:`.render` can be compared with that stand-in. Both take a PIL image or an array (RGB
or grey, in [0, 1] or [0, 255]) and return a mode "L" image.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from fgr_utils.errors import FgrError

__all__ = ["to_grey", "xdog", "canny_sketch"]


def to_grey(image) -> np.ndarray:
    """The image as a grey float array in [0, 1] (Rec. 601 weights for RGB)."""
    a = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float64)
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114])
    if a.ndim != 2:
        raise FgrError("pseudo-sketch: expected an image (PIL, or an H x W or H x W x 3 array)")
    return a / 255.0 if a.max() > 1.0 else a


def xdog(image, sigma: float = 0.8, k: float = 1.6, p: float = 20.0, eps: float = 0.1, phi: float = 12.0) -> Image.Image:
    """eXtended Difference of Gaussians (Winnemoeller et al. 2012) of a photo: black lines on white ("L").

    ``D = (1 + p) * G_sigma * I - p * G_{k sigma} * I`` on the grey image in [0, 1]; the output is 1
    where ``D >= eps`` and ``1 + tanh(phi * (D - eps))`` elsewhere. A flat area keeps ``D = I``, so
    ``eps`` below the darkest fabric keeps fills white and only edges (where the sharpened image dips)
    turn dark; ``phi`` sets how hard the lines are.
    """
    if sigma <= 0 or k <= 1 or p < 0 or phi <= 0:
        raise FgrError("xdog: need sigma > 0, k > 1, p >= 0 and phi > 0")
    grey = to_grey(image)
    g1 = ndimage.gaussian_filter(grey, sigma, mode="nearest")
    g2 = ndimage.gaussian_filter(grey, k * sigma, mode="nearest")
    D = (1 + p) * g1 - p * g2
    out = np.where(D >= eps, 1.0, 1.0 + np.tanh(phi * (D - eps)))
    return Image.fromarray(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def canny_sketch(image, sigma: float = 1.0, low: float | None = None, high: float | None = None,
                 thickness: int = 1) -> Image.Image:
    """Canny edges of a photo (skimage.feature.canny), inverted to black lines on white ("L").

    ``thickness`` > 1 dilates the one-pixel edges, like a thicker pen.
    """
    from skimage.feature import canny

    if sigma <= 0 or thickness < 1:
        raise FgrError("canny_sketch: need sigma > 0 and thickness >= 1")
    edges = canny(to_grey(image), sigma=sigma, low_threshold=low, high_threshold=high)
    if thickness > 1:
        edges = ndimage.binary_dilation(edges, iterations=thickness - 1)
    return Image.fromarray(np.where(edges, 0, 255).astype(np.uint8), "L")

