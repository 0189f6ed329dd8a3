"""Safe image loading shared by every track.

* :func:`load_rgb` opens a file, decodes it completely and returns an RGB image; transparent images are
  composited onto a fixed background (``"white"``, ``"black"``) or, with ``"raw"``, reduced the way the
  released fabric code did (``convert('RGB')``: alpha dropped, whatever colour is stored under
  transparent pixels shows through — a faithful switch for that defect).
* :func:`scan_images` decodes a list of files once and says which are unreadable (missing, empty,
  truncated, not an image), caching the verdicts per folder in ``.fgr-scan.json`` so that rescanning
  unchanged files costs one ``stat`` each. :func:`unreadable_images` is the form every track's
  dataset loader uses: the unreadable files of a list, each with its reason, to leave out and record.
* :func:`resize` and :func:`to_tensor` are the few transforms every notebook needs; resampling filters
  are always named explicitly (``Image.Resampling.LANCZOS`` for shrinking, ``BICUBIC`` for enlarging;
  the removed ``Image.ANTIALIAS`` is never used).
* :class:`ImageListDataset` is a torch ``Dataset`` over a file list that scans first, exposes what it
  skipped as ``.skipped`` and only ever loads files that scanned ok (torch is imported the first time
  the class is used, so image loading alone stays light).

Decoding is strict: ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is forced to ``False`` while this module
decodes, so a truncated JPEG or PNG is reported instead of being silently padded with grey.
EXIF orientation is not applied (as in cirtorch / revisitop): pixel coordinates such as query boxes
refer to the pixels as stored.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import PIL
from PIL import Image, ImageFile, UnidentifiedImageError

from fgr_utils import io
from fgr_utils.errors import FgrError

__all__ = [
    "CorruptImage", "ScanResult", "ImageListDataset", "IMAGENET_MEAN", "IMAGENET_STD",
    "BACKGROUNDS", "RESIZE_MODES", "RESAMPLE_DOWN", "RESAMPLE_UP", "SCAN_CACHE",
    "IMAGE_SUFFIXES", "image_files", "load_rgb", "decode_rgb", "open_rgb", "scan_images", "unreadable_images",
    "resize", "resample_filter", "to_tensor", "strict_decoding",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Background colours for compositing transparent images; ``"raw"`` means "drop alpha, keep stored RGB".
BACKGROUNDS: dict[str, tuple[int, int, int] | None] = {"white": (255, 255, 255), "black": (0, 0, 0), "raw": None}
RESIZE_MODES = ("squash", "keep_aspect", "short_side")
#: Shrinking uses LANCZOS (sharp, little aliasing); enlarging uses BICUBIC (less ringing than LANCZOS
#: when pixels are magnified). Both are named explicitly so the choice can be logged.
RESAMPLE_DOWN = Image.Resampling.LANCZOS
RESAMPLE_UP = Image.Resampling.BICUBIC
SCAN_CACHE = ".fgr-scan.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_SCAN_CACHE_VERSION = 1
_ON_CORRUPT = ("skip", "stop")


class CorruptImage(FgrError):
    """An image file that cannot be decoded; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = io.one_line(reason)
        super().__init__(f"cannot read image {self.path}: {self.reason}")


# ---------------------------------------------------------------------------------------------------
# strict decoding


_strict_lock = threading.Lock()
_strict_depth = 0
_strict_saved = False


@contextlib.contextmanager
def strict_decoding():
    """Force ``ImageFile.LOAD_TRUNCATED_IMAGES = False`` inside the block (re-entrant, thread-safe).

    The previous value is restored when the outermost block exits.
    """
    global _strict_depth, _strict_saved
    with _strict_lock:
        if _strict_depth == 0:
            _strict_saved = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        _strict_depth += 1
    try:
        yield
    finally:
        with _strict_lock:
            _strict_depth -= 1
            if _strict_depth == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _strict_saved


def _file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an image file, from ``stat`` alone (None when it may be one)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "file does not exist"
    except OSError as e:
        return f"cannot stat file ({e.strerror or e})"
    if not path.is_file():
        return "not a regular file"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


def _decode_error(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file Pillow can identify"
    msg = io.one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError):
        return f"refused as a decompression bomb ({msg})"
    if "truncated" in msg.lower():
        return f"truncated image data ({msg})"
    return f"corrupt image data ({type(exc).__name__}: {msg})"


def _check_file(path: Path) -> str | None:
    """Decode ``path`` completely; return the reason it is unreadable, or None when it is fine.

    Besides a full ``load()`` (which catches truncated JPEG and PNG pixel data) PNG files also get
    ``verify()``, which checks every chunk's CRC up to IEND (a PNG cut after its pixel data loads fine).
    """
    path = Path(path)
    problem = _file_problem(path)
    if problem:
        return problem
    try:
        with strict_decoding():
            with Image.open(path) as im:
                fmt = im.format
                im.load()
                if im.width <= 0 or im.height <= 0:
                    return "image has no pixels"
            if fmt == "PNG":
                with Image.open(path) as im:
                    im.verify()
    except Exception as exc:  # any decoder failure is a verdict about the file, not a crash
        return _decode_error(exc)
    return None


# ---------------------------------------------------------------------------------------------------
# loading


def _check_background(rgba_background: str) -> tuple[int, int, int] | None:
    if rgba_background not in BACKGROUNDS:
        raise FgrError(f"rgba_background must be one of {', '.join(BACKGROUNDS)}, not {rgba_background!r}")
    return BACKGROUNDS[rgba_background]


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)


def _to_8bit_grey(im: Image.Image) -> Image.Image:
    """32-bit integer / 16-bit / float greyscale to 8-bit 'L' (scaled, not clipped)."""
    a = np.asarray(im)
    if im.mode.startswith("I;16") or (im.mode == "I" and a.size and a.max() > 255):
        a = a.astype(np.float64) / 257.0
    elif im.mode == "F":
        a = a.astype(np.float64)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def _as_rgb(im: Image.Image, background: tuple[int, int, int] | None) -> Image.Image:
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        im = _to_8bit_grey(im)
    if _has_alpha(im):
        if background is None:  # "raw": the released code's convert('RGB')
            if im.mode in ("RGBa", "La"):
                im = im.convert("RGBA")
            return im.convert("RGB")
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if im.mode == "1":
        im = im.convert("L")
    return im.convert("RGB")  # a copy when already RGB: independent of the file


def image_files(root: str | os.PathLike) -> list[Path]:
    """Every image file below ``root`` (by suffix, case-insensitive), sorted; hidden files excluded."""
    return sorted(p for p in Path(root).rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def load_rgb(path: str | os.PathLike, *, rgba_background: str = "white") -> Image.Image:
    """Open ``path``, decode it completely and return an RGB image.

    Palette, greyscale (8/16-bit, float) and CMYK images are converted; RGBA / LA / transparent palette
    images are alpha-composited onto ``rgba_background``: ``"white"`` (default), ``"black"``, or
    ``"raw"`` (drop alpha and keep the RGB stored under transparent pixels, as ``convert('RGB')`` in the
    fabric paper's released code). A missing, empty, truncated or non-image file raises
    :class:`CorruptImage` naming the file and the reason.
    """
    background = _check_background(rgba_background)
    path = Path(path)
    problem = _file_problem(path)
    if problem:
        raise CorruptImage(path, problem)
    try:
        with strict_decoding():
            with Image.open(path) as im:
                im.load()
                return _as_rgb(im, background)
    except Exception as exc:
        raise CorruptImage(path, _decode_error(exc)) from None


class BadUpload(FgrError):
    """Bytes sent by a client that are not a decodable image; the message gives the reason only."""


def decode_rgb(data: bytes, *, rgba_background: str = "white") -> Image.Image:
    """Decode image bytes held in memory (an upload) completely, as :func:`load_rgb` decodes a file.

    Empty, truncated and non-image data raise :class:`BadUpload` with the reason; nothing touches the
    file system.
    """
    background = _check_background(rgba_background)
    if not data:
        raise BadUpload("empty upload (0 bytes): send the image file's bytes")
    try:
        with strict_decoding():
            with Image.open(BytesIO(data)) as im:
                im.load()
                return _as_rgb(im, background)
    except Exception as exc:
        raise BadUpload(f"cannot read the uploaded image: {_decode_error(exc)}") from None


def open_rgb(source: Image.Image | str | os.PathLike, *, rgba_background: str = "white") -> Image.Image:
    """``source`` itself when it is an already decoded image (an upload), else :func:`load_rgb` of the path."""
    if isinstance(source, Image.Image):
        return source
    return load_rgb(source, rgba_background=rgba_background)


# ---------------------------------------------------------------------------------------------------
# scanning with a per-folder cache


@dataclass
class ScanResult:
    """What :func:`scan_images` found: readable files (input order) and ``(path, reason)`` for the rest."""

    ok: list[Path] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)
    from_cache: int = 0  # how many verdicts came from ``.fgr-scan.json`` instead of decoding

    def summary(self) -> str:
        return f"{len(self.ok)} readable, {len(self.bad)} unreadable ({self.from_cache} verdicts from cache)"


def _cache_path(folder: str) -> Path:
    return Path(folder) / SCAN_CACHE


def _read_cache(folder: str) -> dict[str, list]:
    try:
        data = json.loads(_cache_path(folder).read_text())
    except (OSError, ValueError):
        return {}
    if (not isinstance(data, dict) or data.get("version") != _SCAN_CACHE_VERSION
            or data.get("pillow") != PIL.__version__ or not isinstance(data.get("files"), dict)):
        return {}
    return data["files"]


def _write_cache(folder: str, updates: dict[str, list]) -> None:
    """Merge ``updates`` into the folder's cache (dropping entries of deleted files); never raises."""
    try:
        files = dict(_read_cache(folder))
        files.update(updates)
        files = {k: v for k, v in files.items() if os.path.isfile(os.path.join(folder, k))}
        payload = {"format": "fgr image scan cache", "version": _SCAN_CACHE_VERSION,
                   "pillow": PIL.__version__, "files": files}
        io.write_text(_cache_path(folder), json.dumps(payload, separators=(",", ":")))
    except OSError:
        pass  # read-only folder (or full disk): scanning still worked, it just is not cached


def scan_images(paths: Iterable[str | os.PathLike], *, on_corrupt: str = "skip", cache: bool = True,
                workers: int = 2) -> ScanResult:
    """Decode every file in ``paths`` and sort them into readable and unreadable.

    ``on_corrupt="skip"`` lists each unreadable file with its reason in ``.bad``; ``"stop"`` raises
    :class:`CorruptImage` for the first one (in input order). Verdicts are cached per folder in
    ``<folder>/.fgr-scan.json`` keyed by file name, size and ``mtime_ns`` (a changed file is decoded
    again); a folder that is not writable is simply not cached. ``workers`` threads decode in parallel.
    """
    if on_corrupt not in _ON_CORRUPT:
        raise FgrError(f"on_corrupt must be one of {', '.join(_ON_CORRUPT)}, not {on_corrupt!r}")
    paths = [Path(p) for p in paths]
    verdicts: list[str | None] = [None] * len(paths)
    keys: list[tuple[str, str, list] | None] = [None] * len(paths)  # (folder, name, [size, mtime_ns])
    caches: dict[str, dict[str, list]] = {}
    todo: list[int] = []
    from_cache = 0
    for i, p in enumerate(paths):
        try:
            st = p.stat()
        except OSError:
            verdicts[i] = _file_problem(p) or "cannot stat file"
            continue
        folder, name = os.path.split(os.path.abspath(p))
        stamp = [st.st_size, st.st_mtime_ns]
        keys[i] = (folder, name, stamp)
        if cache:
            if folder not in caches:
                caches[folder] = _read_cache(folder)
            hit = caches[folder].get(name)
            if isinstance(hit, list) and len(hit) == 3 and hit[:2] == stamp:
                verdicts[i] = hit[2]
                from_cache += 1
                continue
        todo.append(i)

    with strict_decoding():
        if workers > 1 and len(todo) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for i, reason in zip(todo, pool.map(lambda j: _check_file(paths[j]), todo)):
                    verdicts[i] = reason
        else:
            for i in todo:
                verdicts[i] = _check_file(paths[i])

    if cache and todo:
        updates: dict[str, dict[str, list]] = {}
        for i in todo:
            if keys[i] is not None:
                folder, name, stamp = keys[i]
                updates.setdefault(folder, {})[name] = stamp + [verdicts[i]]
        for folder, entries in updates.items():
            _write_cache(folder, entries)

    result = ScanResult(from_cache=from_cache)
    for p, reason in zip(paths, verdicts):
        if reason is None:
            result.ok.append(p)
        else:
            if on_corrupt == "stop":
                raise CorruptImage(p, reason)
            result.bad.append((p, reason))
    return result


def unreadable_images(paths: Iterable[str | os.PathLike], *, workers: int = 2) -> dict[Path, str]:
    """The files of ``paths`` that cannot be decoded, each mapped to its reason (in input order).

    Each file is scanned once however often ``paths`` names it, through :func:`scan_images` and its
    per-folder cache, so loading a dataset a second time costs one ``stat`` per image. A missing file
    is among them (reason ``file does not exist``): loaders that must refuse missing files check for
    them first. The tracks' dataset loaders leave these files out and keep them as ``.skipped`` for
    ``run.skip_images``.
    """
    unique = list(dict.fromkeys(Path(p) for p in paths))
    return dict(scan_images(unique, workers=workers).bad)


# ---------------------------------------------------------------------------------------------------
# transforms


def resample_filter(old_size: tuple[int, int], new_size: tuple[int, int]) -> Image.Resampling:
    """LANCZOS unless both sides grow (then BICUBIC): the kit's one rule, logged by name."""
    if new_size[0] > old_size[0] and new_size[1] > old_size[1]:
        return RESAMPLE_UP
    return RESAMPLE_DOWN


def _resized(img: Image.Image, new_size: tuple[int, int]) -> Image.Image:
    new_size = (max(1, int(new_size[0])), max(1, int(new_size[1])))
    if new_size == img.size:
        return img.copy()
    return img.resize(new_size, resample=resample_filter(img.size, new_size))


def resize(img: Image.Image, size: int | tuple[int, int], mode: str = "squash", *,
           background: str | tuple[int, int, int] = "white") -> Image.Image:
    """Resize ``img``.

    * ``"squash"``: exactly ``size`` (an int for a square, or ``(width, height)``); aspect not kept.
    * ``"keep_aspect"``: long side to ``size``, then padded (centred) to ``size x size`` with
      ``background`` ("white", "black" or an RGB tuple).
    * ``"short_side"``: short side to ``size``, aspect kept (long side rounded).

    Shrinking uses ``Image.Resampling.LANCZOS``; enlarging both sides uses ``BICUBIC`` (see
    :func:`resample_filter`).
    """
    if mode not in RESIZE_MODES:
        raise FgrError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, not {mode!r}")
    w, h = img.size
    if mode == "squash":
        tw, th = (size, size) if isinstance(size, int) else size
        return _resized(img, (tw, th))
    if not isinstance(size, int) or size <= 0:
        raise FgrError(f"resize mode {mode!r} needs one positive int size, not {size!r}")
    if mode == "short_side":
        if w <= h:
            return _resized(img, (size, round(h * size / w)))
        return _resized(img, (round(w * size / h), size))
    # keep_aspect: letterbox
    if w >= h:
        inner = (size, max(1, round(h * size / w)))
    else:
        inner = (max(1, round(w * size / h)), size)
    scaled = _resized(img, inner)
    if isinstance(background, str):
        colour = BACKGROUNDS.get(background)
        if colour is None:
            raise FgrError(f"background must be 'white', 'black' or an RGB tuple, not {background!r}")
    else:
        colour = tuple(int(c) for c in background)
    canvas = Image.new(scaled.mode, (size, size), colour if scaled.mode == "RGB" else colour[0])
    canvas.paste(scaled, ((size - inner[0]) // 2, (size - inner[1]) // 2))
    return canvas


def to_tensor(img, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """RGB image (PIL or HxWx3 uint8 array) -> float32 CHW torch tensor ``(x / 255 - mean) / std``."""
    import torch

    if isinstance(img, Image.Image):
        if img.mode != "RGB":
            img = img.convert("RGB")
        arr = np.asarray(img, dtype=np.float32)
    else:
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        arr = arr.astype(np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise FgrError(f"to_tensor expects an RGB image, got an array of shape {arr.shape}")
    m = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
    s = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
    arr = (arr / 255.0 - m) / s
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


# ---------------------------------------------------------------------------------------------------
# dataset


class _ImageList:
    """A torch ``Dataset`` over image files that never hands a corrupt file to a ``DataLoader``.

    The files are scanned first (:func:`scan_images`, cached). Unreadable ones are left out and listed
    in ``.skipped`` as ``(path, reason)`` (record them in the run's metrics.json); ``.paths`` are the
    files kept and ``.indices`` their positions in the list given. ``dataset[i]`` is
    ``transform(load_rgb(paths[i]))`` (the RGB PIL image when ``transform`` is None). A file that still
    fails at load time raises :class:`CorruptImage` naming it. ``on_corrupt="stop"`` refuses the list
    at the first unreadable file instead.
    """

    def __init__(self, paths: Iterable[str | os.PathLike], transform: Callable | None = None, *,
                 on_corrupt: str = "skip", rgba_background: str = "white", cache: bool = True):
        _check_background(rgba_background)
        given = [Path(p) for p in paths]
        scan = scan_images(given, on_corrupt=on_corrupt, cache=cache)
        bad = {p for p, _ in scan.bad}
        self.indices: list[int] = [i for i, p in enumerate(given) if p not in bad]
        self.paths: list[Path] = [given[i] for i in self.indices]
        self.skipped: list[tuple[Path, str]] = list(scan.bad)
        self.transform = transform
        self.rgba_background = rgba_background

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = load_rgb(self.paths[i], rgba_background=self.rgba_background)
        return self.transform(img) if self.transform is not None else img

    def skipped_records(self) -> list[dict]:
        """``.skipped`` as JSON-ready dicts (``{"path", "reason"}``) for a run's metrics.json."""
        return [{"path": str(p), "reason": r} for p, r in self.skipped]


def _dataset_class() -> type:
    """``ImageListDataset``: :class:`_ImageList` as a ``torch.utils.data.Dataset`` (torch imported on first use)."""
    from torch.utils.data import Dataset

    cls = type("ImageListDataset", (_ImageList, Dataset), {"__doc__": _ImageList.__doc__, "__module__": __name__})
    globals()["ImageListDataset"] = cls
    return cls


def __getattr__(name: str):
    # torch takes about a second to import; modules that only load images should not pay for it
    if name == "ImageListDataset":
        return _dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
