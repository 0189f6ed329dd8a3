"""fgr_utils.data.landmarks (gnd reader, cirtorch scaling, count checks) and the photo-landmarks generator."""
from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgr_utils.data.landmarks import REFERENCE_COUNTS, load_landmarks, preprocessing
from fgr_utils.data.synth import photo_landmarks as pl
from fgr_utils.data.synth import synthesize
from fgr_utils.errors import DatasetMissing, FgrError


def _write_set(root: Path, name: str, images: dict[str, tuple[int, int]], imlist, qimlist, gnd) -> Path:
    (root / "jpg").mkdir(parents=True, exist_ok=True)
    for n, (w, h) in images.items():
        a = (np.arange(w * h * 3) % 251).astype(np.uint8).reshape(h, w, 3)
        Image.fromarray(a).save(root / "jpg" / f"{n}.jpg", quality=90)
    with open(root / f"gnd_{name}.pkl", "wb") as f:
        pickle.dump({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, f)
    return root


@pytest.fixture
def toy(tmp_path):
    """Revisited toy set: query q0 is 1000x800; db images 300x200 (small) and 2000x1000 (large)."""
    images = {"q0": (1000, 800), "q1": (1024, 768), "small": (300, 200), "large": (2000, 1000)}
    gnd = [{"bbx": [99.6, 200.4, 700.4, 499.6], "easy": [1], "hard": [0], "junk": []},
           {"bbx": [100.5, 50.5, 612.5, 306.5], "easy": np.array([0]), "hard": [], "junk": [1]}]
    return load_landmarks(_write_set(tmp_path / "toy", "toy", images, ["small", "large"], ["q0", "q1"], gnd))


def test_load_and_detect(toy, tmp_path):
    assert toy.name == "toy" and toy.protocol == "revisited"
    assert toy.db_paths == [toy.root / "jpg" / "small.jpg", toy.root / "jpg" / "large.jpg"]
    assert toy.query_paths[1].name == "q1.jpg"
    assert toy.gnd[1]["easy"] == [0]  # numpy index arrays come back as lists of ints
    old = _write_set(tmp_path / "old", "oxford5k", {"a": (20, 20)}, ["a"], ["a"],
                     [{"ok": [0], "junk": [], "bbx": [0, 0, 10, 10]}])
    assert load_landmarks(old).protocol == "old" and load_landmarks(old, "oxford5k").name == "oxford5k"


def test_load_errors(tmp_path):
    with pytest.raises(DatasetMissing):
        load_landmarks(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetMissing, match="gnd_"):
        load_landmarks(tmp_path / "empty")
    two = tmp_path / "two"
    for n in ("a", "b"):
        _write_set(two, n, {}, [], ["x"], [{"ok": [], "junk": [], "bbx": [0, 0, 1, 1]}])
    with pytest.raises(FgrError, match="pass name="):
        load_landmarks(two)
    assert load_landmarks(two, "b").name == "b"
    with pytest.raises(DatasetMissing):
        load_landmarks(two, "c")
    bad = _write_set(tmp_path / "weird", "weird", {}, [], ["x"], [{"good": [], "bbx": [0, 0, 1, 1]}])
    with pytest.raises(FgrError, match="neither the old protocol"):
        load_landmarks(bad)
    # the unpickler only accepts what a gnd file holds
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "gnd_evil.pkl").write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [], "x": Path("/")}))
    with pytest.raises(FgrError, match="pathlib"):
        load_landmarks(evil)


def test_query_crop_and_scale(toy):
    # q0: 1000x800, bbx rounds to (100, 200, 700, 500) -> crop 600x300; full_max 1000.
    # imsize 500: limit floor(500 * 600 / 1000) = 300 -> 300x150 (the full image would become 500x400,
    # i.e. the same factor 0.5).
    assert toy.query_box(0, (1000, 800)) == (100, 200, 700, 500)
    assert toy.query_image(0, imsize=500).size == (300, 150)
    assert toy.query_image(0, imsize=1024).size == (600, 300)  # limit 614 > 600: never upsampled
    assert toy.query_image(0, imsize=None).size == (600, 300)
    assert toy.query_image(0, imsize=500, crop=False).size == (500, 400)
    # q1: 1024x768, bbx (100.5, 50.5, 612.5, 306.5) -> round half to even, as Image.crop does:
    # (100, 50, 612, 306) -> 512x256; imsize 512: limit floor(512 * 512 / 1024) = 256 -> 256x128.
    assert toy.query_box(1, (1024, 768)) == (100, 50, 612, 306)
    full = Image.open(toy.query_paths[1]).convert("RGB")
    assert np.array_equal(np.asarray(full.crop(toy.gnd[1]["bbx"])), np.asarray(toy.query_image(1, imsize=None)))
    assert toy.query_image(1, imsize=512).size == (256, 128)
    assert toy.query_image(1, imsize=300).size == (150, 75)  # floor(300 * 512 / 1024) = 150


def test_query_box_is_clipped(toy):
    toy.gnd[0]["bbx"] = [-10.2, -5.0, 2000.0, 900.0]
    assert toy.query_box(0, (1000, 800)) == (0, 0, 1000, 800)
    assert toy.query_image(0, imsize=500).size == (500, 400)  # floor(500 * 1000 / 1000) = 500
    toy.gnd[0]["bbx"] = [1200, 10, 1300, 20]
    with pytest.raises(FgrError, match="empty"):
        toy.query_image(0)


def test_db_image_never_upsamples(toy):
    assert toy.db_image(0, imsize=1024).size == (300, 200)
    assert toy.db_image(1, imsize=1024).size == (1024, 512)
    assert toy.db_image(1, imsize=None).size == (2000, 1000)
    assert toy.db_image(0, imsize=150).size == (150, 100)


def test_preprocessing_record(toy):
    p = toy.preprocessing(1024, True)
    assert p["dataset"] == "toy" and p["protocol"] == "revisited"
    assert p["imsize"] == 1024 and p["crop_query"] is True and p["resample"] == "LANCZOS"
    assert "floor(imsize" in p["query_scaling"]
    assert preprocessing(512, False)["crop_query"] is False
    json.dumps(p)  # loggable as is


def test_check_counts(toy, tmp_path):
    assert toy.check_counts() == {"imlist": 2, "qimlist": 2, "gnd": 2, "missing": 0}
    assert toy.check_counts(expected=(2, 2))["imlist"] == 2
    with pytest.raises(FgrError, match="imlist has 2 entries, expected 5"):
        toy.check_counts(expected={"imlist": 5})

    toy.name = "roxford5k"  # the real dataset's reference counts now apply
    with pytest.raises(FgrError) as err:
        toy.check_counts()
    msg = str(err.value)
    assert "imlist has 2 entries, expected 4993" in msg and "qimlist has 2 entries, expected 70" in msg
    assert "fgr data download roxford5k" in msg and "\n" not in msg
    assert REFERENCE_COUNTS["oxford5k"]["imlist"] == (5062, 5063)

    toy.name = "toy"
    (toy.root / "jpg" / "large.jpg").unlink()
    with pytest.raises(FgrError, match=r"1 image file\(s\) missing .*large.jpg"):
        toy.check_counts()
    toy.gnd.append({"easy": [], "hard": [7], "junk": []})
    with pytest.raises(FgrError) as err:
        toy.check_counts(check_files=False)
    assert "gnd has 3 entries but qimlist has 2" in str(err.value) and "outside imlist" in str(err.value)


def test_check_counts_lists_first_missing(tmp_path):
    names = [f"im{i:02d}" for i in range(12)]
    ls = load_landmarks(_write_set(tmp_path / "m", "m", {"im00": (8, 8)}, names, ["im00"],
                                   [{"easy": [0], "hard": [], "junk": [], "bbx": [0, 0, 4, 4]}]))
    with pytest.raises(FgrError, match=r"11 image file\(s\) missing .*im01.jpg, im02.jpg, im03.jpg, im04.jpg, im05.jpg and 6 more"):
        ls.check_counts()


# ----------------------------------------------------------------------------------------------- generator


def test_image_paths_are_database_then_queries_each_once(toy, tmp_path):
    assert toy.image_paths() == toy.db_paths + toy.query_paths
    old = load_landmarks(_write_set(tmp_path / "old", "oxford5k", {"a": (20, 20), "b": (20, 20)}, ["a", "b"], ["b"],
                                    [{"ok": [1], "junk": [], "bbx": [0, 0, 10, 10]}]))
    assert [p.name for p in old.image_paths()] == ["a.jpg", "b.jpg"]  # the old protocol's queries are in imlist


def test_without_raises_one_line_naming_the_file_and_ending_with_the_fix(toy, tmp_path):
    assert toy.fix == "" and toy.without({}) is toy
    assert toy.without({tmp_path / "jpg" / "other.jpg": "empty file (0 bytes)"}) is toy  # not one of its images
    toy.fix = "generate it again with `fgr data synth toy --force`"
    with pytest.raises(FgrError) as err:
        toy.without({toy.db_paths[1]: "truncated image data", tmp_path / "elsewhere.jpg": "empty file (0 bytes)"})
    msg = str(err.value)
    assert msg == (f"toy at {toy.root}: 1 image(s) cannot be read: large.jpg (truncated image data); the revisited "
                   "protocol's ground truth indexes every image, so none can be left out: "
                   "generate it again with `fgr data synth toy --force`")
    toy.fix = ""
    with pytest.raises(FgrError) as err:
        toy.without({toy.query_paths[0]: "empty file (0 bytes)"})
    assert "\n" not in str(err.value) and str(err.value).endswith("q0.jpg (empty file (0 bytes)); the revisited "
                                                                  "protocol's ground truth indexes every image, so "
                                                                  "none can be left out")


def test_visible_fraction_geometry():
    box = (10.0, 10.0, 30.0, 20.0)
    assert pl.visible_fraction(pl.Window(20, 15, 20, 10, 0), box) == pytest.approx(1.0)
    assert pl.visible_fraction(pl.Window(15, 15, 10, 10, 0), box) == pytest.approx(0.5)
    assert pl.visible_fraction(pl.Window(100, 100, 10, 10, 30), box) == 0.0
    assert pl.visible_fraction(pl.Window(20, 15, 100, 100, 45), box) == pytest.approx(1.0)
    # a square of side 10 rotated 45 degrees centred on the box's corner (10, 10): a quarter inside
    assert pl.visible_fraction(pl.Window(10, 10, 10, 10, 45), box) == pytest.approx(0.25 * 100 / 200)
    assert [pl.label_for(v) for v in (1.0, 0.7, 0.69, 0.25, 0.2, 0.0)] == ["easy", "easy", "hard", "hard", "junk", None]
    assert pl.label_for(0.9, strong=True) == "hard"


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "jpg").iterdir())} | {
        "gnd": (folder / pl.GND_FILE).read_bytes()}


def test_photo_landmarks_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("FGR_DATA_DIR", str(tmp_path))
    t0 = time.perf_counter()
    root = synthesize("photo-landmarks", "smoke", seed=0)
    assert time.perf_counter() - t0 < 5
    ls = load_landmarks(root)
    assert ls.name == "photo-landmarks" and ls.protocol == "revisited"
    manifest = json.loads((root / "synth-manifest.json").read_text())["counts"]
    assert manifest["db_images"] == ls.n_db == 60 and manifest["queries"] == ls.n_queries == 12
    assert manifest["landmarks"] == 6
    assert manifest["easy"] == sum(len(g["easy"]) for g in ls.gnd)
    assert ls.check_counts(expected=(60, 12))["missing"] == 0
    assert not set(ls.qimlist) & set(ls.imlist)  # revisited: queries are not in the database

    views = json.loads((root / pl.VIEWS_FILE).read_text())["db"]
    assert [v["name"] for v in views] == ls.imlist
    for q, g in enumerate(ls.gnd):
        easy, hard, junk = set(g["easy"]), set(g["hard"]), set(g["junk"])
        assert not (easy & hard or easy & junk or hard & junk)
        assert all(0 <= i < ls.n_db for i in easy | hard | junk)
        assert easy and hard
        for i in easy:
            assert views[i]["visible"] >= 0.7
        for i in hard:
            assert views[i]["visible"] >= 0.25 and (views[i]["visible"] < 0.7 or views[i]["strong"])
        for i in junk:
            assert 0 < views[i]["visible"] < 0.25
        w, h = Image.open(ls.query_paths[q]).size
        x1, y1, x2, y2 = g["bbx"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert (x2 - x1) * (y2 - y1) < w * h  # the box is a part of the query, not all of it
        crop = ls.query_image(q, imsize=64)
        assert max(crop.size) <= 64
    assert any(v["label"] is None and v["landmark"] for v in views)  # same photo, R missed: a negative
    assert any(v["landmark"] is None for v in views)  # texture / other-photo distractors
    assert max(ls.db_image(0, imsize=1024).size) <= 96


def test_photo_landmarks_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("FGR_DATA_DIR", str(tmp_path))
    first = _tree_bytes(synthesize("photo-landmarks", "smoke", seed=0))
    gnd_first = load_landmarks(synthesize("photo-landmarks", "smoke", seed=0)).gnd
    again_root = synthesize("photo-landmarks", "smoke", seed=0, force=True)
    assert _tree_bytes(again_root) == first
    assert load_landmarks(again_root).gnd == gnd_first
    other = _tree_bytes(synthesize("photo-landmarks", "smoke", seed=1))
    assert other["gnd"] != first["gnd"]
    assert any(other.get(k) != v for k, v in first.items() if k != "gnd")


def test_photo_landmarks_count_size_has_easy_and_hard(tmp_path, monkeypatch):
    monkeypatch.setenv("FGR_DATA_DIR", str(tmp_path))
    root = synthesize("photo-landmarks", "200", seed=3)
    ls = load_landmarks(root)
    assert 190 <= ls.n_db <= 210 and ls.n_queries == 5 * 3
    assert all(g["easy"] and g["hard"] for g in ls.gnd)
    # rendering in threads (used above: more than 100 images) gives the same bytes as rendering serially
    threaded = _tree_bytes(root)
    monkeypatch.setattr(pl, "RENDER_THREADS", 1)
    assert _tree_bytes(synthesize("photo-landmarks", "200", seed=3, force=True)) == threaded
    assert pl.plan_for("200").require_easy_and_hard and not pl.plan_for("smoke").require_easy_and_hard
    assert pl.plan_for("paper").landmarks is None and pl.PLANS["demo"].landmarks == 12
