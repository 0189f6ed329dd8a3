"""What the attribute track's trainable layers read: the trunk's stem outputs (cached when the stem is
frozen), and RPF's attention-guided crops for its patch branch.

Input transform (the papers'): ``Resize(size)`` (short side) > ``CenterCrop(size)`` > ImageNet
normalisation; training adds a horizontal flip (RPF's stage s2 does not).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image
from torch import nn

from fgr_utils.data import images
from fgr_utils.data.transforms import Preprocess
from fgr_utils.embed import StemCache
from fgr_utils.paths import runs_dir
from fgr_utils.tracks.asfr.heads import crop_boxes, to_original


def cache_dir(params: dict[str, Any]) -> Path | None:
    """Where a ``30_asfr_train`` run keeps a frozen stem's features: ``runs/cache/``, shared by every
    method's run (the key hashes only the frozen weights, the files and the transform), or nowhere."""
    return runs_dir() / "cache" if params.get("cache_stem", True) else None


def asfr_inputs(size: int) -> Preprocess:
    """The papers' transform at input size ``size``: Resize(size) > CenterCrop(size) > Normalize(ImageNet)."""
    return Preprocess(size=size, resize="center_crop")


class Features:
    """What the trainable part of a model reads for image ``i`` (and its mirror image).

    With a frozen stem: the stem's outputs of every image of ``paths`` and of the mirror images of
    ``flip_indices``, computed once (:class:`~fgr_utils.embed.StemCache`; on disk in ``cache_dir`` as
    float16, the key hashing the stem's weights, the files and the transform, so every method's run,
    whatever its trainable layers, shares it). Otherwise: the preprocessed image itself
    (``{"image": tensor}``), and the trunk's stem runs with the rest of the model.
    """

    def __init__(self, trunk, inputs: Preprocess, paths: Sequence[Path | Image.Image], *,
                 flip_indices: Sequence[int] = (), cache_dir: Path | None = None, device: str = "cpu",
                 batch_size: int = 32, progress: bool = True):
        self.inputs, self.device = inputs, device
        self.paths = [p if isinstance(p, Image.Image) else Path(p) for p in paths]  # or uploaded images
        self.cached = bool(getattr(trunk, "frozen_stem", False))
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.stems: StemCache | None = None
        if self.cached:
            self._build(trunk, sorted({int(i) for i in flip_indices}), cache_dir, batch_size, progress)

    def _build(self, trunk, flips: list[int], cache_dir: Path | None, batch_size: int, progress: bool) -> None:
        """The stem's maps of both views, flattened into one row per image (split back by :meth:`item`)."""
        trunk = trunk.to(self.device)
        frozen = [m for m in trunk.modules() if getattr(m, "always_frozen", False)]
        with torch.no_grad():
            self.shapes = {k: tuple(v.shape[1:]) for k, v in trunk.stem(self.image(0)[None].to(self.device)).items()}

        def encode(_, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([v.flatten(1) for v in trunk.stem(x).values()], dim=1)

        self.stems = StemCache(nn.ModuleList(frozen) if frozen else trunk, encode, device=self.device)
        view = dict(batch_size=batch_size, cache_dir=cache_dir, progress=progress)
        self.stems.fill([(False, i) for i in range(len(self.paths))], self.paths, self.inputs, name="asfr-stem", **view)
        if flips:
            self.stems.fill([(True, i) for i in flips], [self.paths[i] for i in flips], self.inputs.mirrored(),
                            name="asfr-stem-mirror", **view)

    def image(self, i: int, flip: bool = False) -> torch.Tensor:
        return (self.inputs.mirrored() if flip else self.inputs)(self.paths[i])

    def item(self, i: int, flip: bool = False) -> dict[str, torch.Tensor]:
        if not self.cached:
            return {"image": self.image(i, flip)}
        row = self.stems[(True, i) if flip and (True, i) in self.stems else (False, i)]
        sizes = [int(torch.Size(s).numel()) for s in self.shapes.values()]
        return {k: part.reshape(shape) for (k, shape), part in zip(self.shapes.items(), torch.split(row, sizes))}

    def batch(self, indices: Sequence[int], flips: Sequence[bool] | None = None) -> dict[str, torch.Tensor]:
        flips = flips if flips is not None else [False] * len(indices)
        items = [self.item(int(i), bool(f)) for i, f in zip(indices, flips)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def stem_outputs(self, trunk, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The stem's outputs for a batch from :meth:`batch` (runs the stem when nothing is cached)."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return batch if self.cached else trunk.stem(batch["image"])


class Crops:
    """RPF's patch-branch input: the attention-guided square crop of each image, re-encoded.

    The box comes from the region attention in the trunk's input frame; it is mapped back onto the
    original image (undoing Resize + CenterCrop), cut from it and resized to the patch backbone's
    size. With a frozen patch stem, the stem features of each (image, box) are kept, so an unmoved
    box costs nothing the next time.
    """

    def __init__(self, features: Features, backbone, *, threshold: float = 0.1, device: str = "cpu"):
        self.features, self.backbone, self.threshold, self.device = features, backbone, threshold, device
        self.size = int(backbone.img_size)
        self.pre = Preprocess(size=self.size, resize="squash", mean=features.inputs.mean, std=features.inputs.std)
        self.cached = backbone.frozen_stem is not None
        self.stems = StemCache(backbone, lambda bb, x: bb.stem_features(x), device=device) if self.cached else None
        self.hits = self.misses = 0

    def boxes(self, attention: torch.Tensor) -> list[tuple[int, int, int, int]]:
        return [tuple(int(x) for x in b) for b in crop_boxes(attention.detach().float().cpu(),
                                                             self.features.inputs.size, self.threshold)]

    def crop(self, i: int, box: tuple[int, int, int, int]) -> torch.Tensor:
        img = images.open_rgb(self.features.paths[i])
        return self.pre.tensor(img.crop(to_original(box, img.size, self.features.inputs.size)))

    def inputs(self, indices: Sequence[int], attention: torch.Tensor) -> torch.Tensor:
        """Patch-backbone input for a batch: crop stem features (frozen stem) or crop images."""
        boxes = self.boxes(attention)
        if not self.cached:
            return torch.stack([self.crop(int(i), b) for i, b in zip(indices, boxes)]).to(self.device)
        keys = [(int(i), b) for i, b in zip(indices, boxes)]
        todo = self.stems.missing(keys)
        if todo:
            self.stems.add(todo, torch.stack([self.crop(i, b) for i, b in todo]))
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        return self.stems.stack(keys).to(self.device)
