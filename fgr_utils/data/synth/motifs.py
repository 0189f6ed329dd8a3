"""A bank of procedurally drawn print motifs ("sub-elements"): RGBA images on a transparent background.

Every motif belongs to one of :data:`CATEGORIES` and is drawn by that category's generator from a
small set of discrete *details*, so that motifs of one category share a family look and differ only in
those details:

==========  ===================================================================================
floral      petal count (4-8), petal shape (ellipse / pointed / round / notched), centre (dot / ring /
            star / dotted), optional inner petal ring
leaf        blade shape (lance / ovate / round / lobed), one leaf or a sprig of three, veins (none /
            midrib / pinnate / dotted)
geometric   star (5-8 points, two sharpnesses) or polygon (3-8 sides), inner figure, optional ring
paisley     teardrop with curled tail (left / right), 1-3 inner outlines, edge (plain / dots /
            scallops), core (circle / teardrop / flower)
berries     3-9 berries as a bunch / ring / arc, highlights, 0-2 leaves, optional stems
chevron     badge (shield / circle / square / diamond) with 1-4 chevrons up or down, border style
fan         shell fan with 5-11 ribs, spread, edge (scalloped / straight / pointed), base
butterfly   upper wings (round / pointed), lower wings (round / tailed), 0-3 spots, antennae
==========  ===================================================================================

plus three colours (fill, second, accent) from one shared print palette, so that colour does not
give the category away. No two motifs of a category share all details and colours; many share most of
them (same petal count and centre, different colours; same colours, different petal count), which is
what makes "which motif" harder than "which category".

A motif's details are a deterministic function of ``(seed, index)`` (and of the motifs before it in
its category, to keep signatures unique). Its image is drawn with ``PIL.ImageDraw`` at
:data:`SUPERSAMPLE` times the final size, cropped to the drawn pixels plus a small margin and reduced
with LANCZOS (Pillow premultiplies alpha while resampling, so the edges are clean). The RGB stored
under fully transparent pixels is set to the motif's ``stored_background`` ("black" or "white", as in
the two known real samples), which only matters to readers that drop alpha (``rgba_background="raw"``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw

__all__ = ["CATEGORIES", "PALETTE", "Motif", "make_bank", "render_motif", "SUPERSAMPLE"]

CATEGORIES: tuple[str, ...] = ("floral", "leaf", "geometric", "paisley", "berries", "chevron", "fan", "butterfly")

#: The shared print palette (name, RGB); motifs of every category draw their colours from it.
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (200, 38, 48)), ("coral", (238, 110, 88)), ("orange", (236, 140, 30)),
    ("mustard", (214, 172, 40)), ("yellow", (248, 212, 70)), ("olive", (122, 136, 42)),
    ("green", (52, 138, 72)), ("teal", (24, 124, 126)), ("turquoise", (64, 182, 190)),
    ("sky", (104, 166, 228)), ("blue", (44, 84, 178)), ("navy", (28, 42, 102)),
    ("purple", (108, 56, 148)), ("lilac", (178, 138, 212)), ("pink", (234, 126, 168)),
    ("magenta", (186, 36, 116)), ("brown", (116, 66, 36)), ("cream", (246, 234, 206)),
    ("white", (252, 252, 250)), ("charcoal", (46, 46, 52)),
)
SUPERSAMPLE = 4
_MARGIN = 0.04  # of the drawn extent, kept around the motif after cropping

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Motif:
    """One motif of the bank: its id, category, drawing details and colours."""

    id: str
    index: int
    category: str
    details: tuple[tuple[str, Any], ...]
    colours: tuple[int, int, int]  # palette indices: fill, second, accent
    stored_background: str  # "black" or "white": RGB stored under transparent pixels
    size: float  # relative size of the motif's image (0.75-1.0 of the bank's pixel size)

    @property
    def detail(self) -> dict[str, Any]:
        return dict(self.details)

    @property
    def rgb(self) -> tuple[RGB, RGB, RGB]:
        return tuple(PALETTE[i][1] for i in self.colours)  # type: ignore[return-value]

    def signature(self) -> tuple:
        """What must differ between two motifs of one category."""
        return (self.category, self.details, self.colours)

    def describe(self) -> str:
        names = "/".join(PALETTE[i][0] for i in self.colours)
        return f"{self.category} " + ", ".join(f"{k}={v}" for k, v in self.details) + f", colours {names}"


# ---------------------------------------------------------------------------------------------------
# detail sampling (one function per category; all draws from the generator passed in)


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


_DETAILS: dict[str, Callable[[np.random.Generator], dict[str, Any]]] = {
    "floral": lambda r: {"petals": int(r.integers(4, 9)), "petal": _choice(r, ("ellipse", "pointed", "round", "notched")),
                         "centre": _choice(r, ("dot", "ring", "star", "dotted")), "inner": bool(r.random() < 0.5)},
    "leaf": lambda r: {"blade": _choice(r, ("lance", "ovate", "round", "lobed")), "leaves": _choice(r, (1, 3)),
                       "veins": _choice(r, ("none", "midrib", "pinnate", "dotted"))},
    "geometric": lambda r: (lambda kind: {"kind": kind, "n": int(r.integers(5, 9)) if kind == "star" else int(r.integers(3, 9)),
                                          "sharp": _choice(r, (0.38, 0.55)) if kind == "star" else 0.0,
                                          "inner": _choice(r, ("none", "circle", "polygon", "star")),
                                          "ring": bool(r.random() < 0.4)})(_choice(r, ("star", "polygon"))),
    "paisley": lambda r: {"curl": _choice(r, ("left", "right")), "lines": int(r.integers(1, 4)),
                          "edge": _choice(r, ("plain", "dots", "scallops")), "core": _choice(r, ("circle", "teardrop", "flower"))},
    "berries": lambda r: {"n": int(r.integers(3, 10)), "arrangement": _choice(r, ("bunch", "ring", "arc")),
                          "highlight": bool(r.random() < 0.5), "leaves": int(r.integers(0, 3)), "stems": bool(r.random() < 0.5)},
    "chevron": lambda r: {"badge": _choice(r, ("shield", "circle", "square", "diamond")), "chevrons": int(r.integers(1, 5)),
                          "direction": _choice(r, ("up", "down")), "border": _choice(r, ("none", "thin", "double"))},
    "fan": lambda r: {"ribs": int(r.integers(5, 12)), "spread": _choice(r, (140, 180, 220)),
                      "edge": _choice(r, ("scalloped", "straight", "pointed")), "base": _choice(r, ("knob", "bar", "none"))},
    "butterfly": lambda r: {"upper": _choice(r, ("round", "pointed")), "lower": _choice(r, ("round", "tailed")),
                            "spots": int(r.integers(0, 4)), "antennae": _choice(r, ("curled", "straight"))},
}


def _colours(rng: np.random.Generator) -> tuple[int, int, int]:
    idx = rng.choice(len(PALETTE), size=3, replace=False)
    return int(idx[0]), int(idx[1]), int(idx[2])


def _motif_at(seed: int, index: int, category: str, attempt: int) -> tuple[tuple, tuple[int, int, int], str, float]:
    rng = np.random.default_rng([int(seed), 0x6D6F, int(index), int(attempt)])
    details = tuple(sorted(_DETAILS[category](rng).items()))
    colours = _colours(rng)
    background = "black" if rng.random() < 0.5 else "white"
    size = float(np.round(rng.uniform(0.75, 1.0), 4))
    return details, colours, background, size


def make_bank(seed: int, per_category: int, categories: tuple[str, ...] = CATEGORIES) -> list[Motif]:
    """``per_category`` motifs of each category (index ``i`` has category ``categories[i % len]``).

    Motif ``i`` depends only on ``seed``, ``i`` and the motifs before it, so a larger bank with the
    same seed starts with the same motifs. Ids are distinct 5-digit numbers ("10640"-style) that say
    nothing about category, split or order.
    """
    unknown = [c for c in categories if c not in _DETAILS]
    if unknown:
        raise ValueError(f"unknown motif categories {unknown}; known: {', '.join(CATEGORIES)}")
    n = per_category * len(categories)
    ids = np.random.default_rng([int(seed), 0x6964]).choice(np.arange(10000, 100000), size=n, replace=False)
    seen: set[tuple] = set()
    bank = []
    for i in range(n):
        cat = categories[i % len(categories)]
        for attempt in range(1000):
            details, colours, background, size = _motif_at(seed, i, cat, attempt)
            sig = (cat, details, colours)
            if sig not in seen:
                break
        else:  # pragma: no cover - the detail space is far larger than any bank
            raise RuntimeError(f"motif bank: cannot find a new {cat} motif for index {i}")
        seen.add(sig)
        bank.append(Motif(id=str(int(ids[i])), index=i, category=cat, details=details, colours=colours,
                          stored_background=background, size=size))
    return bank


# ---------------------------------------------------------------------------------------------------
# drawing helpers (unit coordinates: the motif lives roughly inside [-1, 1]^2, y down)


def _shade(c: RGB, k: float) -> RGB:
    """k < 1 darkens towards black, k > 1 lightens towards white."""
    if k <= 1:
        return tuple(int(round(v * k)) for v in c)  # type: ignore[return-value]
    t = k - 1
    return tuple(int(round(v + (255 - v) * t)) for v in c)  # type: ignore[return-value]


def _rot(pts, deg: float, cx: float = 0.0, cy: float = 0.0):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in pts]


def _ellipse(cx, cy, rx, ry, deg=0.0, n=48):
    pts = [(rx * math.cos(2 * math.pi * k / n), ry * math.sin(2 * math.pi * k / n)) for k in range(n)]
    return _rot(pts, deg, cx, cy)


def _lens(length, width, deg, power=0.8, n=24, base=(0.0, 0.0)):
    """A pointed petal / leaf blade from ``base`` along direction ``deg`` (0 = right)."""
    upper = [(length * t, width / 2 * math.sin(math.pi * t) ** power) for t in np.linspace(0, 1, n)]
    lower = [(x, -y) for x, y in reversed(upper[1:-1])]
    return _rot(upper + lower, deg, *base)


def _star(cx, cy, r_out, r_in, n, deg=-90.0):
    pts = []
    for k in range(2 * n):
        r = r_out if k % 2 == 0 else r_in
        a = math.radians(deg + 180.0 * k / n)
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _polygon(cx, cy, r, n, deg=-90.0):
    return [(cx + r * math.cos(math.radians(deg + 360.0 * k / n)), cy + r * math.sin(math.radians(deg + 360.0 * k / n)))
            for k in range(n)]


def _bezier(p0, p1, p2, n=16):
    return [((1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * p1[0] + t * t * p2[0],
             (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * p1[1] + t * t * p2[1]) for t in np.linspace(0, 1, n)]


class _Canvas:
    def __init__(self, side: int):
        self.side = side
        self.im = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.im)
        self.c = side / 2
        self.u = side * 0.30  # the canvas spans [-1.67, 1.67] units; drawings stay well inside

    def xy(self, pts):
        return [(self.c + x * self.u, self.c + y * self.u) for x, y in pts]

    def w(self, width: float) -> int:
        return max(1, int(round(width * self.u)))

    def poly(self, pts, fill=None, outline=None, width=0.0):
        self.draw.polygon(self.xy(pts), fill=_rgba(fill), outline=_rgba(outline), width=self.w(width) if outline else 0)

    def circle(self, x, y, r, fill=None, outline=None, width=0.0):
        (x1, y1), (x2, y2) = self.xy([(x - r, y - r), (x + r, y + r)])
        self.draw.ellipse((x1, y1, x2, y2), fill=_rgba(fill), outline=_rgba(outline), width=self.w(width) if outline else 0)

    def line(self, pts, fill, width):
        self.draw.line(self.xy(pts), fill=_rgba(fill), width=self.w(width), joint="curve")

    def cut(self, pts):
        """Make a polygon transparent again."""
        self.draw.polygon(self.xy(pts), fill=(0, 0, 0, 0))


def _rgba(c):
    return None if c is None else (*c, 255)


# ---------------------------------------------------------------------------------------------------
# the eight category generators


def _draw_floral(cv: _Canvas, d: dict, col: tuple[RGB, RGB, RGB]) -> None:
    fill, second, accent = col
    n, shape = d["petals"], d["petal"]
    edge = _shade(fill, 0.62)
    length = 1.0
    width = min(0.62, 2.3 * math.sin(math.pi / n) * 0.5) * length

    def petal(deg, L, W, colour, outline):
        if shape == "pointed":
            pts = _lens(L, W * 1.1, deg, power=0.7)
        else:
            rx, ry = L / 2, (W / 2 if shape != "round" else min(L / 2, W / 2 * 1.25))
            cx, cy = _rot([(L / 2, 0.0)], deg)[0]
            pts = _ellipse(cx, cy, rx, ry, deg)
        cv.poly(pts, fill=colour, outline=outline, width=0.03)
        if shape == "notched":
            tx, ty = _rot([(L * 0.98, 0.0)], deg)[0]
            cv.cut(_polygon(tx, ty, W * 0.22, 3, deg + 180))

    for k in range(n):
        petal(-90 + 360.0 * k / n, length, width, fill, edge)
    if d["inner"]:
        for k in range(n):
            petal(-90 + 180.0 / n + 360.0 * k / n, length * 0.55, width * 0.6, accent, _shade(accent, 0.62))
    centre = d["centre"]
    if centre == "dot":
        cv.circle(0, 0, 0.22, fill=second, outline=_shade(second, 0.6), width=0.025)
    elif centre == "ring":
        cv.circle(0, 0, 0.26, fill=second)
        cv.circle(0, 0, 0.13, fill=accent)
    elif centre == "star":
        cv.poly(_star(0, 0, 0.32, 0.14, 5), fill=second, outline=_shade(second, 0.6), width=0.02)
    else:  # dotted
        cv.circle(0, 0, 0.16, fill=second)
        for k in range(8):
            a = 2 * math.pi * k / 8
            cv.circle(0.27 * math.cos(a), 0.27 * math.sin(a), 0.05, fill=accent)


def _leaf_blade(cv: _Canvas, d: dict, fill: RGB, vein: RGB, base, deg: float, L: float) -> None:
    blade = d["blade"]
    edge = _shade(fill, 0.6)
    if blade == "lance":
        pts = _lens(L, L * 0.34, deg, power=0.85, base=base)
    elif blade == "ovate":  # egg: wide near the base, pointed tip
        upper = [(L * t, L * 0.27 * math.sin(math.pi * t ** 0.75) ** 0.9) for t in np.linspace(0, 1, 28)]
        pts = _rot(upper + [(x, -y) for x, y in reversed(upper[1:-1])], deg, *base)
    elif blade == "round":
        cx, cy = _rot([(L * 0.5, 0.0)], deg, *base)[0]
        pts = _ellipse(cx, cy, L * 0.5, L * 0.36, deg)
    else:  # lobed: a blade with three rounded lobes a side
        pts = []
        for t in np.linspace(0, 1, 60):
            lobe = 0.22 + 0.09 * abs(math.sin(3 * math.pi * t))
            pts.append((L * t, L * lobe * math.sin(math.pi * t) ** 0.7))
        pts = _rot(pts + [(x, -y) for x, y in reversed(pts[1:-1])], deg, *base)
    cv.poly(pts, fill=fill, outline=edge, width=0.025)
    veins = d["veins"]
    tip = _rot([(L * 0.92, 0.0)], deg, *base)[0]
    if veins in ("midrib", "pinnate"):
        cv.line([base, tip], vein, 0.035)
    if veins == "pinnate":
        for t in (0.3, 0.5, 0.7):
            for side in (1, -1):
                a = _rot([(L * t, 0.0)], deg, *base)[0]
                b = _rot([(L * (t + 0.14), side * L * 0.16)], deg, *base)[0]
                cv.line([a, b], vein, 0.022)
    if veins == "dotted":
        for t in (0.25, 0.42, 0.59, 0.76):
            x, y = _rot([(L * t, 0.0)], deg, *base)[0]
            cv.circle(x, y, 0.045, fill=vein)


def _draw_leaf(cv: _Canvas, d: dict, col) -> None:
    fill, second, accent = col
    stem_colour = _shade(fill, 0.55)
    if d["leaves"] == 1:
        cv.line([(0.0, 1.0), (0.0, 0.65)], stem_colour, 0.05)
        _leaf_blade(cv, d, fill, second, (0.0, 0.7), -90.0, 1.65)
    else:
        cv.line([(0.0, 1.0), (0.0, 0.2)], stem_colour, 0.05)
        _leaf_blade(cv, d, accent, second, (0.0, 0.45), -90.0 - 55.0, 0.95)
        _leaf_blade(cv, d, accent, second, (0.0, 0.45), -90.0 + 55.0, 0.95)
        _leaf_blade(cv, d, fill, second, (0.0, 0.25), -90.0, 1.2)


def _draw_geometric(cv: _Canvas, d: dict, col) -> None:
    fill, second, accent = col
    n = d["n"]
    if d["ring"]:
        cv.circle(0, 0, 1.0, fill=None, outline=accent, width=0.07)
    r = 0.86 if d["ring"] else 1.0
    if d["kind"] == "star":
        outer = _star(0, 0, r, r * d["sharp"], n)
        inner_r = r * d["sharp"] * 0.8
    else:
        outer = _polygon(0, 0, r, n)
        inner_r = r * math.cos(math.pi / n) * 0.62
    cv.poly(outer, fill=fill, outline=_shade(fill, 0.6), width=0.035)
    inner = d["inner"]
    if inner == "circle":
        cv.circle(0, 0, inner_r, fill=second)
    elif inner == "polygon":
        cv.poly(_polygon(0, 0, inner_r * 1.1, n, -90 + 180.0 / n), fill=second)
    elif inner == "star":
        cv.poly(_star(0, 0, inner_r * 1.2, inner_r * 0.5, n, -90 + 180.0 / n), fill=second)
    if inner != "none":
        cv.circle(0, 0, inner_r * 0.28, fill=accent)


def _paisley_outline(curl: str, scale: float = 1.0, cx: float = 0.0, cy: float = 0.28):
    R = 0.66
    arc = [(cx + R * math.cos(math.radians(a)), cy + R * math.sin(math.radians(a))) for a in np.linspace(-60, 210, 40)]
    tip = (0.62, -1.02)
    back = _bezier(arc[-1], (-0.5, -0.78), tip) + _bezier(tip, (0.36, -0.55), arc[0])[1:-1]
    pts = arc + back[1:]
    if curl == "left":
        pts = [(-x, y) for x, y in pts]
    ox, oy = (0.0, cy)
    return [(ox + (x - ox) * scale, oy + (y - oy) * scale) for x, y in pts]


def _draw_paisley(cv: _Canvas, d: dict, col) -> None:
    fill, second, accent = col
    curl = d["curl"]
    outline = _paisley_outline(curl)
    if d["edge"] == "scallops":
        for k in range(0, len(outline), 4):
            x, y = outline[k]
            cv.circle(x * 1.06, 0.28 + (y - 0.28) * 1.06, 0.085, fill=accent)
    cv.poly(outline, fill=fill, outline=_shade(fill, 0.55), width=0.03)
    if d["edge"] == "dots":
        for k in range(0, len(outline), 5):
            x, y = outline[k]
            cv.circle(x * 0.9, 0.28 + (y - 0.28) * 0.9, 0.035, fill=accent)
    colours = (second, accent, _shade(fill, 0.6))
    for j in range(d["lines"]):
        s = 0.74 - 0.16 * j
        cv.poly(_paisley_outline(curl, s), fill=None, outline=colours[j], width=0.035)
    core = d["core"]
    if core == "circle":
        cv.circle(0, 0.3, 0.17, fill=second, outline=accent, width=0.03)
    elif core == "teardrop":
        cv.poly(_paisley_outline(curl, 0.26), fill=second)
    else:  # flower
        for k in range(5):
            a = 2 * math.pi * k / 5
            cv.circle(0.12 * math.cos(a), 0.3 + 0.12 * math.sin(a), 0.08, fill=second)
        cv.circle(0, 0.3, 0.06, fill=accent)


def _draw_berries(cv: _Canvas, d: dict, col) -> None:
    fill, second, accent = col
    n = d["n"]
    arr = d["arrangement"]
    if arr == "bunch":
        rows, k = [], n
        width = 1
        while k > 0:  # a downward-pointing triangle of rows (widest at the top)
            rows.append(min(width, k))
            k -= rows[-1]
            width += 1
        rows = sorted(rows, reverse=True)
        r = 0.72 / max(len(rows), max(rows)) + 0.05
        centres = []
        for i, m in enumerate(rows):
            for j in range(m):
                centres.append(((j - (m - 1) / 2) * 2 * r * 0.95, -0.2 + i * 2 * r * 0.9))
    elif arr == "ring":
        r = min(0.3, 2.6 / (2 * n + 2))
        centres = [(0.62 * math.cos(2 * math.pi * k / n - math.pi / 2), 0.1 + 0.62 * math.sin(2 * math.pi * k / n - math.pi / 2))
                   for k in range(n)]
    else:  # arc
        r = min(0.28, 2.4 / (2 * n + 1))
        centres = [(0.85 * math.cos(math.radians(a)), -0.05 + 0.85 * math.sin(math.radians(a)))
                   for a in np.linspace(200, 340, n)[::-1]] if n > 1 else [(0, 0)]
        centres = [(x, y + 0.55) for x, y in centres]
    stem_colour = _shade(second, 0.5)
    top = (0.0, -0.85)
    if d["stems"]:
        for x, y in centres:
            cv.line([top, (x, y)], stem_colour, 0.025)
    for k in range(d["leaves"]):
        side = -1 if k == 0 else 1
        cv.poly(_lens(0.7, 0.3, -90 + side * 50, base=top), fill=second, outline=_shade(second, 0.6), width=0.02)
    for x, y in centres:
        cv.circle(x, y, r, fill=fill, outline=_shade(fill, 0.55), width=0.03)
        if d["highlight"]:
            cv.circle(x - r * 0.35, y - r * 0.35, r * 0.28, fill=_shade(fill, 1.7))
    if d["stems"] or d["leaves"]:
        cv.circle(top[0], top[1], 0.06, fill=accent)


def _badge(shape: str):
    if shape == "shield":
        top = [(-0.8, -0.9), (0.8, -0.9), (0.8, 0.05)]
        return top + _bezier((0.8, 0.05), (0.75, 0.7), (0.0, 1.0))[1:] + _bezier((0.0, 1.0), (-0.75, 0.7), (-0.8, 0.05))[1:]
    if shape == "circle":
        return _ellipse(0, 0, 0.95, 0.95, n=64)
    if shape == "square":
        return [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]
    return [(0.0, -1.05), (0.95, 0.0), (0.0, 1.05), (-0.95, 0.0)]


def _draw_chevron(cv: _Canvas, d: dict, col) -> None:
    fill, second, accent = col
    shape = _badge(d["badge"])
    cv.poly(shape, fill=fill)
    layer = _Canvas(cv.side)
    k = d["chevrons"]
    sign = -1 if d["direction"] == "up" else 1
    gap = 1.5 / (k + 1)
    for j in range(k):
        y0 = -0.75 + gap * (j + 1) - sign * 0.25
        layer.line([(-1.1, y0), (0.0, y0 + sign * 0.55), (1.1, y0)], second, min(0.16, gap * 0.45))
    band = layer.im.getchannel("A")
    mask = Image.new("L", (cv.side, cv.side), 0)
    ImageDraw.Draw(mask).polygon(cv.xy(shape), fill=255)
    layer.im.putalpha(ImageChops.multiply(band, mask))
    cv.im.alpha_composite(layer.im)
    border = d["border"]
    if border != "none":
        cv.poly(shape, fill=None, outline=accent, width=0.07)
    if border == "double":
        inner = [(x * 0.82, y * 0.82) for x, y in shape]
        cv.poly(inner, fill=None, outline=accent, width=0.035)


def _draw_fan(cv: _Canvas, d: dict, col) -> None:
    fill, second, accent = col
    n, spread = d["ribs"], d["spread"]
    origin = (0.0, 0.55 if spread <= 180 else 0.3)
    R = 1.15 if spread <= 180 else 1.0
    angles = np.linspace(-90 - spread / 2, -90 + spread / 2, n)
    ends = [(origin[0] + R * math.cos(math.radians(a)), origin[1] + R * math.sin(math.radians(a))) for a in angles]
    edge = d["edge"]
    body = [origin] + ends
    if edge == "scalloped":
        rr = R * math.sin(math.radians(spread / (n - 1) / 2)) * 1.05
        for x, y in ends:
            cv.circle(x, y, rr, fill=fill, outline=_shade(fill, 0.6), width=0.025)
    elif edge == "pointed":
        tips = []
        for a0, a1 in zip(angles[:-1], angles[1:]):
            am = (a0 + a1) / 2
            tips.append((origin[0] + R * 1.12 * math.cos(math.radians(am)), origin[1] + R * 1.12 * math.sin(math.radians(am))))
        body = [origin] + [p for pair in zip(ends, tips + [None]) for p in pair if p is not None]
    cv.poly(body, fill=fill, outline=_shade(fill, 0.6), width=0.03)
    for x, y in ends:
        cv.line([origin, (origin[0] + (x - origin[0]) * 0.93, origin[1] + (y - origin[1]) * 0.93)], second, 0.03)
    base = d["base"]
    if base == "knob":
        cv.circle(origin[0], origin[1], 0.2, fill=accent, outline=_shade(accent, 0.6), width=0.02)
    elif base == "bar":
        cv.poly([(-0.35, origin[1] - 0.08), (0.35, origin[1] - 0.08), (0.35, origin[1] + 0.12), (-0.35, origin[1] + 0.12)],
                fill=accent)


def _draw_butterfly(cv: _Canvas, d: dict, col) -> None:
    fill, second, accent = col
    edge = _shade(fill, 0.55)
    for side in (-1, 1):
        if d["lower"] == "round":
            lower = _ellipse(side * 0.42, 0.42, 0.4, 0.32, side * 35)
        else:
            lower = _lens(0.95, 0.42, 90 - side * 25, power=0.6, base=(side * 0.05, 0.1))
        cv.poly(lower, fill=second, outline=_shade(second, 0.55), width=0.025)
        if d["upper"] == "round":
            upper = _ellipse(side * 0.5, -0.3, 0.52, 0.42, side * -25)
        else:
            upper = _lens(1.15, 0.72, -90 + side * 55, power=0.55, base=(side * 0.04, 0.05))
        cv.poly(upper, fill=fill, outline=edge, width=0.03)
        for j in range(d["spots"]):
            cv.circle(side * (0.38 + 0.2 * j), -0.36 - 0.1 * j + (0.12 if j == 2 else 0), 0.09 - 0.015 * j, fill=accent)
    cv.poly(_ellipse(0, 0.05, 0.08, 0.5), fill=_shade(fill, 0.35))
    for side in (-1, 1):
        if d["antennae"] == "curled":
            cv.line(_bezier((0.0, -0.42), (side * 0.05, -0.8), (side * 0.32, -0.9)), _shade(fill, 0.35), 0.025)
            cv.circle(side * 0.36, -0.88, 0.05, fill=_shade(fill, 0.35))
        else:
            cv.line([(0.0, -0.42), (side * 0.3, -0.95)], _shade(fill, 0.35), 0.025)


_DRAW: dict[str, Callable[[_Canvas, dict, tuple[RGB, RGB, RGB]], None]] = {
    "floral": _draw_floral, "leaf": _draw_leaf, "geometric": _draw_geometric, "paisley": _draw_paisley,
    "berries": _draw_berries, "chevron": _draw_chevron, "fan": _draw_fan, "butterfly": _draw_butterfly,
}


def render_motif(motif: Motif, px: int, *, supersample: int = SUPERSAMPLE, stored_background: str | None = None) -> Image.Image:
    """The motif as an RGBA image whose long side is ``round(px * motif.size)`` (at least 8 px).

    Transparent pixels store ``stored_background`` (default: the motif's own) in their RGB channels.
    """
    long_side = max(8, int(round(px * motif.size)))
    side = int(math.ceil(long_side * supersample * 1.8))
    cv = _Canvas(side)
    _DRAW[motif.category](cv, motif.detail, motif.rgb)
    img = cv.im
    bbox = img.getchannel("A").getbbox()
    if bbox is None:  # pragma: no cover - every generator draws something
        raise RuntimeError(f"motif {motif.id} drew nothing")
    x1, y1, x2, y2 = bbox
    m = int(math.ceil(_MARGIN * max(x2 - x1, y2 - y1)))
    img = img.crop((max(0, x1 - m), max(0, y1 - m), min(side, x2 + m), min(side, y2 + m)))
    w, h = img.size
    k = long_side / max(w, h)
    img = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)
    a = np.asarray(img).copy()
    bg = (0, 0, 0) if (stored_background or motif.stored_background) == "black" else (255, 255, 255)
    a[a[:, :, 3] == 0, :3] = bg
    return Image.fromarray(a, "RGBA")
