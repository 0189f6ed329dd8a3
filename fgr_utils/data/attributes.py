"""Attribute-specific retrieval data: ASEN split files and CSN conditional triplet lists.

**ASEN split files** (``shared/reference/asfr_rpf_agman.md`` §1.1), one folder per dataset::

    filenames_{train,valid,test}.txt   one relative image path per line; the 0-based line number is the image id
    label_train.txt                    img_id a1 v1 [a2 v2 ...]   (FashionAI: one pair; DeepFashion, DARN: several)
    query_{valid,test}.txt             img_id attr value          (one query = one (image, attribute) pair)
    candidate_{valid,test}.txt         img_id attr value
    meta.json                          {dataset: {ATTRIBUTES, ATTRIBUTES_NUM, ATTRIBUTES_VALUES}}

:func:`load_attribute_set` reads them into an :class:`AttributeSet` (integer arrays, one row per
(image, attribute, value)) and checks every line; :meth:`AttributeSet.check_counts` compares the
result with the published counts (:data:`REFERENCE_COUNTS`). The synthetic ``asfr-garments`` writes
the same files.

**CSN triplet lists** (§1.6): ``tripletlists/<condition>_tripletlist_{train,val,test}.txt`` with
lines ``a b c`` (under the condition, image ``a`` is more similar to ``c`` than to ``b``) and a
``filenames.json`` beside the folder that is read line by line as plain paths. :func:`load_triplet_lists`
pools the conditions' lists, shuffles them and keeps CSN's share (``n_triplets * |conditions| / 4``).

Images are not decoded here. :meth:`AttributeSet.image_paths` and :meth:`TripletLists.image_paths` list
what a loader reads, and their ``without`` gives a copy without some images (what
:func:`fgr_utils.data.reader.without_unreadable` calls with the unreadable ones): every label, query,
candidate or triplet row that names one leaves, and image ids are renumbered over the images kept.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fgr_utils.data import registry
from fgr_utils.errors import DatasetMissing, FgrError

__all__ = [
    "SPLITS", "EVAL_SPLITS", "REFERENCE_COUNTS", "AttributeSet", "load_attribute_set", "find_meta",
    "TRIPLET_SPLITS", "ZAPPOS_CONDITIONS", "ZAPPOS_TRIPLETS", "TripletLists", "load_triplet_lists", "zappos_root",
]

SPLITS = ("train", "valid", "test")
EVAL_SPLITS = ("valid", "test")
_SYNTHETIC = "asfr-garments"

#: Published numbers (asfr_rpf_agman.md §1.4, §1.5): the number of values of each attribute in index
#: order and, for FashionAI, images per split and queries / candidates per attribute.
REFERENCE_COUNTS: dict[str, dict] = {
    "fashionai": {
        "attributes": ("skirt_length", "sleeve_length", "coat_length", "pant_length", "collar_design",
                       "lapel_design", "neckline_design", "neck_design"),
        "values": (6, 9, 8, 6, 5, 5, 10, 5),
        "splits": {
            "test": {"images": 18_000, "queries": (422, 623, 535, 422, 341, 289, 703, 265),
                     "candidates": (1703, 2383, 2088, 1722, 1401, 1269, 2734, 1100)},
            "valid": {"images": 18_000, "queries": (439, 596, 515, 419, 356, 330, 668, 277)},
        },
    },
    "deepfashion": {
        "attributes": ("texture", "fabric", "shape", "part", "style"),
        "values": (156, 218, 180, 216, 230),
        "splits": {},
    },
    "darn": {
        "attributes": ("clothes category", "button", "color", "length", "pattern", "shape", "collar shape",
                       "sleeve length", "sleeve shape"),
        "values": (20, 13, 55, 7, 28, 11, 26, 8, 17),
        "splits": {},
    },
}


def _fix(name: str) -> str:
    """What to do about damaged split files of dataset ``name``."""
    if name == _SYNTHETIC:
        return f"generate the set again with `fgr data synth {_SYNTHETIC} --force`"
    return "re-download the split files with `fgr data download asen-splits`"


# ---------------------------------------------------------------------------------------------------
# reading integer lines


def _is_int64(token: str) -> bool:
    try:
        return -(2**63) <= int(token) < 2**63
    except ValueError:
        return False


def _int_lines(path: Path, expect: str, fix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The integers of a whitespace-separated file: (all values, fields per line, 1-based line numbers,
    the lines). Empty lines are skipped; a token that is not an integer is an error naming its line
    and what the line should hold (``expect``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fields = [ln.split() for ln in lines]
    width = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    kept = np.flatnonzero(width > 0)
    tokens = [t for f in fields for t in f]
    try:
        values = np.array(tokens).astype(np.int64) if tokens else np.zeros(0, np.int64)
    except (ValueError, OverflowError):
        n = next(i for i, f in enumerate(fields) if not all(map(_is_int64, f)))
        raise FgrError(f"{path} line {n + 1}: expected {expect}, got {lines[n].strip()!r}; {fix}") from None
    return values, width[kept], kept + 1, lines


def _triples(path: Path, what: str, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of three integers (n, 3) and their 1-based line numbers."""
    expect = f"'{what}' (3 integers)"
    values, width, line_no, lines = _int_lines(path, expect, fix)
    i = _first(width != 3)
    if i is not None:
        n = line_no[i]
        raise FgrError(f"{path} line {n}: expected {expect}, got {lines[n - 1].strip()!r}; {fix}")
    return values.reshape(-1, 3), line_no


def _first(bad: np.ndarray) -> int | None:
    """Index of the first True row, or None."""
    hit = np.flatnonzero(bad)
    return int(hit[0]) if hit.size else None


def _renumber(keep: np.ndarray) -> np.ndarray:
    """Old id -> new id over the kept images (``keep``: a bool per old id); -1 for an image left out."""
    return np.where(keep, np.cumsum(keep) - 1, -1).astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# meta.json


def find_meta(root: str | os.PathLike) -> Path:
    """The meta.json for a split folder: ``root/``, then ``root/..``, then the ``asen-splits`` dataset."""
    root = Path(root)
    for candidate in (root / "meta.json", root.parent / "meta.json"):
        if candidate.is_file():
            return candidate
    asen = registry.dataset_root("asen-splits")
    found = sorted(asen.glob("**/meta.json"), key=lambda p: (len(p.parts), str(p))) if asen.is_dir() else []
    if found:
        return found[0]
    raise DatasetMissing(f"no meta.json in {root}, in {root.parent} or under {asen}: run `fgr data download "
                         "asen-splits` (or pass meta= the file's path)")


def _pick_dataset(meta: dict, path: Path, root: Path, name: str | None) -> str:
    keys = list(meta)
    if name is not None:
        want = name
    elif len(keys) == 1:
        return keys[0]
    else:
        want = root.name
    match = [k for k in keys if k == want] or [k for k in keys if k.lower() == want.lower()]
    if not match:
        how = f"no dataset {name!r}" if name is not None else f"several datasets and none is called {root.name!r}"
        raise FgrError(f"{path} holds {how}; pass name= one of: {', '.join(keys)}")
    return match[0]


def _read_meta(path: Path, root: Path, name: str | None) -> tuple[str, list[str], dict[str, list[str]]]:
    """(dataset key, attribute names, value names per attribute) from meta.json, checked."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FgrError(f"cannot read {path} as JSON ({e}); {_fix(name or '')}") from None
    if not isinstance(meta, dict) or not meta:
        raise FgrError(f"{path} is not a {{dataset: {{ATTRIBUTES, ATTRIBUTES_NUM, ATTRIBUTES_VALUES}}}} object; "
                       f"{_fix(name or '')}")
    key = _pick_dataset(meta, path, root, name)
    entry = meta[key]
    if not isinstance(entry, dict):
        raise FgrError(f"{path}: dataset {key} is not an object with ATTRIBUTES, ATTRIBUTES_NUM, ATTRIBUTES_VALUES; "
                       f"{_fix(key)}")
    missing = [f for f in ("ATTRIBUTES", "ATTRIBUTES_NUM", "ATTRIBUTES_VALUES") if f not in entry]
    if missing:
        raise FgrError(f"{path}: dataset {key} has no {', '.join(missing)}; {_fix(key)}")
    attributes = [str(a) for a in entry["ATTRIBUTES"]]
    values: dict[str, list[str]] = {}
    for a in attributes:
        if a not in entry["ATTRIBUTES_NUM"] or a not in entry["ATTRIBUTES_VALUES"]:
            raise FgrError(f"{path}: attribute {a!r} of {key} is missing from ATTRIBUTES_NUM or ATTRIBUTES_VALUES; "
                           f"{_fix(key)}")
        values[a] = [str(v) for v in entry["ATTRIBUTES_VALUES"][a]]
        if entry["ATTRIBUTES_NUM"][a] != len(values[a]):
            raise FgrError(f"{path}: {key} ATTRIBUTES_NUM[{a!r}] is {entry['ATTRIBUTES_NUM'][a]} but "
                           f"ATTRIBUTES_VALUES[{a!r}] lists {len(values[a])} values; {_fix(key)}")
    return key, attributes, values


# ---------------------------------------------------------------------------------------------------
# the split files


@dataclass
class AttributeSet:
    """One dataset in ASEN's split format. Label arrays are int64 ``(n, 3)``: img_id, attr, value."""

    name: str  # the dataset key in meta.json
    root: Path  # image paths are root / filename
    attributes: list[str]  # meta ATTRIBUTES, in index order
    values: dict[str, list[str]]  # value names per attribute, in index order
    filenames: dict[str, list[str]]  # split -> relative image paths; 0-based line number = image id
    train_labels: np.ndarray  # label_train.txt, one row per (attr, value) pair
    queries: dict[str, np.ndarray]  # "valid" / "test"
    candidates: dict[str, np.ndarray]  # "valid" / "test"

    def n_values(self, attr: int) -> int:
        return len(self.values[self.attributes[attr]])

    def path(self, split: str, img_id: int) -> Path:
        names = self.filenames[split]
        if not 0 <= img_id < len(names):
            raise FgrError(f"{self.name}: image id {img_id} is outside the {len(names)} {split} images")
        return self.root / names[img_id]

    def train_groups(self) -> dict[int, dict[int, np.ndarray]]:
        """attr -> value -> sorted train image ids with that (attr, value); what a triplet sampler draws from."""
        rows = np.unique(self.train_labels[:, [1, 2, 0]], axis=0)  # sorted by attr, value, image; no repeats
        starts = np.flatnonzero(np.any(np.diff(rows[:, :2], axis=0) != 0, axis=1)) + 1
        groups: dict[int, dict[int, np.ndarray]] = {}
        for part in np.split(rows, starts) if len(rows) else []:
            groups.setdefault(int(part[0, 0]), {})[int(part[0, 1])] = part[:, 2].copy()
        return groups

    def _per_attribute(self, rows: np.ndarray) -> dict[str, int]:
        n = np.bincount(rows[:, 1], minlength=len(self.attributes))
        return {a: int(n[i]) for i, a in enumerate(self.attributes)}

    def counts(self) -> dict:
        """Per split: images, and labels (train) or queries and candidates (valid, test), also per attribute."""
        out: dict[str, dict] = {"train": {"images": len(self.filenames["train"]), "labels": len(self.train_labels),
                                          "labels_per_attribute": self._per_attribute(self.train_labels)}}
        for split in EVAL_SPLITS:
            q, c = self.queries[split], self.candidates[split]
            out[split] = {"images": len(self.filenames[split]), "queries": len(q), "candidates": len(c),
                          "queries_per_attribute": self._per_attribute(q),
                          "candidates_per_attribute": self._per_attribute(c)}
        return out

    def check_counts(self, dataset: str) -> None:
        """Compare with :data:`REFERENCE_COUNTS` [``dataset``]; an :class:`FgrError` names the first mismatch.

        Attributes are compared by index, not by name (the released meta files spell them differently).
        """
        if dataset not in REFERENCE_COUNTS:
            raise FgrError(f"no reference counts for {dataset!r}; known: {', '.join(REFERENCE_COUNTS)}")
        ref = REFERENCE_COUNTS[dataset]
        fix = f"these are not ASEN's {dataset} split files: {_fix(dataset)}"
        if len(self.attributes) != len(ref["values"]):
            raise FgrError(f"{self.name} has {len(self.attributes)} attributes, the {dataset} reference has "
                           f"{len(ref['values'])} ({', '.join(ref['attributes'])}); {fix}")

        def attr(i: int) -> str:
            return f"attribute {i} ({self.attributes[i]}; reference {ref['attributes'][i]})"

        for i, expected in enumerate(ref["values"]):
            if self.n_values(i) != expected:
                raise FgrError(f"{self.name}: {attr(i)} has {self.n_values(i)} values, the reference {expected}; {fix}")
        counts = self.counts()
        for split, expected in ref["splits"].items():
            got = counts[split]
            if got["images"] != expected["images"]:
                raise FgrError(f"{self.name}: {got['images']} {split} images, the reference {expected['images']}; "
                               f"{fix}")
            for kind in ("queries", "candidates"):
                per = list(got[f"{kind}_per_attribute"].values())
                for i, n in enumerate(expected.get(kind, ())):
                    if per[i] != n:
                        raise FgrError(f"{self.name}: {per[i]} {split} {kind} of {attr(i)}, the reference {n}; {fix}")

    def missing_images(self, split: str) -> list[Path]:
        """Images of ``split`` listed in the split file but not on disk."""
        return [p for p in (self.root / f for f in self.filenames[split]) if not p.is_file()]

    def image_paths(self) -> list[Path]:
        """Every listed image, each once: split after split (``train``, ``valid``, ``test``), in id order."""
        return list(dict.fromkeys(self.root / f for split in SPLITS for f in self.filenames[split]))

    def without(self, bad: Mapping[Path, str]) -> AttributeSet:
        """A copy without the images ``bad`` names (path -> reason; images it does not list are ignored).

        The label, query and candidate rows that name one leave, and the ids of the images kept are
        renumbered (an id is then a position in the kept ``filenames``, not a line of the split file);
        :meth:`counts` then counts what is kept. When none of its images is in ``bad``, the set itself
        is returned.
        """
        drop = {Path(p) for p in bad}
        if not any(p in drop for p in self.image_paths()):
            return self
        filenames, new_id = {}, {}
        for split in SPLITS:
            keep = np.array([self.root / f not in drop for f in self.filenames[split]], dtype=bool)
            new_id[split] = _renumber(keep)
            filenames[split] = [f for f, k in zip(self.filenames[split], keep) if k]

        def kept(rows: np.ndarray, split: str) -> np.ndarray:
            ids = new_id[split][rows[:, 0]]
            out = rows[ids >= 0].copy()
            out[:, 0] = ids[ids >= 0]
            return out

        return AttributeSet(self.name, self.root, list(self.attributes), dict(self.values), filenames,
                            kept(self.train_labels, "train"), {s: kept(r, s) for s, r in self.queries.items()},
                            {s: kept(r, s) for s, r in self.candidates.items()})


def _split_file(root: Path, file: str, name: str) -> Path:
    path = root / file
    if not path.is_file():
        if name == _SYNTHETIC:
            fix = _fix(name)
        else:
            fix = f"copy the {name} split files of `fgr data download asen-splits` into {root}"
        raise DatasetMissing(f"split file {path} is missing: {fix}")
    return path


def _read_filenames(path: Path, fix: str) -> list[str]:
    """One path per line; the 0-based line number is the image's index, so only trailing empty lines may be left."""
    names = path.read_text(encoding="utf-8").splitlines()
    while names and not names[-1].strip():
        names.pop()
    for i, n in enumerate(names):
        if not n.strip():
            raise FgrError(f"{path} line {i + 1} is empty; image ids are line numbers, so every line must name an "
                           f"image; {fix}")
    return [n.strip() for n in names]


def _check_rows(rows: np.ndarray, line_no: np.ndarray, path: Path, n_images: int, split_file: str,
                attributes: list[str], n_values: np.ndarray, fix: str) -> None:
    """Image ids within the split's filenames, attributes and values within meta.json."""
    i = _first((rows[:, 0] < 0) | (rows[:, 0] >= n_images))
    if i is not None:
        raise FgrError(f"{path} line {line_no[i]}: image id {rows[i, 0]} is outside {split_file} "
                       f"(ids 0-{n_images - 1}); {fix}")
    i = _first((rows[:, 1] < 0) | (rows[:, 1] >= len(attributes)))
    if i is not None:
        raise FgrError(f"{path} line {line_no[i]}: attribute {rows[i, 1]} is outside 0-{len(attributes) - 1} "
                       f"(meta.json lists {len(attributes)} attributes); {fix}")
    i = _first((rows[:, 2] < 0) | (rows[:, 2] >= n_values[rows[:, 1]]))
    if i is not None:
        a = int(rows[i, 1])
        raise FgrError(f"{path} line {line_no[i]}: value {rows[i, 2]} of attribute {a} ({attributes[a]}) is outside "
                       f"0-{n_values[a] - 1} (ATTRIBUTES_NUM[{attributes[a]!r}] is {n_values[a]}); {fix}")


def _read_train_labels(path: Path, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """label_train.txt expanded to one (img_id, attr, value) row per pair, with each row's line number."""
    expect = "'img_id attr value [attr value ...]' (an image id and whole attribute-value pairs of integers)"
    values, width, line_no, lines = _int_lines(path, expect, fix)
    i = _first((width < 3) | (width % 2 == 0))
    if i is not None:
        n = line_no[i]
        raise FgrError(f"{path} line {n}: expected {expect}, got {lines[n - 1].strip()!r}; {fix}")
    starts = np.concatenate([[0], np.cumsum(width)[:-1]])
    pairs_per_line = (width - 1) // 2
    is_id = np.zeros(len(values), dtype=bool)
    is_id[starts] = True
    pairs = values[~is_id].reshape(-1, 2)
    ids = np.repeat(values[starts], pairs_per_line)
    return np.column_stack([ids, pairs]), np.repeat(line_no, pairs_per_line)


def load_attribute_set(root: str | os.PathLike, name: str | None = None, *,
                       meta: str | os.PathLike | None = None) -> AttributeSet:
    """Read the ASEN split files in ``root`` and check every line against meta.json.

    ``meta``: the meta.json to use; by default :func:`find_meta`. ``name``: the dataset key in it; by
    default its only key, or the key that matches ``root``'s folder name regardless of case
    (``fashionai`` -> ``FashionAI``). Errors are one line naming the file, the line and the fix.
    """
    root = Path(root)
    if not root.is_dir():
        real = ", ".join(registry.names(format="attributes", synthetic=False))
        raise DatasetMissing(f"attribute dataset folder {root} does not exist: see `fgr data download <name>` "
                             f"({real}) or `fgr data synth {_SYNTHETIC}`")
    meta_path = Path(meta) if meta is not None else find_meta(root)
    key, attributes, values = _read_meta(meta_path, root, name)
    fix = _fix(key)
    n_values = np.array([len(values[a]) for a in attributes], dtype=np.int64)

    filenames = {s: _read_filenames(_split_file(root, f"filenames_{s}.txt", key), fix) for s in SPLITS}

    def checked(path: Path, rows: np.ndarray, line_no: np.ndarray, split: str) -> np.ndarray:
        _check_rows(rows, line_no, path, len(filenames[split]), f"filenames_{split}.txt", attributes, n_values, fix)
        return rows

    label_path = _split_file(root, "label_train.txt", key)
    train = checked(label_path, *_read_train_labels(label_path, fix), "train")
    queries, candidates = {}, {}
    for split in EVAL_SPLITS:
        for kind, out in (("query", queries), ("candidate", candidates)):
            path = _split_file(root, f"{kind}_{split}.txt", key)
            out[split] = checked(path, *_triples(path, "img_id attr value", fix), split)
    return AttributeSet(key, root, attributes, values, filenames, train, queries, candidates)


# ---------------------------------------------------------------------------------------------------
# CSN conditional triplet lists (Zappos50k)

TRIPLET_SPLITS = ("train", "val", "test")
ZAPPOS_CONDITIONS = ("class", "closure", "gender", "heel")
#: Triplets per split in the CSN / AG-MAN protocol, for all four conditions together.
ZAPPOS_TRIPLETS: dict[str, int] = {"train": 200_000, "val": 80_000, "test": 160_000}
_LIST_FIX = "re-download them with `fgr data download csn-zappos-triplets`"


@dataclass
class TripletLists:
    """CSN triplets: rows ``a, b, c, condition``; under the condition, ``a`` is closer to ``c`` than to ``b``."""

    image_root: Path
    filenames: list[str]  # filenames.json, one path per line
    conditions: list[str]  # condition names, in index order
    triplets: dict[str, np.ndarray]  # "train" / "val" / "test" -> int64 (n, 4)

    def path(self, i: int) -> Path:
        return self.image_root / self.filenames[i]

    def image_paths(self) -> list[Path]:
        """The image of every line of ``filenames.json``, each once, in index order."""
        return list(dict.fromkeys(self.image_root / f for f in self.filenames))

    def without(self, bad: Mapping[Path, str]) -> TripletLists:
        """A copy without the images ``bad`` names (path -> reason; images it does not list are ignored):
        every triplet that names one leaves, and the images kept are renumbered. When none of its
        images is in ``bad``, the set itself is returned."""
        drop = {Path(p) for p in bad}
        if not any(p in drop for p in self.image_paths()):
            return self
        keep = np.array([self.path(i) not in drop for i in range(len(self.filenames))], dtype=bool)
        new_id = _renumber(keep)
        triplets = {}
        for split, rows in self.triplets.items():
            abc = new_id[rows[:, :3]]
            ok = np.all(abc >= 0, axis=1)
            triplets[split] = np.column_stack([abc[ok], rows[ok, 3]]).astype(np.int64)
        return TripletLists(self.image_root, [f for f, k in zip(self.filenames, keep) if k], list(self.conditions),
                            triplets)

    def counts(self) -> dict:
        """Images, and triplets per split (total and per condition)."""
        out: dict = {"images": len(self.filenames)}
        for split, t in self.triplets.items():
            per = np.bincount(t[:, 3], minlength=len(self.conditions))
            out[split] = {"triplets": len(t), "per_condition": {c: int(per[i]) for i, c in enumerate(self.conditions)}}
        return out


def _find_list_folder(list_root: Path) -> Path:
    if list_root.name == "tripletlists" and list_root.is_dir():
        return list_root
    found = sorted(list_root.glob("**/tripletlists")) if list_root.is_dir() else []
    if not found:
        raise DatasetMissing(f"no tripletlists/ folder under {list_root}: run `fgr data download csn-zappos-triplets`")
    if len(found) > 1:
        raise FgrError(f"{len(found)} tripletlists/ folders under {list_root} ({', '.join(map(str, found[:3]))}); "
                       "point list_root at the one to use")
    return found[0]


def _read_triplet_file(path: Path, n_images: int) -> np.ndarray:
    rows, line_no = _triples(path, "a b c", _LIST_FIX)
    i = _first(np.any((rows < 0) | (rows >= n_images), axis=1))
    if i is not None:
        raise FgrError(f"{path} line {line_no[i]}: index out of range in {' '.join(map(str, rows[i]))} "
                       f"(filenames.json lists {n_images} images, 0-{n_images - 1}); {_LIST_FIX}")
    return rows


def load_triplet_lists(list_root: str | os.PathLike, image_root: str | os.PathLike, *,
                       conditions: Sequence[str] | None = None, n_triplets: Mapping[str, int] | None = None,
                       seed: int = 0) -> TripletLists:
    """Read CSN's conditional triplet lists found under ``list_root``.

    ``conditions``: which lists to read, in index order; by default Zappos' ``class, closure, gender,
    heel`` when all four exist, else every condition with a train list, sorted. Per split the lists are
    pooled, shuffled with ``numpy.random.default_rng([seed, split index])`` and, with ``n_triplets``
    (e.g. :data:`ZAPPOS_TRIPLETS`), cut to the first ``n_triplets[split] * len(conditions) // 4``
    (CSN's loader rule). Images resolve against ``image_root``, or ``image_root/ut-zap50k-images``
    when only there the first file exists (CSN's base path).
    """
    lists = _find_list_folder(Path(list_root))
    names_path = lists.parent / "filenames.json"
    if not names_path.is_file():
        raise DatasetMissing(f"{names_path} is missing beside {lists}: {_LIST_FIX}")
    filenames = _read_filenames(names_path, _LIST_FIX)
    if not filenames:
        raise FgrError(f"{names_path} lists no images; {_LIST_FIX}")
    if conditions is None:
        found = sorted(p.name[: -len("_tripletlist_train.txt")] for p in lists.glob("*_tripletlist_train.txt"))
        conditions = list(ZAPPOS_CONDITIONS) if set(ZAPPOS_CONDITIONS) <= set(found) else found
        if not conditions:
            raise DatasetMissing(f"no <condition>_tripletlist_train.txt in {lists}: {_LIST_FIX}")
    unknown = set(n_triplets or {}) - set(TRIPLET_SPLITS)
    if unknown:
        raise FgrError(f"n_triplets names unknown split(s) {', '.join(sorted(unknown))}; "
                       f"use {', '.join(TRIPLET_SPLITS)}")

    triplets: dict[str, np.ndarray] = {}
    for s, split in enumerate(TRIPLET_SPLITS):
        parts = []
        for c, cond in enumerate(conditions):
            path = lists / f"{cond}_tripletlist_{split}.txt"
            if not path.is_file():
                raise DatasetMissing(f"triplet list {path} is missing: {_LIST_FIX}")
            rows = _read_triplet_file(path, len(filenames))
            parts.append(np.column_stack([rows, np.full(len(rows), c, dtype=np.int64)]))
        pooled = np.concatenate(parts)[np.random.default_rng([seed, s]).permutation(sum(map(len, parts)))]
        if n_triplets is not None and split in n_triplets:
            pooled = pooled[: n_triplets[split] * len(conditions) // 4]
        triplets[split] = pooled

    image_root = Path(image_root)
    base = image_root / "ut-zap50k-images"
    if not (image_root / filenames[0]).exists() and (base / filenames[0]).exists():
        image_root = base
    return TripletLists(image_root, filenames, list(conditions), triplets)


def zappos_root() -> tuple[Path, Path]:
    """(list_root, image_root) of the downloaded CSN triplet lists and UT-Zappos50K images."""
    return registry.require("csn-zappos-triplets"), registry.require("zappos50k")
