"""The sketch track's figures: retrieval rows and the browser, attention distance, token diversity."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fgr_utils import viz
from fgr_utils.attention import AttentionProbe, probe_attention, token_similarity_variance
from fgr_utils.data.sketches import SketchSet
from fgr_utils.errors import FgrError
from fgr_utils.tracks.sbir.data import ImageStore, SbirInputs
from fgr_utils.tracks.sbir.evaluate import embeddings


def retrieval_rows(q: np.ndarray, g: np.ndarray, true: np.ndarray, sketches: SketchSet, picks: Sequence[int], k: int, *,
                   split: str = "test") -> dict[str, list]:
    """The sketches ``picks`` of ``split`` (rows of ``q``, from :func:`embeddings`) with their top ``k``
    photos by cosine, whether each is the sketch's own photo, and a title (the sketch's file name)."""
    pairs, photos = sketches.pairs(split), sketches.photos(split)
    picks = [int(i) for i in picks]
    top = np.argsort(-(q[picks] @ g.T), axis=1, kind="stable")[:, :k]
    return {"queries": [pairs[i][0] for i in picks], "rankings": [[photos[j] for j in row] for row in top],
            "hits": [[j == true[i] for j in row] for i, row in zip(picks, top)],
            "query_titles": [Path(pairs[i][0]).stem for i in picks]}


def retrieval_figure(model, sketches: SketchSet, inputs: SbirInputs, *, n_queries: int = 4, k: int = 5,
                     device: str = "cpu", title: str | None = None):
    """Test sketches and their top ``k`` photos, the true photo framed green."""
    q, g, true = embeddings(model, sketches, "test", inputs, device=device)
    rows = retrieval_rows(q, g, true, sketches, viz.spread(len(q), n_queries), k)
    return viz.retrieval_grid(rows["queries"], rows["rankings"], rows["hits"], query_titles=rows["query_titles"],
                              suptitle=title)


def browser_inputs(q: np.ndarray, g: np.ndarray, true: np.ndarray, sketches: SketchSet, *, depth: int = 10,
                   split: str = "test") -> dict[str, list]:
    """What :func:`fgr_utils.browser.retrieval_browser` needs to browse every sketch of ``split``
    (``q, g, true`` from :func:`embeddings`): its top ``depth`` photos, its own photo a hit."""
    if len(q) != len(sketches.pairs(split)) or len(g) != len(sketches.photos(split)):
        raise FgrError(f"the embeddings ({len(q)} sketches, {len(g)} photos) are not those of the {split} split: "
                       f"pass what sbir.embeddings(model, sketches, {split!r}, ...) returned")
    return retrieval_rows(q, g, true, sketches, range(len(q)), depth, split=split)


def attention_probe(backbone, paths: Sequence[Path], inputs: SbirInputs, *, batch_size: int = 50) -> AttentionProbe:
    """Every layer's attention over the images ``paths`` (:func:`fgr_utils.attention.probe_attention`):
    mean attention distance under both metrics and distance from uniform, per image and head."""
    store = ImageStore(inputs.size)
    batches = (torch.stack([inputs.anchor(store(p)) for p in paths[i:i + batch_size]])
               for i in range(0, len(paths), batch_size))
    return probe_attention(backbone, batches, patch=inputs.size / backbone.grid[0])


def token_variance(backbone, paths: Sequence[Path], inputs: SbirInputs) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the variance of its final tokens' cosine-similarity matrix (ARNet's diversity
    measure, which ARNet averages over the images), and the first image's matrix."""
    store = ImageStore(inputs.size)
    with torch.no_grad():
        tokens = backbone(torch.stack([inputs.anchor(store(p)) for p in paths]))
    results = [token_similarity_variance(t) for t in tokens]
    return np.array([v for _, v in results], dtype=np.float64), results[0][0]


UNITS = {"token_index_arnet": "token index", "pixel_euclidean": "px"}


def attention_columns(probes: dict[str, AttentionProbe]) -> dict[str, np.ndarray]:
    """Per-image columns of one encoder's probes by state (``before``, ``after``): the last layer's
    mean attention distance over heads (``<mode>/<state>/last_layer``), each layer's distance from
    uniform (``from_uniform/<state>/layer<k>``) and the distance uniform attention gives
    (``<mode>/uniform``, the same for every image)."""
    out: dict[str, np.ndarray] = {}
    for state, probe in probes.items():
        n = len(probe.from_uniform[0])
        for mode in UNITS:
            out[f"{mode}/{state}/last_layer"] = probe.distance[mode][-1].mean(axis=1)
            out[f"{mode}/uniform"] = np.full(n, probe.uniform[mode])
        for k, tv in enumerate(probe.from_uniform, start=1):
            out[f"from_uniform/{state}/layer{k}"] = tv.mean(axis=1)
    return out


def attention_protocol(column: str, encoder: str) -> str:
    """What an :func:`attention_columns` column measures, in words."""
    parts = column.split("/")
    if parts[0] == "from_uniform":
        return (f"total-variation distance of each query token's attention from uniform (0: uniform, 1: one "
                f"token), mean over tokens and heads, {parts[2].replace('layer', 'layer ')}, {encoder}, "
                f"{parts[1]} training; mean over the probe images")
    mode = parts[0]
    if parts[1] == "uniform":
        return f"mean attention distance ({mode}, in {UNITS[mode]}) that uniform attention gives"
    return (f"mean attention distance ({mode}, in {UNITS[mode]}), mean over heads, last layer, {encoder}, "
            f"{parts[1]} training; mean over the probe images")


def uniformity_table(probes: dict[str, AttentionProbe]):
    """Per encoder (rows) and layer (columns): the distance of its attention from uniform, mean over
    images and heads (0: uniform; a value of 0.05 means 5 % of the attention weight would have to
    move to make it uniform)."""
    import pandas as pd  # heavy to import; only a notebook shows tables

    return pd.DataFrame({name: {f"layer {k}": round(float(tv.mean()), 3) for k, tv in enumerate(p.from_uniform, 1)}
                         for name, p in probes.items()}).T
