"""``sim-fabrics`` and ``sim-revisited``: printed fabrics simulated from the motif bank of :mod:`.motifs`.

**The simulator.** A fabric is a *print*: a ground (solid, stripes, gingham check, mottled noise, or
one of the real textures scikit-image ships - ``brick``, ``grass``, ``gravel`` - tinted) with 2-4
distinct motifs repeated over it in one print layout:

* ``grid``: the main motif on a square lattice, the others on the lattice's cell centres;
* ``half-drop``: the same with every other column dropped by half a cell (the classic wallpaper repeat);
* ``scatter``: every motif at jittered lattice points in random order, at random angles.

Each motif gets one colourway per fabric (a small hue / saturation / brightness change, so its own
colour pair stays recognisable) and every copy a small scale and angle jitter (``grid``: one fixed
angle; ``half-drop``: alternate copies turned by 180 degrees; ``scatter``: any angle). Copies run
over the image border as on a cut piece of cloth. For every placed copy the simulator knows its box
(clipped to the image) and how much of it is visible (alpha > 127, not covered by later copies, inside
the image) - exactly, from an owner map of the composited pixels.

**sim-fabrics** writes the layout of SimulatedPrintedFabrics-17k as far as the reference knows it
(``shared/reference/fabric_qga.md`` sections 3.1-3.3)::

    SimulatedPrintedFabrics-17k/{train,validation,test}/img/images/<fabric_id>.png
    element img/<elem_id>,.png          every motif (RGBA, transparent background)
    train_sub.txt, val_sub.txt          "element img/<elem_id>,.png <category>" per training / validation motif
    Train_split.json, Validation_split.json, Test_split.json
                                        [[<index in file>, <fabric_id>, elem_1..elem_n, cat_1..cat_n], ...]
    TestAll_index.csv                   header: test motif ids; column: the fabric ids that contain it
    Test_element.csv                    header "query_filename,class", rows "<elem_id>,.png",<elem_id>
    test.txt, element_all/test.txt      "element img/<elem_id>,.png <category>" per test query
    fabrics-manifest.json               the kit's explicit manifest (fgr_utils.data.fabrics reads it)

* **Disjoint motif pools.** The motifs of every category are split into disjoint train / validation /
  test pools; a fabric belongs to one split and only uses motifs of its split's pool. Test (and
  validation) queries are motifs never seen in training, from the same categories.
* **Queries** are the motif PNGs themselves (RGBA on transparency); about half store black RGB under
  the transparent pixels and half white (like the two real samples ``10640,.png`` and ``10681,.png``),
  so the ``rgba_background`` switch changes what a model sees. Relevant fabrics of a query: the fabrics
  of its split that contain its motif id.
* **Hard negatives.** Fabrics are designed in *twin pairs*: a twin repeats a fabric's ground (kind and
  colours; another crop / phase) and layout with one motif replaced by another motif of the same
  category. Every test (and validation) motif is in at least one twin pair, so each has a fabric that
  looks alike, holds a motif of its category, and does not contain it; the generator checks this.
  Stage-1 similarity (category level) cannot tell twins apart; stage 2 (instance level) has to.
* Sizes: ``smoke`` (56 fabrics of 96 px, 56 motifs of 64 px; 16 test / 16 validation queries), ``demo``
  (1,320 fabrics of 176 px, 224 motifs of 128 px; 80 test / 40 validation queries), ``paper`` (= ``17k``:
  17,000 fabrics of 448 px split 70/10/20, motifs of 320 px), or a count of fabrics.

**sim-revisited** turns the same simulator into a revisited-protocol set in the ROxford5k format that
:func:`fgr_utils.data.landmarks.load_landmarks` reads (``jpg/<name>.jpg`` + ``gnd_sim-revisited.pkl``,
plus ``sim-revisited-views.json`` for teaching). A query is a fabric image whose ``bbx`` is one fully
visible copy of a *query motif* (the "sub-element"); the database holds other fabrics (queries are not
in it). Each database fabric is labelled for each query motif from the measured copies of that motif
(``v``: visible fraction, ``r``: copy size over the query copy's size):

* easy: some copy with ``v >= 0.85`` and ``r >= 0.6`` (fully visible at a similar scale);
* hard: otherwise some copy with ``v >= 0.35`` and ``r >= 0.25`` (cut by the border, covered by
  another motif, or printed small);
* junk: otherwise some visible pixel (a sliver at the border);
* not listed (a negative): the motif is absent - database fabrics that hold *another* motif of the same
  category are the hard negatives.

Views are built to aim at each label (tiled large / tiled small / cut by the border / occluded /
sliver / same-category swap) and then labelled by measurement. Every query has an easy and a hard
positive. Sizes like photo-landmarks: ``smoke`` (6 query motifs, 12 queries, 60 database images),
``demo`` (15, 30, 400), ``paper`` (35, 70, 5,000), or a count of database images.

Both generators are deterministic for a seed and size in one environment: every parameter of every
image is drawn from ``numpy.random.default_rng`` streams derived from the seed before rendering, and
each image's render-time jitter comes from its own integer seed, so the rendering threads cannot change
anything; PNG / JPEG encoder settings are fixed.
"""
from __future__ import annotations

import csv
import io as _io
import json
import math
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from fgr_utils import io
from fgr_utils.data.fabrics import (DATASET_FOLDER, ELEMENT_DIR, MANIFEST_FILE, SPLIT_FILES, SPLITS, SUB_FILES,
                                    write_manifest)
from fgr_utils.data.synth.core import parse_count, register
from fgr_utils.data.synth.motifs import CATEGORIES, PALETTE, Motif, make_bank, render_motif

NAME = "sim-fabrics"
REVISITED_NAME = "sim-revisited"
GND_FILE = f"gnd_{REVISITED_NAME}.pkl"
VIEWS_FILE = f"{REVISITED_NAME}-views.json"
ID_PREFIX = {"train": "tr", "validation": "va", "test": "te"}
PNG_SETTINGS = {"compress_level": 3}
JPEG_SETTINGS = {"quality": 90, "subsampling": 2, "optimize": False, "progressive": False}
RENDER_THREADS = 8
TWIN_PROBABILITY = 0.4  # chance that a filler fabric also gets a twin (coverage twins come first)
MOTIFS_PER_FABRIC = ((2, 0.3), (3, 0.45), (4, 0.25))
GROUNDS = ("solid", "stripes", "check", "noise", "brick", "grass", "gravel")
GROUND_P = (0.16, 0.16, 0.12, 0.14, 0.14, 0.14, 0.14)
LAYOUTS = ("grid", "half-drop", "scatter")
LAYOUT_P = (0.35, 0.35, 0.30)
EASY_V, EASY_R = 0.85, 0.6  # sim-revisited label rules (see the module doc)
HARD_V, HARD_R = 0.35, 0.25

RGB = tuple[int, int, int]


# ---------------------------------------------------------------------------------------------------
# designs: everything about one fabric image, drawn before rendering


@dataclass(frozen=True)
class Ground:
    kind: str  # one of GROUNDS
    colours: tuple[RGB, RGB]
    period: float  # stripes / check period, noise cell (fraction of the image width)
    angle: float  # stripes angle in degrees
    duty: float  # stripes: fraction of each period in the second colour
    strength: float  # texture / noise contrast (0-1)


@dataclass(frozen=True)
class Layer:
    motif: str
    lattice: str  # "A" (lattice points), "B" (cell centres) or "S" (scatter)
    size: float  # copy long side in pixels (before jitter)
    colour: tuple[float, float, float]  # hue shift (degrees), saturation factor, brightness gain


@dataclass(frozen=True)
class Placement:
    """sim-revisited: extra copies of ``motif`` aimed at a visible fraction in ``band``."""

    motif: str
    mode: str  # "cut" / "sliver" (across the border) or "occlude" (inside, covered by ``occluder``)
    size: float
    band: tuple[float, float]
    count: int = 1
    occluder: str | None = None


@dataclass(frozen=True)
class Design:
    name: str
    size: tuple[int, int]
    ground: Ground
    layout: str
    cell: float
    rotation: str  # "fixed", "alternate" or "random"
    angle: float
    layers: tuple[Layer, ...]
    seed: int  # render-time stream: phases, jitter, texture crop
    placements: tuple[Placement, ...] = ()

    @property
    def motif_ids(self) -> list[str]:
        out: list[str] = []
        for m in [layer.motif for layer in self.layers] + [p.motif for p in self.placements]:
            if m not in out:
                out.append(m)
        return out


@dataclass(frozen=True)
class Copy:
    """One placed copy as rendered: box clipped to the image, visible and full mask pixel counts."""

    motif: str
    box: tuple[int, int, int, int]
    visible: int
    full: int
    size: int  # long side of the (unrotated) copy in pixels

    @property
    def fraction(self) -> float:
        return self.visible / self.full if self.full else 0.0


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


_CREAM, _CHARCOAL = (247, 240, 224), (34, 34, 40)


def _sample_ground(rng: np.random.Generator, kinds: Sequence[str], probs: Sequence[float]) -> Ground:
    p = np.asarray(probs, dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    base = PALETTE[int(rng.integers(len(PALETTE)))][1]
    if rng.random() < 0.75:  # light, muted ground
        c0 = _mix(base, _CREAM, float(rng.uniform(0.55, 0.85)))
        c1 = _mix(c0, (0, 0, 0), float(rng.uniform(0.12, 0.25)))
    else:  # dark ground
        c0 = _mix(base, _CHARCOAL, float(rng.uniform(0.4, 0.7)))
        c1 = _mix(c0, (255, 255, 255), float(rng.uniform(0.12, 0.25)))
    if kind in ("stripes", "check") and rng.random() < 0.5:  # a second, muted palette colour
        other = PALETTE[int(rng.integers(len(PALETTE)))][1]
        c1 = _mix(other, _CREAM if sum(c0) > 380 else _CHARCOAL, float(rng.uniform(0.45, 0.7)))
    return Ground(kind=kind, colours=(c0, c1), period=float(rng.uniform(0.06, 0.2)),
                  angle=float(rng.choice([0.0, 90.0, 45.0, -45.0])), duty=float(rng.uniform(0.25, 0.6)),
                  strength=float(rng.uniform(0.5, 0.9)))


_LATTICES = {1: ("A",), 2: ("A", "B"), 3: ("A", "B", "B"), 4: ("A", "A", "B", "B")}


def _colourway(rng: np.random.Generator) -> tuple[float, float, float]:
    return (float(rng.uniform(-12, 12)), float(rng.uniform(0.85, 1.1)), float(rng.uniform(0.9, 1.08)))


def sample_design(rng: np.random.Generator, name: str, motifs: Sequence[str], size: tuple[int, int], *,
                  grounds: Sequence[str] = GROUNDS, ground_p: Sequence[float] = GROUND_P,
                  layout: str | None = None, main_size: float | None = None,
                  sizes: dict[int, float] | None = None, lattices: Sequence[str] | None = None) -> Design:
    """A fabric design with ``motifs`` (layer 0 is the main motif) on a ``size = (W, H)`` image.

    ``main_size`` fixes layer 0's copy size (the cell follows); ``sizes`` overrides other layers'
    sizes; ``lattices`` overrides the lattice of each layer.
    """
    W, H = size
    ground = _sample_ground(rng, grounds, ground_p)
    if layout is None:
        layout = LAYOUTS[int(rng.choice(len(LAYOUTS), p=LAYOUT_P))]
    k = len(motifs)
    if layout == "scatter":
        lat = ("S",) * k
    else:
        lat = _LATTICES[min(k, 4)] + ("B",) * max(0, k - 4)
    if lattices is not None:
        lat = tuple(lattices)
    frac = {"A": (0.6, 0.78), "B": (0.36, 0.52), "S": (0.42, 0.6)}
    if main_size is not None:
        cell = main_size / float(rng.uniform(*frac[lat[0]]))
    else:
        cell = min(W, H) / float(rng.uniform(2.3, 3.6))
    layers = []
    for i, (m, la) in enumerate(zip(motifs, lat)):
        s = cell * float(rng.uniform(*frac[la]))
        if i == 0 and main_size is not None:
            s = main_size
        if sizes and i in sizes:
            s = sizes[i]
        layers.append(Layer(motif=m, lattice=la, size=s, colour=_colourway(rng)))
    rotation = {"grid": "fixed", "half-drop": "alternate", "scatter": "random"}[layout]
    angle = float(rng.choice([0.0, 0.0, 0.0, 15.0, -15.0, 30.0, 45.0])) if layout == "grid" else float(rng.uniform(-10, 10))
    return Design(name=name, size=(int(W), int(H)), ground=ground, layout=layout, cell=float(cell),
                  rotation=rotation, angle=angle, layers=tuple(layers), seed=int(rng.integers(2**62)))


def twin_of(design: Design, slot: int, motif: str, rng: np.random.Generator, name: str) -> Design:
    """The same ground (kind, colours) and layout with layer ``slot`` showing ``motif`` instead."""
    layers = list(design.layers)
    layers[slot] = replace(layers[slot], motif=motif)
    return replace(design, name=name, layers=tuple(layers), seed=int(rng.integers(2**62)))


# ---------------------------------------------------------------------------------------------------
# rendering (no draws from the design-time generators; only from each design's own seed)


def _texture_arrays() -> dict[str, np.ndarray]:
    """scikit-image's greyscale textures that load here (name -> uint8 array)."""
    out = {}
    try:
        import skimage.data
    except Exception:  # pragma: no cover - scikit-image is a dependency
        return out
    for name in ("brick", "grass", "gravel"):
        try:
            a = np.asarray(getattr(skimage.data, name)())
        except Exception:  # pragma: no cover - a data file missing from this version
            continue
        if a.ndim == 3:
            a = a[:, :, :3].mean(axis=2)
        out[name] = np.ascontiguousarray(a.astype(np.uint8))
    return out


def _soft_square(t: np.ndarray, period: float, duty: float) -> np.ndarray:
    """Anti-aliased square wave in [0, 1]: ``duty`` of every ``period`` (pixels) is 1."""
    c = math.cos(math.pi * duty)
    slope = 2 * math.pi / period * max(math.sqrt(1 - c * c), 0.2)
    return np.clip((np.sin(2 * math.pi * t / period) - c) / slope + 0.5, 0.0, 1.0)


def _render_ground(g: Ground, W: int, H: int, rng: np.random.Generator, textures: dict[str, np.ndarray]) -> np.ndarray:
    c0 = np.asarray(g.colours[0], dtype=np.float32)
    c1 = np.asarray(g.colours[1], dtype=np.float32)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    period = max(4.0, g.period * W)
    phase = float(rng.uniform(0, period))
    kind = g.kind if (g.kind not in ("brick", "grass", "gravel") or g.kind in textures) else "noise"
    if kind == "solid":
        m = np.zeros((H, W), np.float32)
    elif kind == "stripes":
        a = math.radians(g.angle)
        m = _soft_square(xx * math.cos(a) + yy * math.sin(a) + phase, period, g.duty)
    elif kind == "check":
        m = 0.5 * (_soft_square(xx + phase, period, 0.5) + _soft_square(yy + phase, period, 0.5))
    elif kind == "noise":
        k = max(2, int(round(1.0 / max(g.period, 0.05) / 2)))
        small = rng.random((k + 1, k + 1)).astype(np.float32)
        m = np.asarray(Image.fromarray(small, "F").resize((W, H), Image.Resampling.BICUBIC), dtype=np.float32)
        m = np.clip(m, 0, 1) * g.strength
    else:  # a real texture, cropped and tinted
        tex = textures[kind]
        th, tw = tex.shape
        side = float(rng.uniform(0.35, 0.9)) * min(th, tw)
        x0, y0 = float(rng.uniform(0, tw - side)), float(rng.uniform(0, th - side))
        crop = Image.fromarray(tex).resize((W, H), Image.Resampling.LANCZOS, box=(x0, y0, x0 + side, y0 + side))
        v = np.asarray(crop, dtype=np.float32)
        lo, hi = np.percentile(v, 2), np.percentile(v, 98)
        m = np.clip((v - lo) / max(hi - lo, 1.0), 0, 1) * g.strength
    img = c0 + m[:, :, None] * (c1 - c0)
    # weave: a plain-weave checker plus thread-to-thread variation (structured, so PNG stays small)
    weave = 1.2 * (((xx + yy) % 2) * 2 - 1) + rng.normal(0, 1.2, (1, W)).astype(np.float32) + rng.normal(0, 1.2, (H, 1)).astype(np.float32)
    img += weave[:, :, None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _colour_matrix(hue: float, sat: float, gain: float) -> np.ndarray:
    a = math.radians(hue)
    c, s = math.cos(a), math.sin(a)
    k = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=np.float64) / math.sqrt(3)
    rot = c * np.eye(3) + (1 - c) / 3 * np.ones((3, 3)) + s * k
    luma = np.array([0.299, 0.587, 0.114])
    satm = (1 - sat) * np.outer(np.ones(3), luma) + sat * np.eye(3)
    return (gain * satm @ rot).astype(np.float32)


class _CopyMaker:
    """Scaled, recoloured, rotated copies of the motifs of one design (cached per design)."""

    def __init__(self, masters: dict[str, Image.Image]):
        self.masters = masters
        self.bases: dict[tuple, Image.Image] = {}
        self.copies: dict[tuple, tuple[Image.Image, np.ndarray, np.ndarray, int]] = {}

    def get(self, motif: str, colour: tuple[float, float, float], size: int, angle: int):
        key = (motif, colour, size, angle)
        hit = self.copies.get(key)
        if hit is not None:
            return hit
        bkey = (motif, colour, size)
        base = self.bases.get(bkey)
        if base is None:
            master = self.masters[motif]
            w, h = master.size
            k = size / max(w, h)
            base = master.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)
            a = np.asarray(base).astype(np.float32)
            rgb = a[:, :, :3] @ _colour_matrix(*colour).T
            a[:, :, :3] = rgb
            base = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGBA")
            self.bases[bkey] = base
        img = base.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True) if angle % 360 else base
        alpha = np.asarray(img.getchannel("A"))
        mask = alpha > 127
        hit = (img, mask, alpha > 0, int(mask.sum()))
        self.copies[key] = hit
        return hit


class _Canvas:
    def __init__(self, ground: np.ndarray):
        self.img = Image.fromarray(ground, "RGB")
        self.H, self.W = ground.shape[:2]
        self.owner = np.full((self.H, self.W), -1, dtype=np.int32)
        self.records: list[tuple[str, tuple[int, int, int, int], int, int]] = []  # motif, box, full, size

    def paste(self, motif: str, size: int, item, cx: float, cy: float) -> int | None:
        img, mask, any_alpha, full = item
        h, w = mask.shape
        ox, oy = int(round(cx - w / 2)), int(round(cy - h / 2))
        x0, y0, x1, y1 = max(0, ox), max(0, oy), min(self.W, ox + w), min(self.H, oy + h)
        if x1 <= x0 or y1 <= y0:
            return None
        sub = mask[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        if not sub.any():
            return None
        self.img.paste(img, (ox, oy), img)
        idx = len(self.records)
        self.owner[y0:y1, x0:x1][sub] = idx
        vis = any_alpha[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        rows, cols = np.flatnonzero(vis.any(axis=1)), np.flatnonzero(vis.any(axis=0))
        box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
        self.records.append((motif, box, full, size))
        return idx

    def copies(self) -> list[Copy]:
        counts = np.bincount(self.owner[self.owner >= 0].ravel(), minlength=len(self.records))
        return [Copy(m, box, int(counts[i]), full, size) for i, (m, box, full, size) in enumerate(self.records)]


def _lattice_points(design: Design, rng: np.random.Generator):
    """(x, y, layer index, angle, size) of every lattice copy, in drawing order."""
    W, H = design.size
    c = design.cell
    layers = design.layers
    ph = rng.uniform(0, c, 2)
    nx, ny = int(W // c) + 3, int(H // c) + 3
    la = [i for i, L in enumerate(layers) if L.lattice == "A"]
    lb = [i for i, L in enumerate(layers) if L.lattice == "B"]
    a_pts, b_pts = [], []
    for i in range(nx + 1):
        for j in range(ny + 1):
            x = ph[0] + (i - 1) * c
            y = ph[1] + (j - 1) * c + (c / 2 if design.layout == "half-drop" and i % 2 else 0.0)
            a_pts.append((x, y, i, j))
            b_pts.append((x + c / 2, y + c / 2, i, j))
    out = []
    if design.layout == "scatter":
        pts = [(x + rng.uniform(-0.28, 0.28) * c, y + rng.uniform(-0.28, 0.28) * c) for x, y, _, _ in a_pts + b_pts]
        order = rng.permutation(len(pts))
        pts = [pts[i] for i in order]
        inside = [n for n, (x, y) in enumerate(pts) if 0 <= x < W and 0 <= y < H]
        assign = rng.integers(len(layers), size=len(pts))
        for r, n in enumerate(inside[: 2 * len(layers)]):  # every motif gets at least two copies inside
            assign[n] = r % len(layers)
        for (x, y), li in zip(pts, assign):
            s = layers[li].size * rng.uniform(0.88, 1.12)
            out.append((x, y, int(li), float(rng.uniform(0, 360)), s))
        return out
    for group, pts in ((lb, b_pts), (la, a_pts)):  # fillers first, main motifs on top
        if not group:
            continue
        for x, y, i, j in pts:
            li = group[(i + j) % len(group)]
            angle = design.angle + (180.0 if design.rotation == "alternate" and (i + j) % 2 else 0.0)
            angle += float(rng.uniform(-2, 2))
            jx, jy = rng.uniform(-0.03, 0.03, 2) * c
            out.append((x + jx, y + jy, li, angle, layers[li].size * float(rng.uniform(0.95, 1.05))))
    return out


def _place_targeted(canvas: _Canvas, maker: _CopyMaker, design: Design, p: Placement, rng: np.random.Generator,
                    colour: tuple[float, float, float]) -> None:
    W, H = design.size
    lo, hi = p.band
    sides = list(rng.permutation(4))
    for n in range(p.count):
        angle = int(rng.integers(0, 360)) if design.rotation == "random" else int(round(design.angle)) % 360
        size = max(4, int(round(p.size * rng.uniform(0.95, 1.05))))
        item = maker.get(p.motif, colour, size, angle)
        mask, full = item[1], item[3]
        h, w = mask.shape
        best, best_err = None, math.inf
        if p.mode in ("cut", "sliver"):
            side = int(sides[n % 4])
            for _ in range(80):
                t = float(rng.uniform(0.2, 0.8))
                d = float(rng.uniform(-0.5, 0.5))
                if side in (0, 1):  # left / right border
                    cx = d * w if side == 0 else W - d * w
                    cy = t * H
                else:  # top / bottom border
                    cx, cy = t * W, (d * h if side == 2 else H - d * h)
                ox, oy = int(round(cx - w / 2)), int(round(cy - h / 2))
                x0, y0, x1, y1 = max(0, ox), max(0, oy), min(W, ox + w), min(H, oy + h)
                v = mask[y0 - oy:y1 - oy, x0 - ox:x1 - ox].sum() / full if x1 > x0 and y1 > y0 else 0.0
                err = 0.0 if lo <= v <= hi else min(abs(v - lo), abs(v - hi))
                if err < best_err:
                    best, best_err = (cx, cy), err
                if err == 0.0:
                    break
            canvas.paste(p.motif, size, item, *best)
        else:  # occlude: a copy inside the image, covered in part by a larger copy of ``occluder``
            cx = float(rng.uniform(w / 2 + 2, max(w / 2 + 3, W - w / 2 - 2)))
            cy = float(rng.uniform(h / 2 + 2, max(h / 2 + 3, H - h / 2 - 2)))
            osize = max(4, int(round(size * rng.uniform(1.0, 1.4))))
            occ = maker.get(p.occluder, (0.0, 1.0, 1.0), osize, int(rng.integers(0, 360)))
            omask = occ[1]
            oh, ow = omask.shape
            for _ in range(80):
                dx, dy = rng.uniform(-0.5, 0.5, 2) * np.array([w + ow, h + oh]) * 0.6
                # overlap of the occluder's mask (centre at cx+dx, cy+dy) with the copy's mask
                ax, ay = int(round(dx - ow / 2 + w / 2)), int(round(dy - oh / 2 + h / 2))  # occluder origin in copy coords
                x0, y0, x1, y1 = max(0, ax), max(0, ay), min(w, ax + ow), min(h, ay + oh)
                covered = 0
                if x1 > x0 and y1 > y0:
                    covered = int((mask[y0:y1, x0:x1] & omask[y0 - ay:y1 - ay, x0 - ax:x1 - ax]).sum())
                v = 1.0 - covered / full
                err = 0.0 if lo <= v <= hi else min(abs(v - lo), abs(v - hi))
                if err < best_err:
                    best, best_err = (float(dx), float(dy)), err
                if err == 0.0:
                    break
            canvas.paste(p.motif, size, item, cx, cy)
            canvas.paste(p.occluder, osize, occ, cx + best[0], cy + best[1])


def render(design: Design, masters: dict[str, Image.Image], textures: dict[str, np.ndarray]) -> tuple[Image.Image, list[Copy]]:
    """Render ``design``: the RGB image and every copy placed on it (visible pixels measured)."""
    W, H = design.size
    rng = np.random.default_rng(design.seed)
    canvas = _Canvas(_render_ground(design.ground, W, H, rng, textures))
    maker = _CopyMaker(masters)
    for x, y, li, angle, size in _lattice_points(design, rng):
        layer = design.layers[li]
        s = max(4, int(round(size)))
        canvas.paste(layer.motif, s, maker.get(layer.motif, layer.colour, s, int(round(angle)) % 360), x, y)
    for p in design.placements:
        _place_targeted(canvas, maker, design, p, rng, _colourway(rng))
    return canvas.img, canvas.copies()


CLEAR_FRACTION = 0.9  # every motif of a sim-fabrics image has a copy at least this visible
CLEAR_TRIES = 6


def _clear(design: Design, copies: Sequence[Copy]) -> bool:
    best: dict[str, float] = {}
    for c in copies:
        best[c.motif] = max(best.get(c.motif, 0.0), c.fraction)
    return all(best.get(m, 0.0) >= CLEAR_FRACTION for m in design.motif_ids)


def render_clear(design: Design, masters: dict[str, Image.Image], textures: dict[str, np.ndarray]) -> tuple[Image.Image, list[Copy]]:
    """:func:`render`, re-drawing the render-time jitter (phase, angles) until every motif has a clear copy.

    The retry seeds derive from the design's own seed, so the result does not depend on thread order.
    """
    d = design
    for attempt in range(CLEAR_TRIES):
        img, copies = render(d, masters, textures)
        if _clear(d, copies):
            break
        d = replace(design, seed=int(np.random.default_rng([design.seed, attempt + 1]).integers(2**62)))
    return img, copies


def _run(fn: Callable, items: list, threads: int = RENDER_THREADS) -> list:
    workers = min(threads, os.cpu_count() or 1)
    if workers > 1 and len(items) > 16:  # Pillow and numpy release the GIL for most of the work
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))
    return [fn(x) for x in items]


def _motif_file(motif_id: str) -> str:
    return f"{ELEMENT_DIR}/{motif_id},.png"


def _write_motifs(out_dir: Path, bank: Sequence[Motif], px: int) -> dict[str, Image.Image]:
    (out_dir / ELEMENT_DIR).mkdir(parents=True, exist_ok=True)

    def one(m: Motif) -> Image.Image:
        img = render_motif(m, px)
        img.save(out_dir / _motif_file(m.id), "PNG", **PNG_SETTINGS)
        img.load()
        return img

    return dict(zip([m.id for m in bank], _run(one, list(bank))))


# ---------------------------------------------------------------------------------------------------
# sim-fabrics


@dataclass(frozen=True)
class FabricPlan:
    fabrics: tuple[int, int, int]  # train, validation, test
    motifs_per_category: tuple[int, int, int]  # train, validation, test pools
    fabric_px: int
    motif_px: int


FABRIC_PLANS = {
    "smoke": FabricPlan((24, 16, 16), (3, 2, 2), 96, 64),
    "demo": FabricPlan((720, 200, 400), (13, 5, 10), 176, 128),
}


def fabric_plan(size: str) -> FabricPlan:
    """The plan of a preset (smoke, demo, paper = 17k) or of a count of fabrics (70/10/20 split)."""
    if size in FABRIC_PLANS:
        return FABRIC_PLANS[size]
    n = parse_count("17k" if size == "paper" else size)
    n_cat = len(CATEGORIES)
    fab = [max(1, round(n * 0.7)), max(1, round(n * 0.1))]
    fab.append(max(1, n - fab[0] - fab[1]))
    per = (max(2, round(fab[0] * 3 / 20 / n_cat)), max(2, round(fab[1] * 3 / 15 / n_cat)),
           max(2, round(fab[2] * 3 / 15 / n_cat)))
    # every split needs at least as many fabrics as motifs (coverage twins) and two per category
    fab = [max(f, p * n_cat) for f, p in zip(fab, per)]
    px = 96 if n <= 200 else 176 if n <= 3000 else 448
    return FabricPlan(tuple(fab), per, px, {96: 64, 176: 128, 448: 320}[px])  # type: ignore[arg-type]


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def _n_motifs(rng: np.random.Generator, limit: int) -> int:
    ks, ps = zip(*MOTIFS_PER_FABRIC)
    return min(limit, int(ks[int(rng.choice(len(ks), p=ps))]))


class _Deck:
    """Balanced motif draws: every motif of the pool once per round, in a random order."""

    def __init__(self, ids: Sequence[str], rng: np.random.Generator):
        self.ids, self.rng, self.cards = list(ids), rng, []

    def draw(self, k: int, exclude: Iterable[str] = ()) -> list[str]:
        """``k`` distinct motifs not in ``exclude`` (fewer when the pool has fewer)."""
        banned, out, held = set(exclude), [], []
        while len(out) < k:
            if not self.cards:
                if all(i in banned or i in out for i in self.ids):
                    break
                self.cards = [self.ids[i] for i in self.rng.permutation(len(self.ids))]
            card = self.cards.pop()
            if card in banned or card in out:
                held.append(card)
            else:
                out.append(card)
        self.cards.extend(reversed(held))  # cards passed over are drawn next
        return out


def _plan_split(split: str, pool: Sequence[Motif], n_fabrics: int, px: int, rng: np.random.Generator) -> tuple[list[Design], int]:
    """Designs of one split: coverage twin pairs first, then fillers (some with twins); shuffled."""
    cat_of = {m.id: m.category for m in pool}
    by_cat: dict[str, list[str]] = {}
    for m in pool:
        by_cat.setdefault(m.category, []).append(m.id)
    deck = _Deck([m.id for m in pool], rng)
    designs: list[Design] = []
    pairs = 0
    size = (px, px)

    def name() -> str:
        return f"{split}-{len(designs)}"

    if n_fabrics >= len(pool):  # every motif in a twin pair: a relevant fabric and a hard negative each
        for cat in sorted(by_cat):
            ids = [by_cat[cat][i] for i in rng.permutation(len(by_cat[cat]))]
            if len(ids) < 2:
                continue
            for a in range(0, len(ids), 2):
                m_a, m_b = ids[a], ids[(a + 1) % len(ids)]
                if a + 1 >= len(ids):  # odd count: the last motif pairs with a random other one
                    m_b = ids[int(rng.integers(len(ids) - 1))]
                k = _n_motifs(rng, len(pool))
                others = deck.draw(k - 1, exclude=(m_a, m_b))
                base = sample_design(rng, name(), [m_a, *others], size)
                designs.append(base)
                designs.append(twin_of(base, 0, m_b, rng, name()))
                pairs += 1
    while len(designs) < n_fabrics:
        k = _n_motifs(rng, len(pool))
        motifs = deck.draw(k)
        order = rng.permutation(len(motifs))
        motifs = [motifs[i] for i in order]
        base = sample_design(rng, name(), motifs, size)
        designs.append(base)
        if len(designs) < n_fabrics and rng.random() < TWIN_PROBABILITY:
            slots = [i for i, m in enumerate(motifs) if any(o not in motifs for o in by_cat[cat_of[m]])]
            if slots:
                slot = slots[int(rng.integers(len(slots)))]
                cands = [o for o in by_cat[cat_of[motifs[slot]]] if o not in motifs]
                designs.append(twin_of(base, slot, cands[int(rng.integers(len(cands)))], rng, name()))
                pairs += 1
    designs = designs[:n_fabrics]
    order = rng.permutation(len(designs))
    designs = [replace(designs[i], name=f"{ID_PREFIX[split]}{n:05d}") for n, i in enumerate(order)]
    return designs, pairs


def _split_pools(bank: Sequence[Motif], plan: FabricPlan, seed: int) -> dict[str, list[Motif]]:
    n_train, n_val, n_test = plan.motifs_per_category
    pools: dict[str, list[Motif]] = {s: [] for s in SPLITS}
    for ci, cat in enumerate(CATEGORIES):
        members = [m for m in bank if m.category == cat]
        order = _rng(seed, 11, ci).permutation(len(members))
        members = [members[i] for i in order]
        pools["test"] += members[:n_test]
        pools["validation"] += members[n_test:n_test + n_val]
        pools["train"] += members[n_test + n_val:n_test + n_val + n_train]
    return pools


def _csv_text(rows: Iterable[Sequence[str]]) -> str:
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def _check_split(split: str, designs: Sequence[Design], pool: Sequence[Motif], need_hard: bool) -> None:
    cat_of = {m.id: m.category for m in pool}
    contents = [set(d.motif_ids) for d in designs]
    cats = [{cat_of[m] for m in c} for c in contents]
    for m in pool:
        if not any(m.id in c for c in contents):
            raise RuntimeError(f"{NAME}: {split} motif {m.id} is in no fabric (generator bug)")
        if need_hard and not any(m.category in cs and m.id not in c for c, cs in zip(contents, cats)):
            raise RuntimeError(f"{NAME}: {split} motif {m.id} has no hard negative (generator bug)")


@register(NAME, sizes=("smoke", "demo", "paper"), tracks=("fabric",), format="fabrics", description=(
    "SimulatedPrintedFabrics-17k stand-in (paper layout + fabrics-manifest.json): procedural RGBA motifs "
    "in 8 categories repeated in grid / half-drop / scatter prints over solid, striped, check, noise and "
    "scikit-image texture grounds; disjoint motif pools per split; same-category twin fabrics as hard negatives"))
def generate(out_dir: Path, size: str, seed: int) -> dict:
    plan = fabric_plan(size)
    out_dir = Path(out_dir)
    textures = _texture_arrays()
    grounds = [g for g in GROUNDS if g not in ("brick", "grass", "gravel") or g in textures]

    bank = make_bank(seed, sum(plan.motifs_per_category))
    pools = _split_pools(bank, plan, seed)
    motif_split = {m.id: s for s, ms in pools.items() for m in ms}
    cat_of = {m.id: m.category for m in bank}
    used = [m for m in bank if m.id in motif_split]

    designs: dict[str, list[Design]] = {}
    pairs = 0
    for si, split in enumerate(SPLITS):
        rng = _rng(seed, 12, si)
        designs[split], n_pairs = _plan_split(split, pools[split], plan.fabrics[si], plan.fabric_px, rng)
        designs[split] = [replace(d, ground=d.ground if d.ground.kind in grounds else
                                  replace(d.ground, kind="noise")) for d in designs[split]]
        pairs += n_pairs
        covered = plan.fabrics[si] >= len(pools[split])
        _check_split(split, designs[split], pools[split], need_hard=covered)

    masters = _write_motifs(out_dir, used, plan.motif_px)
    for split in SPLITS:
        (out_dir / DATASET_FOLDER / split / "img" / "images").mkdir(parents=True, exist_ok=True)
    jobs = [(split, d) for split in SPLITS for d in designs[split]]

    def draw(job) -> list[Copy]:
        split, d = job
        img, copies = render_clear(d, masters, textures)
        img.save(out_dir / DATASET_FOLDER / split / "img" / "images" / f"{d.name}.png", "PNG", **PNG_SETTINGS)
        return copies

    rendered = dict(zip([d.name for _, d in jobs], _run(draw, jobs)))

    # records -------------------------------------------------------------------------------------
    fabrics, contains = [], {}
    partial = 0
    for split, d in jobs:
        ids = d.motif_ids
        copies = rendered[d.name]
        if any(max((c.fraction for c in copies if c.motif == m), default=0.0) < 0.9 for m in ids):
            partial += 1
        fabrics.append({"id": d.name, "path": f"{DATASET_FOLDER}/{split}/img/images/{d.name}.png", "split": split,
                        "motif_ids": ids, "categories": [cat_of[m] for m in ids],
                        "boxes": [[c.motif, *c.box] for c in copies]})
        contains[d.name] = set(ids)
    motifs = [{"id": m.id, "path": _motif_file(m.id), "category": m.category, "split": motif_split[m.id],
               "stored_background": m.stored_background} for s in SPLITS for m in pools[s]]
    queries = []
    for split in ("test", "validation"):
        for m in pools[split]:
            rel = sorted(d.name for d in designs[split] if m.id in contains[d.name])
            queries.append({"query_id": m.id, "path": _motif_file(m.id), "split": split, "element_id": m.id,
                            "category": m.category, "relevant": rel})
    manifest = {
        "format": "fgr fabrics manifest", "version": 1, "dataset": DATASET_FOLDER,
        "source": f"{NAME} size {size} seed {seed}",
        "gt_key": "element_id", "categories": list(CATEGORIES), "splits": list(SPLITS),
        "notes": "relevant = fabrics of the query's split that contain its motif id; boxes = every placed copy "
                 "[motif_id, x1, y1, x2, y2] clipped to the image (x2, y2 exclusive)",
        "problems": [], "fabrics": fabrics, "motifs": motifs, "queries": queries,
    }

    # the paper's files -----------------------------------------------------------------------------
    for split in SPLITS:
        recs = [[i, f["id"], *f["motif_ids"], *f["categories"]] for i, f in enumerate(x for x in fabrics if x["split"] == split)]
        io.write_text(out_dir / SPLIT_FILES[split], io.json_lines(recs) + "\n")
    for split, fname in SUB_FILES.items():
        io.write_text(out_dir / fname, "".join(f"{_motif_file(m.id)} {m.category}\n" for m in pools[split]))
    test_q = [q for q in queries if q["split"] == "test"]
    listing = "".join(f"{q['path']} {q['category']}\n" for q in test_q)
    io.write_text(out_dir / "test.txt", listing)
    io.write_text(out_dir / "element_all" / "test.txt", listing)
    io.write_text(out_dir / "Test_element.csv",
                  _csv_text([("query_filename", "class")] + [(f"{q['element_id']},.png", q["element_id"]) for q in test_q]))
    depth = max((len(q["relevant"]) for q in test_q), default=0)
    columns = [q["relevant"] + [""] * (depth - len(q["relevant"])) for q in test_q]
    io.write_text(out_dir / "TestAll_index.csv",
                  _csv_text([[q["element_id"] for q in test_q]] + [list(r) for r in zip(*columns)]))
    write_manifest(out_dir / MANIFEST_FILE, manifest)

    counts = {"fabrics": len(fabrics), "motifs": len(motifs), "categories": len(CATEGORIES),
              "twin_pairs": pairs, "copies": sum(len(f["boxes"]) for f in fabrics),
              "fabrics_without_a_90pct_visible_copy_of_some_motif": partial,
              "fabric_px": plan.fabric_px, "motif_px": plan.motif_px}
    for split in SPLITS:
        counts[f"{split}_fabrics"] = len(designs[split])
        counts[f"{split}_motifs"] = len(pools[split])
    for split in ("validation", "test"):
        counts[f"{split}_queries"] = sum(q["split"] == split for q in queries)
    return counts


# ---------------------------------------------------------------------------------------------------
# sim-revisited


@dataclass(frozen=True)
class RevisitedPlan:
    query_motifs: int
    queries_per_motif: int
    db_images: int
    px: int


REVISITED_PLANS = {
    "smoke": RevisitedPlan(6, 2, 60, 96),
    "demo": RevisitedPlan(15, 2, 400, 192),
    "paper": RevisitedPlan(35, 2, 5000, 448),
}
REF_SIZE = 0.3  # query copy long side, as a fraction of the image side
DISTRACTOR_FRACTION = 0.2
_TARGETS = ("easy", "hard", "junk", "negative")
_TARGET_P = (0.3, 0.3, 0.12, 0.28)


def revisited_plan(size: str) -> RevisitedPlan:
    if size in REVISITED_PLANS:
        return REVISITED_PLANS[size]
    n = parse_count(size)
    return RevisitedPlan(query_motifs=max(3, min(70, n // 40)), queries_per_motif=2, db_images=max(n, 20),
                         px=96 if n <= 200 else 192 if n <= 2000 else 448)


def revisited_label(copies: Iterable[Copy], ref_size: float) -> str | None:
    """easy / hard / junk / None from the copies of one motif in a database fabric (module doc)."""
    best = None
    for c in copies:
        v, r = c.fraction, c.size / ref_size
        if v >= EASY_V and r >= EASY_R:
            return "easy"
        if v >= HARD_V and r >= HARD_R:
            best = "hard"
        elif c.visible > 0 and best is None:
            best = "junk"
    return best


def _revisited_view(rng: np.random.Generator, name: str, target: str, m: str, same_cat: list[str], context: list[str],
                    W: int, ref: float) -> tuple[Design, str]:
    """A database design aimed at label ``target`` for motif ``m``; returns (design, mode)."""
    ctx = [context[i] for i in rng.choice(len(context), size=int(rng.integers(1, 3)), replace=False)]
    size = (W, W)
    if target == "easy":
        return sample_design(rng, name, [m, *ctx], size, layout=("grid", "half-drop")[int(rng.integers(2))],
                             main_size=ref * float(rng.uniform(0.8, 1.2))), "tiled"
    if target == "negative":
        other = same_cat[int(rng.integers(len(same_cat)))]
        return sample_design(rng, name, [other, *ctx], size, main_size=ref * float(rng.uniform(0.8, 1.2))), "same-category"
    if target == "hard":
        mode = ("small", "cut", "occlude")[int(rng.integers(3))]
        if mode == "small":
            d = sample_design(rng, name, [ctx[0], m, *ctx[1:]], size, layout=("grid", "half-drop")[int(rng.integers(2))],
                              sizes={1: ref * float(rng.uniform(0.3, 0.5))}, lattices=("A", "B", "B")[:len(ctx) + 1])
            return d, mode
        base = sample_design(rng, name, ctx, size)
        occluder = ctx[int(rng.integers(len(ctx)))] if mode == "occlude" else None
        pl = Placement(m, mode, ref * float(rng.uniform(0.8, 1.2)), (0.4, 0.7), count=int(rng.integers(1, 3)), occluder=occluder)
        return replace(base, placements=(pl,)), mode
    base = sample_design(rng, name, ctx, size)  # junk: one sliver at the border
    return replace(base, placements=(Placement(m, "sliver", ref * float(rng.uniform(0.8, 1.2)), (0.05, 0.25)),)), "sliver"


@register(REVISITED_NAME, sizes=tuple(REVISITED_PLANS), tracks=("fabric",), format="landmarks", description=(
    "revisited-protocol set (jpg/ + gnd pickle) from the fabric simulator: queries are fabrics with bbx around "
    "one copy of a motif; database fabrics labelled easy/hard/junk by how much of the motif is visible and at "
    "what scale; same-category swaps as hard negatives"))
def generate_revisited(out_dir: Path, size: str, seed: int) -> dict:
    plan = revisited_plan(size)
    out_dir = Path(out_dir)
    (out_dir / "jpg").mkdir(parents=True, exist_ok=True)
    textures = _texture_arrays()
    grounds = [g for g in GROUNDS if g not in ("brick", "grass", "gravel") or g in textures]
    n_cat = len(CATEGORIES)
    bank = make_bank(seed, math.ceil(plan.query_motifs / n_cat) + 3)
    qmotifs = bank[:plan.query_motifs]  # index order runs through the categories
    qset = {m.id for m in qmotifs}
    context = [m.id for m in bank if m.id not in qset]
    same_cat = {m.id: [o.id for o in bank if o.category == m.category and o.id not in qset] for m in qmotifs}
    W = plan.px
    ref = REF_SIZE * W
    master_px = int(round(W * REF_SIZE * 1.3 / 0.75))  # a copy is never enlarged from its master

    def fix_grounds(d: Design) -> Design:
        return d if d.ground.kind in grounds else replace(d, ground=replace(d.ground, kind="noise"))

    # database designs: views aimed at each label, then distractors
    n_distr = round(DISTRACTOR_FRACTION * plan.db_images)
    n_views = max(plan.db_images - n_distr, 2 * len(qmotifs))
    per = [n_views // len(qmotifs) + (1 if i < n_views % len(qmotifs) else 0) for i in range(len(qmotifs))]
    db: list[tuple[Design, str | None, str, str]] = []  # design, aimed motif, target, mode
    for qi, m in enumerate(qmotifs):
        rng = _rng(seed, 21, qi)
        for k in range(per[qi]):
            target = ("easy", "hard")[k] if k < 2 else _TARGETS[int(rng.choice(4, p=_TARGET_P))]
            d, mode = _revisited_view(rng, f"v{qi}-{k}", target, m.id, same_cat[m.id], context, W, ref)
            db.append((fix_grounds(d), m.id, target, mode))
    drng = _rng(seed, 22)
    for k in range(n_distr):
        ctx = [context[i] for i in drng.choice(len(context), size=int(drng.integers(2, 5)), replace=False)]
        db.append((fix_grounds(sample_design(drng, f"d{k}", ctx, (W, W))), None,
                   "distractor", "context"))
    order = _rng(seed, 23).permutation(len(db))
    db = [(replace(db[i][0], name=f"fabric_{n:05d}"),) + db[i][1:] for n, i in enumerate(order)]

    # query designs: the query motif tiled large; the bbx is chosen after rendering
    queries: list[tuple[Design, str]] = []
    for qi, m in enumerate(qmotifs):
        rng = _rng(seed, 24, qi)
        for j in range(plan.queries_per_motif):
            ctx = [context[i] for i in rng.choice(len(context), size=int(rng.integers(1, 3)), replace=False)]
            d = sample_design(rng, f"query_{m.id}_{j}", [m.id, *ctx], (W, W), layout=("grid", "half-drop")[j % 2],
                              main_size=ref * float(rng.uniform(0.95, 1.05)))
            queries.append((fix_grounds(d), m.id))

    needed = sorted({mid for d, *_ in db for mid in d.motif_ids} | {mid for d, _ in queries for mid in d.motif_ids})
    by_id = {m.id: m for m in bank}
    masters = dict(zip(needed, _run(lambda mid: render_motif(by_id[mid], master_px), needed)))
    for img in masters.values():
        img.load()

    def draw(d: Design) -> list[Copy]:
        img, copies = render(d, masters, textures)
        img.save(out_dir / "jpg" / f"{d.name}.jpg", "JPEG", **JPEG_SETTINGS)
        return copies

    db_copies = _run(draw, [d for d, *_ in db])
    q_copies = _run(draw, [d for d, _ in queries])

    def label_all(copies: list[Copy]) -> dict[str, str]:
        out = {}
        for mid in qset:
            lab = revisited_label([c for c in copies if c.motif == mid], ref)
            if lab:
                out[mid] = lab
        return out

    labels = [label_all(c) for c in db_copies]

    # every query motif needs an easy and a hard positive: add aimed views until it has them
    extra = 0
    for qi, m in enumerate(qmotifs):
        for want in ("easy", "hard"):
            tries = 0
            while not any(lab.get(m.id) == want for lab in labels):
                if tries >= 20:
                    raise RuntimeError(f"{REVISITED_NAME}: cannot make a {want} view of motif {m.id} (generator bug)")
                rng = _rng(seed, 25, qi, tries, 0 if want == "easy" else 1)
                d, mode = _revisited_view(rng, f"fabric_{len(db):05d}", want, m.id, same_cat[m.id], context, W, ref)
                d = fix_grounds(d)
                copies = draw(d)
                db.append((d, m.id, want, mode))
                db_copies.append(copies)
                labels.append(label_all(copies))
                tries += 1
                extra += 1

    imlist = [d.name for d, *_ in db]
    gnd, qimlist, query_info = [], [], []
    for (d, mid), copies in zip(queries, q_copies):
        W_, H_ = d.size
        full = [c for c in copies if c.motif == mid and c.visible == c.full
                and c.box[0] >= 2 and c.box[1] >= 2 and c.box[2] <= W_ - 2 and c.box[3] <= H_ - 2]
        if not full:
            raise RuntimeError(f"{REVISITED_NAME}: query {d.name} shows no complete copy of {mid} (generator bug)")
        cx, cy = W_ / 2, H_ / 2
        pick = min(full, key=lambda c: ((c.box[0] + c.box[2]) / 2 - cx) ** 2 + ((c.box[1] + c.box[3]) / 2 - cy) ** 2)
        g = {"bbx": [float(v) for v in pick.box]}
        for key in ("easy", "hard", "junk"):
            g[key] = [i for i, lab in enumerate(labels) if lab.get(mid) == key]
        gnd.append(g)
        qimlist.append(d.name)
        query_info.append({"name": d.name, "motif": mid, "bbx": g["bbx"]})
    assert not set(imlist) & set(qimlist) and len(set(imlist)) == len(imlist)

    with open(out_dir / GND_FILE, "wb") as f:
        pickle.dump({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, f, protocol=4)
    views = {
        "query_motifs": {m.id: {"category": m.category, "details": m.describe(), "ref_size": round(ref, 2)} for m in qmotifs},
        "db": [{"name": d.name, "aimed_at": aimed, "target": target, "mode": mode, "motifs": d.motif_ids,
                "labels": lab,
                "copies": [[c.motif, round(c.fraction, 3), round(c.size / ref, 3)] for c in copies if c.motif in qset]}
               for (d, aimed, target, mode), lab, copies in zip(db, labels, db_copies)],
        "queries": query_info,
        "rules": {"easy": f"a copy with v >= {EASY_V} and r >= {EASY_R}",
                  "hard": f"else a copy with v >= {HARD_V} and r >= {HARD_R}", "junk": "else any visible pixel",
                  "negative": "motif absent", "v": "visible fraction of the copy (alpha > 127, inside, not covered)",
                  "r": "copy long side / query copy long side"},
    }
    (out_dir / VIEWS_FILE).write_text(json.dumps(views, separators=(",", ":")) + "\n")
    return {
        "db_images": len(imlist), "queries": len(qimlist), "query_motifs": len(qmotifs),
        "easy": sum(len(g["easy"]) for g in gnd), "hard": sum(len(g["hard"]) for g in gnd),
        "junk": sum(len(g["junk"]) for g in gnd), "extra_views": extra, "px": W,
    }
