"""Drawing a garment: product photos and designers' sketches of its geometry.

Both renderers draw the :class:`~.geometry.Geometry` of one garment, framed the same way: the
garment's bounding box is fitted into the image (product photos are framed to the garment) and a
:class:`Pose` (scale, rotation, shift, and for sketches a width stretch) places it. Drawing happens at
:data:`SUPERSAMPLE` times the output size and is reduced with LANCZOS, for clean edges.

* :func:`render_photo`: filled fabric and print, shading, drape folds, stitching, a drop shadow on a
  light card background, and a small pose jitter;
* :func:`render_sketch`: black strokes on white in painting order, distorted by a :class:`SketchStyle`
  (wobble, tremor, simplified or rounded outlines, omitted details, overstrokes, gaps); the twelve
  :data:`DESIGNERS` are fixed styles from neat to rough, so the sketches of one photo differ the way
  different people's drawings do.

Every random choice comes from the ``rng`` passed in, so a renderer is deterministic for a stream.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fgr_utils.data.synth.garments.geometry import BASE_KINDS, Geometry, Part, densify, garment_geometry
from fgr_utils.data.synth.garments.vocabulary import Garment, luminance
from fgr_utils.errors import FgrError

__all__ = ["Pose", "sample_pose", "garment_mask", "render_photo", "SketchStyle", "DESIGNERS", "render_sketch",
           "MARGIN", "SUPERSAMPLE"]


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
            dense = densify(pts, max(2.0, 0.012 * unit))
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
    light_fabric = luminance(garment.rgb) > 150
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
        pts = _chaikin(densify(pts, 0.03 * side, closed)[: -1 if closed else None], closed, st.smooth)
    dense = densify(pts, max(1.5, side / 160), closed)
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
        if p.kind in BASE_KINDS:
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
        if p.kind not in BASE_KINDS:
            piece(p)
    return img.resize((size, size), Image.LANCZOS)


def _blank_style(st: SketchStyle) -> SketchStyle:
    """The style's slow wobble and rounding only: the area a closed piece blanks before its strokes."""
    return SketchStyle(st.name, jitter=st.jitter, smooth=st.smooth)

