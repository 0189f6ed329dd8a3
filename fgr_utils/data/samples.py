"""A sample figure per dataset family, for the datasets notebook."""
from __future__ import annotations

import random
from pathlib import Path

from fgr_utils import viz

_LANDMARK_SETS = {"photo-landmarks", "oxford5k", "paris6k", "roxford5k", "rparis6k"}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def sample_figure(name: str, root: Path, n: int = 6, seed: int = 0):
    """Show what dataset ``name`` at ``root`` looks like (queries with their boxes for landmark sets)."""
    if name in _LANDMARK_SETS:
        return landmark_figure(root, n, seed)
    paths = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    picks = random.Random(seed).sample(paths, min(n, len(paths)))
    return viz.image_grid(picks, titles=[p.name for p in picks], ncols=n, suptitle=f"{name}: random images")


def landmark_figure(root: Path, n: int = 6, seed: int = 0):
    """Row 1: queries with their box; row 2: one query's easy, hard and junk database images."""
    from fgr_utils.data.landmarks import load_landmarks

    ds = load_landmarks(root)
    n = max(3, n)
    rng = random.Random(seed)
    qs = rng.sample(range(len(ds.qimlist)), min(n, len(ds.qimlist)))
    images = [ds.query_paths[i] for i in qs]
    titles = [f"query {i}" for i in qs]
    boxes: list = [tuple(ds.gnd[i]["bbx"]) for i in qs]
    frames: list = [viz.QUERY] * len(qs)
    g = ds.gnd[qs[0]]
    groups = [("easy", viz.HIT), ("hard", "#fdae61"), ("junk", "#999999")] if ds.protocol == "revisited" \
        else [("ok", viz.HIT), ("junk", "#999999")]
    per = max(1, n // len(groups))
    for key, colour in groups:
        for j in list(g.get(key, []))[:per]:
            images.append(ds.db_paths[j])
            titles.append(f"{key} for query {qs[0]}")
            boxes.append(None)
            frames.append(colour)
    return viz.image_grid(images, titles=titles, boxes=boxes, frames=frames, ncols=len(qs),
                          suptitle=f"{ds.name}: queries (box = region of interest) and labelled database images")
