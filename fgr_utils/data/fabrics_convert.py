"""Converter of the paper's SimulatedPrintedFabrics-17k files (the Kaggle layout) into the kit's fabrics manifest.

:func:`fgr_utils.data.fabrics.load_fabrics` calls it when a dataset folder has no
``fabrics-manifest.json``, or has one converted from files that changed since (:func:`is_stale`).
:func:`find_dataset_folder` finds the ``SimulatedPrintedFabrics-17k`` folder anywhere below a root
(the top level of the Kaggle archive is not documented) and :func:`convert` turns the paper's files
beside it into the manifest schema of :mod:`fgr_utils.data.fabrics_manifest`:

========================  ==================================================================
``Train_split.json``      ``[[<field 0>, <fabric_id>, elem_1..elem_n, cat_1..cat_n], ...]``
``Validation_split.json`` (same; ``Test_split.json`` too when present)
``train_sub.txt``         ``<path>.png <category>`` per training motif (``val_sub.txt``: validation)
``TestAll_index.csv``     column-oriented: header = class keys, column = relevant fabric ids
``Test_element.csv``      rows ``query_filename,class``
``test.txt``              ``<path>.png <category>`` per test query (``element_all/test.txt`` too)
========================  ==================================================================

Every key is normalised: a motif id is the file name's part before the first comma
(``element img/10640,.png`` -> ``"10640"``, see :func:`~fgr_utils.data.fabrics_manifest.element_key`), a
fabric id the base name before the first dot (:func:`~fgr_utils.data.fabrics_manifest.fabric_key`).
Queries without ground truth are logged and listed in ``.problems``. The converted manifest is written
back beside the files (atomically) so it is explicit and inspectable; it records the size and mtime
of every file it came from, so that a change to one of them makes it convert again. A layout that
does not match is one :class:`~fgr_utils.errors.FgrError` line naming what was found (e.g.
``found SimulatedPrintedFabrics-17k/train but no Train_split.json; expected ...``).
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Sequence

from fgr_utils import io
from fgr_utils.data.fabrics_manifest import (ELEMENT_DIR, MANIFEST_FILE, QUERY_LISTS, SPLIT_FILES, SPLITS,
                                             SUB_FILES, TEST_FILES, FabricRecord, FabricSet, MotifRecord,
                                             QueryRecord, element_key, fabric_key, read_json, read_text, rel_path,
                                             write_manifest)
from fgr_utils.data.images import IMAGE_SUFFIXES
from fgr_utils.errors import FgrError

__all__ = ["convert", "is_stale", "find_dataset_folder"]

# notes are logged under the reader's name: that is the logger a user of load_fabrics configures
log = logging.getLogger("fgr_utils.data.fabrics")

_SEARCH_DEPTH = 4  # how deep below root the dataset folder is looked for
_SHOW = 5  # how many names an error line shows


# ---------------------------------------------------------------------------------------------------
# finding the dataset folder


def find_dataset_folder(root: Path, name: str) -> Path | None:
    """The ``name`` folder at or below ``root`` (up to four levels), or None; two at the same depth are an error."""
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
        raise FgrError(f"found {len(found)} {name} folders under {root} ({', '.join(rel_path(p, root) for p in found[:_SHOW])}); "
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


def _read_csv(path: Path) -> list[list[str]]:
    return [row for row in csv.reader(read_text(path).splitlines())]


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
            for line in read_text(path).splitlines():
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
        data = read_json(path)
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
            for line in read_text(path).splitlines():
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


def is_stale(data: dict, base: Path) -> bool:
    """Whether the manifest ``data`` (read in ``base``) was converted from files that changed or left since."""
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


def convert(root: Path, spf: Path, dataset_folder: str, gt_key: str, write: bool) -> FabricSet:
    """The :class:`FabricSet` of the paper's files beside (or inside) the dataset folder ``spf``.

    ``root`` is the folder ``load_fabrics`` was given (its files are looked up last). With ``write``
    the manifest is written to ``spf``'s parent; a failure to write is noted in ``.problems`` and
    leaves ``manifest_path`` None.
    """
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
            "converted_from": {rel_path(p, data_root): _stamp(p) for p in used},
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
