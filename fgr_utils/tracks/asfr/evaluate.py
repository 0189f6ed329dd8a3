"""Evaluating an attribute-specific model: embeddings of (image, attribute) rows, attribute MAP
(query-weighted and macro) on split files, CSN triplet accuracy on triplet lists."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fgr_utils.data.reader import Dataset
from fgr_utils.errors import FgrError
from fgr_utils.metrics import attribute_map, triplet_accuracy
from fgr_utils.queries import QueryRef
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


@dataclass
class Evaluation(Mapping):
    """The numbers of one evaluation (a mapping ``metric -> value``, fractions) and the per-query
    values they are means of: ``ids`` and ``groups`` (each query's attribute or condition) and
    ``columns`` (``ap``, RPF's ``region/ap`` and ``patch/ap``; ``hit`` of a triplet), with the
    :class:`~fgr_utils.queries.QueryRef` of each metric into them (``refs``, table name left to
    :func:`log_metrics`)."""

    metrics: dict[str, float]
    ids: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    refs: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)  # metric -> (column, stat, group)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)


def _map_part(ev: Evaluation, q: np.ndarray, c: np.ndarray, queries: np.ndarray, candidates: np.ndarray,
              names: Sequence[str], part: str = "") -> None:
    """Add ``[<part>/]map/weighted``, ``map/macro`` and ``map/<attribute>`` of one embedding to ``ev``,
    with its per-query AP as column ``[<part>/]ap``."""
    res = attribute_map(q, queries[:, 1], queries[:, 2], c, candidates[:, 1], candidates[:, 2])
    pre, column = (f"{part}/" if part else ""), (f"{part}/ap" if part else "ap")
    ev.columns[column] = res["aps"]
    ev.metrics[f"{pre}map/weighted"], ev.metrics[f"{pre}map/macro"] = res["weighted"], res["macro"]
    ev.refs[f"{pre}map/weighted"], ev.refs[f"{pre}map/macro"] = (column, "mean", None), (column, "macro", None)
    for a, v in res["per_attribute"].items():
        ev.metrics[f"{pre}map/{names[a]}"] = v
        ev.refs[f"{pre}map/{names[a]}"] = (column, "mean", names[a])


def evaluate_split(model, data: AsfrData, features: Features, which: str, *,
                   crops: Crops | None = None, beta: float = 0.3,
                   flip_rng: np.random.Generator | None = None) -> Evaluation:
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
    ev = Evaluation({}, [f"{i}:{data.paths[int(r[0])].name}" for i, r in enumerate(q_rows)],
                    [data.names[int(r[1])] for r in q_rows])
    _map_part(ev, q["embedding"], c["embedding"], q_rows, c_rows, data.names)
    for part in ("region", "patch"):
        if part in q:
            _map_part(ev, q[part], c[part], q_rows, c_rows, data.names, part)
    return ev


def triplet_metrics(model, features: Features, triplets: np.ndarray, conditions: Sequence[str], *,
                    attr_of: dict[int, int] | None = None, crops: Crops | None = None,
                    beta: float = 0.3) -> Evaluation:
    """CSN triplet accuracy (section 1.6): ``sim(a, c) > sim(a, b)`` under the condition's embedding.

    ``attr_of`` maps a condition index to the model's attribute index (a model trained on split
    files evaluated on triplet lists of the same images); by default they coincide. Per query (a
    triplet, id its row in the list): ``hit``, 1 or 0.
    """
    attr_of = attr_of or {c: c for c in range(len(conditions))}
    keep = np.array([int(c) in attr_of for c in triplets[:, 3]], dtype=bool)
    rows = np.flatnonzero(keep)
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
    close, far = np.sum(a * c, axis=1), np.sum(a * b, axis=1)
    res = triplet_accuracy(close, far, triplets[:, 3])
    ev = Evaluation({"triplet_acc": res["accuracy"]}, [str(r) for r in rows],
                    [conditions[int(k)] for k in triplets[:, 3]], {"hit": (close > far).astype(np.float64)},
                    {"triplet_acc": ("hit", "mean", None)})
    for k, v in res["per_condition"].items():
        ev.metrics[f"triplet_acc/{conditions[k]}"] = v
        ev.refs[f"triplet_acc/{conditions[k]}"] = ("hit", "mean", conditions[k])
    return ev


def zappos_metrics(model, data: AsfrData, features: Features, *, crops: Crops | None = None,
                   beta: float = 0.3) -> Evaluation:
    """Triplet accuracy on the test triplet list that comes with a split-file set (its conditions
    named like the model's attributes); empty when there is none."""
    if not data.zappos or "test" not in data.zappos:
        return Evaluation({})
    attr_of = {k: data.names.index(c) for k, c in enumerate(data.zappos_conditions) if c in data.names}
    if not attr_of:
        return Evaluation({})
    return triplet_metrics(model, features, data.zappos["test"], data.zappos_conditions, attr_of=attr_of,
                           crops=crops, beta=beta)


TRIPLET_PROTOCOL = "CSN triplet accuracy: sim(a, c) > sim(a, b) under the condition's embedding"
MAP_PROTOCOL = "attribute-specific MAP (ASEN): each query ranks all candidates of its attribute, full ranking"


def log_metrics(run, ev: Evaluation, loaded: Dataset[AsfrData], *, table: str, prefix: str = "",
                beta: float | None = None) -> None:
    """Record an evaluation's test numbers with their protocol (weighted and macro MAP labelled as
    such), its per-query values kept as ``per_query/<table>.csv``."""
    if not ev:
        return
    run.log_queries(table, ev.ids, ev.columns, groups=ev.groups)
    select = ("checkpoint by validation weighted MAP" if loaded.items.protocol == "splits"
              else "checkpoint by val accuracy")
    fused = f", RPF fused with beta {beta}" if beta is not None else ""
    for key, value in ev.items():
        if "triplet_acc" in key:
            which = "all conditions" if key.endswith("triplet_acc") else "one condition"
            how = f"{TRIPLET_PROTOCOL}, {select}; {which}"
        else:
            kind = ("query-weighted over attributes (official)" if key.endswith("map/weighted") else
                    "macro: unweighted mean over attributes" if key.endswith("map/macro") else "one attribute")
            how = f"{MAP_PROTOCOL}, {select}{fused}; {kind}"
        column, stat, group = ev.refs[key]
        run.log(prefix + key, value, protocol=how, dataset=loaded.name, split="test",
                per_query=QueryRef(table, column, stat, group))


def summary(rows: dict[str, dict[str, float]], names: Sequence[str]):
    """A table (percent): one column per method/stage, rows weighted, macro, then each attribute."""
    import pandas as pd  # heavy to import; only a notebook shows tables

    keys = ["map/weighted", "map/macro"] + [f"map/{n}" for n in names]
    labels = {"map/weighted": "overall, query-weighted (official)", "map/macro": "overall, macro (unweighted)"}
    table = {col: {labels.get(k, k.removeprefix("map/")): round(100 * r[k], 2) for k in keys if k in r}
             for col, r in rows.items()}
    return pd.DataFrame(table)
