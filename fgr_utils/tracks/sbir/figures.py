"""The sketch track's figures: retrieval rows and the browser, attention distance, token diversity."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fgr_utils import viz
from fgr_utils.attention import capture_attention, mean_attention_distance, token_similarity_variance
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


def attention_distances(backbone, paths: Sequence[Path], inputs: SbirInputs, *, mode: str, patch: float,
                        batch_size: int = 50) -> list[np.ndarray]:
    """Per layer, the per-head mean attention distance over ``paths`` (``fgr_utils.attention``)."""
    store = ImageStore(inputs.size)
    sums: list[np.ndarray] | None = None
    n = 0
    with torch.no_grad():
        for i in range(0, len(paths), batch_size):
            x = torch.stack([inputs.anchor(store(p)) for p in paths[i:i + batch_size]])
            with capture_attention(backbone) as maps:
                backbone(x)
            d = [len(x) * mean_attention_distance(a, mode=mode, grid=backbone.grid, patch=patch,
                                                   prefix_tokens=backbone.num_prefix_tokens) for a in maps]
            sums = d if sums is None else [s + v for s, v in zip(sums, d)]
            n += len(x)
    return [s / n for s in sums]


def token_variance(backbone, paths: Sequence[Path], inputs: SbirInputs) -> tuple[float, np.ndarray]:
    """Mean over images of the variance of the final tokens' cosine-similarity matrix (ARNet's
    diversity measure), and the first image's matrix."""
    store = ImageStore(inputs.size)
    with torch.no_grad():
        tokens = backbone(torch.stack([inputs.anchor(store(p)) for p in paths]))
    results = [token_similarity_variance(t) for t in tokens]
    return float(np.mean([v for _, v in results])), results[0][0]
