"""``photo-landmarks``: a small ROxford5k / RParis6k stand-in made from real photos that ship in packages.

Each *landmark* is one photo bundled with scikit-image, scikit-learn or matplotlib, with a fixed
object box ``R`` (40-60 % of the photo's width and height, placed from the seed). The dataset is
written in exactly the revisited format the landmark reader expects::

    jpg/<name>.jpg                      database and query images (JPEG quality 90, 4:2:0)
    gnd_photo-landmarks.pkl             {"imlist", "qimlist", "gnd": [{"bbx", "easy", "hard", "junk"}, ...]}
    photo-landmarks-views.json          (extra, for teaching) per-image source, visible fraction, label

Database images are *views* of a landmark: a crop window of the photo (random position and scale, so
the visible fraction ``v`` of ``R`` varies), a small rotation, colour / brightness / contrast jitter,
resized to a modest long side (smoke 96 px, demo 192 px, paper 384 px). ``v`` is computed exactly as
the area of ``R`` inside the (rotated) window over the area of ``R``. Each view is labelled for the
queries of its landmark:

* easy: ``v >= 0.7`` (and no strong distortion);
* hard: ``0.25 <= v < 0.7``, or ``v >= 0.25`` under strong distortion (large rotation, strong
  brightness change, blur);
* junk: ``0 < v < 0.25``;
* not listed (a negative): ``v == 0`` - the view shows the same photo but misses ``R``.

Distractors are views of the scikit-image textures (brick, grass, gravel, tinted) and of photos that
are not landmarks at this size; views of other landmarks are negatives too. Queries are separate views
(not in the database, as in the revisited protocol) that show ``R`` fully, with ``bbx`` = ``R``'s
bounding box in the query image's pixels. Every query has at least one easy and one hard positive.

Sizes: ``smoke`` (6 landmarks, 60 database images, 12 queries), ``demo`` (12 landmarks, 600 database
images, 36 queries), ``paper`` (every photo that loads, 5,000 database images, 5 queries per landmark),
or a count (about that many database images). The output is byte-identical for a given seed and
size in one environment (all randomness comes from ``numpy.random.default_rng`` streams derived from
the seed and is drawn before any pixel is rendered, so the rendering threads cannot change it; the JPEG
encoder settings are fixed). Other Pillow / libjpeg versions may encode different bytes.
"""
from __future__ import annotations

import json
import math
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from fgr_utils.data.synth.core import parse_count, register
from fgr_utils.errors import FgrError

NAME = "photo-landmarks"
GND_FILE = f"gnd_{NAME}.pkl"
VIEWS_FILE = f"{NAME}-views.json"
JPEG_SETTINGS = {"quality": 90, "subsampling": 2, "optimize": False, "progressive": False}
EASY_MIN, HARD_MIN = 0.7, 0.25
DISTRACTOR_FRACTION = 0.2
SUPERSAMPLE = 2  # views are rendered (bilinear) at twice the size, then reduced with LANCZOS (no aliasing)
RENDER_THREADS = 4


# ---------------------------------------------------------------------------------------------------
# the real pixels


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load():
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


def _package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package, found without importing the package (fast)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base).joinpath(*parts)
        if path.is_file():
            return path
    return None


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load():
        path = _package_file("sklearn", "datasets", "images", filename)
        if path is not None:
            return _read_rgb(path)
        from sklearn.datasets import load_sample_images  # slow import; only if the file moved

        data = load_sample_images()
        return data.images[[Path(f).name for f in data.filenames].index(filename)]

    return load


def _grace_hopper() -> np.ndarray:
    path = _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
    if path is None:
        import matplotlib.cbook

        path = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return _read_rgb(path)


#: Landmark photos in the order they are used (smoke takes the first 6, demo the first 12).
PHOTOS: tuple[tuple[str, Callable[[], np.ndarray]], ...] = (
    ("astronaut", _skimage("astronaut")),
    ("chelsea", _skimage("chelsea")),
    ("coffee", _skimage("coffee")),
    ("rocket", _skimage("rocket")),
    ("china", _sklearn("china.jpg")),
    ("grace_hopper", _grace_hopper),
    ("flower", _sklearn("flower.jpg")),
    ("motorcycle", _motorcycle),
    ("hubble_deep_field", _skimage("hubble_deep_field")),
    ("immunohistochemistry", _skimage("immunohistochemistry")),
    ("retina", _skimage("retina")),
    ("camera", _skimage("camera")),
    ("coins", _skimage("coins")),
    ("moon", _skimage("moon")),
    ("clock", _skimage("clock")),
    ("cell", _skimage("cell")),
)
#: Greyscale textures used (tinted) as distractors.
TEXTURES: tuple[tuple[str, Callable[[], np.ndarray]], ...] = (
    ("brick", _skimage("brick")),
    ("grass", _skimage("grass")),
    ("gravel", _skimage("gravel")),
)
MAX_DISTRACTOR_PHOTOS = 4  # photos that are not landmarks at this size, used as distractors


def _to_pil(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        hi = 1.0 if arr.max() <= 1.0 else 255.0
        arr = np.clip(np.rint(arr / hi * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(arr[:, :, :3]), "RGB")


def _load(catalogue, limit: int | None = None) -> list[tuple[str, Image.Image]]:
    """(name, RGB image) for the first ``limit`` entries that load offline (failures are skipped)."""
    out = []
    for name, loader in catalogue:
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append((name, _to_pil(loader())))
        except Exception:  # a file missing from this package version: use the others
            continue
    return out


def available_photos() -> list[str]:
    """Names of the landmark photos that load in this environment."""
    return [n for n, _ in _load(PHOTOS)]


def _working(img: Image.Image, long_side: int) -> Image.Image:
    """Scale a source so its long side is at most 3x the output long side (LANCZOS)."""
    cap = 3 * long_side
    w, h = img.size
    if max(w, h) <= cap:
        return img
    k = cap / max(w, h)
    return img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)


# ---------------------------------------------------------------------------------------------------
# geometry (continuous pixel coordinates; a window is centre, size and rotation in the source photo)


@dataclass(frozen=True)
class Window:
    cx: float
    cy: float
    w: float
    h: float
    angle: float  # degrees

    def corners(self) -> list[tuple[float, float]]:
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        pts = [(-self.w / 2, -self.h / 2), (self.w / 2, -self.h / 2), (self.w / 2, self.h / 2), (-self.w / 2, self.h / 2)]
        return [(self.cx + c * x - s * y, self.cy + s * x + c * y) for x, y in pts]


def _polygon_area(pts: list[tuple[float, float]]) -> float:
    n = len(pts)
    if n < 3:
        return 0.0
    return abs(sum(pts[i][0] * pts[(i + 1) % n][1] - pts[(i + 1) % n][0] * pts[i][1] for i in range(n))) / 2.0


def _clip_to_box(poly: list[tuple[float, float]], box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Sutherland-Hodgman: the part of a convex polygon inside an axis-aligned box."""
    x1, y1, x2, y2 = box
    edges = [(0, x1, 1), (0, x2, -1), (1, y1, 1), (1, y2, -1)]  # (axis, value, +1 keep >=, -1 keep <=)
    for axis, val, sign in edges:
        if not poly:
            break
        out = []
        for i, cur in enumerate(poly):
            prev = poly[i - 1]
            cin, pin = sign * (cur[axis] - val) >= 0, sign * (prev[axis] - val) >= 0
            if cin != pin:
                t = (val - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cin:
                out.append(cur)
        poly = out
    return poly


def visible_fraction(window: Window, box: tuple[float, float, float, float]) -> float:
    """Area of ``box`` inside the rotated ``window`` over the area of ``box`` (exact)."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    return min(1.0, _polygon_area(_clip_to_box(window.corners(), box)) / area)


def _out_size(window: Window, long_side: int) -> tuple[int, int]:
    if window.w >= window.h:
        return long_side, max(8, round(long_side * window.h / window.w))
    return max(8, round(long_side * window.w / window.h)), long_side


def _to_view(window: Window, size: tuple[int, int], x: float, y: float) -> tuple[float, float]:
    """Source point -> view pixel coordinates."""
    kx, ky = size[0] / window.w, size[1] / window.h
    c, s = math.cos(math.radians(window.angle)), math.sin(math.radians(window.angle))
    dx, dy = x - window.cx, y - window.cy
    return size[0] / 2 + (c * dx + s * dy) * kx, size[1] / 2 + (-s * dx + c * dy) * ky


def box_in_view(window: Window, size: tuple[int, int], box) -> tuple[float, float, float, float]:
    """Bounding box (x1, y1, x2, y2) of source ``box`` in view pixels, clipped to the view."""
    pts = [_to_view(window, size, x, y) for x, y in ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3]))]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (max(0.0, min(xs)), max(0.0, min(ys)), min(float(size[0]), max(xs)), min(float(size[1]), max(ys)))


# ---------------------------------------------------------------------------------------------------
# rendering


@dataclass(frozen=True)
class ViewSpec:
    name: str
    source: str  # photo or texture name
    landmark: str | None  # the landmark whose R this view is labelled against (None: distractor)
    window: Window
    size: tuple[int, int]
    brightness: float
    contrast: float
    saturation: float
    gains: tuple[float, float, float]
    blur: float  # Gaussian blur radius in output pixels (0: none)
    tint: tuple[float, float, float] | None = None  # for greyscale textures
    visible: float = 0.0
    strong: bool = False


def _render(src: Image.Image, fill: tuple[int, int, int], spec: ViewSpec) -> Image.Image:
    win, (ow, oh) = spec.window, spec.size
    big = (ow * SUPERSAMPLE, oh * SUPERSAMPLE)
    kx, ky = big[0] / win.w, big[1] / win.h
    c, s = math.cos(math.radians(win.angle)), math.sin(math.radians(win.angle))
    a, b, d, e = c / kx, -s / ky, s / kx, c / ky
    coeffs = (a, b, win.cx - a * big[0] / 2 - b * big[1] / 2, d, e, win.cy - d * big[0] / 2 - e * big[1] / 2)
    img = src.transform(big, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR, fillcolor=fill)
    img = img.resize((ow, oh), Image.Resampling.LANCZOS)
    x = np.asarray(img, dtype=np.float32)
    if spec.tint is not None:
        x = x * np.asarray(spec.tint, dtype=np.float32).reshape(1, 1, 3)
    grey = x @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    x = grey[:, :, None] + np.float32(spec.saturation) * (x - grey[:, :, None])
    mean = np.float32(x.mean())
    x = (x - mean) * np.float32(spec.contrast) + mean
    x = x * (np.float32(spec.brightness) * np.asarray(spec.gains, dtype=np.float32).reshape(1, 1, 3))
    img = Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8), "RGB")
    if spec.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(spec.blur))
    return img


# ---------------------------------------------------------------------------------------------------
# sampling


def label_for(v: float, strong: bool = False) -> str | None:
    """easy / hard / junk / None (negative) for visible fraction ``v`` (see the module doc)."""
    if v >= EASY_MIN and not strong:
        return "easy"
    if v >= HARD_MIN:
        return "hard"
    if v > 0:
        return "junk"
    return None


_TARGETS = ("easy", "hard", "junk", "negative")
_TARGET_P = (0.35, 0.30, 0.15, 0.20)
_SCALES = {"easy": (0.5, 1.0), "hard": (0.25, 0.8), "hard-strong": (0.5, 1.0), "junk": (0.15, 0.5), "negative": (0.12, 0.4)}


def _photometric(rng: np.random.Generator, strong: bool) -> dict:
    if strong:
        bright = float(rng.uniform(0.5, 0.65) if rng.random() < 0.5 else rng.uniform(1.35, 1.55))
        return dict(brightness=bright, contrast=float(rng.uniform(0.6, 1.4)), saturation=float(rng.uniform(0.3, 1.6)),
                    gains=tuple(float(g) for g in rng.uniform(0.85, 1.15, 3)))
    return dict(brightness=float(rng.uniform(0.85, 1.15)), contrast=float(rng.uniform(0.85, 1.15)),
                saturation=float(rng.uniform(0.8, 1.2)), gains=tuple(float(g) for g in rng.uniform(0.95, 1.05, 3)))


def _random_window(rng: np.random.Generator, W: int, H: int, scale: tuple[float, float], max_angle: float,
                   min_angle: float = 0.0) -> Window:
    sw = float(rng.uniform(*scale))
    sh = float(np.clip(sw * math.exp(rng.uniform(-0.25, 0.25)), 0.08, 1.0))
    w, h = sw * W, sh * H
    cx, cy = float(rng.uniform(w / 2, W - w / 2)), float(rng.uniform(h / 2, H - h / 2))
    angle = float(rng.uniform(min_angle, max_angle)) * (1 if rng.random() < 0.5 else -1)
    return Window(cx, cy, w, h, angle)


def _long_side(rng: np.random.Generator, long_side: int) -> int:
    return int(round(long_side * rng.uniform(0.8, 1.0)))


def _sample_view(rng, name, photo, size_wh, box, target, long_side, blur_unit) -> ViewSpec:
    """A view of ``photo`` whose label against ``box`` is ``target`` (rejection sampling on v)."""
    W, H = size_wh
    strong = target == "hard" and rng.random() < 0.3
    key = "hard-strong" if strong else target
    window = None
    for _ in range(400):
        window = _random_window(rng, W, H, _SCALES[key], 25.0 if strong else 6.0, 12.0 if strong else 0.0)
        v = visible_fraction(window, box)
        got = label_for(v, strong) or "negative"
        if got == target:
            break
    else:  # constructed fallbacks for the positives; otherwise keep the last sample, labelled by its v
        bw, bh = box[2] - box[0], box[3] - box[1]
        if target == "easy":
            strong, window = False, Window((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, min(W, bw * 1.1), min(H, bh * 1.1), 0.0)
        elif target == "hard":
            strong, window = False, Window(box[0] + bw / 4, (box[1] + box[3]) / 2, bw / 2, bh, 0.0)
    v = visible_fraction(window, box)
    photo_kw = _photometric(rng, strong)
    blur = float(rng.uniform(0.8, 1.6)) * blur_unit if strong else 0.0
    return ViewSpec(name=name, source=photo, landmark=photo, window=window,
                    size=_out_size(window, _long_side(rng, long_side)), blur=blur, visible=round(v, 6),
                    strong=strong, **photo_kw)


def _sample_query(rng, name, photo, size_wh, box, long_side) -> ViewSpec:
    """A view that shows ``box`` fully (all four corners at least 2 px inside the image)."""
    W, H = size_wh
    bw, bh = box[2] - box[0], box[3] - box[1]
    for attempt in range(100):
        w = min(W, bw * float(rng.uniform(1.15, 1.7)))
        h = min(H, bh * float(rng.uniform(1.15, 1.7)))
        lo_x, hi_x = max(w / 2, box[2] - w / 2), min(W - w / 2, box[0] + w / 2)
        lo_y, hi_y = max(h / 2, box[3] - h / 2), min(H - h / 2, box[1] + h / 2)
        angle = float(rng.uniform(-4.0, 4.0)) if attempt < 99 else 0.0
        window = Window(float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)), w, h, angle)
        size = _out_size(window, _long_side(rng, long_side))
        pts = [_to_view(window, size, x, y) for x, y in ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3]))]
        if all(2 <= px <= size[0] - 2 and 2 <= py <= size[1] - 2 for px, py in pts):
            break
    return ViewSpec(name=name, source=photo, landmark=photo, window=window, size=size, blur=0.0,
                    visible=1.0, **_photometric(rng, False))


def _sample_distractor(rng, name, source, size_wh, long_side, grey: bool) -> ViewSpec:
    W, H = size_wh
    window = _random_window(rng, W, H, (0.25, 0.9), 8.0)
    tint = tuple(float(t) for t in rng.uniform(0.6, 1.2, 3)) if grey else None
    return ViewSpec(name=name, source=source, landmark=None, window=window,
                    size=_out_size(window, _long_side(rng, long_side)), blur=0.0, tint=tint,
                    **_photometric(rng, False))


# ---------------------------------------------------------------------------------------------------
# sizes


@dataclass(frozen=True)
class Plan:
    landmarks: int | None  # None: every photo that loads
    db_images: int
    queries_per_landmark: int
    long_side: int
    require_easy_and_hard: bool


PLANS = {
    "smoke": Plan(6, 60, 2, 96, False),
    "demo": Plan(12, 600, 3, 192, True),
    "paper": Plan(None, 5000, 5, 384, True),
}


def plan_for(size: str) -> Plan:
    if size in PLANS:
        return PLANS[size]
    n = parse_count(size)
    return Plan(landmarks=max(2, n // 40), db_images=n,
                queries_per_landmark=2 if n < 200 else 3 if n < 2000 else 5,
                long_side=96 if n <= 200 else 192 if n <= 2000 else 384,
                require_easy_and_hard=n >= 200)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


# ---------------------------------------------------------------------------------------------------
# the generator


@register(NAME, sizes=tuple(PLANS), tracks=("fabric",), format="landmarks", description=(
    "ROxford5k/RParis6k stand-in (revisited gnd pickle + jpg/): views of real packaged photos labelled "
    "easy/hard/junk by the visible fraction of each landmark's object box; texture distractors"))
def generate(out_dir: Path, size: str, seed: int) -> dict:
    plan = plan_for(size)
    out_dir = Path(out_dir)
    (out_dir / "jpg").mkdir(parents=True, exist_ok=True)

    photos = _load(PHOTOS, None if plan.landmarks is None else plan.landmarks + MAX_DISTRACTOR_PHOTOS)
    if len(photos) < 2:
        raise FgrError(f"{NAME}: fewer than two packaged photos load ({[n for n, _ in photos]}); "
                       "check the scikit-image / scikit-learn / matplotlib installation")
    n_lm = len(photos) if plan.landmarks is None else min(plan.landmarks, len(photos))
    landmarks, spare = photos[:n_lm], photos[n_lm:n_lm + MAX_DISTRACTOR_PHOTOS]
    textures = _load(TEXTURES)
    blur_unit = plan.long_side / 192

    sources: dict[str, Image.Image] = {}
    fills: dict[str, tuple[int, int, int]] = {}
    for name, img in landmarks + spare + textures:
        sources[name] = _working(img, plan.long_side)
        fills[name] = tuple(int(round(c)) for c in np.asarray(sources[name], dtype=np.float64).mean(axis=(0, 1)))

    # the object box R of every landmark, in working-image coordinates
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for li, (name, _) in enumerate(landmarks):
        rng = _rng(seed, 1, li)
        W, H = sources[name].size
        fw, fh = rng.uniform(0.4, 0.6, 2)
        x1, y1 = rng.uniform(0.05, 0.95 - fw) * W, rng.uniform(0.05, 0.95 - fh) * H
        boxes[name] = (float(x1), float(y1), float(x1 + fw * W), float(y1 + fh * H))

    distractor_sources = [(n, True) for n, _ in textures] + [(n, False) for n, _ in spare]
    n_distractors = round(DISTRACTOR_FRACTION * plan.db_images) if distractor_sources else 0
    n_views = max(plan.db_images - n_distractors, 2 * n_lm)
    per_lm = [n_views // n_lm + (1 if li < n_views % n_lm else 0) for li in range(n_lm)]

    db: list[ViewSpec] = []
    queries: list[ViewSpec] = []
    for li, (name, _) in enumerate(landmarks):
        rng = _rng(seed, 2, li)
        size_wh, box = sources[name].size, boxes[name]
        for k in range(per_lm[li]):
            target = ("easy", "hard")[k] if k < 2 else _TARGETS[int(rng.choice(4, p=_TARGET_P))]
            db.append(_sample_view(rng, f"{name}_{k:05d}", name, size_wh, box, target, plan.long_side, blur_unit))
        qrng = _rng(seed, 3, li)
        for j in range(plan.queries_per_landmark):
            queries.append(_sample_query(qrng, f"{name}_query_{j:02d}", name, size_wh, box, plan.long_side))
    drng = _rng(seed, 4)
    counters: dict[str, int] = {}
    for k in range(n_distractors):
        src, grey = distractor_sources[k % len(distractor_sources)]
        counters[src] = counters.get(src, 0) + 1
        db.append(_sample_distractor(drng, f"{src}_{counters[src] - 1:05d}", src, sources[src].size, plan.long_side, grey))

    order = _rng(seed, 5).permutation(len(db))
    db = [db[i] for i in order]
    imlist = [v.name for v in db]
    qimlist = [q.name for q in queries]
    assert not set(imlist) & set(qimlist) and len(set(imlist)) == len(imlist)

    labels = {name: {"easy": [], "hard": [], "junk": []} for name, _ in landmarks}
    for i, v in enumerate(db):
        lab = label_for(v.visible, v.strong) if v.landmark else None
        if lab:
            labels[v.landmark][lab].append(i)
    gnd = []
    for q in queries:
        x1, y1, x2, y2 = box_in_view(q.window, q.size, boxes[q.landmark])
        lab = labels[q.landmark]
        gnd.append({"bbx": [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)],
                    "easy": list(lab["easy"]), "hard": list(lab["hard"]), "junk": list(lab["junk"])})
    if plan.require_easy_and_hard:
        for q, g in zip(qimlist, gnd):
            if not g["easy"] or not g["hard"]:
                raise RuntimeError(f"{NAME}: query {q} has no easy or no hard positive (generator bug)")

    def write(spec: ViewSpec) -> None:  # no randomness here: every parameter was drawn above
        img = _render(sources[spec.source], fills[spec.source], spec)
        img.save(out_dir / "jpg" / f"{spec.name}.jpg", "JPEG", **JPEG_SETTINGS)

    workers = min(RENDER_THREADS, os.cpu_count() or 1)
    if workers > 1 and len(db) + len(queries) > 100:  # Pillow releases the GIL while resampling / encoding
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(write, db + queries))
    else:
        for spec in db + queries:
            write(spec)

    with open(out_dir / GND_FILE, "wb") as f:
        pickle.dump({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, f, protocol=4)
    views = {
        "landmarks": {n: {"box": [round(c, 2) for c in boxes[n]], "source_size": list(sources[n].size)} for n, _ in landmarks},
        "db": [{"name": v.name, "source": v.source, "landmark": v.landmark, "visible": v.visible,
                "label": label_for(v.visible, v.strong) if v.landmark else None, "strong": v.strong} for v in db],
        "queries": [{"name": q.name, "landmark": q.landmark} for q in queries],
        "rules": {"easy": f"v >= {EASY_MIN}", "hard": f"{HARD_MIN} <= v < {EASY_MIN} or strong distortion",
                  "junk": f"0 < v < {HARD_MIN}", "negative": "v == 0"},
    }
    (out_dir / VIEWS_FILE).write_text(json.dumps(views, indent=1) + "\n")
    return {
        "db_images": len(imlist),
        "queries": len(qimlist),
        "landmarks": n_lm,
        "easy": sum(len(g["easy"]) for g in gnd),
        "hard": sum(len(g["hard"]) for g in gnd),
        "junk": sum(len(g["junk"]) for g in gnd),
    }
