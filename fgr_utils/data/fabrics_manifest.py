"""The printed-fabric data model: records, :class:`FabricSet` and the ``fabrics-manifest.json`` it reads and writes.

Every fabric dataset the kit reads ends up in this schema, whether the ``sim-fabrics`` generator wrote
it or :mod:`fgr_utils.data.fabrics_convert` made it from the paper's files. The entry point is
:func:`fgr_utils.data.fabrics.load_fabrics`; :mod:`fgr_utils.data.fabrics` re-exports the records, the
set, the keys and the constants, so users import from there. Both the loader and the converter build
on this module and it imports neither, so the loader can call the converter without an import cycle.

Manifest schema (``fabrics-manifest.json``; paths relative to its folder)::

    {"format": "fgr fabrics manifest", "version": 1, "gt_key": "element_id", ...,
     "fabrics": [{"id", "path", "split", "motif_ids": [...], "categories": [...],
                  "boxes": [[motif_id, x1, y1, x2, y2], ...]}],
     "motifs":  [{"id", "path", "category", "split"}],
     "queries": [{"query_id", "path", "split", "element_id", "category", "relevant": [fabric ids]}]}

Ground truth (the reference's switch #7, ``gt_key``): ``"element_id"`` (default, instance level) - the
fabrics listed in the query's ``relevant`` (those that contain its motif); ``"category"`` - the fabrics
of the query's split that contain any motif of the query's category. Training samplers
(:meth:`FabricSet.sample_triplets`) use the same two levels: stage 1 ``"category"``, stage 2
``"instance"``.

Images are not decoded here. :meth:`FabricSet.image_paths` lists what a loader reads and
:meth:`FabricSet.without` leaves images out (what :func:`fgr_utils.data.reader.without_unreadable`
calls with the unreadable ones): an unreadable fabric image takes its fabric out of its split and out
of every relevant list; an unreadable motif takes the motif, and the query it is, out (a query whose
every relevant fabric left goes too, noted in ``.problems``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from fgr_utils import io
from fgr_utils.data.images import IMAGE_SUFFIXES, ScanResult, scan_images
from fgr_utils.errors import FgrError

__all__ = [
    "FabricSet", "FabricRecord", "MotifRecord", "QueryRecord", "FabricSplit", "Triplet",
    "element_key", "fabric_key", "write_manifest", "from_manifest", "read_json", "read_text", "rel_path",
    "MANIFEST_FILE", "MANIFEST_FORMAT", "MANIFEST_VERSION", "DATASET_FOLDER", "ELEMENT_DIR", "SPLITS", "GT_KEYS",
    "LEVELS", "SPLIT_FILES", "SUB_FILES", "TEST_FILES", "QUERY_LISTS",
]

MANIFEST_FILE = "fabrics-manifest.json"
MANIFEST_FORMAT = "fgr fabrics manifest"
MANIFEST_VERSION = 1
DATASET_FOLDER = "SimulatedPrintedFabrics-17k"
ELEMENT_DIR = "element img"
SPLITS = ("train", "validation", "test")
GT_KEYS = ("element_id", "category")
LEVELS = ("category", "instance")
# the paper's files (Kaggle layout), read by fgr_utils.data.fabrics_convert and written by the sim-fabrics generator
SPLIT_FILES = {"train": "Train_split.json", "validation": "Validation_split.json", "test": "Test_split.json"}
SUB_FILES = {"train": "train_sub.txt", "validation": "val_sub.txt"}
TEST_FILES = ("TestAll_index.csv", "Test_element.csv")
QUERY_LISTS = ("test.txt", "element_all/test.txt")
_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "training": "train", "eval": "test"}
_SHOW = 5  # how many names an error line shows


# ---------------------------------------------------------------------------------------------------
# keys


def element_key(name: Any) -> str:
    """A motif id from a file name or key: the base name's part before the first comma.

    ``"element img/10640,.png"`` -> ``"10640"``; ``"10640,"`` -> ``"10640"``; ``10640`` -> ``"10640"``;
    without a comma an image suffix is dropped (``"10640.png"`` -> ``"10640"``).
    """
    s = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1].strip()
    if "," in s:
        return s.split(",", 1)[0].strip()
    low = s.lower()
    for suffix in IMAGE_SUFFIXES:
        if low.endswith(suffix):
            return s[: -len(suffix)]
    return s


def fabric_key(name: Any) -> str:
    """A fabric id from a file name or key: the base name before the first dot (as the paper's evaluation)."""
    s = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1].strip()
    return s.split(".", 1)[0] if "." in s else s


def _split_name(name: str) -> str:
    s = _SPLIT_ALIASES.get(str(name).lower(), str(name).lower())
    if s not in SPLITS:
        raise FgrError(f"split must be one of {', '.join(SPLITS)}, not {name!r}")
    return s


# ---------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class FabricRecord:
    id: str
    path: Path
    split: str
    motif_ids: tuple[str, ...]
    categories: tuple[str, ...]
    boxes: tuple[tuple[str, int, int, int, int], ...] = ()  # every placed copy (sim-fabrics only)


@dataclass(frozen=True)
class MotifRecord:
    id: str
    path: Path
    category: str
    split: str
    stored_background: str = ""  # "black" / "white" under transparent pixels, when known


@dataclass(frozen=True)
class QueryRecord:
    query_id: str
    path: Path
    split: str
    element_id: str
    category: str
    relevant: tuple[str, ...]  # fabric ids (instance-level ground truth as listed)
    class_key: str = ""  # the class the paper's files key the ground truth on (converted sets)


@dataclass(frozen=True)
class FabricSplit:
    name: str
    fabrics: list[FabricRecord]
    motifs: list[MotifRecord]
    queries: list[QueryRecord]


class Triplet(NamedTuple):
    anchor: Path  # a motif image
    positive: Path  # a fabric image
    negative: Path  # a fabric image


# ---------------------------------------------------------------------------------------------------
# the set


@dataclass
class FabricSet:
    """Fabrics, motifs and queries of one dataset, with the ground-truth and sampling helpers."""

    root: Path  # folder of the manifest; relative paths in it are relative to this folder
    fabrics: list[FabricRecord]
    motifs: list[MotifRecord]
    queries: list[QueryRecord]
    source: str = "manifest"  # "manifest" (read as is) or "converted" (made from the paper's files)
    manifest_path: Path | None = None
    problems: list[str] = field(default_factory=list)
    gt_key: str = "element_id"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.gt_key not in GT_KEYS:
            raise FgrError(f"gt_key must be one of {', '.join(GT_KEYS)}, not {self.gt_key!r}")
        self._fab: dict[tuple[str, str], FabricRecord] = {}
        self._fab_ids: dict[str, list[FabricRecord]] = {}
        for f in self.fabrics:
            self._fab.setdefault((f.split, f.id), f)
            self._fab_ids.setdefault(f.id, []).append(f)
        self._query = {q.query_id: q for q in self.queries}
        self._motif = {m.id: m for m in self.motifs}
        self._index_cache: dict[str, tuple] = {}

    # -- lookups -----------------------------------------------------------------------------------
    def split(self, name: str) -> FabricSplit:
        s = _split_name(name)
        return FabricSplit(s, self.fabrics_of(s), self.motifs_of(s), self.queries_of(s))

    def fabrics_of(self, split: str) -> list[FabricRecord]:
        s = _split_name(split)
        return [f for f in self.fabrics if f.split == s]

    def motifs_of(self, split: str) -> list[MotifRecord]:
        s = _split_name(split)
        return [m for m in self.motifs if m.split == s]

    def queries_of(self, split: str) -> list[QueryRecord]:
        s = _split_name(split)
        return [q for q in self.queries if q.split == s]

    def fabric_ids(self, split: str) -> list[str]:
        """Ids of the fabrics of ``split`` in manifest order (the database order of a retrieval run)."""
        return [f.id for f in self.fabrics_of(split)]

    def fabric_paths(self, split: str) -> list[Path]:
        return [f.path for f in self.fabrics_of(split)]

    def query_ids(self, split: str) -> list[str]:
        return [q.query_id for q in self.queries_of(split)]

    def query_paths(self, split: str) -> list[Path]:
        return [q.path for q in self.queries_of(split)]

    def fabric(self, fabric_id: str, split: str | None = None) -> FabricRecord:
        fid = fabric_key(fabric_id)
        if split is not None:
            f = self._fab.get((_split_name(split), fid))
            if f is None:
                raise FgrError(f"no fabric {fid!r} in the {split} split of {self.root}")
            return f
        found = self._fab_ids.get(fid, [])
        if not found:
            raise FgrError(f"no fabric {fid!r} in {self.root}")
        if len(found) > 1:
            raise FgrError(f"fabric id {fid!r} is in splits {', '.join(f.split for f in found)}; pass split=")
        return found[0]

    def fabric_path(self, fabric_id: str, split: str | None = None) -> Path:
        return self.fabric(fabric_id, split).path

    def motif(self, motif_id: str) -> MotifRecord:
        m = self._motif.get(element_key(motif_id))
        if m is None:
            raise FgrError(f"no motif {motif_id!r} in {self.root}")
        return m

    def query(self, query: str | QueryRecord) -> QueryRecord:
        if isinstance(query, QueryRecord):
            return query
        q = self._query.get(str(query)) or self._query.get(element_key(query))
        if q is None:
            raise FgrError(f"no query {query!r} in {self.root}")
        return q

    # -- ground truth ------------------------------------------------------------------------------
    def relevant(self, query: str | QueryRecord, gt_key: str | None = None) -> set[str]:
        """Fabric ids relevant to ``query``: by ``"element_id"`` (as listed) or ``"category"``."""
        q = self.query(query)
        key = gt_key or self.gt_key
        if key == "element_id":
            return set(q.relevant)
        if key == "category":
            if not q.category:
                raise FgrError(f"query {q.query_id} has no category; category-level ground truth needs one")
            fabs, _, by_cat = self._index(q.split)
            return {fabs[i].id for i in by_cat.get(q.category, [])}
        raise FgrError(f"gt_key must be one of {', '.join(GT_KEYS)}, not {key!r}")

    def by_category(self, split: str | None = None) -> dict[str, list[str]]:
        """Category -> ids of the fabrics (of ``split``, or all) that hold a motif of that category."""
        out: dict[str, list[str]] = {}
        for f in self.fabrics if split is None else self.fabrics_of(split):
            for c in dict.fromkeys(f.categories):
                out.setdefault(c, []).append(f.id)
        return out

    def motifs_by_category(self, split: str | None = None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for m in self.motifs if split is None else self.motifs_of(split):
            out.setdefault(m.category, []).append(m.id)
        return out

    @property
    def categories(self) -> list[str]:
        seen = dict.fromkeys(c for f in self.fabrics for c in f.categories)
        seen.update(dict.fromkeys(m.category for m in self.motifs if m.category))
        return sorted(seen)

    def counts(self) -> dict[str, dict[str, int]]:
        out = {s: {"fabrics": 0, "motifs": 0, "queries": 0} for s in SPLITS}
        for items, key in ((self.fabrics, "fabrics"), (self.motifs, "motifs"), (self.queries, "queries")):
            for x in items:
                out[x.split][key] += 1
        out["total"] = {k: sum(out[s][k] for s in SPLITS) for k in ("fabrics", "motifs", "queries")}
        return out

    def summary(self) -> str:
        c = self.counts()
        per = "; ".join(f"{s} {c[s]['fabrics']} fabrics / {c[s]['motifs']} motifs / {c[s]['queries']} queries"
                        for s in SPLITS if any(c[s].values()))
        return f"{self.root} ({self.source}): {per}" + (f"; {len(self.problems)} problem(s)" if self.problems else "")

    # -- files -------------------------------------------------------------------------------------
    def paths(self) -> list[Path]:
        """Every file the set lists (fabrics, motifs, queries), each once."""
        seen = dict.fromkeys([f.path for f in self.fabrics] + [m.path for m in self.motifs] + [q.path for q in self.queries])
        return list(seen)

    def missing_files(self) -> list[Path]:
        listings: dict[Path, set[str] | None] = {}
        missing = []
        for p in self.paths():
            parent = p.parent
            if parent not in listings:
                try:
                    listings[parent] = {e.name for e in os.scandir(parent)}
                except OSError:
                    listings[parent] = None
            names = listings[parent]
            if names is None or p.name not in names:
                missing.append(p)
        return missing

    def check_files(self) -> None:
        """Raise :class:`FgrError` (one line) when a listed file does not exist."""
        missing = self.missing_files()
        if missing:
            total = len(self.paths())
            shown = io.few((rel_path(p, self.root) for p in missing), _SHOW)
            raise FgrError(f"{len(missing)} of {total} files listed for {self.root} are missing: {shown} "
                           "(pass check_files=False to load anyway)")

    def check_images(self, workers: int = 2) -> ScanResult:
        """Decode every listed file (cached per folder); ``.bad`` lists unreadable ones with reasons."""
        return scan_images(self.paths(), workers=workers)

    def image_paths(self) -> list[Path]:
        """Every image a loader reads: fabrics, motifs, queries, each once (the :meth:`paths` order)."""
        return self.paths()

    def without(self, bad: Mapping[Path, str]) -> FabricSet:
        """This set without the images ``bad`` names (path -> reason; images it does not list are ignored).

        An image left out: a fabric leaves its split, and its id leaves every query's ``relevant`` list
        (a relevant fabric that is not in the database would count as a miss). A motif leaves, and so
        does the query that is that motif. A query left with no relevant fabric goes too (its AP would
        be 0 whatever the ranking), noted in ``.problems``. When none of its images is in ``bad``, the
        set itself is returned.
        """
        bad = {Path(p): r for p, r in bad.items()}
        if not any(p in bad for p in self.paths()):
            return self
        fabrics = [f for f in self.fabrics if f.path not in bad]
        gone = {(f.split, f.id) for f in self.fabrics if f.path in bad}
        problems = list(self.problems)
        queries = []
        for q in self.queries:
            if q.path in bad:
                continue
            relevant = tuple(r for r in q.relevant if (q.split, r) not in gone)
            if q.relevant and not relevant:
                problems.append(f"{q.split} query {q.query_id} left out: every fabric relevant to it is unreadable")
                continue
            queries.append(q if relevant == q.relevant else QueryRecord(
                q.query_id, q.path, q.split, q.element_id, q.category, relevant, q.class_key))
        motifs = [m for m in self.motifs if m.path not in bad]
        return FabricSet(self.root, fabrics, motifs, queries, source=self.source, manifest_path=self.manifest_path,
                         problems=problems, gt_key=self.gt_key, meta=dict(self.meta))

    # -- training samplers -------------------------------------------------------------------------
    def _index(self, split: str):
        hit = self._index_cache.get(split)
        if hit is None:
            fabs = self.fabrics_of(split)
            by_motif: dict[str, list[int]] = {}
            by_cat: dict[str, list[int]] = {}
            for i, f in enumerate(fabs):
                for m in dict.fromkeys(f.motif_ids):
                    by_motif.setdefault(m, []).append(i)
                for c in dict.fromkeys(f.categories):
                    by_cat.setdefault(c, []).append(i)
            hit = (fabs, by_motif, by_cat)
            self._index_cache[split] = hit
        return hit

    def sample_triplets(self, split: str, level: str, n: int | None = None,
                        rng: np.random.Generator | int | None = None, *, hard_fraction: float = 0.5) -> list[Triplet]:
        """``n`` (motif, positive fabric, negative fabric) path triplets of ``split``.

        Anchors cycle through the split's motifs in random order (``n=None``: one per motif, as one
        epoch of the paper's samplers). ``level="category"`` (stage 1): positive = a uniformly random
        fabric whose categories contain the motif's category, negative = one whose categories do not.
        ``level="instance"`` (stage 2): positive = a fabric that contains the motif id; negative = with
        probability ``hard_fraction`` a fabric holding another motif of the same category but not this
        one (when there is one), else a uniformly random fabric that does not contain the motif.
        Motifs without a positive or a negative are skipped.
        """
        s = _split_name(split)
        if level not in LEVELS:
            raise FgrError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        if not 0.0 <= float(hard_fraction) <= 1.0:
            raise FgrError(f"hard_fraction must be between 0 and 1, not {hard_fraction}")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        fabs, by_motif, by_cat = self._index(s)
        plans = []
        for m in self.motifs_of(s):
            if level == "category":
                if not m.category:
                    continue
                pos = by_cat.get(m.category, [])
                hard: list[int] = []
            else:
                pos = by_motif.get(m.id, [])
                own = set(pos)
                hard = [i for i in by_cat.get(m.category, []) if i not in own] if m.category else []
            if pos and len(pos) < len(fabs):
                plans.append((m, pos, set(pos), hard))
        if not plans:
            raise FgrError(f"no {s} motif has both a positive and a negative fabric at {level} level")
        n = len(plans) if n is None else int(n)
        order: list[int] = []
        while len(order) < n:
            order.extend(int(i) for i in rng.permutation(len(plans)))
        out = []
        for k in order[:n]:
            m, pos, pos_set, hard = plans[k]
            p = fabs[pos[int(rng.integers(len(pos)))]]
            if level == "instance" and hard and rng.random() < hard_fraction:
                neg = hard[int(rng.integers(len(hard)))]
            elif len(pos_set) > 0.8 * len(fabs):
                rest = [i for i in range(len(fabs)) if i not in pos_set]
                neg = rest[int(rng.integers(len(rest)))]
            else:
                while True:  # rejection: uniform over the fabrics that are not positives
                    neg = int(rng.integers(len(fabs)))
                    if neg not in pos_set:
                        break
            out.append(Triplet(m.path, p.path, fabs[neg].path))
        return out

    # -- manifest ----------------------------------------------------------------------------------
    def to_manifest(self) -> dict:
        rel = lambda p: rel_path(p, self.root)  # noqa: E731
        return {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, **{k: v for k, v in self.meta.items()
                                                                       if k not in ("fabrics", "motifs", "queries", "problems")},
            "gt_key": "element_id", "problems": list(self.problems),
            "fabrics": [{"id": f.id, "path": rel(f.path), "split": f.split, "motif_ids": list(f.motif_ids),
                         "categories": list(f.categories), "boxes": [list(b) for b in f.boxes]} for f in self.fabrics],
            "motifs": [{"id": m.id, "path": rel(m.path), "category": m.category, "split": m.split,
                        **({"stored_background": m.stored_background} if m.stored_background else {})} for m in self.motifs],
            "queries": [{"query_id": q.query_id, "path": rel(q.path), "split": q.split, "element_id": q.element_id,
                         "category": q.category, "relevant": list(q.relevant),
                         **({"class_key": q.class_key} if q.class_key else {})} for q in self.queries],
        }


def rel_path(p: Path, base: Path) -> str:
    """``p`` relative to ``base`` in POSIX form, or all of ``p`` when it is not below ``base``."""
    try:
        return Path(p).relative_to(base).as_posix()
    except ValueError:
        return Path(p).as_posix()


# ---------------------------------------------------------------------------------------------------
# manifest reading and writing


def write_manifest(path: str | os.PathLike, manifest: dict) -> None:
    """Write a fabrics manifest atomically: top-level keys indented, one record per line."""
    parts = []
    for key, value in manifest.items():
        if key in ("fabrics", "motifs", "queries", "problems") and isinstance(value, list):
            parts.append(f' "{key}": ' + io.json_lines(value, " "))
        else:
            parts.append(f' "{key}": ' + json.dumps(value, separators=(",", ":")))
    io.write_text(path, "{\n" + ",\n".join(parts) + "\n}\n")


def _need(rec: Any, keys: Sequence[str], what: str, i: int, path: Path) -> dict:
    if not isinstance(rec, dict):
        raise FgrError(f"{path}: {what} record {i} is a {type(rec).__name__}, not an object")
    missing = [k for k in keys if k not in rec]
    if missing:
        raise FgrError(f"{path}: {what} record {i} lacks {', '.join(missing)} (has {', '.join(sorted(rec))})")
    return rec


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def from_manifest(data: Any, path: Path, gt_key: str) -> FabricSet:
    """The :class:`FabricSet` of a manifest's JSON ``data`` read from ``path`` (every record checked; one-line errors)."""
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("fabrics", "motifs", "queries")):
        have = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise FgrError(f"{path} is not a fabrics manifest: expected lists fabrics, motifs and queries, found {have}")
    base = path.parent
    fabrics, motifs, queries = [], [], []
    for i, r in enumerate(data["fabrics"]):
        _need(r, ("id", "path", "split", "motif_ids", "categories"), "fabric", i, path)
        if len(r["motif_ids"]) != len(r["categories"]):
            raise FgrError(f"{path}: fabric {r['id']} has {len(r['motif_ids'])} motif ids but {len(r['categories'])} categories")
        boxes = tuple((str(b[0]), *(int(v) for v in b[1:5])) for b in r.get("boxes") or ())
        fabrics.append(FabricRecord(fabric_key(r["id"]), _resolve(base, r["path"]), _split_of(r, path, "fabric", i),
                                    tuple(element_key(m) for m in r["motif_ids"]), tuple(str(c) for c in r["categories"]),
                                    boxes))
    for i, r in enumerate(data["motifs"]):
        _need(r, ("id", "path", "category", "split"), "motif", i, path)
        motifs.append(MotifRecord(element_key(r["id"]), _resolve(base, r["path"]), str(r["category"]),
                                  _split_of(r, path, "motif", i), str(r.get("stored_background", ""))))
    for i, r in enumerate(data["queries"]):
        _need(r, ("query_id", "path", "split", "element_id", "category", "relevant"), "query", i, path)
        queries.append(QueryRecord(str(r["query_id"]), _resolve(base, r["path"]), _split_of(r, path, "query", i),
                                   element_key(r["element_id"]), str(r["category"]),
                                   tuple(fabric_key(x) for x in r["relevant"]), str(r.get("class_key", ""))))
    meta = {k: v for k, v in data.items() if k not in ("fabrics", "motifs", "queries", "problems")}
    problems = [str(p) for p in data.get("problems") or []]
    source = "converted" if data.get("converted_from") else "manifest"
    return FabricSet(base, fabrics, motifs, queries, source=source, manifest_path=path, problems=problems,
                     gt_key=gt_key, meta=meta)


def _split_of(r: dict, path: Path, what: str, i: int) -> str:
    try:
        return _split_name(r["split"])
    except FgrError:
        raise FgrError(f"{path}: {what} record {i} has split {r['split']!r}; expected one of {', '.join(SPLITS)}") from None



def read_text(path: Path) -> str:
    """A text file (UTF-8 with or without BOM, else Latin-1); an unreadable one is a one-line :class:`FgrError`."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")
    except OSError as e:
        raise FgrError(f"cannot read {path}: {io.one_line(e)}") from None


def read_json(path: Path) -> Any:
    """A JSON file; invalid JSON is a one-line :class:`FgrError` naming the file."""
    try:
        return json.loads(read_text(path))
    except ValueError as e:
        raise FgrError(f"{path} is not valid JSON: {io.one_line(e)}") from None
