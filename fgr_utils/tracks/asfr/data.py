"""The attribute track's data: one dataset under one protocol, every image in one list.

Two protocols (``asfr_rpf_agman.md`` §1): ``splits`` (ASEN split files: attribute-specific MAP over
query and candidate lists) and ``triplets`` (CSN triplet lists as Zappos50k: triplet accuracy).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fgr_utils.data import registry
from fgr_utils.data.attributes import (SPLITS, ZAPPOS_TRIPLETS, AttributeSet, TripletLists, load_attribute_set,
                                       load_triplet_lists, zappos_root)
from fgr_utils.data.reader import Dataset, without_unreadable
from fgr_utils.errors import DatasetMissing, FgrError
from fgr_utils.tracks.base import check_dataset, dataset_names, dataset_root

PROTOCOLS = ("splits", "triplets")
#: the dataset key in each real set's meta.json
META_NAMES = {"fashionai": "FashionAI", "deepfashion": "DeepFashion", "darn": "DARN"}


@dataclass
class AsfrData:
    """One dataset under one protocol, with every image in one list (``paths``).

    ``names``: the attributes (splits) or conditions (triplets), in index order. ``groups``: for
    ``splits`` the (attr -> value -> image indices) groups the sampler draws from. ``queries[split]``
    and ``candidates[split]``: (image, attr, value) rows (splits); ``triplets[split]``: the fixed
    (a, b, c, condition) lists (triplets). ``zappos``: triplet lists over the same images for a
    triplet accuracy (the synthetic set has them). Indices are positions in ``paths``.
    """

    protocol: str
    names: list[str]
    paths: list[Path]
    value_names: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    queries: dict[str, np.ndarray] = field(default_factory=dict)
    candidates: dict[str, np.ndarray] = field(default_factory=dict)
    triplets: dict[str, np.ndarray] = field(default_factory=dict)
    zappos: dict[str, np.ndarray] = field(default_factory=dict)  # triplets in ``paths`` indices, conditions as attrs
    zappos_conditions: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def n_attr(self) -> int:
        return len(self.names)

    def eval_split(self, which: str) -> str:
        return {"splits": {"valid": "valid", "test": "test"},
                "triplets": {"valid": "val", "test": "test"}}[self.protocol][which]

    def train_indices(self) -> np.ndarray:
        if self.protocol == "splits":
            return np.unique(np.concatenate([ids for vals in self.groups.values() for ids in vals.values()]))
        return np.unique(self.triplets["train"][:, :3])


def _from_attribute_set(attrs: AttributeSet, protocol: str) -> AsfrData:
    offsets, paths = {}, []
    for split in ("train", "valid", "test"):
        offsets[split] = len(paths)
        paths.extend(attrs.path(split, i) for i in range(len(attrs.filenames[split])))

    def lines(rows: np.ndarray, split: str) -> np.ndarray:
        out = rows.astype(np.int64).copy()
        out[:, 0] += offsets[split]
        return out

    groups = {a: {v: ids + offsets["train"] for v, ids in vals.items()} for a, vals in attrs.train_groups().items()}
    return AsfrData(protocol=protocol, names=list(attrs.attributes), paths=paths,
                    value_names={a: list(attrs.values[a]) for a in attrs.attributes}, groups=groups,
                    queries={s: lines(attrs.queries[s], s) for s in ("valid", "test")},
                    candidates={s: lines(attrs.candidates[s], s) for s in ("valid", "test")},
                    counts=attrs.counts())


def _attach_triplets(data: AsfrData, lists: TripletLists, *, as_training: bool) -> None:
    """Map a triplet list's file indices onto ``data.paths`` (adding images it does not have)."""
    where = {str(p): i for i, p in enumerate(data.paths)}
    index = np.empty(len(lists.filenames), dtype=np.int64)
    for i in range(len(lists.filenames)):
        key = str(lists.path(i))
        if key not in where:
            where[key] = len(data.paths)
            data.paths.append(Path(key))
        index[i] = where[key]
    mapped = {}
    for split, rows in lists.triplets.items():
        rows = np.asarray(rows, dtype=np.int64)
        mapped[split] = np.column_stack([index[rows[:, 0]], index[rows[:, 1]], index[rows[:, 2]], rows[:, 3]])
    if as_training:
        data.triplets, data.names = mapped, list(lists.conditions)
    else:
        data.zappos, data.zappos_conditions = mapped, list(lists.conditions)


def _require_images(attrs: AttributeSet, name: str) -> None:
    """Stop (one line) when an image the split files name is not on disk: the set is incomplete."""
    missing = [p for split in SPLITS for p in attrs.missing_images(split)]
    if missing:
        raise DatasetMissing(f"{name}: {len(missing)} image(s) named in the split files are not on disk (first: "
                             f"{missing[0]}); place them as `fgr data download {name}` says, then run "
                             f"`fgr data verify {name}`")


def load_dataset(dataset: str, size: str = "demo", seed: int = 0, *, protocol: str = "splits",
                 n_triplets: dict[str, int] | None = None) -> Dataset[AsfrData]:
    """The dataset under ``protocol``: a generated stand-in or a real set checked against its counts.

    An image the split files name that is not on disk stops the load (the set is incomplete). Images
    that cannot be decoded are left out: every split list, query, candidate, label and triplet that
    names one leaves with it, and they are listed in ``.skipped`` for ``run.skip_images``. Published
    counts are checked on the files as released, before that. (CSN's lists are not checked for missing
    images: those are left out and listed like unreadable ones.) The dataset's ``root`` is the folder
    its image paths are relative to.
    """
    if protocol not in PROTOCOLS:
        raise FgrError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    check_dataset(dataset, ("attributes", "triplets"))
    if registry.is_synthetic(dataset):
        root = dataset_root(dataset, ("attributes",), size, seed)
        attrs = load_attribute_set(root, dataset)
        _require_images(attrs, dataset)
        lists = load_triplet_lists(root / "zappos", root, n_triplets=n_triplets, seed=seed)
        (attrs, lists), skipped = without_unreadable(attrs, lists)
        data = _from_attribute_set(attrs, protocol)
        if protocol == "triplets":
            data.groups, data.queries, data.candidates = {}, {}, {}
        _attach_triplets(data, lists, as_training=protocol == "triplets")
        return Dataset(dataset, Path(attrs.root), data, skipped)
    if dataset in dataset_names("triplets"):
        if protocol != "triplets":
            raise FgrError(f"{dataset} is evaluated on CSN triplet lists: set protocol='triplets'")
        list_root, image_root = zappos_root()
        lists = load_triplet_lists(list_root, image_root, n_triplets=n_triplets or ZAPPOS_TRIPLETS, seed=seed)
        (lists,), skipped = without_unreadable(lists)
        data = AsfrData(protocol=protocol, names=[], paths=[])
        _attach_triplets(data, lists, as_training=True)
        return Dataset(dataset, Path(image_root), data, skipped)
    if dataset in dataset_names("attributes") and protocol != "splits":
        raise FgrError(f"{dataset} comes with ASEN split files: set protocol='splits'")
    root = dataset_root(dataset, ("attributes",), size, seed)
    attrs = load_attribute_set(root, META_NAMES[dataset])
    attrs.check_counts(dataset)
    _require_images(attrs, dataset)
    (attrs,), skipped = without_unreadable(attrs)
    return Dataset(dataset, Path(attrs.root), _from_attribute_set(attrs, protocol), skipped)
