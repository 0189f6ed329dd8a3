"""Reader for Oxford5k / Paris6k (old protocol) and ROxford5k / RParis6k (revisited protocol).

On-disk layout (as revisitop's ``configdataset()`` and the kit's downloader build it, and as the
``photo-landmarks`` synthetic set writes it)::

    <root>/jpg/<name>.jpg          database and query images
    <root>/gnd_<dataset>.pkl       {"imlist": [...], "qimlist": [...], "gnd": [per-query dict, ...]}

Per-query dicts hold ``ok``, ``junk``, ``bbx`` (old protocol) or ``easy``, ``hard``, ``junk``, ``bbx``
(revisited); index lists are 0-based into ``imlist``; ``bbx = (x1, y1, x2, y2)`` in the query image's
pixels.

Image scaling follows cirtorch's ``ImagesFromList`` with the filter named explicitly
(``Image.Resampling.LANCZOS``; Pillow >= 10 removed ``ANTIALIAS``):

* database image: ``thumbnail((imsize, imsize))``, so the long side is at most ``imsize`` (never upsampled);
* query: remember ``full_max = max(W, H)`` of the uncropped image, crop to ``bbx`` (rounded to ints with
  Python's ``round`` as ``Image.crop`` does, clipped to the image), then
  ``thumbnail`` to ``floor(imsize * max(crop_w, crop_h) / full_max)`` - the same scale factor the
  full image gets, so query and database stay at matching scale.

:meth:`LandmarkSet.preprocessing` returns these choices as a dict to log next to every number.

Unlike the other readers, nothing here leaves an image out: the ground truth indexes ``imlist`` by
position, so removing a database image would change the protocol. :meth:`LandmarkSet.without` (what
:func:`fgr_utils.data.reader.without_unreadable` calls with the unreadable images) stops instead,
naming every unreadable file and ending with :attr:`LandmarkSet.fix`, how to get the set whole again.
"""
from __future__ import annotations

import math
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from fgr_utils import io
from fgr_utils.data.images import load_rgb
from fgr_utils.errors import DatasetMissing, FgrError

__all__ = ["LandmarkSet", "load_landmarks", "preprocessing", "detect_protocol", "REFERENCE_COUNTS", "RESAMPLE"]

RESAMPLE = Image.Resampling.LANCZOS

#: len(imlist) (allowed values) and len(qimlist) of the real datasets (landmarks_protocol.md section 1).
REFERENCE_COUNTS: dict[str, dict[str, tuple[int, ...]]] = {
    "roxford5k": {"imlist": (4993,), "qimlist": (70,)},
    "rparis6k": {"imlist": (6322,), "qimlist": (70,)},
    "oxford5k": {"imlist": (5062, 5063), "qimlist": (55,)},
    "paris6k": {"imlist": (6392,), "qimlist": (55,)},
}

_INDEX_KEYS = ("ok", "easy", "hard", "junk")


def preprocessing(imsize: int | None = 1024, crop: bool = True) -> dict[str, Any]:
    """The preprocessing choices of :meth:`LandmarkSet.db_image` / :meth:`~LandmarkSet.query_image`."""
    if imsize is None:
        db = "full resolution"
        query = "crop to bbx (rounded, clipped to the image), full resolution" if crop else "full resolution"
    else:
        db = "thumbnail: long side <= imsize, never upsampled"
        query = ("crop to bbx (rounded, clipped to the image), then thumbnail: long side <= "
                 "floor(imsize * max(crop_w, crop_h) / max(W, H)) (cirtorch)" if crop
                 else "uncropped, thumbnail: long side <= imsize")
    return {
        "imsize": imsize,
        "crop_query": bool(crop),
        "resample": "LANCZOS",
        "resize_call": "PIL Image.thumbnail (reducing_gap=2.0, the Pillow default)",
        "db_scaling": db,
        "query_scaling": query,
        "exif_orientation": "ignored (pixels as stored)",
    }


def detect_protocol(gnd: list[dict]) -> str:
    """``"revisited"`` when every query has easy and hard lists, ``"old"`` when every query has ok."""
    if not gnd:
        raise FgrError("ground truth has no queries; cannot tell the protocol")
    if all(isinstance(g, dict) and "easy" in g and "hard" in g for g in gnd):
        return "revisited"
    if all(isinstance(g, dict) and "ok" in g for g in gnd):
        return "old"
    keys = sorted(set().union(*(g.keys() for g in gnd if isinstance(g, dict))))
    raise FgrError(f"ground truth per-query keys {keys} match neither the old protocol (ok/junk/bbx) "
                   "nor the revisited one (easy/hard/junk/bbx)")


# what a ground-truth file holds: builtin containers, numbers and numpy arrays
_GND_GLOBALS = io.NUMPY_ARRAY_GLOBALS | {
    ("builtins", n) for n in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "str",
                              "bytes", "bool", "complex", "slice", "range")
} | {("collections", "OrderedDict")} | {
    ("numpy", n) for n in ("int32", "int64", "float32", "float64", "uint8", "uint16", "uint32", "uint64")
} | {("numpy.dtypes", n) for n in ("Int32DType", "Int64DType", "Float32DType", "Float64DType", "UInt8DType")}


def _read_gnd(path: Path) -> dict:
    try:
        data = io.load_pickle(path, _GND_GLOBALS, "a ground-truth file")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as e:
        raise FgrError(f"cannot read ground truth {path}: {' '.join(str(e).split()) or type(e).__name__}; "
                       "download it again") from None
    if not isinstance(data, dict) or not all(k in data for k in ("imlist", "qimlist", "gnd")):
        have = sorted(data.keys()) if isinstance(data, dict) else type(data).__name__
        raise FgrError(f"{path} is not a gnd file: expected a dict with imlist, qimlist and gnd, found {have}")
    return data


def _normalise_query(g: dict) -> dict:
    out = dict(g)
    for k in _INDEX_KEYS:
        if k in out and out[k] is not None:
            out[k] = [int(i) for i in list(out[k])]
    if out.get("bbx") is not None:
        out["bbx"] = [float(v) for v in list(out["bbx"])]
    return out


def _limit(n: int) -> int:
    return max(1, int(n))


@dataclass
class LandmarkSet:
    """One landmark dataset: image lists, per-query ground truth, and cirtorch-style image loading."""

    name: str
    root: Path
    imlist: list[str]
    qimlist: list[str]
    gnd: list[dict]
    protocol: str
    gnd_path: Path | None = None
    ext: str = ".jpg"
    fix: str = ""  # how to get the set whole again (set by the caller), ending the error of :meth:`without`
    _paths: dict = field(default_factory=dict, repr=False)

    # -- paths ---------------------------------------------------------------------------------------
    def path_of(self, name: str) -> Path:
        return self.root / "jpg" / f"{name}{self.ext}"

    @property
    def db_paths(self) -> list[Path]:
        if "db" not in self._paths:
            self._paths["db"] = [self.path_of(n) for n in self.imlist]
        return self._paths["db"]

    @property
    def query_paths(self) -> list[Path]:
        if "q" not in self._paths:
            self._paths["q"] = [self.path_of(n) for n in self.qimlist]
        return self._paths["q"]

    @property
    def n_db(self) -> int:
        return len(self.imlist)

    @property
    def n_queries(self) -> int:
        return len(self.qimlist)

    # -- images --------------------------------------------------------------------------------------
    def db_image(self, i: int, imsize: int | None = 1024) -> Image.Image:
        """Database image ``i`` (RGB), long side at most ``imsize`` (never upsampled; None: full size)."""
        img = load_rgb(self.db_paths[i])
        if imsize is not None:
            img.thumbnail((_limit(imsize), _limit(imsize)), RESAMPLE)
        return img

    def query_box(self, i: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """Query ``i``'s bbx rounded to ints (``round`` as ``Image.crop`` does) and clipped to ``size``."""
        bbx = self.gnd[i].get("bbx")
        if bbx is None or len(bbx) != 4:
            raise FgrError(f"{self.name}: query {i} ({self.qimlist[i]}) has no bbx to crop to")
        w, h = size
        x1, y1, x2, y2 = (int(round(float(v))) for v in bbx)
        x1, x2 = min(max(x1, 0), w), min(max(x2, 0), w)
        y1, y2 = min(max(y1, 0), h), min(max(y2, 0), h)
        if x2 <= x1 or y2 <= y1:
            raise FgrError(f"{self.name}: query {i} ({self.qimlist[i]}) bbx {list(bbx)} is empty inside its "
                           f"{w}x{h} image")
        return x1, y1, x2, y2

    def query_image(self, i: int, imsize: int | None = 1024, crop: bool = True) -> Image.Image:
        """Query ``i`` (RGB), cropped to its bbx and scaled the way cirtorch does (see the module doc).

        The crop gets the scale factor the full image would get: its long side is at most
        ``floor(imsize * max(crop_w, crop_h) / max(W, H))``. ``crop=False`` treats the query like a
        database image; ``imsize=None`` keeps full resolution.
        """
        img = load_rgb(self.query_paths[i])
        full_max = max(img.size)
        if crop:
            img = img.crop(self.query_box(i, img.size))
            if imsize is not None:
                target = _limit(math.floor(imsize * max(img.size) / full_max))
                img.thumbnail((target, target), RESAMPLE)
        elif imsize is not None:
            img.thumbnail((_limit(imsize), _limit(imsize)), RESAMPLE)
        return img

    def preprocessing(self, imsize: int | None = 1024, crop: bool = True) -> dict[str, Any]:
        """:func:`preprocessing` plus the dataset name and protocol, for a run's metrics.json."""
        return {"dataset": self.name, "protocol": self.protocol, **preprocessing(imsize, crop)}

    # -- checks --------------------------------------------------------------------------------------
    def check_counts(self, expected: dict | tuple | None = None, *, check_files: bool = True) -> dict[str, int]:
        """Check list lengths, indices and image files; raise :class:`FgrError` (one line) on a problem.

        Lengths are compared with :data:`REFERENCE_COUNTS` for the four real datasets, or with
        ``expected`` (``{"imlist": n or (n, m), "qimlist": n}`` or ``(n_db, n_queries)``), which wins.
        ``len(gnd)`` must always equal ``len(qimlist)``. Returns the counts found.
        """
        if isinstance(expected, (tuple, list)):
            expected = {"imlist": expected[0], "qimlist": expected[1]}
        ref = expected if expected is not None else REFERENCE_COUNTS.get(self.name.lower())
        found = {"imlist": len(self.imlist), "qimlist": len(self.qimlist), "gnd": len(self.gnd)}
        problems: list[str] = []
        for key in ("imlist", "qimlist"):
            if ref and key in ref and ref[key] is not None:
                allowed = ref[key] if isinstance(ref[key], (tuple, list)) else (ref[key],)
                if found[key] not in allowed:
                    want = " or ".join(str(a) for a in allowed)
                    problems.append(f"{key} has {found[key]} entries, expected {want}")
        if found["gnd"] != found["qimlist"]:
            problems.append(f"gnd has {found['gnd']} entries but qimlist has {found['qimlist']}")
        bad_idx = [(q, k) for q, g in enumerate(self.gnd) for k in _INDEX_KEYS
                   if any(not 0 <= int(j) < found["imlist"] for j in (g.get(k) or ()))]
        if bad_idx:
            q, k = bad_idx[0]
            problems.append(f"{len(bad_idx)} index list(s) point outside imlist (first: query {q} '{k}')")
        if check_files:
            missing = self.missing_files()
            found["missing"] = len(missing)
            if missing:
                problems.append(f"{len(missing)} image file(s) missing under {self.root / 'jpg'}: "
                                f"{io.few(p.name for p in missing)}")
        if problems:
            hint = f" (re-run `fgr data download {self.name}`)" if self.name.lower() in REFERENCE_COUNTS else ""
            raise FgrError(f"{self.name} at {self.root}: " + "; ".join(problems) + hint)
        return found

    def image_paths(self) -> list[Path]:
        """Every database then query image, each once, in list order."""
        return list(dict.fromkeys(self.db_paths + self.query_paths))

    def without(self, bad: Mapping[Path, str]) -> LandmarkSet:
        """The set itself when none of its images is in ``bad`` (path -> reason); else one
        :class:`FgrError` line naming its images in ``bad`` and ending with :attr:`fix`.

        The protocol's index lists point into ``imlist`` by position and its queries are ``qimlist``, so
        no image can be left out as the other readers do: the set must be whole.
        """
        mine = set(self.image_paths())
        bad = {Path(p): r for p, r in bad.items() if Path(p) in mine}
        if not bad:
            return self
        shown = io.few(f"{p.name} ({reason})" for p, reason in bad.items())
        raise FgrError(f"{self.name} at {self.root}: {len(bad)} image(s) cannot be read: {shown}; the "
                       f"{self.protocol} protocol's ground truth indexes every image, so none can be left out"
                       + (f": {self.fix}" if self.fix else ""))

    def missing_files(self) -> list[Path]:
        """Database then query image files that do not exist (in list order, each once)."""
        folder = self.root / "jpg"
        try:
            present = {e.name for e in os.scandir(folder)}
        except OSError:
            present = set()
        seen: set[Path] = set()
        missing = []
        for p in self.db_paths + self.query_paths:
            if p in seen:
                continue
            seen.add(p)
            if p.parent == folder:
                ok = p.name in present
            else:  # a name with sub-folders
                ok = p.is_file()
            if not ok:
                missing.append(p)
        return missing

    def summary(self) -> str:
        return (f"{self.name} ({self.protocol} protocol): {self.n_db} database images, "
                f"{self.n_queries} queries, root {self.root}")


def load_landmarks(root: str | os.PathLike, name: str | None = None) -> LandmarkSet:
    """Read ``<root>/gnd_<name>.pkl`` (or the only ``gnd_*.pkl`` when ``name`` is None).

    The protocol ("old" or "revisited") is detected from the per-query keys. Index lists come back as
    lists of ints and ``bbx`` as four floats. Nothing is checked against the files on disk; call
    :meth:`LandmarkSet.check_counts` for that.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetMissing(f"landmark dataset folder {root} does not exist")
    if name is None:
        found = sorted(root.glob("gnd_*.pkl"))
        if not found:
            raise DatasetMissing(f"no gnd_*.pkl ground-truth file in {root}")
        if len(found) > 1:
            raise FgrError(f"{root} holds {len(found)} ground-truth files ({', '.join(p.name for p in found)}); "
                           "pass name= to choose one")
        gnd_path = found[0]
        name = gnd_path.stem[len("gnd_"):]
    else:
        gnd_path = root / f"gnd_{name}.pkl"
        if not gnd_path.is_file():
            raise DatasetMissing(f"ground-truth file {gnd_path} does not exist")
    data = _read_gnd(gnd_path)
    gnd = [_normalise_query(g) if isinstance(g, dict) else g for g in list(data["gnd"])]
    protocol = detect_protocol(gnd)
    return LandmarkSet(name=name, root=root, imlist=[str(n) for n in data["imlist"]],
                       qimlist=[str(n) for n in data["qimlist"]], gnd=gnd, protocol=protocol,
                       gnd_path=gnd_path)
