"""The attribute track's figures: where each model looks under each attribute, retrieval grids and
what the retrieval browser shows."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from fgr_utils import viz
from fgr_utils.data import images
from fgr_utils.errors import FgrError
from fgr_utils.tracks.asfr.data import AsfrData
from fgr_utils.tracks.asfr.evaluate import embed
from fgr_utils.tracks.asfr.features import Crops, Features
from fgr_utils.tracks.asfr.heads import GlobalEmbedding


def attention_maps(model, features: Features, index: int, n_attr: int) -> np.ndarray:
    """(n_attr, H, W): the spatial attention of image ``index`` under every attribute."""
    model.eval()
    with torch.no_grad():
        feats = features.stem_outputs(model.trunk, features.batch([index] * n_attr))
        out = model(feats, torch.arange(n_attr, device=features.device))
    if out.attention is None:
        raise FgrError("this model has no spatial attention (the global embedding ignores the attribute)")
    return out.attention.float().cpu().numpy()


def attention_figure(model, features: Features, index: int, names: Sequence[str], *, title: str = ""):
    """One image under each attribute: where the model looks when asked about that attribute."""
    maps = attention_maps(model, features, index, len(names))
    img = features.inputs.prepare(images.load_rgb(features.paths[index]))
    return viz.attention_overlays([img] * len(names), list(maps), maps.shape[1:], titles=list(names), suptitle=title)


def query_picks(queries: np.ndarray, n: int) -> list[int]:
    """``n`` query rows that take the attributes in turn: the first query of each attribute, then the
    second of each, and so on (an attribute with no query left is passed over)."""
    by_attr = [np.flatnonzero(queries[:, 1] == a) for a in sorted(set(queries[:, 1].tolist()))]
    picks: list[int] = []
    for r in range(max((len(rows) for rows in by_attr), default=0)):
        picks += [int(rows[r]) for rows in by_attr if r < len(rows)]
    return picks[:n]


def ranked_candidates(model, data: AsfrData, features: Features, picks: Sequence[int], k: int, *,
                      crops: Crops | None = None, beta: float = 0.3) -> dict[str, list]:
    """Test queries ``picks`` (rows of the test query list) and their top ``k`` candidates under the
    query's attribute: image indices (``queries``, ``rankings``), hits (same value as the query) and
    titles (``attribute: value``). Each attribute's candidates are embedded once."""
    split = data.eval_split("test")
    queries, cands = data.queries[split], data.candidates[split]
    rows = queries[list(picks)]
    q = embed(model, features, rows, crops=crops, beta=beta)["embedding"]
    pools: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    results, hits, titles = [], [], []
    for row, vec in zip(rows, q):
        a = int(row[1])
        if a not in pools:
            pool = cands[cands[:, 1] == a]
            pools[a] = (pool, embed(model, features, pool, crops=crops, beta=beta)["embedding"])
        pool, c = pools[a]
        top = np.argsort(-(c @ vec), kind="stable")[:k]
        results.append([int(pool[j, 0]) for j in top])
        hits.append([int(pool[j, 2]) == int(row[2]) for j in top])
        name = data.names[a]
        values = data.value_names.get(name, [])
        titles.append(f"{name}: {values[int(row[2])] if int(row[2]) < len(values) else int(row[2])}")
    return {"queries": [int(r[0]) for r in rows], "attributes": [int(r[1]) for r in rows], "rankings": results,
            "hits": hits, "query_titles": titles}


def retrieval_figure(model, data: AsfrData, features: Features, *, n_queries: int = 4, k: int = 6,
                     crops: Crops | None = None, beta: float = 0.3, title: str | None = None):
    """Test queries of different attributes and their top ``k`` candidates of that attribute; a
    candidate with the query's value is framed green."""
    picks = query_picks(data.queries[data.eval_split("test")], n_queries)
    r = ranked_candidates(model, data, features, picks, k, crops=crops, beta=beta)
    return viz.retrieval_grid([features.paths[i] for i in r["queries"]],
                              [[features.paths[i] for i in row] for row in r["rankings"]], r["hits"],
                              query_titles=r["query_titles"], suptitle=title)


def browser_inputs(model, data: AsfrData, features: Features, *, crops: Crops | None = None, beta: float = 0.3,
                   n_queries: int = 16, depth: int = 10) -> dict[str, Any]:
    """What :func:`fgr_utils.browser.retrieval_browser` needs to browse a model's test queries.

    ``n_queries`` test queries taking the attributes in turn, each with its top ``depth`` candidates
    under the query's attribute, ranked as the run's test did (RPF: the fused score with ``beta``).
    With a spatial attention, the query and each result show where the model looks when asked about
    that attribute (computed when drawn). Images are shown as the model sees them.
    """
    if data.protocol != "splits":
        raise FgrError("the browser needs query and candidate lists: use a run with protocol='splits'")
    picks = query_picks(data.queries[data.eval_split("test")], n_queries)
    r = ranked_candidates(model, data, features, picks, depth, crops=crops, beta=beta)
    out: dict[str, Any] = {"queries": [features.paths[i] for i in r["queries"]],
                           "rankings": [[features.paths[i] for i in row] for row in r["rankings"]],
                           "hits": r["hits"], "query_titles": r["query_titles"],
                           "load": lambda path: features.inputs.prepare(images.load_rgb(path))}
    if not isinstance(model, GlobalEmbedding):  # the global embedding has no attention
        def under(image: int, attr: int) -> np.ndarray:
            return attention_maps(model, features, image, data.n_attr)[attr]

        out["query_attention"] = lambda i: under(r["queries"][i], r["attributes"][i])
        out["attention"] = lambda i, j: under(r["rankings"][i][j], r["attributes"][i])
    return out
