"""``asfr-garments``: a FashionAI-like attribute-retrieval set in ASEN's split format, plus Zappos-style triplets.

**What it stands in for.** FashionAI (and DeepFashion / DARN) as ASEN, AG-MAN and RPF read them:
images labelled with one (attribute, value) pair each, split into train images and valid / test
queries and candidates (``shared/reference/asfr_rpf_agman.md`` §1.1, §1.4), and CSN's Zappos50k
conditional triplet lists (§1.6). The files are the real formats, read by
:func:`fgr_utils.data.attributes.load_attribute_set` and :func:`~fgr_utils.data.attributes.load_triplet_lists`::

    Images/<attribute>_labels/<name>.png         square RGB product photos (garments.render_photo)
    filenames_{train,valid,test}.txt             0-based line number = image id
    label_train.txt                              img_id attr value (one pair per image, as FashionAI)
    query_{valid,test}.txt, candidate_{valid,test}.txt
    meta.json                                    {"asfr-garments": {ATTRIBUTES, ATTRIBUTES_NUM, ATTRIBUTES_VALUES}}
    garments.json                                every image's garment, split, role and label
    zappos/tripletlists/<condition>_tripletlist_{train,val,test}.txt, zappos/filenames.json

**Attributes.** Eight FashionAI-like attributes (:data:`ATTRIBUTE_SPECS`), each reading one attribute
of the garment renderer over the categories it applies to; the value lists come from the renderer's
:data:`~fgr_utils.data.synth.garments.CATEGORY_VALUES` and start with "Invisible" (index 0), as in
FashionAI. An image labelled (a, v) is a garment drawn with that value fixed and everything else
random, so only the labelled value makes two images of an attribute relevant to each other. About
5 % of an attribute's images are "Invisible": a garment of a category the attribute does not apply
to (renderer value n/a, e.g. trousers in the sleeve folder; for the three length attributes, another
category). ``pattern_design`` applies to every garment, so it has no Invisible images.

**Splits.** Images per attribute follow FashionAI's test query counts (422, 623, 535, 422, 341, 289,
703, 265), so query-weighted and macro MAP differ. Every valid / test image is a query or a
candidate, 1 : 4 per attribute; values are about uniform within an attribute; each query's value
occurs among its attribute's candidates, and each attribute has at least two values with two train
images (what the triplet sampler needs).

**Triplets.** Four conditions named like attributes (:data:`CONDITIONS`), so a model trained on the
split files can be scored on them. A line ``a b c`` (indices into ``zappos/filenames.json``, which
lists every image) says that under the condition ``c`` shares ``a``'s value and ``b`` does not; the
values are the full garments', so any image the condition applies to takes part. train / val / test
triplets come from train / valid / test images.

**Sizes.** ``smoke``: 160 train, 40 valid, 40 test images at 64 px; ``demo``: 2400 / 500 / 1000 at
192 px; a count ``n`` (at least 200): 60 / 13 / 27 % (64 px up to 400 images, else 192 px).

Everything is deterministic for a seed: image ``k`` (global order train, valid, test) is drawn and
rendered from ``numpy.random.default_rng([seed, 10, k])`` alone, in worker processes
(:data:`MAX_WORKERS`), and PNG settings are fixed, so the files do not depend on the worker count.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from fgr_utils.data.synth.core import parse_count, register
from fgr_utils.data.synth.garments import (ATTRIBUTES, CATEGORIES, CATEGORY_VALUES, NA, Garment, render_photo,
                                           sample_garment)
from fgr_utils.errors import FgrError

__all__ = ["NAME", "INVISIBLE", "AttributeSpec", "ATTRIBUTE_SPECS", "CONDITIONS", "AsfrPlan", "PLANS", "asfr_plan",
           "MAX_WORKERS", "JSON_FILE", "draw_garment"]

NAME = "asfr-garments"
INVISIBLE = "Invisible"
JSON_FILE = "garments.json"
PNG_SETTINGS = {"compress_level": 1}  # fixed, so the bytes depend on the pixels only; level 1 is fast
#: Worker processes that render; None: min(2, cpu count). The output does not depend on it.
MAX_WORKERS: int | None = None
_CHUNK = 16  # images per worker task (small: the workers finish together)

_TOPS = ("tshirt", "shirt", "dress", "coat")
#: FashionAI's test queries per attribute (§1.4): the share of images each attribute gets.
FASHIONAI_TEST_QUERIES = (422, 623, 535, 422, 341, 289, 703, 265)
INVISIBLE_SHARE = 0.05
QUERY_SHARE = 0.2  # 1 query : 4 candidates
_MIN_TRAIN, _MIN_EVAL = 4, 2  # images per attribute and split
_STREAMS = {"plan": 1, "names": 2, "image": 10, "triplets": 20}


def _takes(category: str, garment_attr: str) -> tuple[str, ...]:
    """The renderer values a category can take for one garment attribute."""
    return CATEGORY_VALUES[category].get(garment_attr, ATTRIBUTES[garment_attr])


@dataclass(frozen=True)
class AttributeSpec:
    """One labelled attribute: which garment attribute it reads and on which categories."""

    name: str
    garment_attr: str
    categories: tuple[str, ...]
    exclude: tuple[str, ...] = ()  # renderer values that are no label (a collar of "none")

    @property
    def values(self) -> tuple[str, ...]:
        """"Invisible", then the renderer values the categories take, in the renderer's order."""
        taken = {v for c in self.categories for v in _takes(c, self.garment_attr)}
        return (INVISIBLE,) + tuple(v for v in ATTRIBUTES[self.garment_attr]
                                    if v in taken and v != NA and v not in self.exclude)

    @property
    def invisible_categories(self) -> tuple[str, ...]:
        """Categories the attribute does not apply to: renderer value n/a, or (length) another category."""
        if NA in ATTRIBUTES[self.garment_attr]:
            return tuple(c for c in CATEGORIES if _takes(c, self.garment_attr) == (NA,))
        return tuple(c for c in CATEGORIES if c not in self.categories)

    def categories_for(self, value: str) -> tuple[str, ...]:
        """The categories a garment labelled ``value`` may be drawn from."""
        if value == INVISIBLE:
            return self.invisible_categories
        return tuple(c for c in self.categories if value in _takes(c, self.garment_attr))

    def value_of(self, garment: Garment) -> str | None:
        """The label this attribute gives ``garment``, or None where it does not apply."""
        v = getattr(garment, self.garment_attr)
        return v if garment.category in self.categories and v in self.values[1:] else None


ATTRIBUTE_SPECS: tuple[AttributeSpec, ...] = (
    AttributeSpec("skirt_length", "length", ("skirt",)),
    AttributeSpec("sleeve_length", "sleeve_length", _TOPS),
    AttributeSpec("coat_length", "length", ("coat",)),
    AttributeSpec("pant_length", "length", ("trousers",)),
    AttributeSpec("collar_design", "collar", _TOPS, exclude=("none",)),
    AttributeSpec("lapel_design", "lapel", ("coat",)),
    AttributeSpec("neckline_design", "neckline", ("tshirt", "shirt", "dress")),
    AttributeSpec("pattern_design", "print", CATEGORIES),
)
_SPEC = {s.name: s for s in ATTRIBUTE_SPECS}
#: The triplet conditions (attribute names), in condition index order.
CONDITIONS = ("sleeve_length", "collar_design", "neckline_design", "pattern_design")


@dataclass(frozen=True)
class AsfrPlan:
    train: int
    valid: int
    test: int
    px: int
    triplets: tuple[int, int, int]  # per condition: train, val, test


PLANS = {
    "smoke": AsfrPlan(160, 40, 40, 64, (200, 50, 50)),
    "demo": AsfrPlan(2400, 500, 1000, 192, (4000, 1000, 2000)),
}
_MIN_COUNT = 200  # below, the 13 % valid images are too few for some triplet conditions


def asfr_plan(size: str) -> AsfrPlan:
    """The preset, or for a count ``n``: 60 % train, 13 % valid, 27 % test; triplets as demo's per image."""
    if size in PLANS:
        return PLANS[size]
    n = parse_count(size)
    if n < _MIN_COUNT:
        raise FgrError(f"size {size!r} is too small for {NAME}; use at least {_MIN_COUNT} images")
    train, valid = round(0.6 * n), round(0.13 * n)
    test = n - train - valid
    return AsfrPlan(train, valid, test, 64 if n <= 400 else 192, (round(train * 5 / 3), 2 * valid, 2 * test))


def draw_garment(rng: np.random.Generator, spec: AttributeSpec, value: str) -> Garment:
    """A random garment that ``spec`` labels ``value`` (for "Invisible": one it does not apply to)."""
    options = spec.categories_for(value)
    category = options[int(rng.integers(len(options)))]
    if value == INVISIBLE:
        return sample_garment(rng, category=category)
    return sample_garment(rng, category=category, **{spec.garment_attr: value})


# ---------------------------------------------------------------------------------------------------
# the plan: which image shows what


def _allocate(total: int, minimum: int) -> list[int]:
    """``total`` images over the attributes: ``minimum`` each, the rest in FashionAI's query proportions."""
    w = np.array(FASHIONAI_TEST_QUERIES, dtype=float)
    share = (total - minimum * len(w)) * w / w.sum()
    n = np.floor(share).astype(int)
    n[np.argsort(-(share - n), kind="stable")[: total - minimum * len(w) - n.sum()]] += 1
    return [int(x) + minimum for x in n]


def _values(rng: np.random.Generator, n: int, spec: AttributeSpec, repeat: int) -> np.ndarray:
    """``n`` value indices: ~5 % Invisible (where it exists), the rest cycling through randomly chosen
    values, as many as allow each ``repeat`` images."""
    n_inv = int(INVISIBLE_SHARE * n + 0.5) if spec.invisible_categories else 0
    n_vis = n - n_inv
    k = min(len(spec.values) - 1, max(1, n_vis // repeat))
    chosen = rng.permutation(np.arange(1, len(spec.values)))[:k]
    out = np.concatenate([np.zeros(n_inv, dtype=int), np.resize(chosen, n_vis)])
    return rng.permutation(out)


@dataclass(frozen=True)
class _Image:
    split: str
    role: str  # "train", "query" or "candidate"
    attr: int
    value: int


def _plan_split(rng: np.random.Generator, split: str, total: int) -> list[_Image]:
    """The images of one split, in image id order."""
    items: list[_Image] = []
    if split == "train":
        for a, n in enumerate(_allocate(total, _MIN_TRAIN)):
            items += [_Image(split, "train", a, int(v)) for v in _values(rng, n, ATTRIBUTE_SPECS[a], repeat=2)]
    else:
        for a, n in enumerate(_allocate(total, _MIN_EVAL)):
            n_q = max(1, round(QUERY_SHARE * n))
            cand = _values(rng, n - n_q, ATTRIBUTE_SPECS[a], repeat=1)
            query = np.resize(rng.permutation(cand), n_q)  # values of random candidates: each has a match
            items += [_Image(split, "query", a, int(v)) for v in query]
            items += [_Image(split, "candidate", a, int(v)) for v in cand]
    return [items[i] for i in rng.permutation(len(items))]


# ---------------------------------------------------------------------------------------------------
# rendering


def _render_chunk(out_dir: Path, px: int, seed: int, jobs: list[tuple[int, str, int, int]]) -> list[dict]:
    """Draw and render images ``(k, path, attr, value)``; return their garments as JSON."""
    out = []
    for k, rel, a, v in jobs:
        spec = ATTRIBUTE_SPECS[a]
        rng = np.random.default_rng([seed, _STREAMS["image"], k])
        garment = draw_garment(rng, spec, spec.values[v])
        render_photo(garment, px, rng).save(out_dir / rel, **PNG_SETTINGS)
        out.append(garment.to_json())
    return out


def _render_all(out_dir: Path, px: int, seed: int, jobs: list[tuple[int, str, int, int]]) -> list[dict]:
    chunks = [jobs[i:i + _CHUNK] for i in range(0, len(jobs), _CHUNK)]
    work = partial(_render_chunk, out_dir, px, seed)
    workers = MAX_WORKERS or min(2, os.cpu_count() or 1)
    if workers <= 1 or len(chunks) <= 1:
        results = map(work, chunks)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(work, chunks))
    return [g for chunk in results for g in chunk]


# ---------------------------------------------------------------------------------------------------
# triplets


def _triplets(rng: np.random.Generator, labelled: list[tuple[int, int]], n: int, what: str) -> np.ndarray:
    """``n`` rows ``a b c`` over ``labelled`` (image index, value): ``c`` shares ``a``'s value, ``b`` has another."""
    idx = np.array([k for k, _ in labelled], dtype=np.int64)
    values = np.array([v for _, v in labelled], dtype=np.int64)
    same = {int(v): idx[values == v] for v in np.unique(values)}
    other = {v: idx[values != v] for v in same}
    anchors = [k for k, v in labelled if len(same[v]) >= 2]
    if len(same) < 2 or not anchors:
        raise FgrError(f"{NAME}: too few {what} images to draw triplets (need two values, one of them twice); "
                       "use a larger size")
    value_of = dict(labelled)
    rows = np.empty((n, 3), dtype=np.int64)
    for t in range(n):
        a = anchors[rng.integers(len(anchors))]
        close, far = same[value_of[a]], other[value_of[a]]
        close = close[close != a]
        rows[t] = a, far[rng.integers(len(far))], close[rng.integers(len(close))]
    return rows


def _write_lines(path: Path, lines) -> None:
    path.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------
# the dataset


@register(NAME, sizes=tuple(PLANS), tracks=("asfr",), format="attributes", description=(
    "FashionAI-like attribute retrieval in ASEN's split format (8 attributes, 'Invisible' first; queries and "
    "candidates 1:4) plus Zappos-style conditional triplet lists; parametric garment photos"))
def generate(out_dir: Path, size: str, seed: int) -> dict:
    plan = asfr_plan(size)
    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, _STREAMS["plan"]])
    splits = {"train": plan.train, "valid": plan.valid, "test": plan.test}
    images = [im for split, n in splits.items() for im in _plan_split(rng, split, n)]
    names = np.random.default_rng([seed, _STREAMS["names"]]).permutation(len(images))
    paths = [f"Images/{ATTRIBUTE_SPECS[im.attr].name}_labels/{names[k]:05d}.png" for k, im in enumerate(images)]
    for spec in ATTRIBUTE_SPECS:
        (out_dir / "Images" / f"{spec.name}_labels").mkdir(parents=True, exist_ok=True)
    garments = _render_all(out_dir, plan.px, seed, [(k, paths[k], im.attr, im.value) for k, im in enumerate(images)])

    # ASEN split files: image ids are positions within a split, in plan order
    members: dict[str, list[int]] = {split: [] for split in splits}  # split -> global indices by image id
    img_id = []
    for k, im in enumerate(images):
        img_id.append(len(members[im.split]))
        members[im.split].append(k)
    for split, ks in members.items():
        _write_lines(out_dir / f"filenames_{split}.txt", (paths[k] for k in ks))

    def label_lines(split: str, role: str) -> list[str]:
        return [f"{img_id[k]} {images[k].attr} {images[k].value}" for k in members[split] if images[k].role == role]

    _write_lines(out_dir / "label_train.txt", label_lines("train", "train"))
    counts = {f"{split}_images": len(ks) for split, ks in members.items()}
    for split in ("valid", "test"):
        for role, key in (("query", "queries"), ("candidate", "candidates")):
            lines = label_lines(split, role)
            _write_lines(out_dir / f"{role}_{split}.txt", lines)
            counts[f"{split}_{key}"] = len(lines)
    meta = {"ATTRIBUTES": [a.name for a in ATTRIBUTE_SPECS],
            "ATTRIBUTES_NUM": {a.name: len(a.values) for a in ATTRIBUTE_SPECS},
            "ATTRIBUTES_VALUES": {a.name: list(a.values) for a in ATTRIBUTE_SPECS}}
    (out_dir / "meta.json").write_text(json.dumps({NAME: meta}, indent=1) + "\n", encoding="utf-8")

    # Zappos-style triplet lists over all images, labelled by the full garments
    lists = out_dir / "zappos" / "tripletlists"
    lists.mkdir(parents=True)
    _write_lines(out_dir / "zappos" / "filenames.json", paths)
    full = [Garment.from_json(g) for g in garments]
    for si, (split, tsplit, n) in enumerate(zip(splits, ("train", "val", "test"), plan.triplets)):
        for c, cond in enumerate(CONDITIONS):
            spec = _SPEC[cond]
            labelled = [(k, spec.values.index(v)) for k in members[split] if (v := spec.value_of(full[k]))]
            t = _triplets(np.random.default_rng([seed, _STREAMS["triplets"], si, c]), labelled, n, f"{split} {cond}")
            _write_lines(lists / f"{cond}_tripletlist_{tsplit}.txt", (f"{a} {b} {cc}" for a, b, cc in t))
        counts[f"{tsplit}_triplets"] = n * len(CONDITIONS)

    record = {
        "dataset": NAME, "size": size, "seed": seed, "px": plan.px,
        "attributes": {a.name: {"garment_attribute": a.garment_attr, "categories": list(a.categories),
                                "values": list(a.values)} for a in ATTRIBUTE_SPECS},
        "conditions": list(CONDITIONS),
        "images": [{"path": paths[k], "split": im.split, "img_id": img_id[k], "role": im.role,
                    "attr": ATTRIBUTE_SPECS[im.attr].name, "value": ATTRIBUTE_SPECS[im.attr].values[im.value],
                    "garment": garments[k]} for k, im in enumerate(images)],
    }
    (out_dir / JSON_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    counts["px"] = plan.px
    return counts
