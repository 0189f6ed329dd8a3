"""Evaluating an attribute-specific model: embeddings of (image, attribute) rows, attribute MAP
(query-weighted and macro) on split files, CSN triplet accuracy on triplet lists."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from fgr_utils.data.reader import Dataset
from fgr_utils.errors import FgrError
from fgr_utils.metrics import attribute_map, triplet_accuracy
from fgr_utils.tracks.asfr.data import AsfrData
from fgr_utils.tracks.asfr.features import Crops, Features
from fgr_utils.tracks.asfr.heads import fuse


def embed(model, features: Features, rows: np.ndarray, *, crops: Crops | None = None,
          beta: float = 0.3, batch_size: int = 64,
          flip_rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Embeddings of (image, attr) rows under each row's attribute (eval mode, no gradients).

    Returns ``{"embedding": ...}``, and for RPF with a patch branch (``crops`` given) also
    ``"region"``, ``"patch"`` and the beta-fused ``"embedding"``. ``flip_rng`` flips images at random
    (RPF s1's released validation, which reused the training transform).
    """
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for s in range(0, len(rows), batch_size):
            part = rows[s:s + batch_size]
            flips = (flip_rng.random(len(part)) < 0.5).tolist() if flip_rng is not None else None
            feats = features.stem_outputs(model.trunk, features.batch(part[:, 0], flips))
            attr = torch.as_tensor(part[:, 1], device=features.device)
            res = model(feats, attr)
            vecs = {"embedding": res.embedding}
            if crops is not None:
                patch = model.patch(crops.inputs(part[:, 0], res.attention), attr, from_stem=crops.cached)
                vecs = {"region": res.embedding, "patch": patch, "embedding": fuse(res.embedding, patch, beta)}
            for k, v in vecs.items():
                out.setdefault(k, []).append(v.float().cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def map_metrics(q: np.ndarray, c: np.ndarray, queries: np.ndarray, candidates: np.ndarray,
                names: Sequence[str]) -> dict[str, float]:
    """``map/weighted``, ``map/macro`` and ``map/<attribute>`` of one embedding (fractions)."""
    res = attribute_map(q, queries[:, 1], queries[:, 2], c, candidates[:, 1], candidates[:, 2])
    row = {"map/weighted": res["weighted"], "map/macro": res["macro"]}
    row.update({f"map/{names[a]}": v for a, v in res["per_attribute"].items()})
    return row


def evaluate_split(model, data: AsfrData, features: Features, which: str, *,
                   crops: Crops | None = None, beta: float = 0.3,
                   flip_rng: np.random.Generator | None = None) -> dict[str, float]:
    """The protocol's numbers on the ``valid`` or ``test`` split.

    ``splits``: MAP of the (fused) embedding, plus ``region/...`` and ``patch/...`` MAPs for RPF with
    its patch branch. ``triplets``: ``triplet_acc`` and ``triplet_acc/<condition>``.
    """
    split = data.eval_split(which)
    if data.protocol == "triplets":
        return triplet_metrics(model, features, data.triplets[split], data.names, crops=crops, beta=beta)
    q_rows, c_rows = data.queries[split], data.candidates[split]
    q = embed(model, features, q_rows, crops=crops, beta=beta, flip_rng=flip_rng)
    c = embed(model, features, c_rows, crops=crops, beta=beta, flip_rng=flip_rng)
    row = map_metrics(q["embedding"], c["embedding"], q_rows, c_rows, data.names)
    for part in ("region", "patch"):
        if part in q:
            row.update({f"{part}/{k}": v for k, v in map_metrics(q[part], c[part], q_rows, c_rows, data.names).items()})
    return row


def triplet_metrics(model, features: Features, triplets: np.ndarray, conditions: Sequence[str], *,
                    attr_of: dict[int, int] | None = None, crops: Crops | None = None,
                    beta: float = 0.3) -> dict[str, float]:
    """CSN triplet accuracy (section 1.6): ``sim(a, c) > sim(a, b)`` under the condition's embedding.

    ``attr_of`` maps a condition index to the model's attribute index (a model trained on split
    files evaluated on triplet lists of the same images); by default they coincide.
    """
    attr_of = attr_of or {c: c for c in range(len(conditions))}
    keep = np.array([int(c) in attr_of for c in triplets[:, 3]], dtype=bool)
    triplets = triplets[keep]
    if not len(triplets):
        raise FgrError("no triplet's condition is an attribute of the model")
    attrs = np.array([attr_of[int(c)] for c in triplets[:, 3]])
    pairs = np.unique(np.concatenate([np.column_stack([triplets[:, j], attrs]) for j in range(3)]), axis=0)
    emb = embed(model, features, pairs, crops=crops, beta=beta)["embedding"]
    row_of = {(int(i), int(a)): r for r, (i, a) in enumerate(pairs)}

    def vecs(col: int) -> np.ndarray:
        return emb[[row_of[(int(i), int(a))] for i, a in zip(triplets[:, col], attrs)]]

    a, b, c = vecs(0), vecs(1), vecs(2)
    res = triplet_accuracy(np.sum(a * c, axis=1), np.sum(a * b, axis=1), triplets[:, 3])
    row = {"triplet_acc": res["accuracy"]}
    row.update({f"triplet_acc/{conditions[k]}": v for k, v in res["per_condition"].items()})
    return row


def zappos_metrics(model, data: AsfrData, features: Features, *, crops: Crops | None = None,
                   beta: float = 0.3) -> dict[str, float]:
    """Triplet accuracy on the test triplet list that comes with a split-file set (its conditions
    named like the model's attributes); empty when there is none."""
    if not data.zappos or "test" not in data.zappos:
        return {}
    attr_of = {k: data.names.index(c) for k, c in enumerate(data.zappos_conditions) if c in data.names}
    if not attr_of:
        return {}
    return triplet_metrics(model, features, data.zappos["test"], data.zappos_conditions, attr_of=attr_of,
                           crops=crops, beta=beta)


TRIPLET_PROTOCOL = "CSN triplet accuracy: sim(a, c) > sim(a, b) under the condition's embedding"
MAP_PROTOCOL = "attribute-specific MAP (ASEN): each query ranks all candidates of its attribute, full ranking"


def log_metrics(run, row: dict[str, float], loaded: Dataset[AsfrData], *, prefix: str = "",
                beta: float | None = None) -> None:
    """Record a row of test numbers with its protocol (weighted and macro MAP labelled as such)."""
    select = ("checkpoint by validation weighted MAP" if loaded.items.protocol == "splits"
              else "checkpoint by val accuracy")
    fused = f", RPF fused with beta {beta}" if beta is not None else ""
    for key, value in row.items():
        if "triplet_acc" in key:
            which = "all conditions" if key.endswith("triplet_acc") else "one condition"
            how = f"{TRIPLET_PROTOCOL}, {select}; {which}"
        else:
            kind = ("query-weighted over attributes (official)" if key.endswith("map/weighted") else
                    "macro: unweighted mean over attributes" if key.endswith("map/macro") else "one attribute")
            how = f"{MAP_PROTOCOL}, {select}{fused}; {kind}"
        run.log(prefix + key, value, protocol=how, dataset=loaded.name, split="test")


def summary(rows: dict[str, dict[str, float]], names: Sequence[str]):
    """A table (percent): one column per method/stage, rows weighted, macro, then each attribute."""
    import pandas as pd  # heavy to import; only a notebook shows tables

    keys = ["map/weighted", "map/macro"] + [f"map/{n}" for n in names]
    labels = {"map/weighted": "overall, query-weighted (official)", "map/macro": "overall, macro (unweighted)"}
    table = {col: {labels.get(k, k.removeprefix("map/")): round(100 * r[k], 2) for k in keys if k in r}
             for col, r in rows.items()}
    return pd.DataFrame(table)
