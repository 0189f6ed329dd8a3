"""A sample figure per dataset family, for the datasets notebook.

Which figure a dataset gets follows its reader family in the registry (``registry.names(format=...)``),
so a newly registered dataset of a known format is drawn like the others of its format.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable

from fgr_utils import viz
from fgr_utils.data import registry
from fgr_utils.data.attributes import load_attribute_set
from fgr_utils.data.images import image_files
from fgr_utils.data.landmarks import load_landmarks
from fgr_utils.data.sketches import AB_FOLDERS, load_sketches


def sample_figure(name: str, root: Path, n: int = 6, seed: int = 0, skip: Iterable[Path] = ()):
    """Show what dataset ``name`` at ``root`` looks like (queries with their boxes for landmark sets).

    ``skip``: image files known to be unreadable (from a scan), never drawn.
    """
    bad = {Path(p) for p in skip}
    if name in registry.names(format="landmarks"):
        return landmark_figure(root, n, seed, bad)
    if name in registry.names(format="sketches"):
        return sketch_figure(name, root, n, seed, bad)
    if name in registry.names(format="attributes"):
        return attribute_figure(name, root, n, seed, bad)
    paths = [p for p in image_files(root) if p not in bad]
    picks = random.Random(seed).sample(paths, min(n, len(paths)))
    return viz.image_grid(picks, titles=[p.name for p in picks], ncols=n, suptitle=f"{name}: random images")


def landmark_figure(root: Path, n: int = 6, seed: int = 0, bad: set[Path] = frozenset()):
    """Row 1: queries with their box; row 2: one query's easy, hard and junk database images."""
    ds = load_landmarks(root)
    n = max(3, n)
    rng = random.Random(seed)
    readable = [i for i in range(len(ds.qimlist)) if ds.query_paths[i] not in bad]
    qs = rng.sample(readable, min(n, len(readable)))
    images = [ds.query_paths[i] for i in qs]
    titles = [f"query {i}" for i in qs]
    boxes: list = [tuple(ds.gnd[i]["bbx"]) for i in qs]
    frames: list = [viz.QUERY] * len(qs)
    g = ds.gnd[qs[0]]
    groups = [("easy", viz.HIT), ("hard", "#fdae61"), ("junk", "#999999")] if ds.protocol == "revisited" \
        else [("ok", viz.HIT), ("junk", "#999999")]
    per = max(1, n // len(groups))
    for key, colour in groups:
        for j in [j for j in g.get(key, []) if ds.db_paths[j] not in bad][:per]:
            images.append(ds.db_paths[j])
            titles.append(f"{key} for query {qs[0]}")
            boxes.append(None)
            frames.append(colour)
    return viz.image_grid(images, titles=titles, boxes=boxes, frames=frames, ncols=len(qs),
                          suptitle=f"{ds.name}: queries (box = region of interest) and labelled database images")


def sketch_figure(name: str, root: Path, n: int = 6, seed: int = 0, bad: set[Path] = frozenset()):
    """Test photos (blue frame), each followed by the sketches drawn from it."""
    sketches = load_sketches(root, name=AB_FOLDERS.get(name))
    photos = sketches.photos("test")
    by_photo: dict[int, list[Path]] = {}
    for path, i in sketches.pairs("test"):
        if path not in bad:
            by_photo.setdefault(i, []).append(path)
    rows = random.Random(seed).sample(sorted(i for i in by_photo if photos[i] not in bad), min(max(2, n // 2), len(by_photo)))
    width = 1 + max(len(by_photo[i]) for i in rows)
    images, titles, frames = [], [], []
    for i in rows:
        cells = [photos[i]] + by_photo[i]
        images += cells + [None] * (width - len(cells))
        titles += [photos[i].stem] + [p.stem for p in by_photo[i]] + [""] * (width - len(cells))
        frames += [viz.QUERY] + [None] * (width - 1)
    return viz.image_grid(images, titles=titles, frames=frames, ncols=width,
                          suptitle=f"{name}: test photos and their sketches")


def attribute_figure(name: str, root: Path, n: int = 6, seed: int = 0, bad: set[Path] = frozenset()):
    """One row per attribute: up to ``n`` train images, as many different values as possible, titled by value."""
    ds = load_attribute_set(root)
    rng = random.Random(seed)
    groups = ds.train_groups()
    images, titles = [], []
    for a, attr in enumerate(ds.attributes):
        pools = {v: [int(i) for i in ids] for v, ids in groups.get(a, {}).items()}
        for ids in pools.values():
            rng.shuffle(ids)
        order = sorted(pools)
        rng.shuffle(order)
        row: list[tuple[Path, int]] = []
        while len(row) < n and any(pools.values()):  # round robin over the values
            for v in order:
                while pools[v] and len(row) < n:
                    p = ds.path("train", pools[v].pop())
                    if p not in bad and p.is_file():
                        row.append((p, v))
                        break
        images += [p for p, _ in row] + [None] * (n - len(row))
        titles += [f"{attr}: {ds.values[attr][v]}" if j == 0 else ds.values[attr][v] for j, (_, v) in enumerate(row)]
        titles += [""] * (n - len(row))
    return viz.image_grid(images, titles=titles, ncols=n,
                          suptitle=f"{name}: train images per attribute (title = labelled value)")
