"""The generator registry and the machinery that runs generators into place.

A generator is a function ``generate(out_dir: Path, size: str, seed: int) -> dict`` registered with
:func:`register`; it writes a complete dataset into ``out_dir`` (which it may assume is empty) and
returns a summary of counts. :func:`synthesize` runs it into a temporary folder and renames it into
place, so a half-written synthetic set is never taken for a complete one.

Each registration also says which tracks use the set and in which reader family's format it is
written (the ``format`` names of :mod:`fgr_utils.data.registry`), so the data registry can list
synthetic and real datasets together. This module imports no generator: the generator modules import
it, and the package ``__init__`` imports them all.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fgr_utils import io
from fgr_utils.errors import DatasetMissing, FgrError
from fgr_utils.paths import data_dir

__all__ = ["MANIFEST", "Generator", "GENERATORS", "register", "generator", "synth_root", "synthesize",
           "require_synth", "generated", "parse_count", "manifest"]

MANIFEST = "synth-manifest.json"


@dataclass(frozen=True)
class Generator:
    """A registered synthetic dataset: its writer, the size presets it knows, and where it fits.

    ``tracks``: the tracks that use the set ("fabric", "sbir", "asfr", "search"); ``format``: the
    reader family that reads it (e.g. "sketches" for the A/B folder layout).
    """

    name: str
    fn: Callable[[Path, str, int], dict]
    sizes: tuple[str, ...]
    description: str
    tracks: tuple[str, ...]
    format: str


GENERATORS: dict[str, Generator] = {}


def register(name: str, *, sizes: tuple[str, ...], description: str, tracks: tuple[str, ...], format: str):
    """Decorator: register ``fn(out_dir, size, seed) -> counts`` as synthetic dataset ``name``."""

    def wrap(fn):
        GENERATORS[name] = Generator(name, fn, tuple(sizes), description, tuple(tracks), format)
        return fn

    return wrap


def generator(name: str) -> Generator:
    if name not in GENERATORS:
        raise FgrError(f"no synthetic dataset called {name!r}; choose one of: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name]


def synth_root(name: str, size: str, seed: int) -> Path:
    return data_dir() / "synth" / name / f"{size}-seed{seed}"


def synthesize(name: str, size: str, seed: int = 0, *, force: bool = False) -> Path:
    """Generate synthetic dataset ``name`` at ``size``/``seed`` (idempotent); return its folder."""
    gen = generator(name)
    if size not in gen.sizes and not _is_count(size):
        raise FgrError(f"size {size!r} is not known for {name}; use one of {', '.join(gen.sizes)} or a count like 500 or 17k")
    dest = synth_root(name, size, seed)
    if (dest / MANIFEST).exists() and not force:
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    counts = gen.fn(tmp, size, seed)
    io.write_json(tmp / MANIFEST, {"name": name, "size": size, "seed": seed, "counts": counts,
                                   "seconds": round(time.perf_counter() - t0, 3)})
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def require_synth(name: str, size: str, seed: int = 0) -> Path:
    """Return the folder of a generated synthetic set, or stop with the command that makes it."""
    dest = synth_root(name, size, seed)
    if not (dest / MANIFEST).exists():
        raise DatasetMissing(
            f"synthetic dataset {name} (size {size}, seed {seed}) is not generated: "
            f"run `fgr data synth {name} --size {size} --seed {seed}`")
    return dest


def generated(name: str) -> list[dict]:
    """Manifests of every generated instance of ``name``."""
    base = data_dir() / "synth" / name
    out = []
    for m in sorted(base.glob(f"*/{MANIFEST}")):
        try:
            out.append(json.loads(m.read_text()))
        except (OSError, ValueError):
            continue
    return out


def parse_count(size: str) -> int:
    """'500' -> 500, '17k' -> 17000, '1.5k' -> 1500, '1m' -> 1000000."""
    s = size.strip().lower()
    mult = 1
    if s.endswith("k"):
        mult, s = 1000, s[:-1]
    elif s.endswith("m"):
        mult, s = 1_000_000, s[:-1]
    try:
        value = float(s) * mult
    except ValueError:
        raise FgrError(f"size {size!r} is neither a preset nor a count like 500 or 17k") from None
    if value <= 0 or value != int(value):
        raise FgrError(f"size {size!r} must be a positive whole count")
    return int(value)


def _is_count(size: str) -> bool:
    try:
        parse_count(size)
        return True
    except FgrError:
        return False


def manifest(root: Path) -> dict:
    """The manifest a generator run wrote (name, size, seed, counts, seconds)."""
    return json.loads((Path(root) / MANIFEST).read_text())
