"""A parametric garment renderer and the synthetic sketch-photo sets ``sbir-garments`` (+ ``-xdog``, ``-canny``).

**Why this exists.** The sketch-based retrieval track needs a stand-in for QMUL-Shoe/Chair-V2 and HNU
Clothes-V1 that the kit can make without a download: product photos of garments, and for each photo a
few sketches drawn "by different designers", in the A/B folder layout of the real releases. The
attribute-retrieval track (FashionAI-like per-attribute search) needs garments whose discrete
attributes are known exactly. Both are served by one model:

* :class:`Garment` - a frozen record of discrete attributes whose vocabulary is :data:`ATTRIBUTES`
  (the attribute track enumerates it), plus two continuous ``proportions`` (width, length factors);
  :func:`sample_garment` draws one, optionally with some attributes fixed;
* :func:`garment_geometry` - the garment as polygons and polylines in one unit frame (outline,
  sleeves, collar, lapel, pockets, placket and buttons, seams, print elements clipped to the fabric);
* :func:`render_photo` (filled fabric + print, shading, shadow, light background, small pose jitter)
  and :func:`render_sketch` (black strokes on white, distorted by a :class:`SketchStyle`) draw that
  *same* geometry, so a sketch is the photo's garment seen through a designer's hand;
* :func:`xdog` and :func:`canny_sketch` make pseudo-sketches of a photo (edge maps) for comparison.

**Attribute vocabulary.** Every attribute has a fixed tuple of values; ``"n/a"`` (first in the tuple,
like FashionAI's "Invisible") means the attribute does not apply to the garment (sleeves of a skirt,
the lapel of a shirt) or has no visible effect (the print ``accent`` colour of a solid garment). Which
values a category takes is :data:`CATEGORY_VALUES`; a few rules tie attributes together (a notched or
shawl lapel is the coat's collar, so ``collar`` is "none" and the neckline "v"; a mandarin, peter-pan or
turtle collar sits on a round neckline; a hooded or turtle-neck t-shirt has no button placket; solid
print <=> accent "n/a"). ``Garment(...)`` checks all of them and raises :class:`FgrError` otherwise.

**Geometry frame.** x runs right from the centre-front line, y runs down from the neck point (the
base neck/shoulder line at y = 0, waist at 0.40, hip 0.58, thigh 0.76, knee 0.96, calf 1.16, ankle
1.36); the garment is symmetric except for the chest pocket (on the image's right). A renderer fits
the garment's bounding box into the image (product photos are framed to the garment), then applies a
:class:`Pose` (scale, rotation, shift, and for sketches a width stretch).

**The datasets.** ``sbir-garments`` writes ``trainA/<photo>_<k>.png`` (sketches), ``trainB/<photo>.png``
(photos), ``testA/``, ``testB/`` and ``garments.json``. Photos come in *families* of 3-6 garments that
share category, silhouette, length, proportions and colour and differ in one or two details (sleeve
length, collar/neckline, lapel, pockets, buttons, print), so category alone never identifies a photo.
Families (and so photos) are disjoint between train and test. Each photo is drawn by 2-3 of the 12
:data:`DESIGNERS` and ``k`` is the designer number, so names like ``g00042_11.png`` occur: the released
ARNet loader pairs with ``glob("<photo>_?.png")`` and silently drops designers 10-12 - which here are
among the roughest styles, so the filter changes both the sketch count and the difficulty.
``sbir-garments-xdog`` / ``-canny`` hold the same photos (byte-identical for a seed) with pseudo-sketches
of a slightly re-posed copy of the photo under the same ``k`` numbers, so file lists match one to one.
``garments.json`` maps each photo id to its split, family, attributes and proportions and each sketch
to its photo, ``k`` and designer. Sizes: ``smoke`` (24 train / 12 test photos, 64 px), ``demo``
(400 / 100, 128 px), ``paper`` (380 / 120 - Clothes-V1's photo counts - at 256 px), or a count of
photos (76 % train; 64 px up to 60 photos, else 128 px). Each photo gets 2-3 sketches.

Everything is deterministic for a seed: each photo and sketch is rendered from its own
``numpy.random.default_rng([seed, stream, photo, k])`` stream, and PNG settings are fixed.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from fgr_utils.data.synth import parse_count, register
from fgr_utils.data.synth.motifs import PALETTE
from fgr_utils.errors import FgrError

__all__ = [
    "ATTRIBUTES", "CATEGORIES", "CATEGORY_VALUES", "DETAILS", "NA", "Garment", "sample_garment", "vary_garment",
    "Part", "PrintElement", "Geometry",
    "garment_geometry", "Pose", "sample_pose", "garment_mask", "render_photo", "SketchStyle", "DESIGNERS",
    "render_sketch", "xdog", "canny_sketch", "GarmentPlan", "PLANS", "garment_plan", "NAME",
]

NAME = "sbir-garments"
NA = "n/a"
CATEGORIES = ("tshirt", "shirt", "dress", "coat", "skirt", "trousers")
COLOURS = tuple(name for name, _ in PALETTE)
_RGB = dict(PALETTE)

#: The attribute vocabulary: name -> values (the order of :class:`Garment`'s fields).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "silhouette": ("fitted", "straight", "a-line", "flared"),  # trousers: skinny, straight, wide, flared
    "length": ("waist", "hip", "thigh", "knee", "calf", "ankle"),  # body level of the hem
    "sleeve_length": (NA, "sleeveless", "cap", "short", "elbow", "three-quarter", "long"),
    "collar": (NA, "none", "shirt", "mandarin", "peter-pan", "turtle", "hood"),
    "neckline": (NA, "round", "v", "square", "boat"),
    "lapel": (NA, "none", "notched", "shawl"),
    "pockets": ("none", "chest", "side", "patch"),
    "buttons": ("none", "2", "3", "4", "5", "6"),  # number of buttons on the front placket
    "print": ("solid", "stripes", "dots", "checks", "floral"),
    "colour": COLOURS,
    "accent": (NA,) + COLOURS,  # the print's colour
}

_ALL_SIL = ATTRIBUTES["silhouette"]
_TOP_SLEEVES = ("sleeveless", "cap", "short", "elbow", "three-quarter", "long")
_NO_TOP = {"sleeve_length": (NA,), "collar": (NA,), "neckline": (NA,), "lapel": (NA,)}

#: Per category, the values each shape attribute may take (print, colour and accent are free).
CATEGORY_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "tshirt": {"silhouette": _ALL_SIL, "length": ("waist", "hip", "thigh"), "sleeve_length": _TOP_SLEEVES,
               "collar": ("none", "shirt", "turtle", "hood"), "neckline": ("round", "v", "square", "boat"),
               "lapel": (NA,), "pockets": ("none", "chest"), "buttons": ("none", "2", "3")},
    "shirt": {"silhouette": ("fitted", "straight", "a-line"), "length": ("waist", "hip", "thigh"),
              "sleeve_length": ("sleeveless", "short", "elbow", "three-quarter", "long"),
              "collar": ("none", "shirt", "mandarin", "peter-pan"), "neckline": ("round", "v", "square", "boat"),
              "lapel": (NA,), "pockets": ("none", "chest"), "buttons": ("none", "3", "4", "5", "6")},
    "dress": {"silhouette": _ALL_SIL, "length": ("thigh", "knee", "calf", "ankle"), "sleeve_length": _TOP_SLEEVES,
              "collar": ("none", "shirt", "mandarin", "peter-pan"), "neckline": ("round", "v", "square", "boat"),
              "lapel": (NA,), "pockets": ("none", "side", "patch"), "buttons": ("none", "3", "4", "5", "6")},
    "coat": {"silhouette": _ALL_SIL, "length": ("hip", "thigh", "knee", "calf", "ankle"),
             "sleeve_length": ("sleeveless", "three-quarter", "long"), "collar": ("none", "shirt", "mandarin", "hood"),
             "neckline": ("round", "v"), "lapel": ("none", "notched", "shawl"), "pockets": ("none", "side", "patch"),
             "buttons": ("none", "2", "3", "4", "5", "6")},
    "skirt": {"silhouette": _ALL_SIL, "length": ("thigh", "knee", "calf", "ankle"), **_NO_TOP,
              "pockets": ("none", "side", "patch"), "buttons": ("none", "3", "4", "5")},
    "trousers": {"silhouette": _ALL_SIL, "length": ("thigh", "knee", "calf", "ankle"), **_NO_TOP,
                 "pockets": ("none", "side", "patch"), "buttons": ("none",)},
}

#: The necklines a collar can sit on.
NECKLINES_FOR_COLLAR = {"none": ("round", "v", "square", "boat"), "shirt": ("round", "v"), "mandarin": ("round",),
                        "peter-pan": ("round",), "turtle": ("round",), "hood": ("round", "v"), NA: (NA,)}
_LAPELS = ("notched", "shawl")
#: Detail attributes that vary inside a family (and what must be redrawn with them).
DETAILS = ("sleeve_length", "collar", "neckline", "lapel", "pockets", "buttons", "print")
_DEPENDENTS = {"collar": ("neckline",), "lapel": ("collar", "neckline"), "print": ("accent",), "neckline": ("collar",)}


def _problems(values: Mapping[str, str]) -> list[str]:
    """Rule violations among the attributes present in ``values`` (missing ones are not checked)."""
    out = []
    cat = values.get("category")
    if cat in CATEGORY_VALUES:
        for name, allowed in CATEGORY_VALUES[cat].items():
            v = values.get(name)
            if v is not None and v not in allowed:
                out.append(f"a {cat} cannot have {name}={v!r} (it takes {', '.join(allowed)})")
    collar, neck, lapel = values.get("collar"), values.get("neckline"), values.get("lapel")
    if collar in NECKLINES_FOR_COLLAR and neck is not None and neck not in NECKLINES_FOR_COLLAR[collar]:
        out.append(f"collar={collar!r} needs neckline in {', '.join(NECKLINES_FOR_COLLAR[collar])}, not {neck!r}")
    if lapel in _LAPELS:
        if collar is not None and collar != "none":
            out.append(f"a {lapel} lapel is the collar: use collar='none', not {collar!r}")
        if neck is not None and neck != "v":
            out.append(f"a {lapel} lapel opens in a v: use neckline='v', not {neck!r}")
    if cat == "tshirt" and collar in ("turtle", "hood") and values.get("buttons", "none") != "none":
        out.append(f"a t-shirt with collar={collar!r} has no button placket: use buttons='none'")
    pr, acc, col = values.get("print"), values.get("accent"), values.get("colour")
    if pr == "solid" and acc is not None and acc != NA:
        out.append("a solid garment has no print colour: use accent='n/a'")
    if pr is not None and pr != "solid" and acc == NA:
        out.append(f"print={pr!r} needs an accent colour (one of the colours), not 'n/a'")
    if acc is not None and acc == col:
        out.append(f"the accent colour must differ from the garment colour {col!r}")
    return out


def _check_vocabulary(values: Mapping[str, object], where: str) -> None:
    for name, v in values.items():
        if name not in ATTRIBUTES:
            raise FgrError(f"{where}: unknown garment attribute {name!r}; attributes are {', '.join(ATTRIBUTES)}")
        if v not in ATTRIBUTES[name]:
            raise FgrError(f"{where}: {name}={v!r} is not a value of {name}; use one of {', '.join(ATTRIBUTES[name])}")


@dataclass(frozen=True)
class Garment:
    """One garment: a value of every attribute in :data:`ATTRIBUTES` plus (width, length) proportions.

    The proportions (about 0.92-1.08) stretch the whole garment; they are not attributes, so that two
    garments can differ in shape without differing in any attribute a retrieval track would name.
    """

    category: str
    silhouette: str
    length: str
    sleeve_length: str
    collar: str
    neckline: str
    lapel: str
    pockets: str
    buttons: str
    print: str
    colour: str
    accent: str
    proportions: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        attrs = self.attributes()
        _check_vocabulary(attrs, "Garment")
        probs = _problems(attrs)
        if probs:
            raise FgrError(f"Garment: {probs[0]}")
        try:
            wf, lf = (float(x) for x in self.proportions)
        except (TypeError, ValueError):
            raise FgrError("Garment: proportions must be two numbers (width, length), e.g. (1.0, 1.0)") from None
        if not (0.5 <= wf <= 2.0 and 0.5 <= lf <= 2.0):
            raise FgrError(f"Garment: proportions {self.proportions} out of range; use factors between 0.5 and 2")
        object.__setattr__(self, "proportions", (wf, lf))

    def attributes(self) -> dict[str, str]:
        """The discrete attributes as a dict (name -> value), in :data:`ATTRIBUTES` order."""
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def to_json(self) -> dict:
        return {"attributes": self.attributes(), "proportions": [round(x, 4) for x in self.proportions]}

    @classmethod
    def from_json(cls, d: Mapping) -> "Garment":
        return cls(**d["attributes"], proportions=tuple(d.get("proportions", (1.0, 1.0))))

    @property
    def rgb(self) -> tuple[int, int, int]:
        return _RGB[self.colour]

    @property
    def accent_rgb(self) -> tuple[int, int, int]:
        return _RGB.get(self.accent, self.rgb)


_SAMPLE_ORDER = ("category", "silhouette", "length", "sleeve_length", "lapel", "collar", "neckline", "pockets",
                 "buttons", "print", "colour", "accent")


def _lum(c: Sequence[int]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _weights(name: str, opts: list[str], values: Mapping[str, str]) -> np.ndarray:
    if name == "print":  # plain garments are the most common
        w = np.array([0.36 if v == "solid" else 0.16 for v in opts])
    elif name == "accent" and "colour" in values:  # prefer a print that shows
        base = _lum(_RGB[values["colour"]])
        w = np.array([1e-3 if v == NA else 0.05 + min(abs(_lum(_RGB[v]) - base), 120.0) for v in opts])
    else:
        w = np.ones(len(opts))
    return w / w.sum()


def sample_garment(rng: np.random.Generator, proportions: tuple[float, float] | None = None, **fixed: str) -> Garment:
    """Draw a garment, uniformly over the allowed values of each attribute, with ``fixed`` values kept.

    Attributes are drawn in a fixed order; each draw only considers values that break no rule together
    with the values drawn so far *and* the fixed ones, so any consistent set of fixed values can be met.
    Raises :class:`FgrError` for an unknown attribute, a value outside :data:`ATTRIBUTES`, or fixed
    values that contradict each other.
    """
    _check_vocabulary(fixed, "sample_garment")
    probs = _problems(fixed)
    if probs:
        raise FgrError(f"sample_garment: {probs[0]}")
    for _ in range(20):
        values: dict[str, str] = {}
        for name in _SAMPLE_ORDER:
            if name in fixed:
                values[name] = fixed[name]
                continue
            opts = [v for v in ATTRIBUTES[name] if not _problems({**fixed, **values, name: v})]
            if not opts:
                break
            values[name] = opts[int(rng.choice(len(opts), p=_weights(name, opts, values)))]
        else:
            props = proportions if proportions is not None else (
                round(float(rng.uniform(0.92, 1.08)), 3), round(float(rng.uniform(0.94, 1.06)), 3))
            return Garment(**values, proportions=props)
    raise FgrError(f"sample_garment: no garment has all of {fixed}; fix fewer attributes")


def vary_garment(base: Garment, rng: np.random.Generator, change: Sequence[str]) -> Garment | None:
    """A garment like ``base`` whose ``change`` attributes differ (their dependents may follow); None if impossible."""
    free = set(change)
    for c in change:
        free.update(_DEPENDENTS.get(c, ()))
    fixed = {k: v for k, v in base.attributes().items() if k not in free}
    for _ in range(12):
        try:
            g = sample_garment(rng, proportions=base.proportions, **fixed)
        except FgrError:
            return None
        if all(getattr(g, c) != getattr(base, c) for c in change):
            return g
    return None


# ---------------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class Part:
    """One piece of a garment drawing in the unit frame.

    ``group`` says which designer habit may leave it out of a sketch: "outline" and "structure" are
    always drawn; "pockets", "buttons" and "seams" may be omitted. ``shade`` is the fabric brightness a
    photo fills a closed part with (None: a line only); ``kind`` names the piece (body, sleeve, collar...).
    """

    kind: str
    group: str
    points: np.ndarray
    closed: bool
    shade: float | None = None


@dataclass(frozen=True)
class PrintElement:
    """One print element: ``shape`` filled in photos (``alpha``, ``tone`` x accent colour), ``strokes`` for sketches."""

    shape: np.ndarray
    alpha: float
    tone: float
    strokes: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Geometry:
    """A garment as drawable pieces. ``parts`` are in painting order; ``region`` are the fabric polygons the
    print covers; ``print_strokes`` are the print's sketch strokes already clipped to the region (and out
    of the neck opening); ``folds`` are drape lines a photo shades; ``bbox`` = (x0, y0, x1, y1) of the outline."""

    garment: Garment
    parts: tuple[Part, ...]
    region: tuple[np.ndarray, ...]
    prints: tuple[PrintElement, ...]
    print_strokes: tuple[np.ndarray, ...]
    folds: tuple[np.ndarray, ...]
    bbox: tuple[float, float, float, float]

    def outline(self) -> list[Part]:
        return [p for p in self.parts if p.group == "outline"]


LEVEL_Y = {"waist": 0.40, "hip": 0.58, "thigh": 0.76, "knee": 0.96, "calf": 1.16, "ankle": 1.36}
_WAIST, _HIP, _ARMPIT, _CROTCH = 0.40, 0.58, 0.215, 0.64
_BASE_KINDS = ("hood", "hood-inside", "collar-back", "body", "inside", "sleeve")


def _P(*pts) -> np.ndarray:
    return np.asarray(pts, dtype=float).reshape(-1, 2)


def _bez(p0, p1, p2, p3, n: int = 12) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2, p3 = (np.asarray(p, float) for p in (p0, p1, p2, p3))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


def _mirror(pts: np.ndarray) -> np.ndarray:
    return pts * np.array([-1.0, 1.0])


def _sym(right: np.ndarray) -> np.ndarray:
    """A closed outline from its right half (which runs from the centre line round to the centre line)."""
    return np.vstack([right, _mirror(right)[::-1]])


def _across(half: np.ndarray) -> np.ndarray:
    """A full-width open line from its right half (which runs from the side to the centre line)."""
    return np.vstack([half[:-1], _mirror(half)[::-1]])


def _circle(cx: float, cy: float, r: float, n: int = 14) -> np.ndarray:
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


def _ellipse(cx, cy, rx, ry, deg, n=12) -> np.ndarray:
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(a), ry * np.sin(a)
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of every point (vectorised over points and edges)."""
    x, y = pts[:, 0:1], pts[:, 1:2]
    xi, yi = poly[:, 0][None, :], poly[:, 1][None, :]
    xj, yj = np.roll(poly[:, 0], 1)[None, :], np.roll(poly[:, 1], 1)[None, :]
    crosses = (yi > y) != (yj > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = (xj - xi) * (y - yi) / (yj - yi) + xi
    return ((crosses & (x < xc)).sum(axis=1) % 2) == 1


def _densify(pts: np.ndarray, step: float, closed: bool = False) -> np.ndarray:
    if closed:
        pts = np.vstack([pts, pts[:1]])
    seg = np.diff(pts, axis=0)
    d = np.hypot(seg[:, 0], seg[:, 1])
    s = np.concatenate([[0.0], np.cumsum(d)])
    if s[-1] <= 0:
        return pts.copy()
    t = np.linspace(0.0, s[-1], max(2, int(math.ceil(s[-1] / step)) + 1))
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], axis=1)


def _neck(g: Garment) -> tuple[float, float, np.ndarray]:
    """(neck half-width, front depth at the centre, right half of the front neckline from the neck point)."""
    if g.lapel in _LAPELS:
        nw, d, kind = 0.08, 0.30, "v"
    elif g.collar == "shirt":
        nw, d, kind = 0.07, (0.06 if g.neckline == "round" else 0.17), g.neckline
    elif g.collar in ("mandarin", "peter-pan"):
        nw, d, kind = 0.072, 0.07, "round"
    elif g.collar == "turtle":
        nw, d, kind = 0.066, 0.045, "round"
    elif g.collar == "hood":
        nw, d, kind = 0.08, (0.08 if g.neckline == "round" else 0.18), g.neckline
    else:
        nw, d, kind = {"round": (0.075, 0.085, "round"), "v": (0.08, 0.19, "v"), "square": (0.095, 0.11, "square"),
                       "boat": (0.12, 0.04, "boat")}[g.neckline]
    if kind == "round":
        curve = _bez((nw, 0), (nw, d * 0.65), (nw * 0.55, d), (0, d), 10)
    elif kind == "v":
        curve = _bez((nw, 0), (nw * 0.85, d * 0.3), (nw * 0.25, d * 0.8), (0, d), 8)
    elif kind == "square":
        curve = _P((nw, 0), (nw, d * 0.9), (nw * 0.9, d), (0, d))
    else:  # boat
        curve = _bez((nw, 0), (nw * 0.7, d * 0.8), (nw * 0.35, d), (0, d), 10)
    return nw, d, curve


def _top_x(g: Garment, y: np.ndarray, cw: float) -> np.ndarray:
    """Half-width of a top, dress or coat at levels ``y`` below the armpit (the silhouette's side line)."""
    sil = g.silhouette
    if g.category == "dress" and sil != "straight":
        ww = 0.84 * cw
        bod = np.interp(y, [_ARMPIT, _WAIST], [cw, ww])
        below = np.maximum(y - _WAIST, 0.0)
        if sil == "fitted":
            skirt = np.interp(y, [_WAIST, 0.56, 1.5], [ww, 0.19, 0.168])
        elif sil == "a-line":
            skirt = ww + 0.25 * below
        else:
            skirt = ww + 0.42 * below ** 0.85
        return np.where(y <= _WAIST, bod, skirt)
    if sil == "fitted":
        return np.interp(y, [_ARMPIT, _WAIST, _HIP, 1.5], [cw, 0.86 * cw, 0.98 * cw, 0.98 * cw + 0.06])
    if sil == "straight":
        return cw + 0.02 * (y - _ARMPIT)
    if sil == "a-line":
        return cw + 0.11 * (y - _ARMPIT)
    return cw + 0.24 * np.maximum(y - 0.28, 0.0) ** 0.9


def _hem(x: float, y: float, drop: float, tail: float = 0.0) -> np.ndarray:
    """Right half of a hem from the side corner (x, y - tail) to the centre (0, y + drop)."""
    if drop == 0 and tail == 0:
        return _P((x, y), (0, y))
    return _bez((x, y - tail), (x * 0.7, y + drop * 0.8), (x * 0.3, y + drop), (0, y + drop), 10)


def _offset_in(line: np.ndarray, dy: float, shrink: float) -> np.ndarray:
    """A stitch line just inside a hem: ``line`` moved up by ``dy`` and narrowed by ``shrink``."""
    return line * np.array([shrink, 1.0]) + np.array([0.0, -dy])


class _Builder:
    """Collects parts, print region and folds while the category builders run."""

    def __init__(self, g: Garment):
        self.g = g
        self.parts: list[Part] = []
        self.region: list[np.ndarray] = []
        self.inside: list[np.ndarray] = []
        self.folds: list[np.ndarray] = []

    def add(self, kind, group, pts, closed=False, shade=None, mirror=False, region=False):
        pts = np.asarray(pts, float)
        self.parts.append(Part(kind, group, pts, closed, shade))
        if region:
            self.region.append(pts)
        if mirror:
            m = _mirror(pts)[::-1] if not closed else _mirror(pts)
            self.parts.append(Part(kind, group, m, closed, shade))
            if region:
                self.region.append(m)

    def line(self, kind, group, pts, mirror=False):
        self.add(kind, group, pts, closed=False, mirror=mirror)


def _sleeve(g: Garment, S, A) -> tuple[np.ndarray, list[np.ndarray]]:
    """Right sleeve polygon (shoulder tip, cuff, armpit) and its seam lines."""
    L, ang, w = {"cap": (0.05, 18, 0.085), "short": (0.13, 30, 0.075), "elbow": (0.25, 46, 0.064),
                 "three-quarter": (0.35, 55, 0.056), "long": (0.48, 63, 0.05)}[g.sleeve_length]
    if g.category == "coat":
        w += 0.012
        L += 0.02
    S, A = np.asarray(S, float), np.asarray(A, float)
    M = (S + A) / 2
    d = np.array([math.cos(math.radians(ang)), math.sin(math.radians(ang))])
    n = np.array([-d[1], d[0]])  # towards the body side of the sleeve
    C = M + L * d
    out_c, in_c = C - w * n, C + w * n
    bulge = 0.012 * min(1.0, L / 0.2)
    outer = _bez(S, S + (out_c - S) * 0.35 - bulge * n, S + (out_c - S) * 0.7 - bulge * n * 0.5, out_c, 8)
    inner = _bez(in_c, in_c + (A - in_c) * 0.3, in_c + (A - in_c) * 0.7, A, 6)
    poly = np.vstack([outer, inner])
    seams = []
    half0 = np.linalg.norm(S - A) / 2
    for off in ((0.045,) if (g.category in ("shirt", "coat") and L >= 0.3) else (0.018,)):
        t = 1.0 - off / L
        wc = half0 + (w - half0) * t
        P = M + (L - off) * d
        seams.append(_P(P - wc * n * 0.97, P + wc * n * 0.97))
    return poly, seams


def _build_top(b: _Builder, g: Garment, yh: float) -> float:
    """Body, sleeves, neck and collar of a t-shirt, shirt, dress or coat; returns the front opening depth."""
    coat = g.category == "coat"
    nw, depth, neck = _neck(g)
    cw = 0.185 + (0.018 if coat else 0.0)
    sw = 0.205 + (0.02 if coat else 0.0)
    sleeveless = g.sleeve_length == "sleeveless"
    back = _bez((0, 0.018), (nw * 0.5, 0.018), (nw * 0.9, 0.006), (nw, 0.0), 6)
    if sleeveless:
        strap = nw + (0.045 if g.neckline == "boat" else 0.06)
        A = np.array([cw, 0.245])
        upper = np.vstack([back, _P((strap, 0.028)), _bez((strap, 0.028), (strap + 0.004, 0.14), (cw - 0.045, 0.235), A, 10)[1:]])
    else:
        S, A = np.array([sw, 0.035]), np.array([cw, _ARMPIT])
        upper = np.vstack([back, S[None], A[None]])
    shirt_tail = g.category == "shirt" and g.length != "waist"
    drop = {"a-line": 0.015, "flared": 0.04}.get(g.silhouette, 0.0) if g.category in ("dress", "coat") else 0.0
    tail = 0.035 if shirt_tail else 0.0
    ys = np.linspace(A[1], yh - tail, 14)[1:]
    xs = _top_x(g, ys, cw)
    side = np.stack([xs, ys], axis=1)
    hem = _hem(float(xs[-1]), yh, drop + (0.012 if shirt_tail else 0.0), 0.0)
    right = np.vstack([upper, side[:-1], hem])
    body = _sym(right)
    b.add("body", "outline", body, closed=True, shade=1.0, region=True)
    # the neck opening shows the inside of the back
    inside = np.vstack([back[::-1], _mirror(back)[1:], _mirror(neck)[1:], neck[::-1][1:]])
    b.add("inside", "structure", inside, closed=True, shade=0.62)
    b.inside.append(inside)
    if not sleeveless:
        poly, seams = _sleeve(g, S, A)
        b.add("sleeve", "outline", poly, closed=True, shade=0.97, mirror=True, region=True)
        for s in seams:
            b.line("cuff", "seams", s, mirror=True)
        b.folds.append(_P(A + (0.01, 0.0), (0.07, 0.33)))
        b.folds.append(_mirror(_P(A + (0.01, 0.0), (0.07, 0.33))))
    # hem stitching
    b.line("hem-stitch", "seams", _across(_offset_in(hem, 0.02, 0.96)))
    if g.category == "dress":
        if g.silhouette != "straight":
            wx = float(_top_x(g, np.array([_WAIST]), cw)[0])
            b.line("waist-seam", "seams", _P((-wx, _WAIST), (wx, _WAIST)))
        if g.silhouette in ("a-line", "flared"):
            for fx in (0.05, 0.13):
                hx = float(_top_x(g, np.array([yh]), cw)[0])
                b.folds.append(_P((fx * 0.9, _WAIST + 0.04), (fx / 0.19 * hx * 0.9, yh - 0.02)))
                b.folds.append(_mirror(_P((fx * 0.9, _WAIST + 0.04), (fx / 0.19 * hx * 0.9, yh - 0.02))))
    if g.silhouette == "fitted" and g.category in ("dress", "coat"):
        b.line("dart", "seams", _bez((0.085, 0.24), (0.09, 0.33), (0.08, 0.40), (0.085, min(0.52, yh - 0.04)), 6), mirror=True)
    if coat:
        b.line("front-edge", "structure", _P((0.0, depth), (0.0, yh + drop)))
    _collar(b, g, nw, depth, back)
    return depth


def _collar(b: _Builder, g: Garment, nw: float, d: float, back: np.ndarray) -> None:
    """Collar, lapel or hood pieces (and the band of collar seen behind the neck)."""
    def band(top_y: float) -> np.ndarray:  # collar seen behind the neck, between the back neck and top_y
        top = _bez((nw + 0.006, top_y + 0.006), (nw * 0.6, top_y - 0.004), (nw * 0.3, top_y - 0.008), (0, top_y - 0.008), 6)
        return np.vstack([top, _mirror(top)[::-1][1:], _mirror(back)[::-1], back[1:]])

    if g.lapel in _LAPELS:
        b.add("collar-back", "structure", band(-0.03), closed=True, shade=0.8)
        vline = _bez((nw, 0), (nw * 0.85, d * 0.3), (nw * 0.25, d * 0.8), (0.012, d), 8)
        if g.lapel == "notched":
            outer = _P((nw + 0.035, -0.008), (0.14, 0.085), (0.118, 0.098), (0.155, 0.125))
            edge = _bez((0.155, 0.125), (0.12, 0.19), (0.05, 0.26), (0.012, d), 8)
            b.line("gorge", "structure", _P((0.118, 0.098), (0.095, 0.075)), mirror=True)
        else:
            outer = _bez((nw + 0.03, -0.008), (0.15, 0.02), (0.165, 0.13), (0.12, 0.19), 10)
            edge = _bez((0.12, 0.19), (0.09, 0.235), (0.05, 0.27), (0.012, d), 8)
        lapel = np.vstack([_P((nw, 0.0)), outer, edge[1:], vline[::-1][1:-1]])
        b.add("lapel", "structure", lapel, closed=True, shade=1.04, mirror=True)
        return
    c = g.collar
    if c == "shirt":
        b.add("collar-back", "structure", band(-0.03), closed=True, shade=0.8)
        if g.neckline == "round":
            leaf = np.vstack([_P((nw + 0.006, -0.026), (nw + 0.045, 0.02), (0.055, 0.125), (0.008, 0.066)),
                              _bez((0.008, 0.066), (nw * 0.5, 0.06), (nw, 0.04), (nw - 0.004, 0.0), 6)[1:]])
        else:
            leaf = np.vstack([_P((nw + 0.006, -0.026), (nw + 0.05, 0.025), (0.105, 0.155), (0.045, 0.12)),
                              _bez((0.045, 0.12), (0.05, 0.07), (nw - 0.01, 0.03), (nw - 0.004, 0.0), 6)[1:]])
        b.add("collar", "structure", leaf, closed=True, shade=1.04, mirror=True)
    elif c == "mandarin":
        b.add("collar-back", "structure", band(-0.032), closed=True, shade=0.8)
        low = _bez((nw, 0), (nw, d * 0.65), (nw * 0.55, d), (0.01, d), 8)
        high = low + np.array([0.0, -0.032])
        high[:, 0] = np.minimum(high[:, 0] * 0.98, nw - 0.003)
        piece = np.vstack([low, _bez((0.01, d), (0.0, d - 0.01), (0.0, d - 0.025), (0.01, d - 0.032), 4)[1:-1], high[::-1]])
        b.add("collar", "structure", piece, closed=True, shade=1.04, mirror=True)
    elif c == "peter-pan":
        b.add("collar-back", "structure", band(-0.012), closed=True, shade=0.8)
        lobe = np.vstack([_bez((nw - 0.002, -0.01), (nw + 0.085, 0.0), (0.085, 0.14), (0.006, d + 0.035), 12),
                          _bez((0.006, d), (nw * 0.55, d), (nw, d * 0.65), (nw, 0.0), 8)])
        b.add("collar", "structure", lobe, closed=True, shade=1.05, mirror=True)
    elif c == "turtle":
        bottom = _bez((nw + 0.016, 0.03), (nw * 0.7, 0.048), (nw * 0.3, 0.055), (0, 0.055), 6)
        top = _bez((0, -0.078), (nw * 0.4, -0.078), (nw * 0.8, -0.074), (nw + 0.006, -0.072), 6)
        b.add("collar", "structure", _sym(np.vstack([top, bottom[::-1]])), closed=True, shade=1.0)
        b.line("fold", "seams", _P((-(nw + 0.01), -0.022), (0, -0.018), (nw + 0.01, -0.022)))
    elif c == "hood":
        outer = _bez((nw + 0.012, 0.012), (0.17, -0.06), (0.15, -0.25), (0.0, -0.26), 14)
        b.parts.insert(0, Part("hood", "outline", _sym(outer), True, 0.95))
        opening = _bez((nw, 0.0), (0.1, -0.07), (0.075, -0.17), (0.0, -0.175), 10)
        b.parts.insert(1, Part("hood-inside", "structure", _sym(opening[::-1]), True, 0.6))
        for x0 in (0.03, -0.03):
            b.line("drawstring", "seams", _P((x0, d * 0.6 + 0.01), (x0 * 1.2, d + 0.13)))


def _legs_x(g: Garment, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outer, inner) x of the right trouser leg at levels ``y`` below the crotch."""
    width = {"fitted": (0.19, 0.095, 0.078), "straight": (0.19, 0.112, 0.106), "a-line": (0.19, 0.16, 0.175),
             "flared": (0.19, 0.098, 0.15)}[g.silhouette]
    w = np.interp(y, [_CROTCH, 0.96, 1.5], [width[0], width[1], width[2] + (width[2] - width[1]) * 0.35])
    centre = np.interp(y, [_CROTCH, 1.5], [0.11, 0.125 if g.silhouette != "a-line" else 0.14])
    return centre + w / 2, centre - w / 2


def _build_bottom(b: _Builder, g: Garment, yh: float) -> None:
    """Skirt or trousers: waistband, body, and their seams."""
    wb = 0.155
    top = _P((0.0, 0.36), (wb, 0.36))
    if g.category == "skirt":
        drop = {"a-line": 0.015, "flared": 0.045}.get(g.silhouette, 0.0)
        ys = np.linspace(0.41, yh, 14)
        below = ys - 0.41
        xs = {"fitted": np.interp(ys, [0.41, 0.56, 1.5], [wb, 0.19, 0.168]),
              "straight": np.interp(ys, [0.41, 0.56, 1.5], [wb, 0.19, 0.2]),
              "a-line": wb + 0.26 * below,
              "flared": wb + 0.46 * below ** 0.85}[g.silhouette]
        side = np.stack([xs, ys], axis=1)
        hem = _hem(float(xs[-1]), yh, drop)
        right = np.vstack([top, _P((wb, 0.41)), side[1:-1], hem])
        b.add("body", "outline", _sym(right), closed=True, shade=1.0, region=True)
        b.line("hem-stitch", "seams", _across(_offset_in(hem, 0.02, 0.97)))
        if g.silhouette in ("a-line", "flared"):
            for fx in (0.04, 0.1):
                f = _P((fx, 0.44), (fx / wb * xs[-1], yh - 0.03))
                b.folds.extend([f, _mirror(f)])
        if g.silhouette == "fitted":
            b.line("dart", "seams", _P((0.08, 0.41), (0.083, 0.5)), mirror=True)
    else:
        hip = _P((0.165, 0.44), (0.195, 0.52), (0.205, _CROTCH))
        ys = np.linspace(_CROTCH, yh, 10)
        xo, xi = _legs_x(g, ys)
        outer = np.stack([xo, ys], axis=1)
        inner = np.stack([xi, ys], axis=1)[::-1]
        right = np.vstack([top, _P((wb + 0.005, 0.41)), hip, outer[1:], inner, _P((0.0, _CROTCH - 0.02))])
        b.add("body", "outline", _sym(right), closed=True, shade=1.0, region=True)
        b.line("fly", "seams", _bez((0.028, 0.41), (0.03, 0.5), (0.03, 0.55), (0.0, 0.585), 6))
        xo_h, xi_h = float(xo[-1]), float(xi[-1])
        b.line("hem-stitch", "seams", _P((xi_h + 0.004, yh - 0.02), (xo_h - 0.004, yh - 0.02)), mirror=True)
        if yh > 0.8:
            cx = (xo + xi) / 2
            b.line("crease", "seams", np.stack([cx[1:-1], ys[1:-1]], axis=1), mirror=True)
            kx = np.interp(0.96, ys, cx) if yh > 0.96 else float(cx[-1])
            for dy in (-0.02, 0.015):
                f = _P((kx - 0.025, min(0.95, yh - 0.05) + dy), (kx + 0.02, min(0.95, yh - 0.05) + dy + 0.01))
                b.folds.extend([f, _mirror(f)])
        for x0 in (0.07, 0.14):
            b.line("belt-loop", "seams", _P((x0, 0.36), (x0, 0.415)), mirror=True)
    b.line("waistband", "structure", _P((-wb - (0.005 if g.category == "trousers" else 0), 0.41),
                                        (wb + (0.005 if g.category == "trousers" else 0), 0.41)))


def _pockets(b: _Builder, g: Garment, yh: float, cw: float) -> None:
    if g.pockets == "none":
        return
    if g.pockets == "chest":
        if g.category == "shirt":
            pts = _P((0.055, 0.15), (0.125, 0.15), (0.125, 0.225), (0.09, 0.24), (0.055, 0.225))
        else:
            pts = _P((0.06, 0.16), (0.12, 0.16), (0.12, 0.225), (0.06, 0.225))
        b.add("pocket", "pockets", pts, closed=True, shade=0.97)
        return
    if g.category in ("skirt", "trousers"):
        if g.pockets == "side":
            b.line("pocket", "pockets", _bez((0.09, 0.41), (0.1, 0.47), (0.14, 0.505), (0.19, 0.515), 8), mirror=True)
        elif g.category == "trousers" and yh >= 0.9:
            xo, xi = _legs_x(g, np.array([0.8]))
            x1 = float(xo[0]) - 0.006
            pts = _P((x1 - 0.075, 0.74), (x1, 0.74), (x1, 0.85), (x1 - 0.075, 0.85))
            b.add("pocket", "pockets", pts, closed=True, shade=0.97, mirror=True)
            b.line("pocket-flap", "pockets", _P((x1 - 0.075, 0.765), (x1, 0.765)), mirror=True)
        else:
            top = 0.45
            bot = min(0.56, yh - 0.03)
            b.add("pocket", "pockets", _P((0.06, top), (0.145, top), (0.145, bot), (0.06, bot)), closed=True, shade=0.97, mirror=True)
        return
    y0 = min(0.5, yh - 0.12) if yh < 0.7 else 0.52
    if g.pockets == "side":  # welt pockets
        pts = _P((0.07, y0 + 0.03), (0.15, y0), (0.152, y0 + 0.014), (0.072, y0 + 0.044))
        b.add("pocket", "pockets", pts, closed=True, shade=0.92, mirror=True)
    else:  # patch pockets
        bot = min(y0 + 0.12, yh - 0.035)
        b.add("pocket", "pockets", _P((0.05, y0), (0.155, y0), (0.155, bot), (0.05, bot)), closed=True, shade=0.97, mirror=True)
        if g.category == "coat":
            b.line("pocket-flap", "pockets", _P((0.05, y0 + 0.03), (0.155, y0 + 0.03)), mirror=True)


def _buttons(b: _Builder, g: Garment, yh: float, depth: float) -> None:
    if g.buttons == "none":
        return
    n = int(g.buttons)
    if g.category in ("skirt", "trousers"):
        y0, y1 = 0.44, yh - 0.06
    elif g.category == "tshirt":
        y0 = depth + 0.025
        y1 = y0 + 0.05 * (n - 1)
    elif g.category == "coat":
        y0 = depth + 0.03
        y1 = min(yh - 0.08, y0 + 0.09 * (n - 1) if g.lapel in _LAPELS else 0.78)
    elif g.category == "dress" and n <= 4:
        y0, y1 = depth + 0.03, _WAIST - 0.02
    else:
        y0, y1 = depth + 0.03, yh - 0.06
    y1 = max(y1, y0 + 0.03 * (n - 1))
    if g.category != "coat":
        top = depth if g.category not in ("skirt", "trousers") else 0.41
        bottom = y1 + 0.03 if g.category in ("tshirt",) or (g.category == "dress" and n <= 4) else yh
        for x in (-0.02, 0.02):
            b.line("placket", "buttons", _P((x, top), (x, bottom)))
    for y in np.linspace(y0, y1, n):
        b.add("button", "buttons", _circle(0.0, float(y), 0.013, 12), closed=True)


def _print_elements(g: Garment, region: Sequence[np.ndarray]) -> list[PrintElement]:
    """The print laid over the region's bounding box (photos clip by filling only fabric pixels)."""
    if g.print == "solid":
        return []
    allp = np.vstack(region)
    x0, y0 = allp.min(axis=0) - 0.03
    x1, y1 = allp.max(axis=0) + 0.03
    out = []
    if g.print == "stripes":
        for y in np.arange(y0 + 0.02, y1, 0.058):
            shape = _P((x0, y - 0.011), (x1, y - 0.011), (x1, y + 0.011), (x0, y + 0.011))
            out.append(PrintElement(shape, 1.0, 1.0, (_P((x0, y), (x1, y)),)))
    elif g.print == "checks":
        for y in np.arange(y0 + 0.02, y1, 0.07):
            shape = _P((x0, y - 0.018), (x1, y - 0.018), (x1, y + 0.018), (x0, y + 0.018))
            out.append(PrintElement(shape, 0.45, 1.0, (_P((x0, y), (x1, y)),)))
        for x in np.arange(-0.035 - 0.07 * math.ceil((-0.035 - x0) / 0.07), x1, 0.07):
            shape = _P((x - 0.018, y0), (x + 0.018, y0), (x + 0.018, y1), (x - 0.018, y1))
            out.append(PrintElement(shape, 0.45, 1.0, (_P((x, y0), (x, y1)),)))
    elif g.print == "dots":
        row = 0
        for y in np.arange(y0, y1, 0.058):
            off = 0.0335 if row % 2 else 0.0
            for x in np.arange(x0 + off, x1, 0.067):
                c = _circle(x, y, 0.0125, 10)
                out.append(PrintElement(c, 1.0, 1.0, (c,)))
            row += 1
    else:  # floral: five-petal flowers with a leaf, on a half-drop repeat
        col = 0
        for x in np.arange(x0, x1, 0.115):
            off = 0.0575 if col % 2 else 0.0
            for y in np.arange(y0 + off, y1, 0.115):
                leaf = _ellipse(x + 0.032, y + 0.026, 0.022, 0.009, 35, 10)
                out.append(PrintElement(leaf, 1.0, 0.55, (leaf,)))
                petals = [_ellipse(x + 0.02 * math.cos(a), y + 0.02 * math.sin(a), 0.016, 0.011, math.degrees(a), 10)
                          for a in np.linspace(0, 2 * math.pi, 5, endpoint=False) + col * 0.4]
                for p in petals:
                    out.append(PrintElement(p, 1.0, 1.0, (p,)))
                centre = _circle(x, y, 0.009, 8)
                out.append(PrintElement(centre, 1.0, 0.45, (centre,)))
            col += 1
    return out


def _clip_strokes(strokes: Sequence[np.ndarray], region: Sequence[np.ndarray], holes: Sequence[np.ndarray],
                  closed_small: bool) -> list[np.ndarray]:
    """Pieces of ``strokes`` inside the region and outside the holes (small closed shapes: all or nothing)."""
    out = []
    for s in strokes:
        pts = s if closed_small else _densify(s, 0.006)
        keep = np.zeros(len(pts), bool)
        for r in region:
            keep |= _inside(pts, r)
        for h in holes:
            keep &= ~_inside(pts, h)
        if closed_small:
            if keep.all():
                out.append(np.vstack([pts, pts[:1]]))
            continue
        idx = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(int), [0]])))
        for a, e in zip(idx[::2], idx[1::2]):
            if e - a >= 2:
                out.append(pts[a:e])
    return out


@lru_cache(maxsize=256)
def garment_geometry(g: Garment) -> Geometry:
    """The garment as parts, print and folds in the unit frame (cached; arrays are read-only)."""
    b = _Builder(g)
    level = LEVEL_Y[g.length]
    if g.category in ("skirt", "trousers"):
        yh = level
        _build_bottom(b, g, yh)
        depth = 0.41
        cw = 0.19
    else:
        yh = level if g.length != "waist" else 0.39
        depth = _build_top(b, g, yh)
        cw = 0.185 + (0.018 if g.category == "coat" else 0.0)
    _pockets(b, g, yh, cw)
    _buttons(b, g, yh, depth)
    # base pieces first (hood behind the body, sleeves over it), then details in insertion order
    base = [p for p in b.parts if p.kind in _BASE_KINDS]
    rest = [p for p in b.parts if p.kind not in _BASE_KINDS]
    order = {k: i for i, k in enumerate(_BASE_KINDS)}
    base.sort(key=lambda p: order[p.kind])
    wf, lf = g.proportions
    scale = np.array([wf, lf])

    def fin(a: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(a * scale)
        a.flags.writeable = False
        return a

    parts = tuple(Part(p.kind, p.group, fin(p.points), p.closed, p.shade) for p in base + rest)
    region = tuple(fin(r) for r in b.region)
    holes = tuple(fin(h) for h in b.inside)
    prints = tuple(PrintElement(fin(e.shape), e.alpha, e.tone, tuple(fin(s) for s in e.strokes))
                   for e in _print_elements(g, region))
    closed_small = g.print in ("dots", "floral")
    strokes = _clip_strokes([s for e in prints for s in e.strokes], region, holes, closed_small)
    outline = np.vstack([p.points for p in parts if p.group == "outline"])
    bbox = tuple(float(v) for v in (*outline.min(axis=0), *outline.max(axis=0)))
    return Geometry(g, parts, region, prints, tuple(fin(s) for s in strokes), tuple(fin(f) for f in b.folds), bbox)


# ---------------------------------------------------------------------------------------------------
# framing


@dataclass(frozen=True)
class Pose:
    """Where a renderer puts the framed garment: extra ``scale``, rotation ``angle`` (degrees),
    ``shift`` (fraction of the image side) and ``aspect`` (a horizontal stretch, for sketch styles)."""

    scale: float = 1.0
    angle: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    aspect: float = 1.0


def sample_pose(rng: np.random.Generator, scale: float = 0.04, angle: float = 4.0, shift: float = 0.03,
                aspect: float = 1.0) -> Pose:
    """A small random pose: scale 1 +- ``scale``, rotation +- ``angle`` degrees, shift +- ``shift``."""
    return Pose(scale=float(1 + rng.uniform(-scale, scale)), angle=float(rng.uniform(-angle, angle)),
                shift=(float(rng.uniform(-shift, shift)), float(rng.uniform(-shift, shift))), aspect=float(aspect))


MARGIN = 0.09  # of the image side, left around the garment's bounding box before the pose


def _frame(geom: Geometry, pose: Pose, side: float):
    """(map from unit-frame points to pixels on a ``side`` x ``side`` canvas, pixels per garment unit)."""
    x0, y0, x1, y1 = geom.bbox
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    s = (1 - 2 * MARGIN) / max(x1 - x0, y1 - y0) * pose.scale
    a = math.radians(pose.angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    stretch = np.array([pose.aspect, 1.0])
    off = np.array([0.5 + pose.shift[0], 0.5 + pose.shift[1]])

    def f(pts: np.ndarray) -> np.ndarray:
        q = (np.asarray(pts, float) - c) * s * stretch
        return (q @ rot.T + off) * side

    return f, s * side


def _xy(pts: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in pts]


SUPERSAMPLE = 2


def _coerce_size(size: int, where: str) -> int:
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise FgrError(f"{where}: size must be a whole number of pixels >= 16, got {size!r}")
    return int(size)


def garment_mask(garment: Garment, size: int, pose: Pose | None = None) -> np.ndarray:
    """Boolean ``size`` x ``size`` mask of the garment's silhouette (outline parts) under ``pose``."""
    size = _coerce_size(size, "garment_mask")
    geom = garment_geometry(garment)
    S = size * SUPERSAMPLE
    f, _ = _frame(geom, pose or Pose(), S)
    m = Image.new("L", (S, S), 0)
    d = ImageDraw.Draw(m)
    for p in geom.parts:
        if p.group == "outline" or p.kind in ("collar", "lapel", "collar-back"):
            d.polygon(_xy(f(p.points)), fill=255)
    return np.asarray(m.resize((size, size), Image.BILINEAR)) >= 128


# ---------------------------------------------------------------------------------------------------
# photo renderer


def _mix(a, b, t):
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))


def render_photo(garment: Garment, size: int, rng: np.random.Generator, *, pose: Pose | None = None) -> Image.Image:
    """A product photo of the flat garment: fabric colour and print, shading, drop shadow, light background.

    ``pose`` defaults to :func:`sample_pose` (drawn from ``rng`` first); everything else drawn from
    ``rng`` is lighting, background and texture, so a fixed pose gives a fixed garment placement.
    """
    size = _coerce_size(size, "render_photo")
    if pose is None:
        pose = sample_pose(rng)
    geom = garment_geometry(garment)
    S = size * SUPERSAMPLE
    f, unit = _frame(geom, pose, S)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S

    # background: a light, slightly tinted card with a soft gradient
    tint = np.array([236.0, 234.0, 230.0]) + rng.uniform(-6, 12, 3)
    tint = np.minimum(tint, 252.0)
    grad = 1.0 + float(rng.uniform(0.02, 0.06)) * (0.5 - yy) + float(rng.uniform(-0.03, 0.03)) * (xx - 0.5)
    canvas = tint[None, None, :] * grad[..., None]

    # shading map: every filled piece painted in order with its brightness (0 = background)
    shade_img = Image.new("L", (S, S), 0)
    d = ImageDraw.Draw(shade_img)
    for p in geom.parts:
        if p.closed and p.shade is not None:
            d.polygon(_xy(f(p.points)), fill=int(round(p.shade * 160)))
    shade = np.asarray(shade_img, dtype=np.float32) / 160.0
    mask = (shade > 0).astype(np.float32)

    # drop shadow from the silhouette, offset down-right
    sh = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.018 * S))
    sh = np.roll(np.asarray(sh, np.float32) / 255.0, (int(0.012 * S), int(0.008 * S)), axis=(0, 1))
    canvas *= (1.0 - float(rng.uniform(0.14, 0.24)) * sh)[..., None]

    # fabric: base colour, print layers grouped by opacity and tone, a faint weave
    base = np.array(garment.rgb, np.float32)
    fabric = np.broadcast_to(base, (S, S, 3)).astype(np.float32).copy()
    groups: dict[tuple[float, float], Image.Image] = {}
    for e in geom.prints:
        key = (e.alpha, e.tone)
        if key not in groups:
            groups[key] = Image.new("L", (S, S), 0)
        ImageDraw.Draw(groups[key]).polygon(_xy(f(e.shape)), fill=255)
    acc = np.array(garment.accent_rgb, np.float32)
    for (alpha, tone), layer in sorted(groups.items()):
        a = np.asarray(layer, np.float32)[..., None] * (alpha / 255.0)
        fabric = fabric * (1 - a) + acc * tone * a
    weave = rng.normal(0.0, 1.0, (S // 2 + 1, S // 2 + 1)).astype(np.float32)
    weave = np.kron(weave, np.ones((2, 2), np.float32))[:S, :S]
    fabric *= (1.0 + 0.012 * weave)[..., None]

    # light: top-left key light, a darker rim where the cloth rolls over its edges, drape folds as soft bands
    light = 1.06 - 0.16 * yy - 0.04 * xx
    soft = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.02 * unit + 1))
    light = light * (1.0 - 0.3 * np.clip(1.0 - np.asarray(soft, np.float32) / 255.0, 0.0, 0.5))
    fold = Image.new("L", (S, S), 0)
    fd = ImageDraw.Draw(fold)
    for fl in geom.folds:
        fd.line(_xy(f(fl)), fill=int(rng.integers(90, 200)), width=max(2, int(0.025 * unit)))
    fold = np.asarray(fold.filter(ImageFilter.GaussianBlur(0.012 * unit + 1)), np.float32) / 255.0
    light = light * (1.0 - 0.22 * fold)

    # detail lines: outlines of collars, pockets, plackets; dashed stitching for seams
    lines = Image.new("L", (S, S), 0)
    ld = ImageDraw.Draw(lines)
    lw = max(1, int(round(0.006 * unit)))
    for p in geom.parts:
        pts = f(p.points)
        if p.closed:
            pts = np.vstack([pts, pts[:1]])
        if p.kind in ("body", "sleeve", "hood"):
            ld.line(_xy(pts), fill=60, width=lw)
        elif p.kind == "button":
            continue
        elif p.group == "seams":
            dense = _densify(pts, max(2.0, 0.012 * unit))
            for i in range(0, len(dense) - 1, 2):
                ld.line(_xy(dense[i:i + 2]), fill=110, width=lw)
        else:
            ld.line(_xy(pts), fill=150, width=lw)
    lines = np.asarray(lines, np.float32) / 255.0
    garment_px = fabric * (shade * light * (1.0 - 0.45 * lines))[..., None]
    canvas = canvas * (1 - mask[..., None]) + garment_px * mask[..., None]

    img = Image.fromarray(np.clip(canvas + rng.normal(0, 1.2, canvas.shape), 0, 255).astype(np.uint8), "RGB")
    # buttons: contrasting discs with a darker rim and a small highlight
    bd = ImageDraw.Draw(img)
    light_fabric = _lum(garment.rgb) > 150
    bcol = _mix(garment.rgb, (30, 30, 34) if light_fabric else (240, 236, 226), 0.75)
    for p in geom.parts:
        if p.kind == "button":
            pts = f(p.points)
            c, r = pts.mean(axis=0), float(np.linalg.norm(pts[0] - pts.mean(axis=0)))
            bd.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=tuple(int(v) for v in bcol),
                       outline=tuple(int(v * 0.6) for v in bcol), width=max(1, int(r / 3)))
    return img.resize((size, size), Image.LANCZOS)


# ---------------------------------------------------------------------------------------------------
# sketch renderer


@dataclass(frozen=True)
class SketchStyle:
    """How one designer draws.

    Lengths are fractions of the image side. ``jitter`` is a slow wobble of each stroke, ``tremor`` a
    fast one; ``drop`` is the chance to drop each interior vertex of a piece before drawing and
    ``smooth`` the number of corner-cutting passes (rounded, simplified outlines); ``omit_*`` are the
    chances to leave out all pockets, buttons, print or seams of a sketch and ``print_fraction`` the part
    of the print drawn when it is drawn; ``overstroke`` the chance of a second, slightly different pass
    over a stroke; ``overshoot`` how far strokes run past their ends; ``gaps`` the chance of a break in a
    stroke; ``ink`` the line grey (0 black); ``aspect`` a habitual width stretch and ``pose`` the size of
    the random placement (scale +- 3 * pose, rotation +- 100 * pose degrees, shift +- pose).
    """

    name: str
    width: float = 0.012
    jitter: float = 0.0
    tremor: float = 0.0
    drop: float = 0.0
    smooth: int = 0
    omit_pockets: float = 0.0
    omit_buttons: float = 0.0
    omit_print: float = 0.0
    omit_seams: float = 0.0
    print_fraction: float = 1.0
    overstroke: float = 0.0
    overshoot: float = 0.0
    gaps: float = 0.0
    ink: int = 0
    aspect: float = 1.0
    pose: float = 0.015


#: Twelve fixed designers, numbered 1..12, roughly from neat (1) to rough (12).
DESIGNERS: dict[int, SketchStyle] = {
    1: SketchStyle("technical flat", width=0.010),
    2: SketchStyle("clean fine-liner", width=0.011, jitter=0.002, smooth=1, omit_print=0.3),
    3: SketchStyle("bold marker", width=0.020, jitter=0.003, omit_seams=0.6, omit_print=0.4, print_fraction=0.6,
                   omit_buttons=0.15),
    4: SketchStyle("fine pencil", width=0.009, tremor=0.0015, jitter=0.003, overstroke=0.3, ink=70, omit_seams=0.2),
    5: SketchStyle("quick narrow", width=0.012, jitter=0.006, drop=0.3, omit_pockets=0.3, omit_buttons=0.4,
                   omit_seams=0.7, omit_print=0.6, overshoot=0.02, aspect=0.92),
    6: SketchStyle("loose pen", width=0.011, jitter=0.007, overstroke=0.5, overshoot=0.03, gaps=0.2, omit_seams=0.4,
                   print_fraction=0.7),
    7: SketchStyle("minimalist", width=0.013, smooth=2, omit_pockets=0.6, omit_buttons=0.6, omit_seams=0.9,
                   omit_print=0.9, aspect=1.04),
    8: SketchStyle("soft pencil", width=0.012, jitter=0.005, tremor=0.003, overstroke=0.8, ink=95,
                   print_fraction=0.4, omit_seams=0.3),
    9: SketchStyle("rounded wide", width=0.013, smooth=3, drop=0.2, jitter=0.004, aspect=1.08, omit_seams=0.5,
                   omit_print=0.5, pose=0.025),
    10: SketchStyle("rough", width=0.014, jitter=0.008, drop=0.4, gaps=0.3, overshoot=0.04, omit_seams=0.8,
                    omit_print=0.7, omit_pockets=0.3, pose=0.03),
    11: SketchStyle("detailed rough", width=0.011, jitter=0.008, tremor=0.002, overstroke=0.4, overshoot=0.025,
                    print_fraction=1.0, pose=0.025),
    12: SketchStyle("scribble", width=0.013, jitter=0.01, tremor=0.003, drop=0.5, overstroke=0.6, gaps=0.3,
                    overshoot=0.05, omit_pockets=0.5, omit_buttons=0.5, omit_seams=0.9, omit_print=0.8, aspect=0.9,
                    pose=0.035),
}


def _chaikin(pts: np.ndarray, closed: bool, n: int) -> np.ndarray:
    for _ in range(n):
        if len(pts) < 3:
            break
        a = pts if closed else pts[:-1]
        b_ = np.roll(pts, -1, axis=0) if closed else pts[1:]
        q = np.empty((2 * len(a), 2))
        q[0::2] = 0.75 * a + 0.25 * b_
        q[1::2] = 0.25 * a + 0.75 * b_
        pts = q if closed else np.vstack([pts[:1], q, pts[-1:]])
    return pts


def _wobble(n: int, length: float, amp: float, period: float, rng: np.random.Generator, closed: bool) -> np.ndarray:
    """Smooth 2-D offsets along a stroke of ``n`` points and ``length`` pixels (amplitude ``amp`` px)."""
    if amp <= 0 or n < 2:
        return np.zeros((n, 2))
    k = max(2, int(length / period) + 2)
    ctrl = rng.normal(0.0, amp, (k, 2))
    if closed:
        ctrl[-1] = ctrl[0]
    t = np.linspace(0, k - 1, n)
    i = np.minimum(t.astype(int), k - 2)
    u = (t - i)[:, None]
    u = u * u * (3 - 2 * u)  # smoothstep between control offsets
    return ctrl[i] * (1 - u) + ctrl[i + 1] * u


def _stroke(pts: np.ndarray, closed: bool, st: SketchStyle, rng: np.random.Generator, side: float,
            shape_only: bool = False) -> list[np.ndarray]:
    """The polylines one pass of a designer's hand makes of a piece (pixel coordinates)."""
    if len(pts) > 4 and st.drop > 0:  # straighten curves: drop gently turning vertices, keep corners
        prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
        a, b_ = pts - prev, nxt - pts
        cos = (a * b_).sum(axis=1) / np.maximum(np.hypot(*a.T) * np.hypot(*b_.T), 1e-9)
        keep = (cos < math.cos(math.radians(25))) | (rng.random(len(pts)) >= st.drop)
        if not closed:
            keep[0] = keep[-1] = True
        if keep.sum() >= 3:
            pts = pts[keep]
    if st.smooth:  # round corners at the scale of a pen stroke, not of the piece
        pts = _chaikin(_densify(pts, 0.03 * side, closed)[: -1 if closed else None], closed, st.smooth)
    dense = _densify(pts, max(1.5, side / 160), closed)
    seg = np.diff(dense, axis=0)
    length = float(np.hypot(seg[:, 0], seg[:, 1]).sum())
    amp = st.jitter * side * min(1.0, length / (0.15 * side) + 0.25)
    dense = dense + _wobble(len(dense), length, amp, 0.12 * side, rng, closed)
    if st.tremor > 0:
        dense = dense + _wobble(len(dense), length, st.tremor * side, 0.015 * side, rng, closed)
    if shape_only:
        return [dense]
    if st.overshoot > 0 and len(dense) >= 3:
        ext = st.overshoot * side * float(rng.uniform(0.0, 1.0))
        t0 = dense[0] - dense[1]
        t1 = dense[-1] - dense[-2]
        t0 /= max(np.hypot(*t0), 1e-6)
        t1 /= max(np.hypot(*t1), 1e-6)
        if closed:  # the closing stroke runs past its start
            more = dense[1:max(2, int(len(dense) * float(rng.uniform(0.0, 0.08))))]
            dense = np.vstack([dense, more])
        else:
            dense = np.vstack([dense[0] + t0 * ext, dense, dense[-1] + t1 * ext])
    out = [dense]
    if st.gaps > 0 and len(dense) > 12 and rng.random() < st.gaps:
        a = int(rng.integers(3, len(dense) - 6))
        g = max(2, int(len(dense) * float(rng.uniform(0.03, 0.07))))
        out = [dense[:a], dense[a + g:]]
    return [o for o in out if len(o) >= 2]


def render_sketch(garment: Garment, style: SketchStyle | int, size: int, rng: np.random.Generator, *,
                  pose: Pose | None = None) -> Image.Image:
    """A designer's sketch of the garment (mode "L": dark strokes on white).

    The same geometry as :func:`render_photo`, drawn as strokes in painting order: every closed piece
    first blanks its (distorted) area, so lines hidden under a sleeve or collar stay hidden. ``style`` is
    a :class:`SketchStyle` or a designer number of :data:`DESIGNERS`.
    """
    size = _coerce_size(size, "render_sketch")
    if not isinstance(style, SketchStyle):
        if style not in DESIGNERS:
            raise FgrError(f"render_sketch: style must be a SketchStyle or a designer number 1-{len(DESIGNERS)}, got {style!r}")
        style = DESIGNERS[int(style)]
    geom = garment_geometry(garment)
    if pose is None:
        pose = sample_pose(rng, scale=3 * style.pose, angle=100 * style.pose, shift=style.pose, aspect=style.aspect)
    S = size * SUPERSAMPLE
    f, _ = _frame(geom, pose, S)
    omit = {"pockets": rng.random() < style.omit_pockets, "buttons": rng.random() < style.omit_buttons,
            "seams": rng.random() < style.omit_seams}
    draw_print = rng.random() >= style.omit_print
    img = Image.new("L", (S, S), 255)
    d = ImageDraw.Draw(img)
    w = max(1.6, style.width * S)
    ink = int(style.ink)

    def draw(lines: list[np.ndarray], width: float) -> None:
        for ln in lines:
            d.line(_xy(ln), fill=ink, width=max(1, int(round(width))), joint="curve" if width >= 3 else None)

    def piece(p: Part) -> None:
        pts = f(p.points)
        if p.kind == "button":
            c = pts.mean(axis=0) + rng.normal(0, style.jitter * S * 0.3, 2)
            r = float(np.linalg.norm(pts[0] - pts.mean(axis=0)))
            if r > 1.6 * w:
                d.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=255, outline=ink, width=max(1, int(w * 0.8)))
            else:
                rr = max(r, w * 0.8)
                d.ellipse([c[0] - rr, c[1] - rr, c[0] + rr, c[1] + rr], fill=ink)
            return
        strokes = _stroke(pts, p.closed, style, rng, S)
        if p.closed and p.shade is not None:
            d.polygon(_xy(_stroke(pts, True, _blank_style(style), rng, S, shape_only=True)[0]), fill=255)
        draw(strokes, w)
        if style.overstroke > 0 and rng.random() < style.overstroke:
            draw(_stroke(pts, p.closed, style, rng, S), w * 0.7)

    parts = [p for p in geom.parts if not omit.get(p.group, False)]
    for p in parts:
        if p.kind in _BASE_KINDS:
            piece(p)
    if draw_print and geom.print_strokes:
        ps = geom.print_strokes
        take = rng.random(len(ps)) < style.print_fraction
        if style.print_fraction < 1:  # designers hint at a print in one area, not at random spots
            centre = np.array([np.mean(s, axis=0) for s in ps])
            focus = centre[int(rng.integers(len(ps)))]
            dist = np.hypot(*(centre - focus).T)
            take = dist <= np.quantile(dist, style.print_fraction)
        pst = SketchStyle("print", jitter=style.jitter * 0.3, tremor=style.tremor)
        for s, t in zip(ps, take):
            if t:
                draw(_stroke(f(s), False, pst, rng, S), w * 0.7)
    for p in parts:
        if p.kind not in _BASE_KINDS:
            piece(p)
    return img.resize((size, size), Image.LANCZOS)


def _blank_style(st: SketchStyle) -> SketchStyle:
    """The style's slow wobble and rounding only: the area a closed piece blanks before its strokes."""
    return SketchStyle(st.name, jitter=st.jitter, smooth=st.smooth)


# ---------------------------------------------------------------------------------------------------
# pseudo-sketches of photos


def _grey(image) -> np.ndarray:
    a = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float64)
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114])
    if a.ndim != 2:
        raise FgrError("pseudo-sketch: expected an image (PIL, or an H x W or H x W x 3 array)")
    return a / 255.0 if a.max() > 1.0 else a


def xdog(image, sigma: float = 0.8, k: float = 1.6, p: float = 20.0, eps: float = 0.1, phi: float = 12.0) -> Image.Image:
    """eXtended Difference of Gaussians (Winnemoeller et al. 2012) of a photo: black lines on white ("L").

    ``D = (1 + p) * G_sigma * I - p * G_{k sigma} * I`` on the grey image in [0, 1]; the output is 1
    where ``D >= eps`` and ``1 + tanh(phi * (D - eps))`` elsewhere. A flat area keeps ``D = I``, so
    ``eps`` below the darkest fabric keeps fills white and only edges (where the sharpened image dips)
    turn dark; ``phi`` sets how hard the lines are.
    """
    if sigma <= 0 or k <= 1 or p < 0 or phi <= 0:
        raise FgrError("xdog: need sigma > 0, k > 1, p >= 0 and phi > 0")
    grey = _grey(image)
    g1 = ndimage.gaussian_filter(grey, sigma, mode="nearest")
    g2 = ndimage.gaussian_filter(grey, k * sigma, mode="nearest")
    D = (1 + p) * g1 - p * g2
    out = np.where(D >= eps, 1.0, 1.0 + np.tanh(phi * (D - eps)))
    return Image.fromarray(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def canny_sketch(image, sigma: float = 1.0, low: float | None = None, high: float | None = None,
                 thickness: int = 1) -> Image.Image:
    """Canny edges of a photo (skimage.feature.canny), inverted to black lines on white ("L").

    ``thickness`` > 1 dilates the one-pixel edges, like a thicker pen.
    """
    from skimage.feature import canny

    if sigma <= 0 or thickness < 1:
        raise FgrError("canny_sketch: need sigma > 0 and thickness >= 1")
    edges = canny(_grey(image), sigma=sigma, low_threshold=low, high_threshold=high)
    if thickness > 1:
        edges = ndimage.binary_dilation(edges, iterations=thickness - 1)
    return Image.fromarray(np.where(edges, 0, 255).astype(np.uint8), "L")


# ---------------------------------------------------------------------------------------------------
# datasets


@dataclass(frozen=True)
class GarmentPlan:
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
    grey = _grey(img)
    lo, hi = np.percentile(grey, [1, 99])  # stretch contrast (pale garments on pale card), keep fills above eps
    grey = 0.2 + 0.8 * np.clip((grey - lo) / max(hi - lo, 1e-3), 0, 1)
    scale = max(photo.size[0] / 128, 0.6)
    if source == "xdog":  # p = 30: a little more sensitive than the default, for pale garments
        return xdog(grey, sigma=float(rng.uniform(0.7, 0.95)) * scale, p=30.0)
    return canny_sketch(grey, sigma=float(rng.uniform(0.9, 1.4)) * scale)


def _generate(out_dir: Path, size: str, seed: int, name: str) -> dict:
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


@register(NAME, sizes=_SIZES, description=(
    "FG-SBIR stand-in in the A/B layout (trainA/<photo>_<k>.png sketches, trainB/<photo>.png photos, testA/B): "
    "parametric garments in fine-grained families, sketched by 2-3 of 12 designer styles (k = designer 1-12)"))
def generate(out_dir: Path, size: str, seed: int) -> dict:
    return _generate(out_dir, size, seed, NAME)


@register(f"{NAME}-xdog", sizes=_SIZES, description=(
    "sbir-garments' photos with XDoG pseudo-sketches of re-posed photos instead of designer sketches (same k)"))
def generate_xdog(out_dir: Path, size: str, seed: int) -> dict:
    return _generate(out_dir, size, seed, f"{NAME}-xdog")


@register(f"{NAME}-canny", sizes=_SIZES, description=(
    "sbir-garments' photos with Canny-edge pseudo-sketches of re-posed photos instead of designer sketches (same k)"))
def generate_canny(out_dir: Path, size: str, seed: int) -> dict:
    return _generate(out_dir, size, seed, f"{NAME}-canny")


_FIELDS = tuple(f.name for f in fields(Garment))
assert _FIELDS[:-1] == tuple(ATTRIBUTES), "Garment's fields must follow ATTRIBUTES"
