"""A finished ``30_asfr_train`` run, loaded: a query names one or more attributes.

The catalogue is the test split's candidate images, each embedded under **every** attribute (one
collection per attribute, ``asfr_rpf_agman.md`` §6 rule 1). The model is the checkpoint the run's
validation selected (RPF: stage s2's), built without pretrained weights, so the trained checkpoint is
the only source of every weight.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from fgr_utils.errors import FgrError
from fgr_utils.results import RunRecord
from fgr_utils.tracks.asfr.data import load_dataset
from fgr_utils.tracks.asfr.evaluate import embed, evaluate_split, zappos_metrics
from fgr_utils.tracks.asfr.features import Crops, Features, asfr_inputs, cache_dir
from fgr_utils.tracks.asfr.figures import attention_figure, browser_inputs
from fgr_utils.tracks.asfr.models import ModelConfig, build
from fgr_utils.tracks.base import BenchSet, Catalogue, TrainedRun


def trained_model(run: RunRecord, n_attr: int):
    """The selected model of a finished ``30_asfr_train`` run (RPF: stage s2's best), in eval mode."""
    model = build(ModelConfig.from_params(run.params, n_attr, trained=True))
    model.load_state_dict(run.checkpoint("s2" if run.params["method"] == "rpf" else "")["model"])
    return model.eval()


class AsfrRun(TrainedRun):
    track = "asfr"
    notebooks = ("30_asfr_train",)
    bench_metrics = ("map/weighted", "map/macro")
    attribute_specific = True

    def __init__(self, run: RunRecord, *, device: str = "cpu", progress: bool = False):
        super().__init__(run, device=device, progress=progress)
        p = self.params
        self.loaded = load_dataset(p["dataset"], p["size"], p["data_seed"], protocol=p["protocol"])
        self.data = self.loaded.items
        self.model = trained_model(run, self.data.n_attr).to(device)
        self.inputs = asfr_inputs(p["img_size"])
        self.beta = float(p["beta"]) if p["method"] == "rpf" else None

    @cached_property
    def features(self) -> Features:
        """The stem features of every image, from the cache the training run wrote."""
        return Features(self.model.trunk, self.inputs, self.data.paths, cache_dir=cache_dir(self.params),
                        device=self.device, progress=self.progress)

    @cached_property
    def crops(self) -> Crops | None:
        """RPF's crops of :attr:`features` (their stem features kept while the run is loaded)."""
        return self._crops(self.features)

    def _crops(self, features: Features) -> Crops | None:
        if self.beta is None:
            return None
        return Crops(features, self.model.patch_backbone, threshold=self.params["crop_threshold"], device=self.device)

    def model_hash(self) -> str:
        return super().model_hash() + (f":beta={self.beta}" if self.beta is not None else "")

    def _embed_rows(self, features: Features, rows: np.ndarray, crops: Crops | None) -> np.ndarray:
        return embed(self.model, features, rows, crops=crops, beta=self.beta or 0.3)["embedding"]

    def _catalogue_images(self) -> np.ndarray:
        split = self.data.eval_split("test")
        if self.data.protocol == "splits":
            return np.unique(self.data.candidates[split][:, 0])
        return np.unique(self.data.triplets[split][:, :3])

    def catalogue(self) -> Catalogue:
        items = self._catalogue_images()
        vectors = {name: self._embed_rows(self.features, np.column_stack([items, np.full(len(items), a)]), self.crops)
                   for a, name in enumerate(self.data.names)}
        paths = [str(Path(self.data.paths[i]).relative_to(self.root)) for i in items]
        return Catalogue([str(i) for i in items], paths, vectors, {"beta": self.beta} if self.beta is not None else {})

    def embed(self, img: Image.Image, groups: Sequence[str]) -> np.ndarray:
        features = Features(self.model.trunk, self.inputs, [img], device=self.device, progress=False)
        rows = np.array([[0, self.data.names.index(g)] for g in groups])
        return self._embed_rows(features, rows, self._crops(features))

    def bench_sets(self, catalogue: Catalogue) -> list[BenchSet]:
        if self.data.protocol != "splits":
            raise FgrError("a triplet-list run has no ranked queries: benchmark a run with protocol 'splits'")
        split = self.data.eval_split("test")
        queries, cands = self.data.queries[split], self.data.candidates[split]
        where = {int(i): r for r, i in enumerate(catalogue.ids)}
        out = []
        for a, name in enumerate(self.data.names):
            q_rows, c_rows = queries[queries[:, 1] == a], cands[cands[:, 1] == a]
            if not len(q_rows):
                continue
            db = catalogue.vectors[name][[where[int(i)] for i in c_rows[:, 0]]]
            q = self._embed_rows(self.features, q_rows, self.crops)
            rel = [np.flatnonzero(c_rows[:, 2] == v) for v in q_rows[:, 2]]
            out.append(BenchSet(name, q, db, rel))
        return out

    def evaluate(self) -> dict[str, float]:
        """The test split's numbers under the run's protocol (RPF: fused, and each branch), and the
        triplet accuracy on the set's own triplet lists where it has them."""
        beta = self.beta if self.beta is not None else 0.3
        return {**evaluate_split(self.model, self.data, self.features, "test", crops=self.crops, beta=beta),
                **zappos_metrics(self.model, self.data, self.features, crops=self.crops, beta=beta)}

    def browser_inputs(self, *, n_queries: int = 16, depth: int = 10) -> dict[str, Any]:
        """``n_queries`` test queries taking the attributes in turn, each with its top ``depth``
        candidates under its attribute, ranked as the run's test did; with the attention under it."""
        return browser_inputs(self.model, self.data, self.features, crops=self.crops,
                              beta=self.beta if self.beta is not None else 0.3, n_queries=n_queries, depth=depth)

    def attention_figure(self, attribute: str, *, title: str = ""):
        """The first test query of ``attribute`` (else the first query), under every attribute in turn."""
        queries = self.data.queries[self.data.eval_split("test")]
        chosen = queries[queries[:, 1] == self.data.names.index(attribute)] if attribute in self.data.names else []
        index = int((chosen if len(chosen) else queries)[0, 0])
        features = Features(self.model.trunk, self.inputs, [self.data.paths[index]], device=self.device,
                            progress=False)
        return attention_figure(self.model, features, 0, self.data.names, title=title)
