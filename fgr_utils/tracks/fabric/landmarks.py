"""The fabric track's two stages on landmark sets (revisited Oxford/Paris, old Oxford5k/Paris6k).

The query is the crop of its box (the sub-element), scaled by the factor the full image gets; the
database holds whole images. Re-ranking numbers depend on how the shortlist is taken, so both rules
are available: ``protocol_aware`` (the protocol's junk moved out of the way before the top K is
taken, how published re-ranking numbers are made) and ``blind`` (the raw global top K).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fgr_utils import rerank
from fgr_utils.data.landmarks import LandmarkSet
from fgr_utils.embed import extract
from fgr_utils.errors import FgrError
from fgr_utils.metrics import protocol_sets, revisited_map
from fgr_utils.tracks.fabric.data import FabricInputs
from fgr_utils.tracks.fabric.models import GlobalModel, QGAModel
from fgr_utils.tracks.fabric.retrieval import normalise, rerank_queries


def landmark_inputs(ds: LandmarkSet, inputs: FabricInputs, *, imsize: int, crop_query: bool):
    """Functions i -> network input for database images and (cropped, scaled) queries.

    Database images go through ``inputs.fabric``; a query (its box crop, the sub-element) through
    ``inputs.query``, at the query scale the models were trained with.
    """
    return (lambda i: inputs.fabric.tensor(ds.db_image(i, imsize)),
            lambda i: inputs.query.tensor(ds.query_image(i, imsize, crop=crop_query)))


def landmark_global(model: GlobalModel, ds: LandmarkSet, inputs: FabricInputs, *, imsize: int, crop_query: bool,
                    device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Full global ranking (n_queries, n_db) of database indices, best first, and its scores."""
    db_in, q_in = landmark_inputs(ds, inputs, imsize=imsize, crop_query=crop_query)
    db = normalise(extract(model, range(ds.n_db), db_in, device=device, name="landmark-db"))
    q = normalise(extract(model, range(ds.n_queries), q_in, device=device, name="landmark-queries"))
    sims = q @ db.T
    order = np.argsort(-sims, axis=1, kind="stable")
    return order, np.take_along_axis(sims, order, axis=1)


def landmark_rerank(model: QGAModel, ds: LandmarkSet, inputs: FabricInputs, ranks: np.ndarray, scores: np.ndarray, *,
                    imsize: int, crop_query: bool, k: int, modes: Sequence[str], fuse_global: float | None,
                    device: str = "cpu") -> dict[tuple[str, str], np.ndarray]:
    """Re-ranked full rankings per (shortlist mode, protocol).

    ``blind``: the raw global top ``k`` (one ranking serves every protocol). ``protocol_aware``: the
    protocol's junk is moved out of the way before the top ``k`` is taken (how published re-ranking
    numbers are made).
    """
    db_in, q_in = landmark_inputs(ds, inputs, imsize=imsize, crop_query=crop_query)
    tokens = extract(model, range(ds.n_db), db_in, encode=lambda m, x: m.encode_candidates(x), device=device,
                     name="landmark-tokens")
    q_cls = extract(model, range(ds.n_queries), q_in, encode=lambda m, x: m.encode_query(x), device=device,
                    name="landmark-queries")
    score_of = {i: dict(zip(ranks[i].tolist(), scores[i].tolist())) for i in range(len(ranks))}
    protocols = protocols_of(ds)
    out: dict[tuple[str, str], np.ndarray] = {}
    for mode in modes:
        if mode not in rerank.SHORTLIST_MODES:
            raise FgrError(f"shortlist mode must be one of {', '.join(rerank.SHORTLIST_MODES)}, not {mode!r}")
        for protocol in protocols if mode == "protocol_aware" else protocols[:1]:
            final = np.empty_like(ranks)
            for i in range(len(ranks)):
                junk = protocol_sets(ds.gnd[i], protocol)[1] if mode == "protocol_aware" else ()
                top = rerank.shortlist(ranks[i], k, exclude=junk)
                s2 = rerank_queries(model, q_cls[i:i + 1], tokens, top[None], device=device)[0]
                s1 = np.array([score_of[i][j] for j in top])
                final[i] = rerank.merge(ranks[i], rerank.reorder(top, rerank.fuse(s2, s1, fuse_global)))
            if mode == "blind":
                for p in protocols:
                    out[(mode, p)] = final
            else:
                out[(mode, protocol)] = final
    return out


def protocols_of(ds: LandmarkSet) -> tuple[str, ...]:
    return ("easy", "medium", "hard") if ds.protocol == "revisited" else ("old",)


def landmark_aps(ds: LandmarkSet, ranks: np.ndarray, reranked: dict[tuple[str, str], np.ndarray],
                 modes: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-query AP (revisitop's trapezoidal AP, junk removed; NaN for a query without positives) of
    the global ranking (``stage1/<protocol>/map``) and of each re-ranking
    (``stage2/<mode>/<protocol>/map``), under each of the set's protocols."""
    out = {}
    for protocol in protocols_of(ds):
        out[f"stage1/{protocol}/map"] = revisited_map(ranks, ds.gnd, protocol)["aps"]
        for mode in modes:
            out[f"stage2/{mode}/{protocol}/map"] = revisited_map(reranked[(mode, protocol)], ds.gnd, protocol)["aps"]
    return out


def landmark_protocol(column: str, shortlist_k: int) -> str:
    """The protocol of a :func:`landmark_aps` column, in words."""
    parts = column.split("/")
    protocol = parts[-2]
    label = f"{'revisited-' + protocol if protocol != 'old' else 'old'} mAP (trapezoidal AP, junk removed)"
    if parts[0] == "stage1":
        return label + ", global ranking"
    return f"{label}, {parts[1].replace('_', '-')} shortlist K={shortlist_k}"


def landmark_query_ids(ds: LandmarkSet) -> list[str]:
    """One id per query (its position and image: a query image may be asked twice)."""
    return [f"{i}:{name}" for i, name in enumerate(ds.qimlist)]


def landmark_table(maps: dict[str, dict[str, float]]):
    """A (dataset, stage) x protocol table of mAP in percent, from each dataset's :func:`landmark_aps`
    means."""
    import pandas as pd

    rows: dict[tuple[str, str], dict[str, float]] = {}
    for name, means in maps.items():
        for column, value in means.items():
            parts = column.split("/")
            stage = "stage 1" if parts[0] == "stage1" else f"stage 2 ({parts[1]})"
            rows.setdefault((name, stage), {})[parts[-2]] = round(100 * value, 2)
    return pd.DataFrame.from_dict(rows, orient="index")
