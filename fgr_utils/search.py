"""A trained run as a search engine: its collection in an index, query embedding, exact fusion.

:func:`open_run` turns a finished training run of any track into a :class:`Searcher`. The track's
wing (:mod:`fgr_utils.tracks`) embeds the collection and the queries with the same function (same
checkpoint, same β, same preprocessing, eval mode: ``asfr_rpf_agman.md`` §6 rule 4); the searcher
keeps the collection in ``RUN_DIR/index/`` under the model's hash, so a retrained run is never served
with stale vectors, builds one index per group (an attribute, or ``"image"``) and searches it. Scores
are inner products of unit vectors, i.e. cosines (rule 2); several attributes are fused by **summing
their cosines over the whole collection** (rule 3), never by adding truncated top-k lists.
"""
from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from fgr_utils import io, tracks
from fgr_utils.errors import FgrError
from fgr_utils.index import KINDS, build_index
from fgr_utils.results import RunRecord
from fgr_utils.tracks.base import BenchSet, Catalogue, TrainedRun


@dataclass
class Collection(Catalogue):
    """What a run serves, as kept on disk: its catalogue and the hash of the model that made it."""

    model_hash: str = ""

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
        return cls(meta["ids"], meta["paths"], vectors, meta.get("settings", {}), meta["model_hash"])


class Searcher:
    """A trained run ready to answer queries: its collection (embedded once, kept on disk) in one
    index per group."""

    def __init__(self, trained: TrainedRun, *, index_kind: str = "flat"):
        if index_kind not in KINDS:
            raise FgrError(f"index kind must be one of {', '.join(KINDS)}, not {index_kind!r}")
        self.trained, self.index_kind = trained, index_kind
        self.run_dir = trained.run.dir
        self.model_hash = trained.model_hash()
        self.collection = self._collection()
        self.indexes = {g: build_index(v, index_kind, "ip") for g, v in self.collection.vectors.items()}

    @property
    def groups(self) -> list[str]:
        return list(self.collection.vectors)

    def _collection(self) -> Collection:
        folder = self.run_dir / "index"
        path = folder / f"collection-{self.model_hash[:20]}.npz"
        found = Collection.load(path)
        if found is not None and found.model_hash == self.model_hash:
            return found
        t0 = time.perf_counter()
        cat = self.trained.catalogue()
        vectors = {g: np.ascontiguousarray(v, dtype=np.float32) for g, v in cat.vectors.items()}
        coll = Collection(cat.ids, cat.paths, vectors, cat.settings, self.model_hash)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("collection-*.npz"):
            stale.unlink()
        coll.save(path)
        print(f"fgr: embedded the collection of {self.run_dir.name} ({len(coll.ids)} items x {len(coll.vectors)} "
              f"group(s)) in {time.perf_counter() - t0:.1f} s -> {path}")
        return coll

    def bench_sets(self) -> list[BenchSet]:
        """The track's test queries per group, over this collection, for the index benchmark."""
        return self.trained.bench_sets(self.collection)

    def info(self) -> dict[str, Any]:
        some = next(iter(self.collection.vectors.values()))
        t = self.trained
        return {"run": self.run_dir.name, "notebook": t.run.notebook, "track": t.track, "model": t.model_name,
                "dataset": t.dataset, "attributes": self.groups if t.attribute_specific else [],
                "index": {"kind": self.index_kind, "size": len(self.collection.ids), "dim": int(some.shape[1]),
                          "groups": len(self.collection.vectors)},
                "model_hash": self.model_hash[:16], "rerank": t.can_rerank, **self.collection.settings}

    def decode(self, data: bytes) -> Image.Image:
        return self.trained.decode(data)

    def check_groups(self, names: Sequence[str], max_groups: int | None = None) -> list[str]:
        """The query's attributes, checked: known, not repeated, not too many (none for other tracks)."""
        names = [n.strip() for n in names if n.strip()]
        if not self.trained.attribute_specific:
            if names:
                raise FgrError(f"this {self.trained.track} run has no attributes: leave 'attributes' out")
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
        q = self.trained.embed(img, groups)
        times["embed"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        n = len(self.collection.ids)
        k = min(int(k), n)
        depth = min(max(k, self.trained.rerank_depth), n) if rerank else k  # the whole shortlist is re-ranked
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
            pos, scores = self.trained.rerank(img, pos, scores)
            times["rerank"] = (time.perf_counter() - t) * 1e3
        return pos[:k], scores[:k].astype(np.float64), times


def open_run(run: str | Path | RunRecord, *, device: str = "cpu", index_kind: str = "flat",
             progress: bool = False) -> Searcher:
    """The searcher of a finished training run (``fgr serve RUN``, ``fgr bench index --run RUN``)."""
    record = run if isinstance(run, RunRecord) else RunRecord.open(run)
    return Searcher(tracks.load(record, device=device, progress=progress), index_kind=index_kind)
