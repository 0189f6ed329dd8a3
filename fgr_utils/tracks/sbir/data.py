"""The sketch track's data: A/B sketch sets, ARNet's input transforms, decoded images kept in memory."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fgr_utils.data import images, registry
from fgr_utils.data.reader import Dataset, without_unreadable
from fgr_utils.data.sketches import AB_FOLDERS, SketchSet, load_sketches
from fgr_utils.data.transforms import Preprocess
from fgr_utils.errors import FgrError
from fgr_utils.tracks.base import dataset_root


def load_dataset(dataset: str, size: str = "demo", seed: int = 0, *,
                 arnet_compat_single_digit: bool = False) -> Dataset[SketchSet]:
    """A generated stand-in, or a real set checked against its known counts.

    Images that cannot be decoded are then left out (an unreadable sketch leaves; an unreadable photo
    leaves the gallery with its sketches) and listed in ``.skipped`` for ``run.skip_images``. The
    counts are checked on the files as released, before that.
    """
    root = dataset_root(dataset, ("sketches",), size, seed)
    if registry.is_synthetic(dataset):
        sketches = load_sketches(root, arnet_compat_single_digit=arnet_compat_single_digit)
    else:
        sketches = load_sketches(root, name=AB_FOLDERS[dataset], arnet_compat_single_digit=arnet_compat_single_digit)
        if not arnet_compat_single_digit:
            sketches.check_counts(dataset)
    (sketches,), skipped = without_unreadable(sketches)
    return Dataset(dataset, root, sketches, skipped)


NORMALIZE = {"none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), "vit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
             "imagenet": (images.IMAGENET_MEAN, images.IMAGENET_STD)}


@dataclass(frozen=True)
class SbirInputs:
    """ARNet's three transforms at input size ``size`` (the paper: 224).

    anchor / eval: ``Resize((size, size))``; augmented view: ``Resize(size·268/224)`` ->
    ``RandomRotation(30)`` -> ``RandomHorizontalFlip(p=0.8)`` -> ``CenterCrop(size)`` (as released,
    the rotation fills with black). ``normalize``: ``none`` as released (the pretrained ViT expects
    normalised input), ``vit`` (mean = std = 0.5) or ``imagenet``.
    """

    size: int
    normalize: str = "none"

    def __post_init__(self):
        if self.normalize not in NORMALIZE:
            raise FgrError(f"normalize must be one of {', '.join(NORMALIZE)}, not {self.normalize!r}")

    @cached_property
    def pre(self) -> Preprocess:
        mean, std = NORMALIZE[self.normalize]
        return Preprocess(size=self.size, resize="squash", mean=mean, std=std)

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "normalize": self.normalize, "anchor": f"Resize(({self.size}, {self.size}))",
                "augmented": f"Resize({self.aug_size}) > RandomRotation(30) > RandomHorizontalFlip(0.8) > "
                             f"CenterCrop({self.size})"}

    @property
    def aug_size(self) -> int:
        return round(self.size * 268 / 224)

    def anchor(self, img: Image.Image) -> torch.Tensor:
        return self.pre.tensor(img)

    def augmented(self, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        s = self.aug_size
        img = img.resize((s, s), Image.Resampling.BICUBIC)
        img = img.rotate(float(rng.uniform(-30, 30)), resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0))
        if rng.random() < 0.8:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        left = (s - self.size) // 2
        img = img.crop((left, left, left + self.size, left + self.size))
        mean, std = NORMALIZE[self.normalize]
        return images.to_tensor(img, mean, std)


class ImageStore:
    """Decoded images of a set, kept in memory at the augmentation size (small sets: every epoch
    re-reads nothing from disk)."""

    def __init__(self, size: int):
        self.size = size
        self._images: dict[str, Image.Image] = {}

    def __call__(self, path: str | Path | Image.Image) -> Image.Image:
        """The image of ``path`` (kept), or an already decoded image (an upload: not kept), shrunk alike."""
        if isinstance(path, Image.Image):
            return self._shrink(path)
        key = str(path)
        img = self._images.get(key)
        if img is None:
            img = self._images[key] = self._shrink(images.load_rgb(path))
        return img

    def _shrink(self, img: Image.Image) -> Image.Image:
        if max(img.size) > self.size:
            img = img.resize((self.size, self.size), Image.Resampling.LANCZOS)
        return img
