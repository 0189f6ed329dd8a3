"""A trained run as a search engine: its collection, query embedding, fusion, and benchmark sets.

:func:`open_run` turns a finished run folder into a :class:`Searcher`, whatever its track:

* ``30_asfr_train`` (attribute-specific): the catalogue is the test split's candidate images, each
  embedded under **every** attribute (one collection per attribute, ``asfr_rpf_agman.md`` §6
  rule 1); a query names one or more attributes.
* ``10_fabric_global`` / ``11_fabric_rerank`` (printed fabrics): the test fabrics under stage 1's
  global descriptor; an ``11`` run can also re-rank the shortlist with its query-guided attention.
* ``20_sbir_train`` (sketch -> photo): the test photos under the photo encoder; a query is a sketch.

Queries go through the very function that embedded the collection (same checkpoint, same β, same
preprocessing, eval mode: rule 4); the collection is kept in ``RUN_DIR/index/`` under the model's
hash, so a retrained run is never served with stale vectors. Scores are inner products of unit
vectors, i.e. cosines (rule 2); several attributes are fused by **summing their cosines over the
whole collection** (rule 3), never by adding truncated top-k lists.

:meth:`Searcher.bench_sets` gives the track's own test queries with their relevant items, for the
index benchmark's downstream metric (attribute MAP, mAP, Acc@k) under each index.
"""
from __future__ import annotations

import abc
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from fgr_utils import io
from fgr_utils.data import images
from fgr_utils.embed import module_fingerprint
from fgr_utils.errors import FgrError
from fgr_utils.index import KINDS, build_index
from fgr_utils.results import read_record

#: Notebooks whose runs can be served, and their tracks.
SERVABLE = {"30_asfr_train": "asfr", "10_fabric_global": "fabric", "11_fabric_rerank": "fabric",
            "20_sbir_train": "sbir"}


@dataclass
class BenchSet:
    """One group's test queries for the index benchmark: query vectors, the database they search
    (rows of the group's collection), and each query's relevant database positions."""

    group: str
    queries: np.ndarray
    database: np.ndarray
    relevant: list[np.ndarray]


@dataclass
class Collection:
    """What a run serves: item ids and dataset-relative paths, and one (N, d) unit-vector matrix per
    group (an attribute, or ``"image"`` for tracks without attributes)."""

    ids: list[str]
    paths: list[str]
    vectors: dict[str, np.ndarray]
    model_hash: str
    settings: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        meta = {"ids": self.ids, "paths": self.paths, "model_hash": self.model_hash, "settings": self.settings,
                "groups": list(self.vectors)}
        with io.atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)),
                         **{f"g{i}": v for i, v in enumerate(self.vectors.values())})

    @classmethod
    def load(cls, path: Path) -> Collection | None:
        """The collection saved at ``path``, or None when absent or unreadable (it is then rebuilt)."""
        if not path.exists():
            return None
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                vectors = {g: np.ascontiguousarray(z[f"g{i}"], dtype=np.float32) for i, g in enumerate(meta["groups"])}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # torn, cut short, empty
            print(f"fgr: rebuilding the collection: {path.name} is unreadable ({io.one_line(e, 100)})")
            return None
        return cls(meta["ids"], meta["paths"], vectors, meta["model_hash"], meta.get("settings", {}))


class Searcher(abc.ABC):
    """A trained run ready to answer queries. Subclasses say how to load the model and data, embed
    an image, and which test queries measure it."""

    track: str
    #: the metrics :meth:`bench_sets` supports, by name
    bench_metrics: tuple[str, ...] = ()
    #: whether the collection's groups are attributes a query must name
    attribute_specific = False
    can_rerank = False
    #: how many first results :meth:`rerank` re-scores
    rerank_depth = 0

    def __init__(self, run_dir: Path, record: dict[str, Any], *, device: str = "cpu", index_kind: str = "flat",
                 progress: bool = False):
        self.run_dir, self.record, self.params = Path(run_dir), record, dict(record["params"])
        self.device, self.progress = device, progress
        if index_kind not in KINDS:
            raise FgrError(f"index kind must be one of {', '.join(KINDS)}, not {index_kind!r}")
        self.index_kind = index_kind
        self._load()
        self.model_hash = self._model_hash()
        self.collection = self._collection()
        self.indexes = {g: build_index(v, index_kind, "ip") for g, v in self.collection.vectors.items()}

    # -- what a track provides ------------------------------------------------------------------
    @abc.abstractmethod
    def _load(self) -> None:
        """Load the dataset and the trained model(s)."""

    @abc.abstractmethod
    def _model_hash(self) -> str:
        """A hash of every weight that shapes a vector (part of the collection's file name)."""

    @abc.abstractmethod
    def _catalogue(self) -> tuple[list[str], list[str], dict[str, np.ndarray], dict[str, Any]]:
        """(ids, dataset-relative paths, group -> vectors, settings such as beta) of the collection."""

    @abc.abstractmethod
    def embed(self, img: Image.Image, groups: Sequence[str]) -> np.ndarray:
        """(len(groups), d) unit vectors of one decoded query image, one row per group."""

    @abc.abstractmethod
    def bench_sets(self) -> list[BenchSet]:
        """The track's test queries per group, for the index benchmark."""

    @property
    @abc.abstractmethod
    def dataset(self) -> str: ...

    #: the dataset folder the collection's paths are relative to (set by ``_load``)
    root: Path

    @property
    def groups(self) -> list[str]:
        return list(self.collection.vectors)

    @property
    def rgba_background(self) -> str:
        return "white"

    def rerank(self, img: Image.Image, positions: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise FgrError(f"{self.record['notebook']} runs cannot re-rank: serve an 11_fabric_rerank run")

    # -- shared ----------------------------------------------------------------------------------
    def _collection(self) -> Collection:
        folder = self.run_dir / "index"
        path = folder / f"collection-{self.model_hash[:20]}.npz"
        found = Collection.load(path)
        if found is not None and found.model_hash == self.model_hash:
            return found
        t0 = time.perf_counter()
        ids, paths, vectors, settings = self._catalogue()
        coll = Collection(ids, paths, {g: np.ascontiguousarray(v, dtype=np.float32) for g, v in vectors.items()},
                          self.model_hash, settings)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("collection-*.npz"):
            stale.unlink()
        coll.save(path)
        print(f"fgr: embedded the collection of {self.run_dir.name} ({len(ids)} items x {len(vectors)} "
              f"group(s)) in {time.perf_counter() - t0:.1f} s -> {path}")
        return coll

    def info(self) -> dict[str, Any]:
        some = next(iter(self.collection.vectors.values()))
        return {"run": self.run_dir.name, "notebook": self.record["notebook"], "track": self.track,
                "model": self._model_name(), "dataset": self.dataset,
                "attributes": self.groups if self.attribute_specific else [],
                "index": {"kind": self.index_kind, "size": len(self.collection.ids), "dim": int(some.shape[1]),
                          "groups": len(self.collection.vectors)},
                "model_hash": self.model_hash[:16], "rerank": self.can_rerank, **self.collection.settings}

    def _model_name(self) -> str:
        return str(self.params.get("method") or self.params.get("backbone") or self.record["notebook"])

    def decode(self, data: bytes) -> Image.Image:
        return images.decode_rgb(data, rgba_background=self.rgba_background)

    def check_groups(self, names: Sequence[str], max_groups: int | None = None) -> list[str]:
        """The query's attributes, checked: known, not repeated, not too many (none for other tracks)."""
        names = [n.strip() for n in names if n.strip()]
        if not self.attribute_specific:
            if names:
                raise FgrError(f"this {self.track} run has no attributes: leave 'attributes' out")
            return self.groups
        if not names:
            raise FgrError(f"name at least one attribute, among: {', '.join(self.groups)}")
        unknown = [n for n in names if n not in self.collection.vectors]
        if unknown:
            raise FgrError(f"unknown attribute {unknown[0]!r}: choose among {', '.join(self.groups)}")
        if len(set(names)) != len(names):
            raise FgrError("an attribute is named twice: name each once")
        limit = max_groups or len(self.groups)
        if len(names) > limit:
            raise FgrError(f"too many attributes ({len(names)}): at most {limit} per query")
        return names

    def search(self, img: Image.Image, groups: Sequence[str], k: int = 10, *, rerank: bool = False
               ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """Top-``k`` collection positions and scores for one decoded image, with per-stage timings (ms).

        One group: the group's index. Several: the exact sum of their cosines over the collection.
        """
        times: dict[str, float] = {}
        t = time.perf_counter()
        q = self.embed(img, groups)
        times["embed"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        n = len(self.collection.ids)
        k = min(int(k), n)
        depth = min(max(k, self.rerank_depth), n) if rerank else k  # the whole shortlist is re-ranked
        if len(groups) == 1:
            scores, pos = self.indexes[groups[0]].search(q, depth)
            scores, pos = scores[0], pos[0]
        else:
            total = sum(self.collection.vectors[g] @ q[i] for i, g in enumerate(groups))
            pos = np.argsort(-total, kind="stable")[:depth]
            scores = total[pos]
        keep = pos >= 0
        pos, scores = pos[keep], scores[keep]
        times["search"] = (time.perf_counter() - t) * 1e3
        if rerank:
            t = time.perf_counter()
            pos, scores = self.rerank(img, pos, scores)
            times["rerank"] = (time.perf_counter() - t) * 1e3
        return pos[:k], scores[:k].astype(np.float64), times


# --------------------------------------------------------------------------------------------
# Attribute-specific fashion retrieval
# --------------------------------------------------------------------------------------------

class AsfrSearcher(Searcher):
    track = "asfr"
    bench_metrics = ("map/weighted", "map/macro")
    attribute_specific = True

    def _load(self) -> None:
        from fgr_utils import asfr
        from fgr_utils.paths import runs_dir

        p = self.params
        self.data = asfr.load_dataset(p["dataset"], p["size"], p["data_seed"], protocol=p["protocol"])
        self.root = self.data.root
        self.model, _ = asfr.load_trained(self.run_dir, self.data.n_attr)
        self.model.to(self.device)
        self.inputs = asfr.AsfrInputs(p["img_size"])
        self.beta = float(p["beta"]) if p["method"] == "rpf" else None
        self.features = asfr.Features(self.model.trunk, self.inputs, self.data.paths,
                                      cache_dir=runs_dir() / "cache" if p.get("cache_stem", True) else None,
                                      device=self.device, progress=self.progress)
        self.crops = self._crops(self.features)

    def _crops(self, features):
        from fgr_utils import asfr

        if self.beta is None:
            return None
        return asfr.Crops(features, self.model.patch_backbone, threshold=self.params["crop_threshold"],
                          device=self.device)

    @property
    def dataset(self) -> str:
        return self.data.name

    def _model_hash(self) -> str:
        return module_fingerprint(self.model) + (f":beta={self.beta}" if self.beta is not None else "")

    def _embed_rows(self, features, rows: np.ndarray, crops) -> np.ndarray:
        from fgr_utils import asfr

        return asfr.embed(self.model, features, rows, crops=crops, beta=self.beta or 0.3)["embedding"]

    def _catalogue_images(self) -> np.ndarray:
        split = self.data.eval_split("test")
        if self.data.protocol == "splits":
            return np.unique(self.data.candidates[split][:, 0])
        return np.unique(self.data.triplets[split][:, :3])

    def _catalogue(self):
        items = self._catalogue_images()
        vectors = {name: self._embed_rows(self.features, np.column_stack([items, np.full(len(items), a)]), self.crops)
                   for a, name in enumerate(self.data.names)}
        paths = [str(Path(self.data.paths[i]).relative_to(self.data.root)) for i in items]
        settings = {"beta": self.beta} if self.beta is not None else {}
        return [str(i) for i in items], paths, vectors, settings

    def embed(self, img: Image.Image, groups: Sequence[str]) -> np.ndarray:
        from fgr_utils import asfr

        features = asfr.Features(self.model.trunk, self.inputs, [img], device=self.device, progress=False)
        rows = np.array([[0, self.data.names.index(g)] for g in groups])
        return self._embed_rows(features, rows, self._crops(features))

    def bench_sets(self) -> list[BenchSet]:
        if self.data.protocol != "splits":
            raise FgrError("a triplet-list run has no ranked queries: benchmark a run with protocol 'splits'")
        split = self.data.eval_split("test")
        queries, cands = self.data.queries[split], self.data.candidates[split]
        where = {int(i): r for r, i in enumerate(self.collection.ids)}
        out = []
        for a, name in enumerate(self.data.names):
            q_rows, c_rows = queries[queries[:, 1] == a], cands[cands[:, 1] == a]
            if not len(q_rows):
                continue
            db = self.collection.vectors[name][[where[int(i)] for i in c_rows[:, 0]]]
            q = self._embed_rows(self.features, q_rows, self.crops)
            rel = [np.flatnonzero(c_rows[:, 2] == v) for v in q_rows[:, 2]]
            out.append(BenchSet(name, q, db, rel))
        return out


# --------------------------------------------------------------------------------------------
# Printed fabrics
# --------------------------------------------------------------------------------------------

class FabricSearcher(Searcher):
    track = "fabric"
    bench_metrics = ("map",)

    def _load(self) -> None:
        from fgr_utils import fabric
        from fgr_utils.train import load_checkpoint

        if self.record["notebook"] == "11_fabric_rerank":
            self.stage2_params = self.params
            s1_dir = Path(next(iter(self.record["datasets"].values()))["stage1_run"])
            self.stage1_dir, self.stage1_params = s1_dir, dict(read_record(s1_dir)["params"])
        else:
            self.stage2_params, self.stage1_dir, self.stage1_params = None, self.run_dir, self.params
        p = self.stage1_params
        self.fs, self.root = fabric.load_dataset(p["dataset"], p["size"], p["data_seed"])
        self.inputs = fabric.fabric_inputs(p["img_size"], p["query_size"], resize=p["resize"],
                                           rgba_background=p["rgba_background"])
        self.model = fabric.build_global(p["backbone"], img_size=p["img_size"], trainable_blocks=p["trainable_blocks"])
        self.model.load_state_dict(_trained_state(self.stage1_dir, load_checkpoint))
        self.model.to(self.device).eval()
        self.qga = None
        if self.stage2_params is not None:
            q = self.stage2_params
            self.qga = fabric.build_qga(q["backbone"], img_size=q["img_size"], trainable_blocks=q["trainable_blocks"],
                                        heads=q["heads"], attention_init=q["attention_init"])
            self.qga.load_state_dict(_trained_state(self.run_dir, load_checkpoint))
            self.qga.to(self.device).eval()
            self.qga_inputs = fabric.fabric_inputs(q["img_size"], q["query_size"], resize=q["resize"],
                                                   rgba_background=q["rgba_background"])
            self.can_rerank, self.rerank_depth = True, int(q["shortlist_k"])

    @property
    def dataset(self) -> str:
        return self.stage1_params["dataset"]

    @property
    def rgba_background(self) -> str:
        return self.stage1_params["rgba_background"]

    def _model_hash(self) -> str:
        return module_fingerprint(self.model)

    def _global(self, items, pre, name: str | None) -> np.ndarray:
        from fgr_utils import fabric

        cache = self.stage1_dir / "cache" if name else None
        return fabric.global_descriptors(self.model, items, pre, device=self.device, cache_dir=cache,
                                         name=name or "query", progress=self.progress)

    def _catalogue(self):
        paths = self.fs.fabric_paths("test")
        vectors = {"image": self._global(paths, self.inputs.fabric, "fabrics-test")}
        return (list(self.fs.fabric_ids("test")), [str(Path(p).relative_to(self.root)) for p in paths], vectors,
                {"shortlist_k": int(self.stage2_params["shortlist_k"])} if self.stage2_params else {})

    def embed(self, img: Image.Image, groups: Sequence[str]) -> np.ndarray:
        return self._global([img], self.inputs.query, None)

    def rerank(self, img: Image.Image, positions: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 2 over the first ``shortlist_k`` results (the notebook's rule: the stage-2 score alone,
        or fused with the global one by ``fuse_global``); the tail keeps its global order and scores."""
        from fgr_utils import fabric, rerank

        if self.qga is None:
            return super().rerank(img, positions, scores)
        if not hasattr(self, "_tokens"):
            self._tokens = fabric.candidate_tokens(self.qga, self.fs.fabric_paths("test"), self.qga_inputs.fabric,
                                                   device=self.device, cache_dir=self.run_dir / "cache",
                                                   name="tokens-test", progress=self.progress)
        k = min(self.rerank_depth, len(positions))
        q_cls = fabric.query_cls(self.qga, [img], self.qga_inputs.query, device=self.device, progress=False)
        s2 = fabric.rerank_queries(self.qga, q_cls, self._tokens, positions[None, :k], device=self.device)[0]
        fused = rerank.fuse(s2, scores[:k], self.stage2_params["fuse_global"])
        order = np.argsort(-fused, kind="stable")
        return (np.concatenate([positions[:k][order], positions[k:]]),
                np.concatenate([fused[order], scores[k:]]))

    def bench_sets(self) -> list[BenchSet]:
        q = self._global(self.fs.query_paths("test"), self.inputs.query, "queries-test")
        where = {fid: r for r, fid in enumerate(self.collection.ids)}
        rel = [np.array(sorted(where[f] for f in self.fs.relevant(rec, gt_key="element_id"))) for rec in self.fs.queries_of("test")]
        return [BenchSet("image", q, self.collection.vectors["image"], rel)]


def _trained_state(run_dir: Path, load_checkpoint) -> dict:
    """The selected weights of a run: ``best.pt`` (what the notebook evaluated), else ``last.pt``."""
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(Path(run_dir) / "checkpoints" / name)
        if state is not None:
            return state["model"]
    raise FgrError(f"no readable checkpoint in {Path(run_dir) / 'checkpoints'}: run the notebook again")


# --------------------------------------------------------------------------------------------
# Sketch-based retrieval
# --------------------------------------------------------------------------------------------

class SbirSearcher(Searcher):
    track = "sbir"
    bench_metrics = ("acc@1", "acc@10")

    def _load(self) -> None:
        from fgr_utils import sbir

        p = self.params
        self.sketches, self.root = sbir.load_dataset(p["dataset"], p["size"], p["data_seed"],
                                                     arnet_compat_single_digit=p.get("arnet_compat_single_digit", False))
        self.model, _ = sbir.load_trained(self.run_dir)
        self.model.to(self.device)
        self.inputs = sbir.SbirInputs(p["img_size"], p["normalize"])
        self.store = sbir.ImageStore(self.inputs.aug_size)

    @property
    def dataset(self) -> str:
        return self.params["dataset"]

    def _model_hash(self) -> str:
        return module_fingerprint(self.model)

    def _embed(self, items, modality: str) -> np.ndarray:
        from fgr_utils import sbir

        return sbir.embed(self.model, items, self.inputs, self.store, modality, device=self.device)

    def _catalogue(self):
        photos = self.sketches.photos("test")
        rel = [str(Path(p).relative_to(self.root)) for p in photos]
        return rel, rel, {"image": self._embed(photos, "photo")}, {}

    def embed(self, img: Image.Image, groups: Sequence[str]) -> np.ndarray:
        return self._embed([img], "sketch")

    def bench_sets(self) -> list[BenchSet]:
        pairs = self.sketches.pairs("test")
        q = self._embed([p for p, _ in pairs], "sketch")
        return [BenchSet("image", q, self.collection.vectors["image"], [np.array([i]) for _, i in pairs])]


# --------------------------------------------------------------------------------------------

_SEARCHERS = {"asfr": AsfrSearcher, "fabric": FabricSearcher, "sbir": SbirSearcher}


def open_run(run_dir: str | Path, *, device: str = "cpu", index_kind: str = "flat", progress: bool = False) -> Searcher:
    """The searcher of a finished run folder (``fgr serve RUN_DIR``, ``fgr bench index --run RUN_DIR``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise FgrError(f"{run_dir} is not a finished run (no metrics.json): give a run folder such as "
                       f"runs/demo/30_asfr_train-asen_v2")
    record = read_record(run_dir)
    track = SERVABLE.get(record.get("notebook", ""))
    if track is None:
        raise FgrError(f"{run_dir.name} is a {record.get('notebook')} run; serve a run of "
                       f"{', '.join(SERVABLE)}")
    return _SEARCHERS[track](run_dir, record, device=device, index_kind=index_kind, progress=progress)
