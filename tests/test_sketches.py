"""The A/B sketch–photo reader, the stroke rasteriser and the coordinate-pickle converter."""
from __future__ import annotations

import io
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgr_utils.data import sketches as sk
from fgr_utils.errors import DatasetMissing, FgrError


def touch(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def make_ab(root: Path, train_a=(), train_b=(), test_a=(), test_b=()) -> Path:
    for split, names in (("trainA", train_a), ("trainB", train_b), ("testA", test_a), ("testB", test_b)):
        touch(root / split, names)
    return root


def names(paths) -> list[str]:
    return [p.name for p in paths]


TEST_B = ["p1.png", "p_2.png", "p3.png"]
TEST_A = ["p1_1.png", "p1_10.png", "p1_70.png", "p_2_3.png", "p3_2.png"]


# ------------------------------------------------------------------------------------------
# pairing
# ------------------------------------------------------------------------------------------


def test_pairing_allows_multi_digit_suffixes(tmp_path):
    ab = make_ab(tmp_path / "ShoeV2", ["t_1.png"], ["t.png"], TEST_A, TEST_B)
    s = sk.load_sketches(ab)
    assert s.root == ab and s.name == "ShoeV2"
    assert s.photo_ids("test") == ["p1", "p3", "p_2"]  # sorted by file name
    pairs = [(p.name, i) for p, i in s.pairs("test")]
    assert pairs == [("p1_1.png", 0), ("p1_10.png", 0), ("p1_70.png", 0), ("p3_2.png", 1), ("p_2_3.png", 2)]
    assert names(s.sketches("test")) == [p for p, _ in pairs] and s.labels("test") == [0, 0, 0, 1, 2]
    assert s.dropped("test") == [] and s.unpaired("test") == []
    assert s.counts()["test"] == {"photos": 3, "sketches": 5, "photos_without_sketch": 0, "unpaired_sketches": 0,
                                  "dropped_single_digit": 0}
    assert s.counts()["total"]["sketches"] == 6
    line = s.describe()
    assert "\n" not in line and "test 5 sketches / 3 photos" in line and sk.PAIR_PATTERN.pattern in line
    assert "sorted by file name" in line


def test_single_digit_switch_drops_exactly_the_multi_digit_sketches(tmp_path):
    ab = make_ab(tmp_path / "ChairV2", ["t_1.png", "t_12.png"], ["t.png"], TEST_A + ["p3_4.jpg"], TEST_B)
    full = sk.load_sketches(ab)
    compat = sk.load_sketches(ab, arnet_compat_single_digit=True)
    assert names(compat.sketches("test")) == ["p1_1.png", "p3_2.png", "p_2_3.png"]
    # glob("<photo>_?.png") matched neither two-digit suffixes nor .jpg files
    assert names(compat.dropped("test")) == ["p1_10.png", "p1_70.png", "p3_4.jpg"]
    assert names(compat.dropped("train")) == ["t_12.png"]
    assert set(compat.sketches("test")) | set(compat.dropped("test")) == set(full.sketches("test"))
    assert compat.photos("test") == full.photos("test")  # the gallery is unchanged
    c = compat.counts()
    assert c["test"]["sketches"] == 3 and c["test"]["dropped_single_digit"] == 3
    assert c["total"]["dropped_single_digit"] == 4
    assert "arnet_compat_single_digit=True" in compat.describe() and "3 dropped" in compat.describe()
    assert full.counts()["test"]["dropped_single_digit"] == 0


def test_gallery_order_does_not_depend_on_creation_order(tmp_path):
    photos = [f"{c}{i}.png" for c in "zbya" for i in (3, 1, 20)]
    sketches = [n.replace(".png", f"_{k}.png") for n in photos for k in (2, 1)]
    sets = []
    for seed in (0, 1):
        order = photos[:]
        random.Random(seed).shuffle(order)
        ab = tmp_path / f"copy{seed}" / "ShoeV2"
        touch(ab / "testB", order)
        touch(ab / "testA", random.Random(seed + 7).sample(sketches, len(sketches)))
        touch(ab / "trainA", [])
        touch(ab / "trainB", [])
        sets.append(sk.load_sketches(ab))
    a, b = sets
    assert a.photo_ids("test") == sorted(p[:-4] for p in photos)
    assert [(p.name, i) for p, i in a.pairs("test")] == [(p.name, i) for p, i in b.pairs("test")]
    assert all(a.photo_ids("test")[i] == p.name.rsplit("_", 1)[0] for p, i in a.pairs("test"))


def test_sketches_without_photo_and_photos_without_sketch_are_reported(tmp_path):
    ab = make_ab(tmp_path / "X", [], [], ["p1_1.png", "ghost_1.png", "nosuffix.png", "p1_x.png", ".p1_2.png",
                                         "notes.txt"], ["p1.png", "lonely.jpg"])
    s = sk.load_sketches(ab)
    assert names(s.sketches("test")) == ["p1_1.png"]
    assert names(s.unpaired("test")) == ["ghost_1.png", "nosuffix.png", "p1_x.png"]  # hidden and .txt ignored
    assert names(s.photos_without_sketch("test")) == ["lonely.jpg"]
    c = s.counts()["test"]
    assert (c["unpaired_sketches"], c["photos_without_sketch"], c["photos"]) == (3, 1, 2)
    assert "3 sketches without a photo" in s.describe() and "1 photos without a sketch" in s.describe()


def test_two_photos_with_one_id_are_an_error(tmp_path):
    ab = make_ab(tmp_path / "X", [], [], ["p1_1.png"], ["p1.png", "p1.jpg"])
    with pytest.raises(FgrError, match="two photos with the id 'p1'"):
        sk.load_sketches(ab)


def test_unknown_split_is_an_error(tmp_path):
    s = sk.load_sketches(make_ab(tmp_path / "X", [], [], [], []))
    with pytest.raises(FgrError, match="unknown split 'val'"):
        s.photos("val")


# ------------------------------------------------------------------------------------------
# leaving images out (SketchSet.without)
# ------------------------------------------------------------------------------------------


def test_image_paths_are_photos_then_paired_sketches_split_by_split(tmp_path):
    ab = make_ab(tmp_path / "ChairV2", ["t_1.png", "t_12.png", "ghost_1.png"], ["t.png"], TEST_A, TEST_B)
    s = sk.load_sketches(ab, arnet_compat_single_digit=True)
    assert s.image_paths() == s.photos("train") + s.sketches("train") + s.photos("test") + s.sketches("test")
    assert names(s.image_paths()) == ["t.png", "t_1.png", "p1.png", "p3.png", "p_2.png", "p1_1.png", "p3_2.png",
                                      "p_2_3.png"]  # dropped (t_12, p1_10, p1_70) and unpaired (ghost_1) are never read
    assert s.without({}) is s and s.without({tmp_path / "other.png": "empty file (0 bytes)"}) is s


def test_an_unreadable_photo_makes_its_sketches_unpaired_and_renumbers_the_gallery(tmp_path):
    ab = make_ab(tmp_path / "ShoeV2", ["t_1.png", "u_1.png"], ["t.png", "u.png"], TEST_A, TEST_B)
    s = sk.load_sketches(ab)
    out = s.without({ab / "testB" / "p3.png": "truncated image data",
                     ab / "testA" / "p1_10.png": "empty file (0 bytes)", ab / "trainA" / "u_1.png": "not an image"})
    assert names(out.photos("test")) == ["p1.png", "p_2.png"]
    assert [(p.name, i) for p, i in out.pairs("test")] == [("p1_1.png", 0), ("p1_70.png", 0), ("p_2_3.png", 1)]
    assert names(out.unpaired("test")) == ["p3_2.png"]  # its photo left: nothing to find
    assert names(out.photos("train")) == ["t.png", "u.png"] and names(out.sketches("train")) == ["t_1.png"]
    assert names(out.photos_without_sketch("train")) == ["u.png"]  # a photo whose sketch left stays a distractor
    assert (out.root, out.name, out.arnet_compat_single_digit) == (s.root, s.name, s.arnet_compat_single_digit)
    assert out.counts()["test"] == {"photos": 2, "sketches": 3, "photos_without_sketch": 0, "unpaired_sketches": 1,
                                    "dropped_single_digit": 0}
    assert len(s.pairs("test")) == 5 and len(s.photos("test")) == 3  # the set itself is unchanged


def test_without_keeps_the_single_digit_filter_and_its_dropped_sketches(tmp_path):
    ab = make_ab(tmp_path / "ChairV2", [], [], TEST_A, TEST_B)
    s = sk.load_sketches(ab, arnet_compat_single_digit=True)
    out = s.without({ab / "testB" / "p1.png": "truncated image data"})
    assert names(out.dropped("test")) == ["p1_10.png", "p1_70.png"] and out.arnet_compat_single_digit
    assert names(out.unpaired("test")) == ["p1_1.png"]
    assert [(p.name, i) for p, i in out.pairs("test")] == [("p3_2.png", 0), ("p_2_3.png", 1)]


# ------------------------------------------------------------------------------------------
# finding the A/B folder
# ------------------------------------------------------------------------------------------


def test_find_ab_root_below_an_undocumented_top_folder(tmp_path):
    ab = make_ab(tmp_path / "download" / "sketchx_release_2019" / "ShoeV2", ["a_1.png"], ["a.png"])
    (tmp_path / "download" / "readme.txt").write_text("x")
    assert sk.find_ab_root(tmp_path / "download") == ab
    assert sk.find_ab_root(ab) == ab  # pointing at it works too
    assert sk.load_sketches(tmp_path / "download").counts()["train"]["sketches"] == 1


def test_find_ab_root_with_two_candidates(tmp_path):
    root = tmp_path / "shoev2"
    shoe = make_ab(root / "top" / "ShoeV2")
    chair = make_ab(root / "top" / "ChairV2")
    assert sk.find_ab_root(root, "ShoeV2") == shoe
    assert sk.find_ab_root(root, "chairv2") == chair  # case does not matter
    assert sk.find_ab_root(root) == shoe  # the kit's folder name shoev2 prefers ShoeV2
    other = tmp_path / "elsewhere"
    (other).symlink_to(root, target_is_directory=True)
    with pytest.raises(FgrError) as err:
        sk.find_ab_root(other)
    msg = str(err.value)
    assert "2 A/B folders" in msg and "top/ShoeV2/" in msg and "top/ChairV2/" in msg and "name=" in msg
    with pytest.raises(FgrError) as err:
        sk.find_ab_root(root, "ClothesV1")
    assert "no A/B folder called ClothesV1" in str(err.value) and "top/ChairV2/" in str(err.value)


def test_a_single_ab_folder_is_used_whatever_its_name(tmp_path, caplog):
    # the Clothes-V1 Drive folder's name is not documented
    ab = make_ab(tmp_path / "clothesv1" / "HNU-Clothes-V1")
    with caplog.at_level("WARNING", logger="fgr_utils.data.sketches"):
        assert sk.find_ab_root(tmp_path / "clothesv1", "ClothesV1") == ab
    assert "not called ClothesV1" in caplog.text
    make_ab(tmp_path / "clothesv1" / "ShoeV2")
    with pytest.raises(FgrError, match="no A/B folder called ClothesV1"):
        sk.find_ab_root(tmp_path / "clothesv1", "ClothesV1")


def test_missing_split_folder_is_a_one_line_error(tmp_path):
    ab = tmp_path / "data" / "ShoeV2"
    for split in ("trainA", "trainB", "testA"):
        (ab / split).mkdir(parents=True)
    with pytest.raises(FgrError) as err:
        sk.load_sketches(tmp_path / "data")
    msg = str(err.value)
    assert "\n" not in msg and "no testB folder" in msg and "ShoeV2" in msg
    with pytest.raises(FgrError, match="no testB folder"):
        sk.load_sketches(ab)


def test_no_ab_folder_lists_what_was_found(tmp_path):
    (tmp_path / "ds" / "Dataset" / "photo").mkdir(parents=True)
    (tmp_path / "ds" / "notes.md").write_text("x")
    with pytest.raises(DatasetMissing) as err:
        sk.find_ab_root(tmp_path / "ds")
    msg = str(err.value)
    assert "no folder with trainA/" in msg and "Dataset/" in msg and "Dataset/photo/" in msg and "notes.md" in msg
    with pytest.raises(DatasetMissing, match="does not exist"):
        sk.load_sketches(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------
# expected counts
# ------------------------------------------------------------------------------------------


def counted_set(root: Path, per_split: dict[str, tuple[int, int]], multi_digit: dict[str, int] | None = None) -> Path:
    """Empty files: ``per_split[split] = (sketches, photos)``; sketches spread over the photos, and the
    first ``multi_digit[split]`` of them given two-digit suffixes."""
    for split, (n_sketch, n_photo) in per_split.items():
        photos = [f"{split}{i:04d}" for i in range(n_photo)]
        touch(root / f"{split}B", [f"{p}.png" for p in photos])
        n_multi = (multi_digit or {}).get(split, 0)
        sketch_names = [f"{photos[j % n_photo]}_{(j // n_photo) + (10 if j < n_multi else 1)}.png"
                        for j in range(n_sketch)]
        touch(root / f"{split}A", sketch_names)
    return root


def test_check_counts_is_silent_on_the_released_clothes_counts(tmp_path):
    ab = counted_set(tmp_path / "ClothesV1", {"train": (925, 380), "test": (275, 120)})
    s = sk.load_sketches(ab)
    c = s.check_counts("clothesv1")
    assert c["train"]["sketches"] == 925 and c["test"]["photos"] == 120
    assert s.check_counts() == c  # the folder name says which dataset
    assert c["train"]["photos_without_sketch"] == 0


def test_check_counts_names_every_mismatch(tmp_path):
    ab = counted_set(tmp_path / "ClothesV1", {"train": (925, 380), "test": (275, 120)})
    (ab / "testA" / "test0000_1.png").unlink()
    touch(ab / "testA", ["stray_1.png"])
    touch(ab / "trainB", ["extra.png"])
    with pytest.raises(FgrError) as err:
        sk.load_sketches(ab).check_counts("clothesv1")
    msg = str(err.value)
    assert "\n" not in msg
    assert "test has 274 sketches, expected 275" in msg
    assert "train has 381 photos, expected 380" in msg
    assert "1 sketches have no photo" in msg
    with pytest.raises(FgrError, match="no expected counts for 'sketchy'"):
        sk.load_sketches(ab).check_counts("sketchy")


def test_check_counts_recognises_arnets_reduced_test_set(tmp_path):
    # 42 of 323 test sketches with two-digit suffixes: the single-digit filter leaves ARNet's 281
    ab = counted_set(tmp_path / "ChairV2", {"train": (952, 300), "test": (323, 100)}, {"test": 42})
    assert sk.load_sketches(ab).check_counts("chairv2")["test"]["sketches"] == 323
    compat = sk.load_sketches(ab, arnet_compat_single_digit=True)
    with pytest.raises(FgrError) as err:
        compat.check_counts("chairv2")
    msg = str(err.value)
    assert "test has 281 sketches, expected 323 (281 is the test-set size implied by ARNet's logs" in msg
    assert "42 sketches were dropped by arnet_compat_single_digit=True" in msg
    assert "train" not in msg.split(" - ")[0].split(": ", 1)[1]  # train matches, so it is not named


def test_shoe_counts_compare_test_and_total(tmp_path):
    ab = counted_set(tmp_path / "ShoeV2", {"train": (5982, 1800), "test": (536, 200)})
    with pytest.raises(FgrError) as err:
        sk.load_sketches(ab).check_counts()
    msg = str(err.value)
    assert "test has 536 sketches, expected 666 (536 is the test-set size implied by ARNet's logs" in msg
    assert "total has 6518 sketches, expected 6648" in msg and "photos" not in msg


# ------------------------------------------------------------------------------------------
# rasteriser
# ------------------------------------------------------------------------------------------


def dark(img: Image.Image) -> np.ndarray:
    return np.asarray(img) < 128


def test_bresenham_covers_every_octant_without_gaps():
    for x1, y1 in [(7, 2), (2, 7), (-7, 2), (-2, -7), (7, -7), (0, 5), (-5, 0), (0, 0)]:
        line = sk.bresenham_line(0, 0, x1, y1)
        assert line[0] == (0, 0) and line[-1] == (x1, y1)
        assert len(line) == max(abs(x1), abs(y1)) + 1
        steps = {(b[0] - a[0], b[1] - a[1]) for a, b in zip(line, line[1:])}
        assert all(max(abs(dx), abs(dy)) == 1 for dx, dy in steps)


def test_a_horizontal_stroke_is_a_row_of_dark_pixels():
    img = sk.rasterize_strokes([[10, 20, 0], [30, 20, 0], [50, 20, 1]], width=0)
    assert img.size == (256, 256) and img.mode == "L"
    d = dark(img)
    assert d[20, 10:51].all() and d.sum() == 41  # exactly that row segment
    assert np.asarray(img)[0, 0] == 255  # white paper
    half = dark(sk.rasterize_strokes([[10, 20, 0], [50, 20, 1]], size=128, width=0))
    assert half[10, 5:26].all() and half.sum() == 21  # coordinates scale with the canvas


def test_pen_up_breaks_the_line():
    joined = dark(sk.rasterize_strokes([[10, 20, 0], [50, 20, 0], [50, 60, 1]], width=0))
    broken = dark(sk.rasterize_strokes([[10, 20, 0], [50, 20, 1], [50, 60, 0], [50, 70, 1]], width=0))
    assert joined[20:61, 50].all()
    assert broken[20, 10:51].all() and broken[60:71, 50].all()
    assert not broken[21:60, 50].any()  # no line from the end of stroke 1 to the start of stroke 2
    dot = dark(sk.rasterize_strokes([[5, 5, 1], [100, 100, 1]], width=0))
    assert dot.sum() == 2 and dot[5, 5] and dot[100, 100]


def test_dilation_widens_the_line():
    pts = [[10, 20, 0], [50, 20, 1]]
    thin, one, two = (dark(sk.rasterize_strokes(pts, width=w)) for w in (0, 1, 2))
    assert thin[:, 30].nonzero()[0].tolist() == [20]
    assert one[:, 30].nonzero()[0].tolist() == [19, 20, 21]
    assert two[:, 30].nonzero()[0].tolist() == [18, 19, 20, 21, 22]
    assert one[20, 9] and not one[20, 8]


def test_points_off_the_canvas_are_clipped_and_bad_arrays_refused():
    d = dark(sk.rasterize_strokes([[-10, 5, 0], [300, 5, 1]], width=0))
    assert d[5].all() and d.sum() == 256
    assert not dark(sk.rasterize_strokes(np.zeros((0, 3)))).any()
    with pytest.raises(FgrError, match="N×3"):
        sk.rasterize_strokes([[1, 2], [3, 4]])
    with pytest.raises(FgrError, match="NaN"):
        sk.rasterize_strokes([[1, np.nan, 0]])


# ------------------------------------------------------------------------------------------
# coordinate pickles
# ------------------------------------------------------------------------------------------

CALLED: list[str] = []


def _record():
    CALLED.append("ran")
    return {}


class Sneaky:
    def __reduce__(self):
        return (_record, ())


def test_restricted_unpickler_refuses_other_globals(tmp_path):
    bad = tmp_path / "ShoeV2_Coordinate"
    bad.write_bytes(pickle.dumps({"/train/a_1": np.zeros((2, 3)), "/train/a_2": Sneaky()}))
    with pytest.raises(FgrError) as err:
        sk.load_coordinates(bad)
    msg = str(err.value)
    assert "refusing" in msg and "_record" in msg and "\n" not in msg
    assert CALLED == []  # refused before anything was called
    builtin = tmp_path / "b"
    builtin.write_bytes(pickle.dumps({"/train/a_1": print}))
    with pytest.raises(FgrError, match="builtins.print"):
        sk.load_coordinates(builtin)
    listed = tmp_path / "c"
    listed.write_bytes(pickle.dumps([np.zeros((1, 3))]))
    with pytest.raises(FgrError, match="holds a list"):
        sk.load_coordinates(listed)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_coordinate_pickles_of_every_protocol_load(tmp_path, protocol):
    data = {"/train/a_1": np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 1.0]]), "/test/b_10": np.ones((1, 3))}
    raw = pickle.dumps(data, protocol=protocol)
    path = tmp_path / "x"
    path.write_bytes(raw)
    loaded = sk.load_coordinates(path)
    assert set(loaded) == set(data) and np.array_equal(loaded["/train/a_1"], data["/train/a_1"])
    if protocol == 2:  # as numpy 1.x wrote it
        path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
        assert np.array_equal(sk.load_coordinates(path)["/test/b_10"], np.ones((1, 3)))


def png_bytes(colour: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (colour, colour, colour)).save(buf, format="PNG")
    return buf.getvalue()


def write_coordinate_set(folder: Path, name: str, keys: dict[str, np.ndarray], photos: list[str]) -> Path:
    touch(folder / "photo", [])
    for p in photos:
        (folder / "photo" / p).write_bytes(png_bytes())
    path = folder / f"{name}_Coordinate"
    path.write_bytes(pickle.dumps(keys, protocol=2))
    return path


def stroke(row: int) -> np.ndarray:
    return np.array([[10, row, 0], [60, row, 1]], dtype=float)


KEYS = {"/train/a_1": stroke(20), "/train/a_2": stroke(30), "/train/b_10": stroke(40), "/test/c_1": stroke(50),
        "/test/c_12": stroke(60), "/test/p_2_3": stroke(70), "/test/d_1": stroke(80)}


def test_coordinates_to_ab_writes_a_readable_ab_set(tmp_path):
    pkl = write_coordinate_set(tmp_path / "raw", "ChairV2", KEYS, ["a.png", "b.png", "c.png", "p_2.png", "e.png"])
    out = tmp_path / "ab" / "ChairV2"
    summary = sk.coordinates_to_ab(pkl, tmp_path / "raw" / "photo", out, width=0)
    assert summary["train"] == {"sketches": 3, "photos": 2} and summary["test"] == {"sketches": 4, "photos": 2}
    assert summary["missing_photos"] == ["d"] and summary["unused_photos"] == 1
    assert summary["photos_in_both_splits"] == []
    assert sorted(p.name for p in (out / "trainA").iterdir()) == ["a_1.png", "a_2.png", "b_10.png"]
    assert sorted(p.name for p in (out / "testB").iterdir()) == ["c.png", "p_2.png"]
    assert (out / "testB" / "c.png").read_bytes() == png_bytes()
    sketch = dark(Image.open(out / "trainA" / "a_2.png"))
    assert sketch[30, 10:61].all() and sketch.sum() == 51  # the key's own strokes
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temporary folder left

    s = sk.load_sketches(tmp_path / "ab")
    assert [(p.name, i) for p, i in s.pairs("test")] == [("c_1.png", 0), ("c_12.png", 0), ("p_2_3.png", 1)]
    assert names(s.unpaired("test")) == ["d_1.png"]
    assert s.counts()["train"]["sketches"] == 3
    assert names(sk.load_sketches(out, arnet_compat_single_digit=True).dropped("test")) == ["c_12.png"]

    with pytest.raises(FgrError, match="already holds trainA, trainB, testA, testB"):
        sk.coordinates_to_ab(pkl, tmp_path / "raw" / "photo", out)


def test_coordinates_to_ab_refuses_bad_keys_and_leaves_nothing(tmp_path):
    pkl = write_coordinate_set(tmp_path / "raw", "ShoeV2", {"/train/a_1": stroke(5), "/val/a_2": stroke(5),
                                                            "nosplit": stroke(5)}, ["a.png"])
    out = tmp_path / "out"
    with pytest.raises(FgrError) as err:
        sk.coordinates_to_ab(pkl, tmp_path / "raw" / "photo", out)
    assert "2 key(s)" in str(err.value) and "'/val/a_2'" in str(err.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    pkl.write_bytes(pickle.dumps({"/train/a_1": np.zeros((3, 2))}))
    with pytest.raises(FgrError, match="sketch train/a_1: stroke points have shape"):
        sk.coordinates_to_ab(pkl, tmp_path / "raw" / "photo", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_ensure_ab_layout_converts_uses_or_explains(tmp_path):
    tree = tmp_path / "mirror"
    write_coordinate_set(tree / "Dataset" / "ChairV2", "ChairV2", KEYS, ["a.png", "b.png", "c.png", "p_2.png"])
    write_coordinate_set(tree / "Dataset" / "ShoeV2", "ShoeV2", {"/test/s_1": stroke(1)}, ["s.png"])
    ab = sk.ensure_ab_layout(tree, "ChairV2")
    assert ab == tree / "Dataset" / "ChairV2"
    assert (ab / "photo").is_dir() and (ab / "ChairV2_Coordinate").is_file()  # the sources stay
    assert sk.load_sketches(tree, name="ChairV2").counts()["test"]["sketches"] == 3
    assert not (tree / "Dataset" / "ShoeV2" / "testA").exists()  # only the named dataset is converted
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    assert sk.ensure_ab_layout(tree, "chairv2") == ab  # A/B already there: nothing written
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before

    with pytest.raises(FgrError) as err:
        sk.ensure_ab_layout(tree, "ClothesV1")
    msg = str(err.value)
    assert "no A/B folders and no ClothesV1_Coordinate file" in msg and "Dataset/" in msg and "\n" not in msg
    (tree / "Dataset" / "ShoeV2" / "photo").rename(tree / "Dataset" / "ShoeV2" / "images")
    with pytest.raises(FgrError, match="no photo/ folder beside Dataset/ShoeV2/ShoeV2_Coordinate"):
        sk.ensure_ab_layout(tree, "ShoeV2")
