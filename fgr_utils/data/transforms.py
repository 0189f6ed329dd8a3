"""Image -> tensor: the one input transform of every track, with every choice explicit so it can be logged.

:class:`Preprocess` is how an image file (or an uploaded image) becomes a network input: resized to
``size`` one of three ways, optionally mirrored, normalised. The fabric track letterboxes or squashes
(its release squashed), the sketch track squashes (ARNet's ``Resize((size, size))``), the attribute
track takes the papers' ``Resize(size) > CenterCrop(size)``. Its :meth:`Preprocess.describe` is
recorded next to the numbers and keys the feature caches.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fgr_utils.data import images
from fgr_utils.errors import FgrError


RESIZE = ("squash", "keep_aspect", "center_crop")


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes a network input.

    ``resize``: ``squash`` (exact square, aspect not kept: the released fabric code),
    ``keep_aspect`` (letterboxed onto the background colour) or ``center_crop`` (short side to
    ``size``, then the central ``size`` x ``size`` square: torchvision's ``Resize(size)`` >
    ``CenterCrop(size)``). ``mirror``: flipped left-right after resizing (a cached view of a training
    image's horizontal flip). ``rgba_background``: ``white``, ``black`` or ``raw`` (alpha dropped,
    stored RGB kept: the released fabric code's behaviour).
    """

    size: int = 224
    resize: str = "keep_aspect"
    rgba_background: str = "white"
    mean: tuple[float, float, float] = images.IMAGENET_MEAN
    std: tuple[float, float, float] = images.IMAGENET_STD
    mirror: bool = False

    def __post_init__(self):
        if self.resize not in RESIZE:
            raise FgrError(f"resize must be one of {', '.join(RESIZE)}, not {self.resize!r}")
        if self.rgba_background not in images.BACKGROUNDS:
            raise FgrError(f"rgba_background must be one of {', '.join(images.BACKGROUNDS)}, "
                           f"not {self.rgba_background!r}")

    def mirrored(self) -> Preprocess:
        """The same transform, flipped left-right."""
        return replace(self, mirror=True)

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.mirror:
            del d["mirror"]  # named only when it is set
        d["resample"] = "LANCZOS (shrink) / BICUBIC (enlarge)"
        return d

    def prepare(self, img: Image.Image) -> Image.Image:
        """Resize (and mirror) an already loaded RGB image to the network's input."""
        if self.resize == "center_crop":
            img = images.resize(img, self.size, "short_side")
            w, h = img.size
            left, top = (w - self.size) // 2, (h - self.size) // 2
            img = img.crop((left, top, left + self.size, top + self.size))
        else:
            background = "black" if self.rgba_background == "black" else "white"
            img = images.resize(img, self.size, self.resize, background=background)
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.mirror else img

    def load(self, path: str | Path | Image.Image) -> Image.Image:
        """The file at ``path`` (or an image already decoded, e.g. an upload) at the network's size."""
        return self.prepare(images.open_rgb(path, rgba_background=self.rgba_background))

    def tensor(self, img: Image.Image) -> torch.Tensor:
        """An already loaded RGB image -> normalised network input."""
        return images.to_tensor(self.prepare(img), self.mean, self.std)

    def __call__(self, path: str | Path | Image.Image) -> torch.Tensor:
        return images.to_tensor(self.load(path), self.mean, self.std)


class Augment:
    """Training augmentation of the fabric paper: horizontal flip (p = 0.5) and ColorJitter(0.1 x 4)."""

    def __init__(self, pre: Preprocess, *, flip: float = 0.5, jitter: float = 0.1):
        from torchvision.transforms import ColorJitter

        self.pre = pre
        self.flip = flip
        self.jitter = ColorJitter(jitter, jitter, jitter, jitter) if jitter > 0 else None

    def __call__(self, path: str | Path, rng: np.random.Generator) -> torch.Tensor:
        img = self.pre.load(path)
        if rng.random() < self.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.jitter is not None:
            # torchvision draws its jitter factors from torch's RNG: seed it from ours for reproducibility
            with torch.random.fork_rng():
                torch.manual_seed(int(rng.integers(2**31)))
                img = self.jitter(img)
        return images.to_tensor(img, self.pre.mean, self.pre.std)
