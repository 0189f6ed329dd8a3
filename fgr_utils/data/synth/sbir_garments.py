"""``sbir-garments`` (+ ``-xdog``, ``-canny``): synthetic sketch-photo sets in the A/B layout of the real releases.

**What it stands in for.** QMUL-Shoe/Chair-V2 and HNU Clothes-V1, as the A/B reader
(:func:`fgr_utils.data.sketches.load_sketches`) reads them: product photos, and for each photo a few
sketches drawn "by different designers", made from the parametric garments of :mod:`.garments` without
a download.

**Layout.** ``sbir-garments`` writes ``trainA/<photo>_<k>.png`` (sketches), ``trainB/<photo>.png``
(photos), ``testA/``, ``testB/`` and ``garments.json``. Photos come in *families* of 3-6 garments that
share category, silhouette, length, proportions and colour and differ in one or two details (sleeve
length, collar/neckline, lapel, pockets, buttons, print), so category alone never identifies a photo.
Families (and so photos) are disjoint between train and test. Each photo is drawn by 2-3 of the 12
:data:`~.garments.DESIGNERS` and ``k`` is the designer number, so names like ``g00042_11.png`` occur:
the released ARNet loader pairs with ``glob("<photo>_?.png")`` and silently drops designers 10-12 -
which here are among the roughest styles, so the filter changes both the sketch count and the
difficulty. ``sbir-garments-xdog`` / ``-canny`` hold the same photos (byte-identical for a seed) with
pseudo-sketches of a slightly re-posed copy of the photo under the same ``k`` numbers, so file lists
match one to one. ``garments.json`` maps each photo id to its split, family, attributes and proportions
and each sketch to its photo, ``k`` and designer.

**Sizes.** ``smoke`` (24 train / 12 test photos, 64 px), ``demo`` (400 / 100, 128 px), ``paper``
(380 / 120 - Clothes-V1's photo counts - at 256 px), or a count of photos (76 % train; 64 px up to 60
photos, else 128 px). Each photo gets 2-3 sketches.

Everything is deterministic for a seed: each photo and sketch is rendered from its own
``numpy.random.default_rng([seed, stream, photo, k])`` stream, and PNG settings are fixed.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fgr_utils.data.synth.core import parse_count, register
from fgr_utils.data.synth.garments import (ATTRIBUTES, CATEGORY_VALUES, DESIGNERS, DETAILS, Garment, canny_sketch,
                                           render_photo, render_sketch, sample_garment, vary_garment, xdog)
from fgr_utils.data.synth.garments.edges import to_grey
from fgr_utils.errors import FgrError

__all__ = ["NAME", "GarmentPlan", "PLANS", "garment_plan", "JSON_FILE", "SOURCES", "generate", "generate_xdog",
           "generate_canny"]

NAME = "sbir-garments"


@dataclass(frozen=True)
class GarmentPlan:
    """How many train and test photos a size has, and their side in pixels."""

    train_photos: int
    test_photos: int
    px: int


PLANS = {
    "smoke": GarmentPlan(24, 12, 64),
    "demo": GarmentPlan(400, 100, 128),
    "paper": GarmentPlan(380, 120, 256),  # the photo counts of HNU Clothes-V1
}
FAMILY_SIZES = (3, 4, 5, 6)
SKETCHES_PER_PHOTO = (2, 3)
PNG_SETTINGS = {"compress_level": 6}
JSON_FILE = "garments.json"
SOURCES = {NAME: "designer", f"{NAME}-xdog": "xdog", f"{NAME}-canny": "canny"}


def garment_plan(size: str) -> GarmentPlan:
    """The preset, or for a count ``n`` of photos: 76 % train (Clothes-V1's share), 64 px up to 60 photos."""
    if size in PLANS:
        return PLANS[size]
    n = parse_count(size)
    if n < 4:
        raise FgrError(f"size {size!r} is too small for {NAME}; use at least 4 photos")
    train = max(2, min(n - 2, int(round(0.76 * n))))
    return GarmentPlan(train, n - train, 64 if n <= 60 else 128)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def _visible_key(g: Garment) -> tuple:
    """What a sketch can show: every attribute but the colours (a solid garment's accent is 'n/a' anyway)."""
    return tuple(v for k, v in g.attributes().items() if k not in ("colour", "accent"))


def _families(n: int, rng: np.random.Generator, tag: str) -> list[tuple[str, Garment]]:
    """``n`` garments in families of 3-6 that share category, silhouette, length, colour and proportions."""
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.choice(FAMILY_SIZES)))
    sizes[-1] -= sum(sizes) - n
    if sizes[-1] < min(FAMILY_SIZES) and len(sizes) > 1:  # no tiny family: hand its members to the others
        for j in range(sizes.pop()):
            sizes[j % len(sizes)] += 1
    out: list[tuple[str, Garment]] = []
    for fam, size in enumerate(sizes):
        base = sample_garment(rng)
        members = [base]
        seen = {_visible_key(base)}
        cat_vals = CATEGORY_VALUES[base.category]
        varying = [a for a in DETAILS if a == "print" or len(cat_vals[a]) > 1]
        tries = 0
        while len(members) < size and tries < 60:
            tries += 1
            k = 1 if rng.random() < 0.6 else 2
            change = list(rng.choice(varying, size=min(k, len(varying)), replace=False))
            g = vary_garment(base, rng, change)
            if g is None:
                continue
            if _visible_key(g) in seen:
                continue
            seen.add(_visible_key(g))
            members.append(g)
        tries = 0
        while len(members) < size:  # few variants of this base: fill with garments of the same cut and colour
            tries += 1
            if tries > 500:
                raise RuntimeError(f"{NAME}: cannot fill a family of {base.category} (generator bug)")
            g = sample_garment(rng, proportions=base.proportions, category=base.category,
                               silhouette=base.silhouette, length=base.length, colour=base.colour)
            if _visible_key(g) not in seen:
                seen.add(_visible_key(g))
                members.append(g)
        out.extend((f"{tag}{fam:04d}", m) for m in members)
    return out


def _augment(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A slightly re-posed copy of a photo (rotation +- 4 degrees, scale +- 5 %, shift +- 3 %).

    The photo is edge-padded first, so the corners the rotation uncovers continue the card's own
    gradient instead of a flat fill, which an edge detector would trace as a frame.
    """
    n = photo.size[0]
    pad = n // 4
    big = Image.fromarray(np.pad(np.asarray(photo.convert("RGB")), ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    ang = math.radians(float(rng.uniform(-4, 4)))
    sc = float(rng.uniform(0.95, 1.05))
    t = rng.uniform(-0.03, 0.03, 2) * n
    inv = np.array([[math.cos(ang), math.sin(ang)], [-math.sin(ang), math.cos(ang)]]) / sc  # output -> input
    c_in = np.array([n / 2 + pad, n / 2 + pad])
    off = c_in - inv @ (np.array([n / 2, n / 2]) + t)
    coeffs = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
    return big.transform((n, n), Image.AFFINE, tuple(float(c) for c in coeffs), resample=Image.BILINEAR)


def _pseudo(photo: Image.Image, source: str, rng: np.random.Generator) -> Image.Image:
    """A pseudo-sketch ("xdog" or "canny") of a re-posed copy of ``photo`` with a jittered filter scale."""
    img = _augment(photo, rng)
    grey = to_grey(img)
    lo, hi = np.percentile(grey, [1, 99])  # stretch contrast (pale garments on pale card), keep fills above eps
    grey = 0.2 + 0.8 * np.clip((grey - lo) / max(hi - lo, 1e-3), 0, 1)
    scale = max(photo.size[0] / 128, 0.6)
    if source == "xdog":  # p = 30: a little more sensitive than the default, for pale garments
        return xdog(grey, sigma=float(rng.uniform(0.7, 0.95)) * scale, p=30.0)
    return canny_sketch(grey, sigma=float(rng.uniform(0.9, 1.4)) * scale)


def _generate(out_dir: Path, size: str, seed: int, name: str) -> dict:
    """Write dataset ``name`` (its :data:`SOURCES` entry says how sketches are made); return its counts."""
    plan = garment_plan(size)
    source = SOURCES[name]
    out_dir = Path(out_dir)
    garments = {"train": _families(plan.train_photos, _rng(seed, 1), "f"),
                "test": _families(plan.test_photos, _rng(seed, 2), "t")}
    items = [(split, fam, g) for split in ("train", "test") for fam, g in garments[split]]
    order = _rng(seed, 3).permutation(len(items))
    ids = {}
    for n, i in enumerate(order):
        ids[int(i)] = f"g{n:05d}"
    drng = _rng(seed, 4)
    designers = [sorted(int(x) + 1 for x in drng.choice(len(DESIGNERS), size=int(drng.choice(SKETCHES_PER_PHOTO)),
                                                        replace=False)) for _ in items]
    for d in ("trainA", "trainB", "testA", "testB"):
        (out_dir / d).mkdir(parents=True, exist_ok=True)
    photos_meta, sketches_meta = {}, {}
    for i in sorted(range(len(items)), key=lambda j: ids[j]):
        split, fam, g = items[i]
        pid = ids[i]
        photo = render_photo(g, plan.px, _rng(seed, 5, i))
        photo.save(out_dir / f"{split}B" / f"{pid}.png", **PNG_SETTINGS)
        photos_meta[pid] = {"split": split, "family": fam, **g.to_json()}
        for k in designers[i]:
            r = _rng(seed, 6, i, k)
            if source == "designer":
                sk = render_sketch(g, DESIGNERS[k], plan.px, r)
            else:
                sk = _pseudo(photo, source, r)
            sid = f"{pid}_{k}"
            sk.save(out_dir / f"{split}A" / f"{sid}.png", **PNG_SETTINGS)
            sketches_meta[sid] = {"photo": pid, "split": split, "k": k,
                                  "designer": k if source == "designer" else None, "source": source}
    meta = {
        "dataset": name, "size": size, "seed": seed, "px": plan.px, "sketch_source": source,
        "attributes": {k: list(v) for k, v in ATTRIBUTES.items()},
        "designers": {str(k): asdict(v) for k, v in DESIGNERS.items()} if source == "designer" else {},
        "photos": photos_meta, "sketches": sketches_meta,
    }
    (out_dir / JSON_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    count = lambda split: sum(1 for s in sketches_meta.values() if s["split"] == split)  # noqa: E731
    return {
        "train_photos": plan.train_photos, "test_photos": plan.test_photos,
        "train_sketches": count("train"), "test_sketches": count("test"),
        "multi_digit_sketches": sum(1 for s in sketches_meta.values() if s["k"] >= 10),
        "families": len({(p["split"], p["family"]) for p in photos_meta.values()}), "px": plan.px,
    }


_SIZES = tuple(PLANS)


@register(NAME, sizes=_SIZES, tracks=("sbir",), format="sketches", description=(
    "FG-SBIR stand-in in the A/B layout (trainA/<photo>_<k>.png sketches, trainB/<photo>.png photos, testA/B): "
    "parametric garments in fine-grained families, sketched by 2-3 of 12 designer styles (k = designer 1-12)"))
def generate(out_dir: Path, size: str, seed: int) -> dict:
    return _generate(out_dir, size, seed, NAME)


@register(f"{NAME}-xdog", sizes=_SIZES, tracks=("sbir",), format="sketches", description=(
    "sbir-garments' photos with XDoG pseudo-sketches of re-posed photos instead of designer sketches (same k)"))
def generate_xdog(out_dir: Path, size: str, seed: int) -> dict:
    return _generate(out_dir, size, seed, f"{NAME}-xdog")


@register(f"{NAME}-canny", sizes=_SIZES, tracks=("sbir",), format="sketches", description=(
    "sbir-garments' photos with Canny-edge pseudo-sketches of re-posed photos instead of designer sketches (same k)"))
def generate_canny(out_dir: Path, size: str, seed: int) -> dict:
    return _generate(out_dir, size, seed, f"{NAME}-canny")

