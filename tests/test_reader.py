"""The one reader interface: ``image_paths`` / ``without`` on every reader set, one scan in ``without_unreadable``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgr_utils.data.attributes import TripletLists
from fgr_utils.data.landmarks import LandmarkSet
from fgr_utils.data.reader import Dataset, without_unreadable
from fgr_utils.data.sketches import load_sketches
from fgr_utils.errors import FgrError


def _image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
    return path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


@pytest.fixture
def ab(tmp_path) -> Path:
    """An A/B sketch set of real PNGs: train t (sketch t_1), test p and q (sketches p_1, q_1)."""
    root = tmp_path / "ShoeV2"
    for i, rel in enumerate(("trainB/t.png", "trainA/t_1.png", "testB/p.png", "testB/q.png", "testA/p_1.png",
                             "testA/q_1.png")):
        _image(root / rel, i)
    return root


def _lists(ab: Path) -> TripletLists:
    """Triplet lists over images of the sketch set (so the two sets share files)."""
    rows = np.array([[0, 1, 2, 0], [1, 2, 0, 0], [2, 1, 1, 0]], dtype=np.int64)
    return TripletLists(ab, ["testB/q.png", "testB/p.png", "trainB/t.png"], ["class"],
                        {"train": rows, "val": rows[:0], "test": rows[:0]})


def _landmarks(root: Path) -> LandmarkSet:
    for i, name in enumerate(("d0", "d1", "q0")):
        _image(root / "jpg" / f"{name}.jpg", i)
    gnd = [{"easy": [0], "hard": [1], "junk": [], "bbx": [0.0, 0.0, 10.0, 10.0]}]
    return LandmarkSet("toy", root, ["d0", "d1"], ["q0"], gnd, "revisited")


def test_dataset_defaults_to_nothing_skipped(tmp_path):
    a, b = Dataset("x", tmp_path, []), Dataset("y", tmp_path, [])
    assert a.skipped == [] and a.skipped is not b.skipped
    assert Dataset("x", tmp_path, "items", [(tmp_path / "p.png", "empty")]).skipped == [(tmp_path / "p.png", "empty")]


def test_nothing_unreadable_gives_back_the_sets_themselves(ab, tmp_path):
    sketches, lists, landmarks = load_sketches(ab), _lists(ab), _landmarks(tmp_path / "lm")
    out, skipped = without_unreadable(sketches, lists, landmarks)
    assert skipped == [] and out[0] is sketches and out[1] is lists and out[2] is landmarks
    assert without_unreadable() == ([], [])


def test_one_scan_over_the_union_each_image_once_in_order(ab):
    sketches, lists = load_sketches(ab), _lists(ab)
    _truncate(ab / "testB/q.png")
    (ab / "trainA/t_1.png").write_bytes(b"")
    (s, t), skipped = without_unreadable(sketches, lists, workers=1)
    # scan order: train photos, train sketches, test photos, test sketches, then the lists' images (already seen)
    assert [p for p, _ in skipped] == [ab / "trainA/t_1.png", ab / "testB/q.png"]
    assert "empty" in skipped[0][1] and "truncated" in skipped[1][1]
    assert s.sketches("train") == [] and s.photos("test") == [ab / "testB/p.png"]
    assert s.unpaired("test") == [ab / "testA/q_1.png"] and s.pairs("test") == [(ab / "testA/p_1.png", 0)]
    assert t.filenames == ["testB/p.png", "trainB/t.png"]
    assert t.triplets["train"].tolist() == [[1, 0, 0, 0]]  # only (t, p, p) is left, renumbered: p 1 -> 0, t 2 -> 1


def test_a_landmark_set_stops_with_one_line_ending_with_its_fix(ab, tmp_path):
    landmarks = _landmarks(tmp_path / "lm")
    (ab / "testB/q.png").write_bytes(b"")
    sketches = load_sketches(ab)
    (s, lm), skipped = without_unreadable(sketches, landmarks)  # another set's unreadable image: not its business
    assert lm is landmarks and [p for p, _ in skipped] == [ab / "testB/q.png"]
    _truncate(landmarks.db_paths[1])
    landmarks.fix = "generate it again with `fgr data synth toy --force`"
    with pytest.raises(FgrError) as err:
        without_unreadable(landmarks)
    msg = str(err.value)
    assert "\n" not in msg and "1 image(s) cannot be read: d1.jpg (truncated" in msg
    assert "ground truth indexes every image" in msg
    assert msg.endswith(": generate it again with `fgr data synth toy --force`")
