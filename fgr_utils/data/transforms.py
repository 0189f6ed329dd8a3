"""Image -> tensor pipelines shared by the tracks, with every choice explicit so it can be logged."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fgr_utils.data import images
from fgr_utils.errors import FgrError


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes a network input.

    ``resize``: ``squash`` (exact square, aspect not kept: the released fabric code) or
    ``keep_aspect`` (letterboxed onto the background colour). ``rgba_background``: ``white``,
    ``black`` or ``raw`` (alpha dropped, stored RGB kept: the released code's behaviour).
    """

    size: int = 224
    resize: str = "keep_aspect"
    rgba_background: str = "white"
    mean: tuple[float, float, float] = images.IMAGENET_MEAN
    std: tuple[float, float, float] = images.IMAGENET_STD

    def __post_init__(self):
        if self.resize not in ("squash", "keep_aspect"):
            raise FgrError(f"resize must be 'squash' or 'keep_aspect', not {self.resize!r}")
        if self.rgba_background not in images.BACKGROUNDS:
            raise FgrError(f"rgba_background must be one of {', '.join(images.BACKGROUNDS)}, "
                           f"not {self.rgba_background!r}")

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["resample"] = "LANCZOS (shrink) / BICUBIC (enlarge)"
        return d

    def prepare(self, img: Image.Image) -> Image.Image:
        """Resize an already loaded RGB image to the network's input."""
        background = "black" if self.rgba_background == "black" else "white"
        return images.resize(img, self.size, self.resize, background=background)

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
