"""A garment as drawable geometry: polygons and polylines of its parts in one unit frame.

:func:`garment_geometry` turns a :class:`~.vocabulary.Garment` into a :class:`Geometry`: the outline
(body, sleeves, hood), the structure (neck opening, collar, lapel, waistband, front edge), the details a
designer may leave out of a sketch (pockets, buttons and placket, seams), the print elements laid over
the fabric, and drape folds. The photo and the sketch renderers draw this *same* geometry, so a sketch
is the photo's garment seen through a designer's hand.

**Frame.** x runs right from the centre-front line, y runs down from the neck point (the base
neck/shoulder line at y = 0, waist at 0.40, hip 0.58, thigh 0.76, knee 0.96, calf 1.16, ankle 1.36);
the garment is symmetric except for the chest pocket (on the image's right). The garment's
``proportions`` stretch the finished geometry; a renderer fits its bounding box into the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from fgr_utils.data.synth.garments.vocabulary import LAPELS, Garment

__all__ = ["Part", "PrintElement", "Geometry", "LEVEL_Y", "BASE_KINDS", "garment_geometry", "densify"]


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


#: The body level (y) of each hem ``length``.
LEVEL_Y = {"waist": 0.40, "hip": 0.58, "thigh": 0.76, "knee": 0.96, "calf": 1.16, "ankle": 1.36}
_WAIST, _HIP, _ARMPIT, _CROTCH = 0.40, 0.58, 0.215, 0.64
#: The pieces drawn first, in this order (hood behind the body, sleeves over it); details follow them.
BASE_KINDS = ("hood", "hood-inside", "collar-back", "body", "inside", "sleeve")


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


def densify(pts: np.ndarray, step: float, closed: bool = False) -> np.ndarray:
    """The polyline resampled at (about) every ``step`` along its length, so it can be clipped or wobbled."""
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
    if g.lapel in LAPELS:
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

    if g.lapel in LAPELS:
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
        y1 = min(yh - 0.08, y0 + 0.09 * (n - 1) if g.lapel in LAPELS else 0.78)
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
        pts = s if closed_small else densify(s, 0.006)
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
    base = [p for p in b.parts if p.kind in BASE_KINDS]
    rest = [p for p in b.parts if p.kind not in BASE_KINDS]
    order = {k: i for i, k in enumerate(BASE_KINDS)}
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

