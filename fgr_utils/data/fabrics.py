"""Reader for printed-fabric sub-element retrieval: SimulatedPrintedFabrics-17k (Kaggle) and ``sim-fabrics``.

One reader serves the paper run, the demo and the tests (design principle 1). :func:`load_fabrics`:

1. uses ``fabrics-manifest.json`` when it is present (the kit's explicit manifest, written by the
   ``sim-fabrics`` generator or by step 2);
2. otherwise finds the ``SimulatedPrintedFabrics-17k`` folder anywhere below ``root`` (the top level of
   the Kaggle archive is not documented) and converts the paper's files beside it into the same schema:

   ========================  ==================================================================
   ``Train_split.json``      ``[[<field 0>, <fabric_id>, elem_1..elem_n, cat_1..cat_n], ...]``
   ``Validation_split.json`` (same; ``Test_split.json`` too when present)
   ``train_sub.txt``         ``<path>.png <category>`` per training motif (``val_sub.txt``: validation)
   ``TestAll_index.csv``     column-oriented: header = class keys, column = relevant fabric ids
   ``Test_element.csv``      rows ``query_filename,class``
   ``test.txt``              ``<path>.png <category>`` per test query (``element_all/test.txt`` too)
   ========================  ==================================================================

   Every key is normalised: a motif id is the file name's part before the first comma
   (``element img/10640,.png`` -> ``"10640"``, see :func:`element_key`), a fabric id the base name
   before the first dot (:func:`fabric_key`). Queries without ground truth are logged and listed in
   ``.problems``. The converted manifest is written back beside the files (atomically) so it is
   explicit and inspectable, and re-made when one of the files it came from changes;
3. raises :class:`~fgr_utils.errors.FgrError` with one line naming what it found when the layout does
   not match (e.g. ``found SimulatedPrintedFabrics-17k/train but no Train_split.json; expected ...``).

Every file the manifest lists is checked to exist (missing ones: one ``FgrError`` line with the first
few and the count) unless ``check_files=False``; :meth:`FabricSet.check_images` also decodes them.
:meth:`FabricSet.without_unreadable` leaves out what cannot be decoded (the training notebooks load
through it): an unreadable fabric image takes its fabric out of its split and out of every relevant
list; an unreadable motif takes the motif, and the query it is, out (a query whose every relevant
fabric left goes too, noted in ``.problems``). The files left out are listed in ``.skipped``.

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
"""
from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from fgr_utils import io
from fgr_utils.data.images import IMAGE_SUFFIXES, ScanResult, scan_images, unreadable_images
from fgr_utils.errors import DatasetMissing, FgrError

__all__ = [
    "FabricSet", "FabricRecord", "MotifRecord", "QueryRecord", "FabricSplit", "Triplet",
    "load_fabrics", "element_key", "fabric_key", "write_manifest",
    "MANIFEST_FILE", "DATASET_FOLDER", "ELEMENT_DIR", "SPLITS", "GT_KEYS", "LEVELS",
    "SPLIT_FILES", "SUB_FILES",
]

log = logging.getLogger(__name__)

MANIFEST_FILE = "fabrics-manifest.json"
MANIFEST_FORMAT = "fgr fabrics manifest"
MANIFEST_VERSION = 1
DATASET_FOLDER = "SimulatedPrintedFabrics-17k"
ELEMENT_DIR = "element img"
SPLITS = ("train", "validation", "test")
GT_KEYS = ("element_id", "category")
LEVELS = ("category", "instance")
SPLIT_FILES = {"train": "Train_split.json", "validation": "Validation_split.json", "test": "Test_split.json"}
SUB_FILES = {"train": "train_sub.txt", "validation": "val_sub.txt"}
TEST_FILES = ("TestAll_index.csv", "Test_element.csv")
QUERY_LISTS = ("test.txt", "element_all/test.txt")
_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "training": "train", "eval": "test"}
_SEARCH_DEPTH = 4  # how deep below root the dataset folder is looked for
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
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable files left out: (path, reason)

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
            shown = io.few((_rel(p, self.root) for p in missing), _SHOW)
            raise FgrError(f"{len(missing)} of {total} files listed for {self.root} are missing: {shown} "
                           "(pass check_files=False to load anyway)")

    def check_images(self, workers: int = 2) -> ScanResult:
        """Decode every listed file (cached per folder); ``.bad`` lists unreadable ones with reasons."""
        return scan_images(self.paths(), workers=workers)

    def without_unreadable(self, workers: int = 2) -> FabricSet:
        """This set without the files that cannot be decoded, which are listed in ``.skipped``.

        An unreadable fabric image: the fabric leaves its split, and its id leaves every query's
        ``relevant`` list (a relevant fabric that is not in the database would count as a miss). An
        unreadable motif: the motif leaves, and so does the query that is that motif. A query left with
        no relevant fabric goes too (its AP would be 0 whatever the ranking), noted in ``.problems``.
        The scan uses the per-folder cache of :func:`~fgr_utils.data.images.scan_images`.
        """
        bad = unreadable_images(self.paths(), workers=workers)
        if not bad:
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
                         problems=problems, gt_key=self.gt_key, meta=dict(self.meta),
                         skipped=list(self.skipped) + list(bad.items()))

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
        rel = lambda p: _rel(p, self.root)  # noqa: E731
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


def _rel(p: Path, base: Path) -> str:
    try:
        return Path(p).relative_to(base).as_posix()
    except ValueError:
        return Path(p).as_posix()


# ---------------------------------------------------------------------------------------------------
# manifest reading and writing


def _json_lines(items: Sequence, indent: str = " ") -> str:
    if not items:
        return "[]"
    body = (",\n" + indent + " ").join(json.dumps(x, separators=(",", ":")) for x in items)
    return "[\n" + indent + " " + body + "\n" + indent + "]"


def write_manifest(path: str | os.PathLike, manifest: dict) -> None:
    """Write a fabrics manifest atomically: top-level keys indented, one record per line."""
    parts = []
    for key, value in manifest.items():
        if key in ("fabrics", "motifs", "queries", "problems") and isinstance(value, list):
            parts.append(f' "{key}": ' + _json_lines(value))
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


def _from_manifest(data: Any, path: Path, gt_key: str) -> FabricSet:
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


# ---------------------------------------------------------------------------------------------------
# finding the dataset folder


def _find_dataset_folder(root: Path, name: str) -> Path | None:
    if root.name == name:
        return root
    if (root / name).is_dir():
        return root / name
    found: list[Path] = []
    base_depth = len(root.parts)
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if len(here.parts) - base_depth >= _SEARCH_DEPTH:
            dirnames[:] = []
            continue
        if name in dirnames:
            found.append(here / name)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != name and d not in ("img", "images"))
    if not found:
        return None
    found.sort(key=lambda p: (len(p.parts), str(p)))
    if len(found) > 1 and len(found[0].parts) == len(found[1].parts):
        raise FgrError(f"found {len(found)} {name} folders under {root} ({', '.join(_rel(p, root) for p in found[:_SHOW])}); "
                       "point root at the one to use")
    return found[0]


# ---------------------------------------------------------------------------------------------------
# the converter (the paper's files -> the manifest schema)


class _Files:
    """The paper's metadata files, looked up beside the dataset folder, inside it, then at root."""

    def __init__(self, dirs: Sequence[Path]):
        self.dirs = list(dict.fromkeys(dirs))
        self._listing: dict[Path, dict[str, str]] = {}

    def find(self, rel: str) -> Path | None:
        parts = rel.split("/")
        for d in self.dirs:
            here = d
            for part in parts:
                if here not in self._listing:
                    try:
                        self._listing[here] = {e.name.lower(): e.name for e in os.scandir(here)}
                    except OSError:
                        self._listing[here] = {}
                real = self._listing[here].get(part.lower())
                if real is None:
                    break
                here = here / real
            else:
                if here.is_file():
                    return here
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")
    except OSError as e:
        raise FgrError(f"cannot read {path}: {io.one_line(e)}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except ValueError as e:
        raise FgrError(f"{path} is not valid JSON: {io.one_line(e)}") from None


def _read_csv(path: Path) -> list[list[str]]:
    return [row for row in csv.reader(_read_text(path).splitlines())]


def _list_line(line: str) -> tuple[str, str]:
    """``"<path>.png <category>"`` -> (path, category); a bare path -> (path, "")."""
    line = line.strip()
    low = line.lower()
    for suffix in IMAGE_SUFFIXES:
        i = low.rfind(suffix + " ")
        if i >= 0:
            return line[: i + len(suffix)], line[i + len(suffix) + 1:].strip()
    if low.endswith(IMAGE_SUFFIXES):
        return line, ""
    head, _, tail = line.rpartition(" ")
    return (head, tail) if head else (line, "")


def _element_row(row: Sequence[str]) -> tuple[str, str]:
    """(query file name, class) from a Test_element.csv row.

    Copes with an unquoted comma inside the file name (``10640,.png,10640`` read as three cells) and
    with a leading index column (as pandas writes one).
    """
    cells = [c.strip() for c in row]
    for j, c in enumerate(cells):
        if c.lower().endswith(IMAGE_SUFFIXES):
            name = cells[j - 1] + "," + c if j > 0 and (c.startswith(".") or c.startswith(",")) else c
            return name, (cells[-1] if j < len(cells) - 1 else "")
    if len(cells) == 1:
        return cells[0], ""
    return cells[-2], cells[-1]


def _is_header(row: Sequence[str], known: set[str]) -> bool:
    first = row[0].strip() if row else ""
    return bool(first) and not first.lower().endswith(IMAGE_SUFFIXES) and "," not in first and element_key(first) not in known


class _Converter:
    def __init__(self, root: Path, spf: Path, dataset_folder: str):
        self.root, self.spf, self.data_root, self.name = root, spf, spf.parent, dataset_folder
        self.files = _Files([self.data_root, spf, root])
        self.problems: list[str] = []
        self.used: list[Path] = []
        self._elements: dict[str, Path] | None = None

    def note(self, msg: str) -> None:
        self.problems.append(msg)
        log.warning("%s", msg)

    # element images (motifs and queries), by id
    def elements(self) -> dict[str, Path]:
        if self._elements is None:
            self._elements = {}
            for d in (self.data_root / ELEMENT_DIR, self.spf / ELEMENT_DIR):
                try:
                    entries = sorted(os.scandir(d), key=lambda e: e.name)
                except OSError:
                    continue
                for e in entries:
                    if e.name.lower().endswith(IMAGE_SUFFIXES):
                        self._elements.setdefault(element_key(e.name), Path(d) / e.name)
        return self._elements

    def motif_path(self, raw: str) -> Path:
        p = Path(raw.replace("\\", "/"))
        if p.is_absolute() and p.is_file():
            return p
        if not p.is_absolute() and (self.data_root / p).is_file():
            return self.data_root / p
        hit = self.elements().get(element_key(raw))
        if hit is not None:
            return hit
        return p if p.is_absolute() else self.data_root / (p if len(p.parts) > 1 else Path(ELEMENT_DIR) / p)

    def convert(self) -> tuple[list[FabricRecord], list[MotifRecord], list[QueryRecord]]:
        present = [s for s in SPLITS if (self.spf / s / "img" / "images").is_dir()]
        if not present:
            have = sorted(e.name for e in os.scandir(self.spf) if e.is_dir()) if self.spf.is_dir() else []
            raise FgrError(f"found {self.name} at {self.spf} but no {{train,validation,test}}/img/images inside "
                           f"(it holds: {', '.join(have[:8]) or 'nothing'}); expected the Kaggle layout "
                           f"{self.name}/<split>/img/images/<fabric_id>.png")
        lacking = []
        for s in present:
            if s != "test" and self.files.find(SPLIT_FILES[s]) is None:
                lacking.append(f"found {self.name}/{s} but no {SPLIT_FILES[s]}")
        if "test" in present:
            miss = [f for f in TEST_FILES if self.files.find(f) is None]
            if miss:
                lacking.append(f"found {self.name}/test but no {' or '.join(miss)}")
        if lacking:
            raise FgrError("; ".join(lacking) + f"; expected them in {self.data_root} (beside {self.name}) or inside it")

        fabrics: list[FabricRecord] = []
        cat_of: dict[str, str] = {}
        for s in present:
            fabrics += self._split_fabrics(s, cat_of)
        motifs: dict[str, MotifRecord] = {}
        for s, fname in SUB_FILES.items():
            path = self.files.find(fname)
            if path is None:
                continue
            self.used.append(path)
            for line in _read_text(path).splitlines():
                if not line.strip():
                    continue
                raw, cat = _list_line(line)
                mid = element_key(raw)
                self._category(cat_of, mid, cat, fname)
                motifs.setdefault(mid, MotifRecord(mid, self.motif_path(raw), cat or cat_of.get(mid, ""), s))
        queries = self._test_queries(cat_of, motifs) if "test" in present else []
        # motifs that only the records name: listed when their image is found
        for f in fabrics:
            for mid in f.motif_ids:
                if mid not in motifs and mid in self.elements():
                    motifs[mid] = MotifRecord(mid, self.elements()[mid], cat_of.get(mid, ""), f.split)
        # validation queries: the validation motifs, relevant = validation fabrics that contain them
        val_fabrics = [f for f in fabrics if f.split == "validation"]
        if val_fabrics:
            for m in motifs.values():
                if m.split != "validation":
                    continue
                rel = tuple(f.id for f in val_fabrics if m.id in f.motif_ids)
                if not rel:
                    self.note(f"validation motif {m.id} is in no validation fabric (no ground truth)")
                queries.append(QueryRecord(m.id, m.path, "validation", m.id, m.category, rel, m.id))
        queries = self._category_keyed(queries, fabrics, cat_of)
        motif_list = sorted(motifs.values(), key=lambda m: SPLITS.index(m.split))
        motif_list = [MotifRecord(m.id, m.path, m.category or cat_of.get(m.id, ""), m.split) for m in motif_list]
        return fabrics, motif_list, queries

    def _category_keyed(self, queries: list[QueryRecord], fabrics: list[FabricRecord],
                        cat_of: dict[str, str]) -> list[QueryRecord]:
        """When Test_element.csv keys the ground truth on categories, not element ids (unknown, 3.3).

        The listed columns are then category-level; instance-level ``relevant`` is taken from the test
        records (fabrics that contain the element id) when they exist, and kept as listed otherwise.
        """
        categories = set(cat_of.values()) | {c for f in fabrics for c in f.categories}
        keyed = [q for q in queries if q.split == "test" and q.class_key and q.class_key != q.element_id
                 and q.class_key in categories]
        if not keyed:
            return queries
        test = [f for f in fabrics if f.split == "test" and f.motif_ids]
        if test:
            self.note(f"{TEST_FILES[1]} keys {len(keyed)} queries on categories (e.g. {keyed[0].class_key!r}), "
                      f"not element ids: instance-level relevance taken from the test records")
        else:
            self.note(f"{TEST_FILES[1]} keys {len(keyed)} queries on categories (e.g. {keyed[0].class_key!r}) and there "
                      "are no test records: their 'relevant' lists are category level")
            return queries
        fix = {id(q) for q in keyed}
        return [QueryRecord(q.query_id, q.path, q.split, q.element_id, q.category or q.class_key,
                            tuple(f.id for f in test if q.element_id in f.motif_ids), q.class_key)
                if id(q) in fix else q for q in queries]

    def _category(self, cat_of: dict[str, str], mid: str, cat: str, where: str) -> None:
        if not cat:
            return
        old = cat_of.setdefault(mid, cat)
        if old != cat:
            self.note(f"motif {mid} has category {old!r} in one file and {cat!r} in {where}; keeping {old!r}")

    def _split_fabrics(self, split: str, cat_of: dict[str, str]) -> list[FabricRecord]:
        folder = self.spf / split / "img" / "images"
        listing: dict[str, Path] = {}
        for e in sorted(os.scandir(folder), key=lambda e: e.name):
            if e.name.lower().endswith(IMAGE_SUFFIXES) and not e.name.startswith("."):
                listing.setdefault(fabric_key(e.name), folder / e.name)
        path = self.files.find(SPLIT_FILES[split])
        if path is None:  # only the test split may lack its record file: its fabrics are the images
            self.note(f"no {SPLIT_FILES[split]}: the {len(listing)} {split} fabrics have no motif lists")
            return [FabricRecord(fid, p, split, (), ()) for fid, p in listing.items()]
        self.used.append(path)
        data = _read_json(path)
        if not isinstance(data, list):
            raise FgrError(f"{path} holds a {type(data).__name__}; expected a list of records "
                           "[<field 0>, <fabric_id>, elem_1..elem_n, cat_1..cat_n]")
        out, seen, bad = [], set(), []
        for i, r in enumerate(data):
            if not isinstance(r, (list, tuple)) or len(r) < 4 or len(r) % 2:
                bad.append(i)
                continue
            n = (len(r) - 2) // 2
            fid = fabric_key(r[1])
            if fid in seen:
                self.note(f"{path.name}: fabric {fid} has more than one record; keeping the first")
                continue
            seen.add(fid)
            mids = tuple(element_key(x) for x in r[2:n + 2])
            cats = tuple(str(x).strip() for x in r[n + 2:])
            for mid, cat in zip(mids, cats):
                self._category(cat_of, mid, cat, path.name)
            out.append(FabricRecord(fid, listing.get(fid, folder / f"{fid}.png"), split, mids, cats))
        if bad:
            self.note(f"{path.name}: {len(bad)} record(s) are not [<field 0>, <fabric_id>, n ids, n categories] "
                      f"(first: record {bad[0]}); skipped")
        extra = len(set(listing) - seen)
        if extra:
            self.note(f"{extra} image(s) in {self.name}/{split}/img/images have no record in {path.name}; not listed")
        return out

    def _test_queries(self, cat_of: dict[str, str], motifs: dict[str, MotifRecord]) -> list[QueryRecord]:
        index_path, element_path = self.files.find(TEST_FILES[0]), self.files.find(TEST_FILES[1])
        self.used += [index_path, element_path]
        rows = _read_csv(index_path)
        index: dict[str, list[str]] = {}
        if rows:
            header = [element_key(h) for h in rows[0]]
            for j, key in enumerate(header):
                if key:
                    index.setdefault(key, [])
                    index[key] += [fabric_key(r[j]) for r in rows[1:] if j < len(r) and r[j].strip()]
        listed: dict[str, tuple[str, str]] = {}
        for rel in QUERY_LISTS:
            path = self.files.find(rel)
            if path is None:
                continue
            self.used.append(path)
            for line in _read_text(path).splitlines():
                if line.strip():
                    raw, cat = _list_line(line)
                    listed.setdefault(element_key(raw), (raw, cat))
                    self._category(cat_of, element_key(raw), cat, rel)
        known = set(listed) | set(self.elements())
        queries, seen, no_gt = [], set(), []
        rows = _read_csv(element_path)
        for i, row in enumerate(rows):
            if not row or not any(c.strip() for c in row):
                continue
            if i == 0 and _is_header(row, known):
                continue
            fname, cls = _element_row(row)
            qid = element_key(fname)
            if not qid or qid in seen:
                continue
            seen.add(qid)
            cls_key = element_key(cls) if cls.strip() else qid
            rel = index.get(cls_key)
            if not rel:
                no_gt.append(qid)
            raw = listed[qid][0] if qid in listed else fname.strip()
            path = self.motif_path(raw)
            cat = (listed.get(qid, ("", ""))[1]) or cat_of.get(qid, "")
            queries.append(QueryRecord(qid, path, "test", qid, cat, tuple(dict.fromkeys(rel or ())), cls_key))
            motifs.setdefault(qid, MotifRecord(qid, path, cat, "test"))
        if no_gt:
            shown = io.few(no_gt, _SHOW)
            self.note(f"{len(no_gt)} test quer{'y has' if len(no_gt) == 1 else 'ies have'} no ground truth "
                      f"(class not a column of {TEST_FILES[0]}, or an empty column): {shown}")
        return queries


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _stale(data: dict, base: Path) -> bool:
    sources = data.get("converted_from")
    if not isinstance(sources, dict):
        return False
    for rel, stamp in sources.items():
        p = base / rel
        try:
            if _stamp(p) != list(stamp):
                return True
        except OSError:
            return True
    return False


def _convert(root: Path, spf: Path, dataset_folder: str, gt_key: str, write: bool) -> FabricSet:
    conv = _Converter(root, spf, dataset_folder)
    fabrics, motifs, queries = conv.convert()
    # relevant ids that name no fabric of the query's split
    ids = {s: {f.id for f in fabrics if f.split == s} for s in SPLITS}
    unknown = sorted({r for q in queries for r in q.relevant if r not in ids[q.split]})
    if unknown:
        conv.note(f"{len(unknown)} relevant fabric id(s) name no fabric of their split (first: {', '.join(unknown[:_SHOW])})")
    data_root = spf.parent
    used = [p for p in dict.fromkeys(conv.used) if p is not None]
    meta = {"dataset": dataset_folder, "source": f"converted from the paper's files under {data_root}",
            "converted_from": {_rel(p, data_root): _stamp(p) for p in used},
            "categories": sorted({c for f in fabrics for c in f.categories} | {m.category for m in motifs if m.category}),
            "splits": [s for s in SPLITS if ids[s] or any(m.split == s for m in motifs)]}
    path = data_root / MANIFEST_FILE
    ds = FabricSet(data_root, fabrics, motifs, queries, source="converted", manifest_path=path,
                   problems=conv.problems, gt_key=gt_key, meta=meta)
    if write:
        try:
            write_manifest(path, ds.to_manifest())
        except OSError as e:
            ds.manifest_path = None
            conv.note(f"could not write the converted manifest to {path}: {io.one_line(e)}")
    return ds


# ---------------------------------------------------------------------------------------------------
# entry point


def load_fabrics(root: str | os.PathLike, *, check_files: bool = True, gt_key: str = "element_id",
                 dataset_folder: str = DATASET_FOLDER, write_converted: bool = True) -> FabricSet:
    """Load a printed-fabric dataset (the generated ``sim-fabrics`` set or the Kaggle download).

    ``root`` may be the folder holding ``fabrics-manifest.json``, the folder holding (at any depth up
    to four) the ``SimulatedPrintedFabrics-17k`` folder, or that folder itself. See the module doc for
    the lookup order, the conversion of the paper's files and the errors. ``gt_key`` sets the default
    of :meth:`FabricSet.relevant` (``"element_id"`` or ``"category"``).
    """
    if gt_key not in GT_KEYS:
        raise FgrError(f"gt_key must be one of {', '.join(GT_KEYS)}, not {gt_key!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetMissing(f"fabric dataset folder {root} does not exist")
    manifest = root / MANIFEST_FILE
    spf = None
    if not manifest.is_file():
        spf = _find_dataset_folder(root, dataset_folder)
        if spf is not None and (spf.parent / MANIFEST_FILE).is_file():
            manifest = spf.parent / MANIFEST_FILE
    if manifest.is_file():
        data = _read_json(manifest)
        if isinstance(data, dict) and _stale(data, manifest.parent):
            spf = spf or _find_dataset_folder(manifest.parent, dataset_folder)
            if spf is None:
                raise FgrError(f"{manifest} was converted from files that changed, and no {dataset_folder} folder "
                               f"is under {manifest.parent} to convert again")
            ds = _convert(root, spf, dataset_folder, gt_key, write_converted)
        else:
            ds = _from_manifest(data, manifest, gt_key)
    elif spf is None:
        top = sorted(e.name for e in os.scandir(root) if not e.name.startswith("."))
        raise FgrError(f"found neither {MANIFEST_FILE} nor a {dataset_folder} folder under {root} "
                       f"(it holds: {', '.join(top[:8]) or 'nothing'}{' ...' if len(top) > 8 else ''}); expected the Kaggle "
                       f"layout ({dataset_folder}/{{train,validation,test}}/img/images/ beside Train_split.json, "
                       f"TestAll_index.csv, Test_element.csv) or a generated set (`fgr data synth sim-fabrics`)")
    else:
        ds = _convert(root, spf, dataset_folder, gt_key, write_converted)
    if check_files:
        ds.check_files()
    return ds
