"""The fabric track's figures: retrieval grids and what the retrieval browser shows."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgr_utils import viz
from fgr_utils.attention import AttentionProbe, probe_attention
from fgr_utils.data import images
from fgr_utils.data.fabrics import FabricSet
from fgr_utils.data.transforms import Preprocess


def retrieval_rows(fs: FabricSet, split: str, rankings: Sequence[Sequence[str]], picks: Sequence[int],
                   k: int) -> dict[str, list]:
    """The queries ``picks`` of ``split``: motif paths, their top ``k`` fabric paths, whether each
    holds the query's motif, and a title per query."""
    queries = fs.queries_of(split)
    rows, hits = [], []
    for i in picks:
        rel = fs.relevant(queries[i])
        rows.append([fs.fabric_path(f) for f in rankings[i][:k]])
        hits.append([f in rel for f in rankings[i][:k]])
    return {"queries": [queries[i].path for i in picks], "rankings": rows, "hits": hits,
            "query_titles": [f"query {queries[i].query_id}" for i in picks]}


def retrieval_figure(fs: FabricSet, split: str, rankings: Sequence[Sequence[str]], *, n_queries: int = 4,
                     k: int = 10, pre: Preprocess | None = None, title: str | None = None):
    """Query motifs and their top ``k`` fabrics, hits framed green and misses red."""
    rows = retrieval_rows(fs, split, rankings, viz.spread(len(fs.queries_of(split)), n_queries), k)
    load = pre.load if pre is not None else (lambda p: p)
    return viz.retrieval_grid([load(q) for q in rows["queries"]], [[load(p) for p in r] for r in rows["rankings"]],
                              rows["hits"], query_titles=rows["query_titles"], suptitle=title)


def browser_inputs(fs: FabricSet, split: str, rankings: Sequence[Sequence[str]], candidate_rows: np.ndarray | None,
                   attention: np.ndarray | None, grid: tuple[int, int] | None, pre: Preprocess, *,
                   depth: int = 20) -> dict[str, Any]:
    """What :func:`fgr_utils.browser.retrieval_browser` needs to browse every query of ``split``.

    ``rankings``: fabric ids per query, best first (the top ``depth`` are browsed).
    ``candidate_rows[i]``: the rows of ``fs.fabric_ids(split)`` that stage 2 scored for query ``i``
    and ``attention[i]`` their attention maps (one weight per patch of ``grid``): a result shows the
    query's attention over it when it was in the shortlist (None for stage 1 alone: no attention).
    Images are read as the network saw them.
    """
    rows = retrieval_rows(fs, split, rankings, range(len(fs.queries_of(split))), depth)
    if attention is None:
        return {**rows, "load": pre.load}
    row_of = {f: r for r, f in enumerate(fs.fabric_ids(split))}

    def over(i: int, j: int):
        where = np.flatnonzero(np.asarray(candidate_rows[i]) == row_of[rankings[i][j]])
        return np.asarray(attention[i][where[0]]).reshape(grid) if len(where) else None

    return {**rows, "attention": over, "load": pre.load}


def encoder_attention(model, paths: Sequence[Path], pre: Preprocess, *, batch_size: int = 16) -> AttentionProbe:
    """The attention of a trained model's ViT (``model.backbone``) over the images ``paths``, each
    through ``pre`` (:func:`fgr_utils.attention.probe_attention`)."""
    batches = (torch.stack([pre.tensor(images.open_rgb(p, rgba_background=pre.rgba_background))
                            for p in paths[i:i + batch_size]]) for i in range(0, len(paths), batch_size))
    return probe_attention(model.backbone, batches, patch=pre.size / model.backbone.grid[0])
