"""Corrupt and zero-byte images inside a dataset are skipped and listed (issue 8, requirement 3).

Every track's dataset loader leaves unreadable images out in the way its protocol allows, through
one scan (``fgr_utils.data.images.unreadable_images``), and the notebooks list them in metrics.json.
The revisited landmark protocol cannot lose an image: it stops with one line instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import read_json
from PIL import Image

from fgr_utils import cli
from fgr_utils.tracks import asfr, fabric, sbir
from fgr_utils.data import images
from fgr_utils.data.synth import synthesize
from fgr_utils.errors import FgrError


def _break(truncate: Path, empty: Path) -> None:
    """Cut ``truncate`` to a third of its bytes and empty ``empty``."""
    truncate.write_bytes(truncate.read_bytes()[: truncate.stat().st_size // 3])
    empty.write_bytes(b"")


def _reasons(skipped) -> dict[str, str]:
    """``{path: reason}`` from a loader's ``.skipped`` or from metrics.json's ``skipped_images``."""
    pairs = [(s["path"], s["reason"]) if isinstance(s, dict) else s for s in skipped]
    return {str(p): r for p, r in pairs}


def _assert_listed(skipped, truncated: Path, empty: Path) -> None:
    reasons = _reasons(skipped)
    assert set(reasons) == {str(truncated), str(empty)}
    assert "truncated" in reasons[str(truncated)] and "empty" in reasons[str(empty)]


# --------------------------------------------------------------------------------------------
# the shared scan


def test_unreadable_images_names_each_file_once_and_rescans_from_the_cache(tmp_path, monkeypatch):
    paths = [tmp_path / f"{name}.png" for name in ("good", "cut", "empty")]
    for p in paths:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p)
    good, cut, empty = paths
    _break(cut, empty)
    bad = images.unreadable_images([good, cut, empty, cut])
    assert list(bad) == [cut, empty]  # input order, each once
    assert "truncated" in bad[cut] and "empty" in bad[empty]

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(images, "_check_file", no_decoding)
    assert images.unreadable_images([str(p) for p in paths]) == bad  # every verdict from .fgr-scan.json


# --------------------------------------------------------------------------------------------
# the loaders


def test_fabric_loader_drops_unreadable_fabrics_and_query_motifs(isolated_dirs):
    from fgr_utils.data.fabrics import load_fabrics

    raw = load_fabrics(synthesize("sim-fabrics", "smoke", 0))
    queries = raw.queries_of("test")
    train_fabric = raw.fabrics_of("train")[1]
    lost = {raw.fabric(f, "test") for f in queries[0].relevant}  # every fabric relevant to query 0
    for f in lost:
        f.path.write_bytes(f.path.read_bytes()[:300])
    _break(train_fabric.path, queries[1].path)

    loaded = fabric.load_dataset("sim-fabrics", "smoke")
    fs = loaded.items
    reasons = _reasons(loaded.skipped)
    assert set(reasons) == {str(train_fabric.path), str(queries[1].path)} | {str(f.path) for f in lost}
    assert "empty" in reasons[str(queries[1].path)] and "truncated" in reasons[str(train_fabric.path)]
    assert fs.fabric_ids("train") == [f.id for f in raw.fabrics_of("train") if f != train_fabric]
    gone = {f.id for f in lost}
    assert fs.fabric_ids("test") == [f for f in raw.fabric_ids("test") if f not in gone]
    # query 1's motif is unreadable; query 0 has no relevant fabric left: both leave, the others stay
    kept = [q for q in queries[2:] if set(q.relevant) - gone]
    assert fs.query_ids("test") == [q.query_id for q in kept]
    assert any(queries[0].query_id in p and "unreadable" in p for p in fs.problems)
    assert [fs.relevant(q) for q in fs.queries_of("test")] == [set(q.relevant) - gone for q in kept]
    # relevance lists name only fabrics still in the split: a perfect ranking scores 1
    perfect = [sorted(fs.fabric_ids("test"), key=lambda f: f not in fs.relevant(q)) for q in fs.queries_of("test")]
    assert fabric.evaluate_rankings(perfect, fs, "test")["map"] == pytest.approx(1.0)
    sampled = {p for t in fs.sample_triplets("train", "category", 200, 0) for p in t}
    assert train_fabric.path not in sampled
    assert fs.counts()["validation"] == raw.counts()["validation"]  # nothing unreadable there


def test_sketch_loader_drops_unreadable_sketches_and_photos_with_their_sketches(isolated_dirs):
    from fgr_utils.data.sketches import PAIR_PATTERN, load_sketches

    raw = load_sketches(synthesize("sbir-garments", "smoke", 0))
    sketch, photo = raw.sketches("train")[0], raw.photos("test")[1]
    orphans = [s for s, i in raw.pairs("test") if raw.photos("test")[i] == photo]
    _break(sketch, photo)

    loaded = sbir.load_dataset("sbir-garments", "smoke")
    s = loaded.items
    _assert_listed(loaded.skipped, sketch, photo)
    assert s.sketches("train") == [x for x in raw.sketches("train") if x != sketch]
    assert s.photos("train") == raw.photos("train")
    assert s.photos("test") == [p for p in raw.photos("test") if p != photo]  # Acc@k ranks the photos left
    assert orphans and s.sketches("test") == [x for x in raw.sketches("test") if x not in orphans]
    assert set(orphans) <= set(s.unpaired("test"))  # the photo's sketches have nothing to find
    for split in ("train", "test"):  # gallery indices renumbered: every sketch still points at its own photo
        assert all(PAIR_PATTERN.match(x.name).group(1) == s.photos(split)[i].stem for x, i in s.pairs(split))


def test_attribute_loader_drops_every_row_that_names_an_unreadable_image(isolated_dirs):
    from fgr_utils.data.attributes import load_attribute_set, load_triplet_lists

    root = synthesize("asfr-garments", "smoke", 0)
    attrs = load_attribute_set(root, "asfr-garments")
    lists = load_triplet_lists(root / "zappos", root, seed=0)
    before = asfr.load_dataset("asfr-garments", "smoke")
    train_img, test_img = attrs.path("train", 2), attrs.path("test", int(attrs.queries["test"][0, 0]))
    _break(train_img, test_img)
    bad = {train_img, test_img}

    def rows(table, split, paths):  # (path, attr, value) per row
        return sorted((str(paths(split, int(r[0]))), int(r[1]), int(r[2])) for r in table)

    def triplets(table, path):
        return sorted(tuple(str(path(int(i))) for i in r[:3]) + (int(r[3]),) for r in table)

    loaded = asfr.load_dataset("asfr-garments", "smoke")
    data = loaded.items
    _assert_listed(loaded.skipped, train_img, test_img)
    assert before.skipped == [] and data.paths == [p for p in before.items.paths if p not in bad]
    at = lambda split, i: data.paths[i]  # noqa: E731
    for split in ("valid", "test"):
        for kind in ("queries", "candidates"):
            want = [r for r in rows(getattr(attrs, kind)[split], split, attrs.path) if Path(r[0]) not in bad]
            assert rows(getattr(data, kind)[split], split, at) == want
    labels = {(str(attrs.path("train", int(i))), int(a), int(v)) for i, a, v in attrs.train_labels}
    grouped = {(str(data.paths[i]), a, v) for a, vals in data.groups.items() for v, ids in vals.items() for i in ids}
    assert grouped == {r for r in labels if Path(r[0]) not in bad}
    for split in ("val", "test"):
        want = [t for t in triplets(lists.triplets[split], lists.path) if bad.isdisjoint(map(Path, t[:3]))]
        assert triplets(data.zappos[split], data.paths.__getitem__) == want
    assert data.counts["test"]["queries"] == len(data.queries["test"]) < attrs.counts()["test"]["queries"]

    loaded = asfr.load_dataset("asfr-garments", "smoke", protocol="triplets")  # the CSN protocol: triplets only
    csn = loaded.items
    _assert_listed(loaded.skipped, train_img, test_img)
    want = [t for t in triplets(lists.triplets["train"], lists.path) if bad.isdisjoint(map(Path, t[:3]))]
    assert triplets(csn.triplets["train"], csn.paths.__getitem__) == want


def test_an_unreadable_landmark_image_stops_with_one_line(isolated_dirs):
    from fgr_utils.data.landmarks import load_landmarks

    ds = load_landmarks(synthesize("sim-revisited", "smoke", 0))
    db, query = ds.db_paths[3], ds.query_paths[0]
    _break(db, query)
    with pytest.raises(FgrError) as err:
        fabric.load_landmark_set("sim-revisited", "smoke")
    msg = str(err.value)
    assert "\n" not in msg and f"{db.name} (truncated" in msg and f"{query.name} (empty" in msg
    assert "2 image(s) cannot be read" in msg and "indexes every image" in msg
    assert "fgr data synth sim-revisited --size smoke --seed 0 --force" in msg


# --------------------------------------------------------------------------------------------
# the notebooks list what they left out


@pytest.mark.notebook
def test_fabric_notebooks_skip_and_list_unreadable_images(isolated_dirs, capsys):
    from fgr_utils.data.fabrics import load_fabrics

    raw = load_fabrics(synthesize("sim-fabrics", "smoke", 0))
    train_fabric, query = raw.fabrics_of("train")[1], raw.queries_of("test")[1]
    _break(train_fabric.path, query.path)
    for nb in ("10_fabric_global", "11_fabric_rerank"):
        assert cli.main(["run", nb, "--profile", "smoke", "--no-progress"]) == 0
    s1 = read_json(isolated_dirs / "runs/smoke/10_fabric_global/metrics.json")
    s2 = read_json(isolated_dirs / "runs/smoke/11_fabric_rerank/metrics.json")
    for rec in (s1, s2):
        _assert_listed(rec["skipped_images"], train_fabric.path, query.path)
    assert s1["datasets"]["sim-fabrics"]["counts"]["test"]["queries"] == len(raw.queries_of("test")) - 1
    assert s2["metrics"]["stage1/map"] == pytest.approx(s1["metrics"]["stage1/map"])  # the same test set

    # stage 2 reads stage 1's ranking by position: a test image lost after stage 1 ran stops it
    raw.fabrics_of("test")[0].path.write_bytes(b"")
    capsys.readouterr()
    assert cli.main(["run", "11_fabric_rerank", "--profile", "smoke", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "the test split changed since 10_fabric_global ranked it" in err
    assert "run `fgr run 10_fabric_global --profile smoke` first" in err  # which works, as printed:
    assert cli.main(["run", "10_fabric_global", "--profile", "smoke", "--no-progress"]) == 0
    assert cli.main(["run", "11_fabric_rerank", "--profile", "smoke", "--no-progress"]) == 0


@pytest.mark.notebook
def test_sbir_notebook_skips_and_lists_unreadable_images(isolated_dirs):
    from fgr_utils.data.sketches import load_sketches

    raw = load_sketches(synthesize("sbir-garments", "smoke", 0))
    sketch, photo = raw.sketches("train")[0], raw.photos("test")[1]
    _break(sketch, photo)
    assert cli.main(["run", "20_sbir_train", "--profile", "smoke", "--variant", "triplet", "--no-progress"]) == 0
    rec = read_json(isolated_dirs / "runs/smoke/20_sbir_train-triplet/metrics.json")
    _assert_listed(rec["skipped_images"], sketch, photo)
    lost = sum(raw.photos("test")[i] == photo for _, i in raw.pairs("test"))
    assert rec["metrics"]["data/test_photos"] == len(raw.photos("test")) - 1
    assert rec["metrics"]["data/test_sketches"] == len(raw.pairs("test")) - lost
    assert rec["metrics"]["data/train_sketches"] == len(raw.pairs("train")) - 1


@pytest.mark.notebook
def test_asfr_notebook_skips_and_lists_unreadable_images(isolated_dirs):
    from fgr_utils.data.attributes import load_attribute_set

    attrs = load_attribute_set(synthesize("asfr-garments", "smoke", 0), "asfr-garments")
    train_img, test_img = attrs.path("train", 2), attrs.path("test", int(attrs.queries["test"][0, 0]))
    _break(train_img, test_img)
    assert cli.main(["run", "30_asfr_train", "--profile", "smoke", "--variant", "global", "--no-progress"]) == 0
    rec = read_json(isolated_dirs / "runs/smoke/30_asfr_train-global/metrics.json")
    _assert_listed(rec["skipped_images"], train_img, test_img)
    assert rec["datasets"]["asfr-garments"]["counts"]["test"]["queries"] < attrs.counts()["test"]["queries"]
    assert 0.0 <= rec["metrics"]["map/weighted"] <= 1.0
