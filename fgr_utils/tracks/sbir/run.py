"""A finished ``20_sbir_train`` run, loaded: a sketch query searches the test photos.

The model is the run's last epoch (``last.pt``): the release selected its epoch on the test split, so
the honest number is the last epoch's, and the figures and the served model show the same weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from fgr_utils.metrics import acc_at_k
from fgr_utils.results import RunRecord
from fgr_utils.tracks.base import BenchSet, Catalogue, TrainedRun
from fgr_utils.tracks.sbir.data import ImageStore, SbirInputs, load_dataset
from fgr_utils.tracks.sbir.evaluate import KS, embed, embeddings
from fgr_utils.tracks.sbir.figures import browser_inputs
from fgr_utils.tracks.sbir.models import ARNet, Siamese, model_from_params


def trained_model(run: RunRecord, *, initial: bool = False) -> ARNet | Siamese:
    """The model of a finished ``20_sbir_train`` run (its last epoch), eval mode; with ``initial``, the
    same architecture as it was before training (the run's seed): the 'before' of every comparison figure."""
    torch.manual_seed(int(run.params["seed"]))
    model = model_from_params(run.params, trained=not initial)
    if not initial:
        model.load_state_dict(run.checkpoint(which="last")["model"])
    return model.eval()


class SbirRun(TrainedRun):
    track = "sbir"
    notebooks = ("20_sbir_train",)
    bench_metrics = ("acc@1", "acc@10")

    def __init__(self, run: RunRecord, *, device: str = "cpu", progress: bool = False):
        super().__init__(run, device=device, progress=progress)
        p = self.params
        self.loaded = load_dataset(p["dataset"], p["size"], p["data_seed"],
                                 arnet_compat_single_digit=p.get("arnet_compat_single_digit", False))
        self.sketches = self.loaded.items
        self.model = trained_model(run).to(device)
        self.inputs = SbirInputs(p["img_size"], p["normalize"])
        self.store = ImageStore(self.inputs.aug_size)
        self._test: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _embed(self, items, modality: str) -> np.ndarray:
        return embed(self.model, items, self.inputs, self.store, modality, device=self.device)

    def test_embeddings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sketch embeddings, photo embeddings, each sketch's photo) of the test split, computed once."""
        if self._test is None:
            self._test = embeddings(self.model, self.sketches, "test", self.inputs, self.store, device=self.device)
        return self._test

    def catalogue(self) -> Catalogue:
        photos = self.sketches.photos("test")
        rel = [str(Path(p).relative_to(self.root)) for p in photos]
        return Catalogue(rel, rel, {"image": self._embed(photos, "photo")})

    def embed(self, img: Image.Image, groups: Sequence[str]) -> np.ndarray:
        return self._embed([img], "sketch")

    def bench_sets(self, catalogue: Catalogue) -> list[BenchSet]:
        pairs = self.sketches.pairs("test")
        q = self._embed([p for p, _ in pairs], "sketch")
        return [BenchSet("image", q, catalogue.vectors["image"], [np.array([i]) for _, i in pairs])]

    def evaluate(self) -> dict[str, float]:
        """``acc@k/last``: every test sketch against all test photos, with the run's tie rule."""
        q, g, true = self.test_embeddings()
        acc = acc_at_k(q @ g.T, true, KS, ties=self.params["tie_rule"])
        return {f"acc@{k}/last": v for k, v in acc.items()}

    def browser_inputs(self, *, depth: int = 10) -> dict[str, Any]:
        """Every test sketch with its top ``depth`` photos, its own photo a hit."""
        return browser_inputs(*self.test_embeddings(), self.sketches, depth=depth)
