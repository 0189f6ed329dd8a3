"""The fabric track's data: printed-fabric sets and landmark sets, and how their images become inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from fgr_utils.data import registry
from fgr_utils.data.fabrics import FabricSet, load_fabrics
from fgr_utils.data.landmarks import LandmarkSet, load_landmarks
from fgr_utils.data.reader import Dataset, without_unreadable
from fgr_utils.data.transforms import Preprocess
from fgr_utils.tracks.base import dataset_root


def load_dataset(dataset: str, size: str = "demo", seed: int = 0) -> Dataset[FabricSet]:
    """The generated simulator set (``sim-fabrics``) or the real Kaggle set (``printed-fabrics``).

    Images that cannot be decoded are left out (the fabric leaves its split, the motif its query) and
    listed in ``.skipped`` for ``run.skip_images``. Every notebook loads through here, so on unchanged
    files stage 1's stored ranking and stage 2 index the same fabrics.
    """
    root = dataset_root(dataset, ("fabrics",), size, seed)
    (fs,), skipped = without_unreadable(load_fabrics(root))
    return Dataset(dataset, root, fs, skipped)


def load_landmark_set(name: str, size: str = "demo", seed: int = 0) -> Dataset[LandmarkSet]:
    """A landmark set checked whole: an unreadable image stops here with one line naming it (the
    protocol's ground truth indexes every image, so none can be left out as the other sets allow)."""
    root = dataset_root(name, ("landmarks",), size, seed, what="landmark set")
    ds = load_landmarks(root)
    synthetic = registry.is_synthetic(name)
    if not synthetic:
        ds.check_counts()
    ds.fix = (f"generate it again with `fgr data synth {name} --size {size} --seed {seed} --force`" if synthetic
              else f"re-download it with `fgr data download {name} --force`")
    (ds,), skipped = without_unreadable(ds)
    return Dataset(name, root, ds, skipped)


@dataclass(frozen=True)
class FabricInputs:
    """How fabric images and query motifs become network inputs (each a path -> tensor callable,
    normally a :class:`~fgr_utils.data.transforms.Preprocess`).

    The released code squashed both to 224 px, so a motif that covers a tenth of a fabric's width
    reaches the network ten times larger as a query than in the fabric. ``query_size`` below
    ``img_size`` shows the query near the scale it is printed at (the ViT resamples its position
    embedding for the smaller grid).
    """

    fabric: Callable[[Any], torch.Tensor]
    query: Callable[[Any], torch.Tensor]

    def describe(self) -> dict[str, Any]:
        return {"fabric": self.fabric.describe(), "query": self.query.describe()}


def fabric_inputs(img_size: int, query_size: int | None = None, *, resize: str = "keep_aspect",
                  rgba_background: str = "white") -> FabricInputs:
    """The same preprocessing for both sides; the query at ``query_size`` (None: ``img_size``, as released)."""
    return FabricInputs(fabric=Preprocess(size=img_size, resize=resize, rgba_background=rgba_background),
                        query=Preprocess(size=query_size or img_size, resize=resize, rgba_background=rgba_background))


def inputs_from_params(params: dict[str, Any]) -> FabricInputs:
    """The preprocessing a fabric run's parameters name (10_fabric_global, 11_fabric_rerank)."""
    return fabric_inputs(params["img_size"], params.get("query_size"), resize=params["resize"],
                         rgba_background=params["rgba_background"])
