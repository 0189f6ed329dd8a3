"""The one reader interface: what a loaded dataset is, and the one way to leave out unreadable images.

Every reader set (:class:`~fgr_utils.data.fabrics.FabricSet`, :class:`~fgr_utils.data.sketches.SketchSet`,
:class:`~fgr_utils.data.attributes.AttributeSet`, :class:`~fgr_utils.data.attributes.TripletLists`,
:class:`~fgr_utils.data.landmarks.LandmarkSet`) has the two methods of :class:`ImageSet`:

* ``image_paths()``: every image file it lists that a loader would read, each once, in a fixed order;
* ``without(bad)``: the set without the images of ``bad`` (path -> reason), by that reader's own rules
  (what else leaves with an image, renumbering, notes in ``problems``); the set itself when none of
  its images is in ``bad``. A set that cannot lose an image (the landmark protocols index every one)
  raises a one-line :class:`~fgr_utils.errors.FgrError` instead.

The readers check names and folders, never pixels; :func:`without_unreadable` decodes once, through
:func:`fgr_utils.data.images.unreadable_images` and its per-folder scan cache, and hands the verdicts
to every set's ``without``. A track's ``load_dataset`` returns a :class:`Dataset`: the set as read with
unreadable images left out, and what was left out (for ``run.skip_images``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from fgr_utils.data.images import unreadable_images

__all__ = ["Dataset", "ImageSet", "without_unreadable"]

T = TypeVar("T")
S = TypeVar("S", bound="ImageSet")


class ImageSet(Protocol):
    """What every reader set has: the images it lists, and itself without some of them."""

    def image_paths(self) -> list[Path]: ...

    def without(self: S, bad: Mapping[Path, str]) -> S: ...


@dataclass
class Dataset(Generic[T]):
    """What every track's ``load_dataset`` returns: one dataset as read, unreadable images left out."""

    name: str  # registry name, e.g. "sim-fabrics"
    root: Path  # the dataset folder (generated or installed)
    items: T  # what the reader read (FabricSet, SketchSet, LandmarkSet, a track's own view)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable images left out: (path, reason)


def without_unreadable(*sets: ImageSet, workers: int = 2) -> tuple[list, list[tuple[Path, str]]]:
    """The sets without every image that cannot be decoded, and the images left out.

    One scan (:func:`~fgr_utils.data.images.unreadable_images`, ``workers`` threads) covers the union of
    the sets' ``image_paths()``, in the order the sets are given; every set then gets the whole verdict
    through its ``without`` (it ignores the images it does not list). Returns the sets in the order
    given and the ``(path, reason)`` pairs left out, in scan order. A set that cannot lose an image
    raises from its ``without`` (e.g. :meth:`~fgr_utils.data.landmarks.LandmarkSet.without`).
    """
    bad = unreadable_images([p for s in sets for p in s.image_paths()], workers=workers)
    return [s.without(bad) for s in sets], list(bad.items())
