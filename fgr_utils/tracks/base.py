"""The contract every track implements: a finished training run, loaded and ready to embed.

A track's wing (``fgr_utils.tracks.<fabric|sbir|asfr>``) holds its models, data adapter, training,
evaluation and figures. What the shared machinery needs from it is one class, a subclass of
:class:`TrainedRun`:

* **build from a run's parameters**: the wing's ``from_params`` functions map a notebook's parameter
  names onto its model and training settings, once; the training notebook, :meth:`TrainedRun.load`
  and ``fgr bench`` all build through them;
* **load a trained run**: :meth:`TrainedRun.load` takes a :class:`~fgr_utils.results.RunRecord`
  (which owns the run's checkpoints, parameters and upstream runs) and rebuilds data, model(s) and
  preprocessing as the run used them;
* **embed the collection and the queries**: :meth:`catalogue` and :meth:`embed`, the same function
  for both (``fgr serve`` and ``fgr bench index`` build their indexes from them);
* **evaluate**: :meth:`bench_sets` (the test queries with their relevant items, for any index) and
  :meth:`evaluate` (the run's test numbers, recomputed from its checkpoint);
* **browse**: :meth:`browser_inputs`, what :func:`fgr_utils.browser.retrieval_browser` shows.

:mod:`fgr_utils.tracks` maps each training notebook to its class; :mod:`fgr_utils.search` turns any
loaded run into a search engine over an index.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from PIL import Image
from torch import nn

from fgr_utils.data import images, registry, synth
from fgr_utils.data.reader import Dataset
from fgr_utils.embed import module_fingerprint
from fgr_utils.errors import FgrError
from fgr_utils.results import RunRecord


def dataset_names(*formats: str) -> tuple[str, ...]:
    """The datasets (generated stand-ins first) that the readers of ``formats`` read."""
    return tuple(name for f in formats for name in registry.names(format=f))


def check_dataset(name: str, formats: tuple[str, ...], *, what: str = "dataset") -> None:
    """Stop with the known names when no reader of ``formats`` reads dataset ``name``."""
    known = dataset_names(*formats)
    if name not in known:
        raise FgrError(f"{what} must be one of {', '.join(known)}, not {name!r}")


def dataset_root(name: str, formats: tuple[str, ...], size: str, seed: int, *, what: str = "dataset") -> Path:
    """The folder of dataset ``name``, read by a reader of ``formats``: the generated stand-in of
    ``size`` and ``seed``, or the real set as installed (one line naming the fix when it is missing)."""
    check_dataset(name, formats, what=what)
    return synth.require_synth(name, size, seed) if registry.is_synthetic(name) else registry.require(name)


def config_from(cls, params: dict[str, Any], **given: Any):
    """A ``cls`` dataclass from the notebook parameters of the same names, ``given`` taking precedence."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in params.items() if k in names}, **given})


@dataclass
class BenchSet:
    """One group's test queries for the index benchmark: query vectors, the database they search
    (rows of the group's collection), and each query's relevant database positions."""

    group: str
    queries: np.ndarray
    database: np.ndarray
    relevant: list[np.ndarray]


@dataclass
class Catalogue:
    """What a run serves: item ids and dataset-relative paths, and one (N, d) unit-vector matrix per
    group (an attribute, or ``"image"`` for tracks without attributes), plus settings such as RPF's β."""

    ids: list[str]
    paths: list[str]
    vectors: dict[str, np.ndarray]
    settings: dict[str, Any] = field(default_factory=dict)


class TrainedRun(abc.ABC):
    """A finished training run of a track, loaded: its data, model(s) and preprocessing."""

    #: the track's name, as in the notebooks' metadata
    track: ClassVar[str]
    #: the training notebooks whose runs this class loads
    notebooks: ClassVar[tuple[str, ...]]
    #: the track metrics :meth:`bench_sets` supports, by name
    bench_metrics: ClassVar[tuple[str, ...]] = ()
    #: whether the collection's groups are attributes a query must name
    attribute_specific: ClassVar[bool] = False

    def __init__(self, run: RunRecord, *, device: str = "cpu", progress: bool = False):
        if run.notebook not in self.notebooks:
            raise FgrError(f"{run.name} is a {run.notebook} run, not one of {', '.join(self.notebooks)}")
        self.run, self.params = run, run.params
        self.device, self.progress = device, progress
        #: how many first results :meth:`rerank` re-scores (0: the run cannot re-rank)
        self.rerank_depth = 0

    @classmethod
    def load(cls, run: RunRecord, *, device: str = "cpu", progress: bool = False) -> TrainedRun:
        """The run's data and trained model(s), in eval mode on ``device``."""
        return cls(run, device=device, progress=progress)

    #: set by a subclass while loading: the run's dataset, and the model that makes every vector
    loaded: Dataset
    model: nn.Module

    @property
    def dataset(self) -> str:
        """The dataset's registry name."""
        return self.loaded.name

    @property
    def root(self) -> Path:
        """The dataset folder the catalogue's paths are relative to."""
        return self.loaded.root

    @property
    def rgba_background(self) -> str:
        """How an uploaded query's transparent pixels are filled (as the run's preprocessing did)."""
        return "white"

    @property
    def model_name(self) -> str:
        return str(self.params.get("method") or self.params.get("backbone") or self.run.notebook)

    @property
    def can_rerank(self) -> bool:
        return self.rerank_depth > 0

    def model_hash(self) -> str:
        """A hash of every weight and setting that shapes a vector (names the served collection's file)."""
        return module_fingerprint(self.model)

    # -- what the track provides -----------------------------------------------------------------

    @abc.abstractmethod
    def catalogue(self) -> Catalogue:
        """The test collection, embedded."""

    @abc.abstractmethod
    def embed(self, img: Image.Image, groups: Sequence[str]) -> np.ndarray:
        """(len(groups), d) unit vectors of one decoded query image, one row per group."""

    @abc.abstractmethod
    def bench_sets(self, catalogue: Catalogue) -> list[BenchSet]:
        """The track's test queries per group, searching the rows of ``catalogue``."""

    @abc.abstractmethod
    def evaluate(self) -> dict[str, float]:
        """The run's test metrics recomputed from its checkpoint, named as in its metrics.json."""

    @abc.abstractmethod
    def browser_inputs(self, **options: Any) -> dict[str, Any]:
        """The keyword arguments of :func:`fgr_utils.browser.retrieval_browser` for the run's test queries."""

    def rerank(self, img: Image.Image, positions: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Re-score the first :attr:`rerank_depth` results of a search (runs that can)."""
        raise FgrError(f"{self.run.notebook} runs cannot re-rank: serve an 11_fabric_rerank run")

    def decode(self, data: bytes) -> Image.Image:
        """An uploaded query's bytes as the run's preprocessing reads a file."""
        return images.decode_rgb(data, rgba_background=self.rgba_background)
