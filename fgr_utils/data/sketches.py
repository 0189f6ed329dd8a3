"""Sketch–photo pairs for fine-grained SBIR (QMUL-Shoe-V2, QMUL-Chair-V2, Clothes-V1).

Two on-disk forms exist (``shared/reference/fgsbir_arnet.md`` §7):

* the **A/B layout** of the SketchX release, DLI-Net and ARNet::

      <Name>/trainA/<photo>_<k>.png    sketches
      <Name>/trainB/<photo>.png        photos
      <Name>/testA/ , <Name>/testB/

  The folder above ``<Name>`` differs between archives and is not documented, so
  :func:`find_ab_root` searches for the folder that holds the four split folders.

* the **vector-stroke pickle** ``<Name>_Coordinate`` of the Bhunia family (plus a ``photo/`` folder):
  a dict ``{'/train/<id>_<k>': N×3 array (x, y, pen_state), '/test/...': ...}``.
  :func:`coordinates_to_ab` draws every sketch (:func:`rasterize_strokes`) and writes the A/B layout,
  so there is only one reader.

**Pairing.** A sketch ``<photo>_<k>.png`` belongs to the photo ``<photo>``; the kit pairs with the regex
``^(.+)_(\\d+)\\.(png|jpg)$`` (greedy, so ``p_2_3.png`` belongs to ``p_2``; any number of digits in
``k``). ARNet paired with ``glob("<photo>_?.png")``, where ``?`` is exactly one character, and so
silently dropped every sketch with a suffix of two or more digits (``_10``, ``_70``).
``arnet_compat_single_digit=True`` reproduces that filter and keeps the dropped sketches listed
(:meth:`SketchSet.dropped`), so a notebook can show what it does to the test set.

**Gallery order.** The photos of a split, sorted by file name, are the retrieval gallery; a sketch's
label is its photo's index in that list. The release used ``os.listdir`` order, which depends on the
file system; sorting makes labels and tie-breaks reproducible.

The reader checks names and folders, not pixels. :meth:`SketchSet.image_paths` lists what a loader
reads and :meth:`SketchSet.without` leaves images out (what
:func:`fgr_utils.data.reader.without_unreadable` calls with the unreadable ones): a sketch left out
leaves its split; a photo left out leaves the gallery and its sketches become unpaired (they have no
photo to find).
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fgr_utils import io
from fgr_utils.errors import DatasetMissing, FgrError

__all__ = [
    "SPLITS", "SPLIT_FOLDERS", "PAIR_PATTERN", "AB_FOLDERS", "EXPECTED", "ARNET_TEST_SKETCHES",
    "SketchSet", "find_ab_root", "load_sketches",
    "bresenham_line", "rasterize_strokes", "load_coordinates", "coordinates_to_ab", "ensure_ab_layout",
    "convert_download",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
SPLIT_FOLDERS = ("trainA", "trainB", "testA", "testB")
#: ``<photo>_<k>.<ext>``; ``(.+)`` is greedy, so the photo id is everything before the last ``_<digits>``.
PAIR_PATTERN = re.compile(r"^(.+)_(\d+)\.(png|jpg)$", re.IGNORECASE)
_IMAGE_EXT = (".png", ".jpg")

#: Registry name -> the folder that holds trainA/ trainB/ testA/ testB/ in the releases.
AB_FOLDERS = {"shoev2": "ShoeV2", "chairv2": "ChairV2", "clothesv1": "ClothesV1"}

#: Counts of the released files (fgsbir_arnet.md §7), per split and for both splits together.
EXPECTED: dict[str, dict[str, dict[str, int]]] = {
    "clothesv1": {"train": {"sketches": 925, "photos": 380}, "test": {"sketches": 275, "photos": 120}},
    "chairv2": {"train": {"sketches": 952, "photos": 300}, "test": {"sketches": 323, "photos": 100}},
    "shoev2": {"test": {"sketches": 666, "photos": 200}, "total": {"sketches": 6648, "photos": 2000}},
}

#: Test-set sizes implied by ARNet's logs (accuracy × N an integer); not the standard test sets.
ARNET_TEST_SKETCHES: dict[str, tuple[int, ...]] = {"chairv2": (281, 311), "shoev2": (536,)}

_SEARCH_DEPTH = 6  # how far below ``root`` to look for the A/B folder or a coordinate pickle
_SHOW = 6  # how many found paths an error message lists


def _rel(p: Path, base: Path) -> str:
    try:
        rel = p.relative_to(base).as_posix()
    except ValueError:
        return str(p)
    return rel if rel != "." else f"{base.name} (the root itself)"


def _dataset_key(name: str) -> str | None:
    """``shoev2`` for "shoev2", "ShoeV2" or "SHOEV2"; None for an unknown name."""
    low = name.lower()
    if low in AB_FOLDERS:
        return low
    for key, folder in AB_FOLDERS.items():
        if folder.lower() == low:
            return key
    return None


# ---------------------------------------------------------------------------------------------------
# finding the A/B folder


def _walk(root: Path):
    """(folder, depth, sub-folder names) below ``root``: hidden folders and split folders not entered."""
    base = len(root.parts)
    for dirpath, dirnames, _files in os.walk(root):
        here = Path(dirpath)
        depth = len(here.parts) - base
        names = sorted(d for d in dirnames if not d.startswith("."))
        yield here, depth, names
        dirnames[:] = [] if depth >= _SEARCH_DEPTH else [d for d in names if d not in SPLIT_FOLDERS]


def _ab_candidates(root: Path) -> list[tuple[Path, int, frozenset[str]]]:
    """Every folder below ``root`` holding at least one split folder, with its depth and which ones."""
    out = []
    for here, depth, names in _walk(root):
        present = frozenset(names) & frozenset(SPLIT_FOLDERS)
        if present:
            out.append((here, depth, present))
    return out


def _incomplete(path: Path, present: frozenset[str], root: Path) -> FgrError:
    missing = [s for s in SPLIT_FOLDERS if s not in present]
    have = [s for s in SPLIT_FOLDERS if s in present]
    return FgrError(f"{_rel(path, root)} under {root} holds {', '.join(have)} but no {', '.join(missing)} folder; "
                    "the dataset is incomplete: download or extract it again")


def _listing(root: Path) -> str:
    """What a folder holds, two levels deep, for error messages."""
    seen: list[str] = []
    for here, depth, names in _walk(root):
        if depth >= 2:
            continue
        seen += [f"{_rel(here / n, root)}/" for n in names]
        if depth == 0:
            seen += sorted(p.name for p in here.iterdir() if p.is_file() and not p.name.startswith("."))
    return io.few(seen, _SHOW) if seen else "nothing"


def find_ab_root(root: str | os.PathLike, name: str | None = None) -> Path:
    """The folder holding ``trainA/ trainB/ testA/ testB/`` at or below ``root``.

    The releases put that folder at different depths under an undocumented top-level folder, so the
    tree is searched (up to six levels; hidden folders skipped); ``root`` itself may be the A/B folder.
    ``name`` (e.g. ``"ShoeV2"``, compared without regard to case) picks a folder of that name when
    several exist: the shared SketchX zip holds both ShoeV2 and ChairV2. A single A/B folder is taken
    whatever its name (the Clothes-V1 folder name is not documented; a warning is logged when it is not
    ``name``, and :meth:`SketchSet.check_counts` catches a wrong dataset). Without ``name``, a ``root``
    called ``shoev2`` / ``chairv2`` / ``clothesv1`` (the kit's dataset folders) prefers the release's
    folder name. Several A/B folders and none of the wanted name is an error that lists them.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetMissing(f"sketch dataset folder {root} does not exist: run `fgr data download <name>` "
                             "(shoev2, chairv2, clothesv1) or point root at the extracted dataset")
    found = _ab_candidates(root)
    if not found:
        raise DatasetMissing(f"no folder with trainA/ trainB/ testA/ testB/ under {root} (it holds: "
                             f"{_listing(root)}); point root at the extracted dataset, or convert a "
                             "<Name>_Coordinate pickle with coordinates_to_ab")
    if found[0][1] == 0:  # root itself holds split folders: the caller pointed at it
        path, _, present = found[0]
        if len(present) < 4:
            raise _incomplete(path, present, root)
        return path

    complete = [c for c in found if len(c[2]) == 4]
    names = [f"{_rel(p, root)}/" for p, _, _ in complete or found]
    prefer = name
    if prefer is None:
        key = _dataset_key(root.name)
        prefer = AB_FOLDERS[key] if key else None
    if prefer is not None:
        named = [c for c in found if c[0].name.lower() == prefer.lower()]
        if named:
            full = [c for c in named if len(c[2]) == 4]
            if not full:
                raise _incomplete(named[0][0], named[0][2], root)
            top = min(d for _, d, _ in full)
            full = [c for c in full if c[1] == top]
            if len(full) > 1:
                raise FgrError(f"{len(full)} A/B folders called {prefer} under {root} "
                               f"({io.few([_rel(p, root) for p, _, _ in full], _SHOW)}); point root at the one to use")
            return full[0][0]
    if len(complete) == 1:
        if name is not None:
            log.warning("using %s, the only A/B folder under %s, although it is not called %s",
                        _rel(complete[0][0], root), root, name)
        return complete[0][0]
    if len(complete) > 1:
        if name is not None:
            raise FgrError(f"no A/B folder called {name} under {root}; found {io.few(names, _SHOW)}: pass the name of one "
                           "of them")
        raise FgrError(f"{len(complete)} A/B folders under {root} ({io.few(names, _SHOW)}); pass name= to choose one, "
                       "e.g. name='ShoeV2'")
    shallowest = min(found, key=lambda c: (c[1], str(c[0])))
    raise _incomplete(shallowest[0], shallowest[2], root)


# ---------------------------------------------------------------------------------------------------
# the reader


def _image_files(folder: Path) -> list[Path]:
    """``.png`` / ``.jpg`` files of a folder, sorted by name; hidden files (macOS ``._x.png``) left out."""
    return sorted((p for p in folder.iterdir()
                   if p.suffix.lower() in _IMAGE_EXT and not p.name.startswith(".") and p.is_file()),
                  key=lambda p: p.name)


@dataclass
class _Split:
    photos: list[Path]
    pairs: list[tuple[Path, int]]
    dropped: list[Path]
    unpaired: list[Path]

    def without(self, bad: Mapping[Path, str]) -> _Split:
        """This split without the images ``bad``; the sketches of a lost photo become unpaired."""
        kept = [p for p in self.photos if p not in bad]
        index = {p: i for i, p in enumerate(kept)}
        pairs, orphans = [], []
        for sketch, i in self.pairs:
            if sketch in bad:
                continue
            if self.photos[i] in index:
                pairs.append((sketch, index[self.photos[i]]))
            else:
                orphans.append(sketch)
        return _Split(kept, pairs, list(self.dropped), sorted(self.unpaired + orphans, key=lambda p: p.name))


def _read_split(ab: Path, split: str, single_digit: bool) -> _Split:
    photos = _image_files(ab / f"{split}B")
    index: dict[str, int] = {}
    for i, p in enumerate(photos):
        if p.stem in index:
            raise FgrError(f"{ab / f'{split}B'} holds two photos with the id {p.stem!r} "
                           f"({photos[index[p.stem]].name}, {p.name}); remove one so that every sketch has one photo")
        index[p.stem] = i
    pairs: list[tuple[Path, int]] = []
    dropped: list[Path] = []
    unpaired: list[Path] = []
    for s in _image_files(ab / f"{split}A"):
        m = PAIR_PATTERN.match(s.name)
        if m is None or m.group(1) not in index:
            unpaired.append(s)
        elif single_digit and (len(m.group(2)) != 1 or m.group(3) != "png"):
            dropped.append(s)  # glob("<photo>_?.png") would not have matched it
        else:
            pairs.append((s, index[m.group(1)]))
    return _Split(photos, pairs, dropped, unpaired)


@dataclass
class SketchSet:
    """The sketches and photos of one A/B folder, paired; see the module docstring for the rules."""

    root: Path  # the folder holding trainA/ trainB/ testA/ testB/
    name: str  # its folder name (e.g. ShoeV2)
    arnet_compat_single_digit: bool = False
    _splits: dict[str, _Split] = field(default_factory=dict, repr=False)

    def _split(self, split: str) -> _Split:
        if split not in self._splits:
            raise FgrError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return self._splits[split]

    # -- the gallery and the queries ----------------------------------------------------------------
    def photos(self, split: str) -> list[Path]:
        """The gallery: every photo of ``<split>B``, sorted by file name."""
        return list(self._split(split).photos)

    def photo_ids(self, split: str) -> list[str]:
        """Photo ids (file names without extension), in gallery order."""
        return [p.stem for p in self._split(split).photos]

    def pairs(self, split: str) -> list[tuple[Path, int]]:
        """(sketch path, index of its photo in :meth:`photos`), sorted by sketch file name."""
        return list(self._split(split).pairs)

    def sketches(self, split: str) -> list[Path]:
        """The paired sketches, in :meth:`pairs` order."""
        return [s for s, _ in self._split(split).pairs]

    def labels(self, split: str) -> list[int]:
        """Gallery index of each sketch's photo, in :meth:`pairs` order."""
        return [i for _, i in self._split(split).pairs]

    # -- what was left out ---------------------------------------------------------------------------
    def dropped(self, split: str) -> list[Path]:
        """Sketches with a photo that ``arnet_compat_single_digit`` left out (multi-digit suffix); else []."""
        return list(self._split(split).dropped)

    def unpaired(self, split: str) -> list[Path]:
        """Sketch files without a photo: the name is not ``<photo>_<k>``, no such photo is in ``<split>B``,
        or (after :meth:`without`) the photo was left out."""
        return list(self._split(split).unpaired)

    # -- the images a loader reads -------------------------------------------------------------------
    def image_paths(self) -> list[Path]:
        """Every photo and paired sketch, each once: train photos, train sketches, test photos, test
        sketches. Sketches the single-digit filter dropped or that are unpaired are never read."""
        return list(dict.fromkeys(p for split in SPLITS for p in self._split(split).photos + self.sketches(split)))

    def without(self, bad: Mapping[Path, str]) -> SketchSet:
        """This set without the images ``bad`` names (path -> reason; images it does not list are ignored).

        A sketch left out leaves its split. A photo left out leaves the gallery (Acc@k ranks the photos
        that remain) and its sketches join :meth:`unpaired`: with no photo they cannot be asked for it.
        Gallery indices are renumbered. When none of its images is in ``bad``, the set itself is returned.
        """
        bad = {Path(p): r for p, r in bad.items()}
        if not any(p in bad for p in self.image_paths()):
            return self
        splits = {split: self._split(split).without(bad) for split in SPLITS}
        return SketchSet(root=self.root, name=self.name, arnet_compat_single_digit=self.arnet_compat_single_digit,
                         _splits=splits)

    def photos_without_sketch(self, split: str) -> list[Path]:
        """Gallery photos that no kept sketch points to (they stay in the gallery as distractors)."""
        s = self._split(split)
        used = {i for _, i in s.pairs}
        return [p for i, p in enumerate(s.photos) if i not in used]

    # -- counts ----------------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """Per split (and ``total``): photos, sketches (paired and kept), photos without a sketch,
        sketches without a photo, sketches dropped by the single-digit filter."""
        out: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            s = self._split(split)
            out[split] = {"photos": len(s.photos), "sketches": len(s.pairs),
                          "photos_without_sketch": len(self.photos_without_sketch(split)),
                          "unpaired_sketches": len(s.unpaired), "dropped_single_digit": len(s.dropped)}
        out["total"] = {k: sum(out[s][k] for s in SPLITS) for k in out[SPLITS[0]]}
        return out

    @property
    def pairing_rule(self) -> str:
        if self.arnet_compat_single_digit:
            return ("ARNet's glob('<photo>_?.png'): one-character suffixes only, multi-digit ones dropped "
                    "(arnet_compat_single_digit=True)")
        return f"regex {PAIR_PATTERN.pattern} (every numeric suffix)"

    def describe(self) -> str:
        """One line for a notebook's log: counts per split and the pairing rule."""
        c = self.counts()
        parts = []
        for split in SPLITS:
            x = c[split]
            extra = [f"{x[k]} {what}" for k, what in (("dropped_single_digit", "dropped by the single-digit filter"),
                                                       ("unpaired_sketches", "sketches without a photo"),
                                                       ("photos_without_sketch", "photos without a sketch")) if x[k]]
            parts.append(f"{split} {x['sketches']} sketches / {x['photos']} photos"
                         + (f" ({', '.join(extra)})" if extra else ""))
        return (f"{self.name} at {self.root}: " + "; ".join(parts) + f"; pairing: {self.pairing_rule}; "
                "gallery: photos sorted by file name (the release used os.listdir order)")

    def check_counts(self, dataset: str | None = None) -> dict[str, dict[str, int]]:
        """Compare with the released counts (:data:`EXPECTED`); raise one line naming every mismatch.

        ``dataset`` is ``shoev2`` / ``chairv2`` / ``clothesv1`` (or the release folder name); by default
        the A/B folder's name. A test set of the size ARNet's logs imply (Chair 281 or 311, Shoe 536) is
        named as such. Returns :meth:`counts` when everything matches.
        """
        key = _dataset_key(dataset if dataset is not None else self.name)
        if key is None:
            raise FgrError(f"no expected counts for {dataset or self.name!r}; pass one of {', '.join(EXPECTED)}")
        found = self.counts()
        problems = []
        for split, want in EXPECTED[key].items():
            for what, n in want.items():
                have = found[split][what]
                if have == n:
                    continue
                msg = f"{split} has {have} {what}, expected {n}"
                if split == "test" and what == "sketches" and have in ARNET_TEST_SKETCHES.get(key, ()):
                    msg += f" ({have} is the test-set size implied by ARNet's logs, not the standard test set)"
                problems.append(msg)
        if not problems:
            return found
        hints = []
        if found["total"]["dropped_single_digit"]:
            hints.append(f"{found['total']['dropped_single_digit']} sketches were dropped by "
                         "arnet_compat_single_digit=True (load without it to pair every sketch)")
        if found["total"]["unpaired_sketches"]:
            hints.append(f"{found['total']['unpaired_sketches']} sketches have no photo (see .unpaired(split))")
        if not hints:
            hints.append(f"check the files with `fgr data verify {key}` or fetch them again with "
                         f"`fgr data download {key} --force`")
        raise FgrError(f"{key} at {self.root}: " + "; ".join(problems) + " - " + "; ".join(hints))


def load_sketches(root: str | os.PathLike, *, name: str | None = None,
                  arnet_compat_single_digit: bool = False) -> SketchSet:
    """Read and pair the A/B layout found at or below ``root`` (see :func:`find_ab_root` for ``name``).

    All four split folders must exist. ``arnet_compat_single_digit=True`` keeps only the sketches that
    ARNet's ``glob("<photo>_?.png")`` matched. The result is logged (:meth:`SketchSet.describe`).
    """
    ab = find_ab_root(root, name)
    splits = {s: _read_split(ab, s, arnet_compat_single_digit) for s in SPLITS}
    sketch_set = SketchSet(root=ab, name=ab.name, arnet_compat_single_digit=arnet_compat_single_digit, _splits=splits)
    log.info("%s", sketch_set.describe())
    return sketch_set


# ---------------------------------------------------------------------------------------------------
# vector strokes -> PNG


def bresenham_line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """The integer pixels of the segment (x0, y0)-(x1, y1), both ends included, in drawing order.

    The classic error-accumulating form for every octant: at each step move in x, in y, or both,
    whichever keeps the pixel centre closest to the true line. A zero-length segment gives its point.
    """
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x1 > x0 else -1), (1 if y1 > y0 else -1)
    err = dx + dy
    x, y = x0, y0
    out = [(x, y)]
    while (x, y) != (x1, y1):
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x += sx
        if e2 <= dx:
            err += dx
            y += sy
        out.append((x, y))
    return out


def _stroke_array(points: Any) -> np.ndarray:
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise FgrError(f"stroke points are not numbers ({io.one_line(e)}); expected an N×3 array "
                       "(x, y, pen_state)") from None
    if arr.size == 0:
        return np.zeros((0, 3))
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise FgrError(f"stroke points have shape {arr.shape}; expected an N×3 array (x, y, pen_state)")
    if not np.isfinite(arr[:, :3]).all():
        raise FgrError("stroke points hold NaN or infinite values; the coordinate file is damaged")
    return arr[:, :3]


def rasterize_strokes(points: Any, size: int = 256, width: int = 1, *, frame: float = 256.0) -> Image.Image:
    """Draw an N×3 stroke array ``(x, y, pen_state)`` as black strokes on a white ``size``×``size`` image.

    Rows are points in drawing order; ``pen_state == 1`` marks the last point of a stroke, so no line
    joins it to the next point. As the Bhunia-family rasteriser does: coordinates live in a
    ``frame``×``frame`` canvas (256 for ShoeV2/ChairV2) and are scaled by ``size / frame`` and rounded
    (``np.round``), consecutive points of a stroke are joined with Bresenham lines (a one-point stroke
    is a dot), pixels outside the canvas are left out, and the result is binary-dilated ``width`` times
    with the 3×3 cross (1 in the release; 0 keeps one-pixel lines). Two deliberate differences: the
    release also skipped row 0 and column 0, and it returned white strokes on black; the image here is
    inverted (mode ``L``, 0 = stroke, 255 = paper) so converted sketches look like the A/B PNGs.
    """
    if int(size) < 1:
        raise FgrError(f"canvas size must be at least 1 pixel, got {size}")
    if int(width) < 0:
        raise FgrError(f"dilation width must be 0 or more, got {width}")
    if not frame > 0:
        raise FgrError(f"coordinate frame must be positive, got {frame}")
    size, width = int(size), int(width)
    arr = _stroke_array(points)
    canvas = np.zeros((size, size), dtype=bool)
    if len(arr):
        xy = np.round(arr[:, :2] * (size / frame)).astype(np.int64)
        ends = arr[:, 2] == 1
        start = True
        for i in range(len(arr)):
            x, y = int(xy[i, 0]), int(xy[i, 1])
            x0, y0 = (x, y) if start else (int(xy[i - 1, 0]), int(xy[i - 1, 1]))
            for px, py in bresenham_line(x0, y0, x, y):
                if 0 <= px < size and 0 <= py < size:
                    canvas[py, px] = True
            start = bool(ends[i])
    if width and canvas.any():
        from scipy import ndimage

        canvas = ndimage.binary_dilation(canvas, iterations=width)
    return Image.fromarray(np.where(canvas, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------------------
# <Name>_Coordinate pickles


def load_coordinates(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``<Name>_Coordinate`` pickle safely (:func:`fgr_utils.io.load_pickle`: only numpy's
    array-reconstruction globals are resolved): ``{key: N×3 float array}``."""
    path = Path(path)
    try:
        data = io.load_pickle(path, io.NUMPY_ARRAY_GLOBALS, "a coordinate file")
    except FileNotFoundError:
        raise DatasetMissing(f"coordinate file {path} does not exist") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError) as e:
        raise FgrError(f"refusing to read {path} as a coordinate pickle: {io.one_line(e)}; fetch the file again "
                       "(only dicts of numpy arrays are loaded)") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        kind = type(data).__name__
        raise FgrError(f"{path} holds a {kind}, not a dict of '/train|test/<id>_<k>' keys; is it a <Name>_Coordinate "
                       "file?")
    return data


_KEY = re.compile(r"^(train|test)/(?:.*/)?(([^/]+)_(\d+))$")


def _parse_keys(data: dict[str, Any], path: Path) -> list[tuple[str, str, str, Any]]:
    """(split, photo id, sketch stem, points) per key, sorted; malformed or clashing keys are an error."""
    rows, bad, seen = [], [], {}
    for key in sorted(data):
        m = _KEY.match(key.strip("/"))
        if m is None:
            bad.append(repr(key))
            continue
        split, stem, photo = m.group(1), m.group(2), m.group(3)
        if (split, stem) in seen:
            raise FgrError(f"{path}: keys {seen[split, stem]!r} and {key!r} both name the sketch {split}/{stem}; "
                           "the coordinate file is damaged")
        seen[split, stem] = key
        rows.append((split, photo, stem, data[key]))
    if bad:
        raise FgrError(f"{path}: {len(bad)} key(s) are not '/train/<id>_<k>' or '/test/<id>_<k>' ({io.few(bad, 3)}); "
                       "is it a <Name>_Coordinate file?")
    return rows


def coordinates_to_ab(pickle_path: str | os.PathLike, photo_dir: str | os.PathLike, out_root: str | os.PathLike,
                      *, size: int = 256, width: int = 1) -> dict[str, Any]:
    """Write the A/B layout under ``out_root`` from a ``<Name>_Coordinate`` pickle and its photo folder.

    Each key ``'/<split>/<id>_<k>'`` becomes ``<split>A/<id>_<k>.png`` (:func:`rasterize_strokes` with
    ``size`` and ``width``); the photo ``<id>.png`` (or ``.jpg``) of ``photo_dir`` is hard-linked or
    copied into ``<split>B/``. Photos that no key names are not placed in any split (the pickle is the
    only record of the split). A sketch whose photo is missing is still written, so the reader reports
    it as unpaired; it is also listed in the returned summary. ``out_root`` may exist but must not hold
    split folders yet. The four folders are built in a hidden temporary folder and renamed into place,
    so an interrupted run leaves no half-filled split folder behind. Returns
    ``{"train": {"sketches", "photos"}, "test": {...}, "missing_photos": [...], "unused_photos": n,
    "photos_in_both_splits": [...], "out": out_root}``.
    """
    pickle_path, photo_dir, out_root = Path(pickle_path), Path(photo_dir), Path(out_root)
    if not photo_dir.is_dir():
        raise DatasetMissing(f"photo folder {photo_dir} does not exist; it must hold the <id>.png photos named by "
                             f"the keys of {pickle_path.name}")
    rows = _parse_keys(load_coordinates(pickle_path), pickle_path)
    there = [s for s in SPLIT_FOLDERS if os.path.lexists(out_root / s)]
    if there:
        raise FgrError(f"{out_root} already holds {', '.join(there)}; remove {'it' if len(there) == 1 else 'them'} "
                       "or pick another output folder")
    photos: dict[str, Path] = {}
    for p in sorted(_image_files(photo_dir), key=lambda p: p.suffix.lower() != ".png"):
        photos.setdefault(p.stem, p)  # <id>.png first, as the Bhunia loaders open it; <id>.jpg otherwise
    needed: dict[str, set[str]] = {s: set() for s in SPLITS}
    for split, photo, _stem, _pts in rows:
        needed[split].add(photo)

    fresh = not out_root.exists()
    out_root.parent.mkdir(parents=True, exist_ok=True)
    # a plain mkdir (not mkdtemp, which makes 0700 folders): the renamed folder keeps the usual permissions
    tmp = (out_root.parent if fresh else out_root) / f".{out_root.name}.ab-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    missing: set[str] = set()
    try:
        for folder in SPLIT_FOLDERS:
            (tmp / folder).mkdir()
        for split, photo, stem, pts in rows:
            try:
                img = rasterize_strokes(pts, size=size, width=width)
            except FgrError as e:
                raise FgrError(f"{pickle_path}: sketch {split}/{stem}: {e}") from None
            img.save(tmp / f"{split}A" / f"{stem}.png", format="PNG")
        for split in SPLITS:
            for photo in sorted(needed[split]):
                src = photos.get(photo)
                if src is None:
                    missing.add(photo)
                else:
                    io.link_or_copy(src, tmp / f"{split}B" / src.name)
        if fresh:
            os.replace(tmp, out_root)
        else:
            for folder in ("trainB", "testB", "trainA", "testA"):
                os.replace(tmp / folder, out_root / folder)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    summary: dict[str, Any] = {
        s: {"sketches": sum(1 for r in rows if r[0] == s), "photos": len(needed[s] - missing)} for s in SPLITS}
    summary["missing_photos"] = sorted(missing)
    summary["unused_photos"] = len(set(photos) - needed["train"] - needed["test"])
    summary["photos_in_both_splits"] = sorted(needed["train"] & needed["test"])
    summary["out"] = out_root
    log.info("%s -> %s: train %d sketches / %d photos, test %d / %d", pickle_path.name, out_root,
             summary["train"]["sketches"], summary["train"]["photos"], summary["test"]["sketches"],
             summary["test"]["photos"])
    if missing:
        log.warning("%d photo(s) named in %s are not in %s (first: %s); their sketches will be unpaired",
                    len(missing), pickle_path.name, photo_dir, ", ".join(sorted(missing)[:3]))
    return summary


# ---------------------------------------------------------------------------------------------------
# whatever a download holds -> A/B


def _find_coordinate_file(tree: Path, name: str) -> Path | None:
    wanted = {f"{name}_coordinate".lower() + ext for ext in ("", ".pkl", ".pickle")}
    found: list[tuple[int, Path]] = []
    for here, depth, _names in _walk(tree):
        found += [(depth, p) for p in sorted(here.iterdir()) if p.name.lower() in wanted and p.is_file()]
    if not found:
        return None
    top = min(d for d, _ in found)
    best = [p for d, p in found if d == top]
    if len(best) > 1:
        raise FgrError(f"{len(best)} {name}_Coordinate files under {tree} ({io.few([_rel(p, tree) for p in best], _SHOW)}); "
                       "keep one")
    return best[0]


def _find_photo_dir(tree: Path, pickle_path: Path, name: str) -> Path | None:
    """``photo/`` beside the pickle, else the one ``photo/`` folder inside a folder called ``name``."""
    for d in ("photo", "photos"):
        if (pickle_path.parent / d).is_dir():
            return pickle_path.parent / d
    found = [here / d for here, _depth, names in _walk(tree) for d in names
             if d.lower() in ("photo", "photos") and any(part.lower() == name.lower() for part in here.relative_to(tree).parts)]
    if len(found) > 1:
        raise FgrError(f"{len(found)} photo folders for {name} under {tree} ({io.few([_rel(p, tree) for p in found], _SHOW)}); "
                       "keep one")
    return found[0] if found else None


def ensure_ab_layout(tree: str | os.PathLike, name: str, *, size: int = 256, width: int = 1) -> Path:
    """Make sure ``tree`` holds the A/B folder ``name`` (e.g. ``ShoeV2``); return that folder.

    * A/B folders called ``name`` already there (the SketchX zip): used as they are.
    * Else a ``<name>_Coordinate`` pickle with a ``photo/`` folder (Bhunia-family mirrors): converted
      with :func:`coordinates_to_ab` into ``<folder of the photos>/`` when that folder is called
      ``name``, else into ``tree/name/``. The pickle and photos stay where they are.
    * Else a one-line error that lists what the tree holds.
    """
    tree = Path(tree)
    named = [c for c in _ab_candidates(tree) if c[0].name.lower() == name.lower()]
    if named:
        full = [c for c in named if len(c[2]) == 4]
        if not full:
            raise _incomplete(named[0][0], named[0][2], tree)
        return min(full, key=lambda c: (c[1], str(c[0])))[0]
    coords = _find_coordinate_file(tree, name)
    photo_dir = _find_photo_dir(tree, coords, name) if coords is not None else None
    if coords is None or photo_dir is None:
        what = "no A/B folders" + (f" and no photo/ folder beside {_rel(coords, tree)}" if coords else
                                   f" and no {name}_Coordinate file")
        raise FgrError(f"cannot find {name} under {tree}: {what} (it holds: {_listing(tree)}); the mirror's "
                       "layout changed: convert it by hand with fgr_utils.data.sketches.coordinates_to_ab")
    out = photo_dir.parent if photo_dir.parent.name.lower() == name.lower() else tree / name
    coordinates_to_ab(coords, photo_dir, out, size=size, width=width)  # logs missing photos itself
    return out


def convert_download(staging: Path, spec) -> None:
    """Download hook (``DatasetSpec.convert``): turn what a mirror unpacked into the A/B layout."""
    folder = AB_FOLDERS.get(spec.name)
    if folder is None:
        raise FgrError(f"{spec.name}: no A/B folder name is known for it; add it to sketches.AB_FOLDERS")
    ensure_ab_layout(staging, folder)
