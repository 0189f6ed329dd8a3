"""The tracks' wings: one package per paper family, each behind the contract of :mod:`fgr_utils.tracks.base`.

``fabric`` (printed-fabric sub-element retrieval with query-guided attention re-ranking), ``sbir``
(fine-grained sketch-based retrieval: ARNet), ``asfr`` (attribute-specific fashion retrieval:
ASENet_V2, AG-MAN, RPF). :func:`load` opens any finished training run as its track's
:class:`~fgr_utils.tracks.base.TrainedRun`; ``fgr serve``, ``fgr bench`` and the evaluation notebooks
reach trained models only through it.
"""
from __future__ import annotations

from fgr_utils.errors import FgrError
from fgr_utils.results import RunRecord
from fgr_utils.tracks.asfr import AsfrRun
from fgr_utils.tracks.base import TrainedRun
from fgr_utils.tracks.fabric import FabricRun
from fgr_utils.tracks.sbir import SbirRun

#: each training notebook's loader
TRAINED: dict[str, type[TrainedRun]] = {nb: cls for cls in (FabricRun, SbirRun, AsfrRun) for nb in cls.notebooks}


def load(run: RunRecord, *, device: str = "cpu", progress: bool = False) -> TrainedRun:
    """A finished training run of any track, loaded (data, trained model(s), preprocessing)."""
    cls = TRAINED.get(run.notebook)
    if cls is None:
        raise FgrError(f"{run.name} is a {run.notebook or 'unknown'} run; serve a run of {', '.join(TRAINED)}")
    return cls.load(run, device=device, progress=progress)
