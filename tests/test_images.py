"""fgr_utils.data.images: RGBA compositing, strict decoding, the scan cache, resize, tensors, the Dataset."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from fgr_utils.data import images
from fgr_utils.data.images import (IMAGENET_MEAN, IMAGENET_STD, CorruptImage, ImageListDataset, load_rgb,
                                   resample_filter, resize, scan_images, to_tensor)
from fgr_utils.errors import FgrError

HIDDEN = (10, 200, 30)  # RGB stored under fully transparent pixels
OPAQUE = (100, 50, 25)


def _rgba_file(path: Path) -> Path:
    """4x4 RGBA: left half fully transparent over HIDDEN, right half opaque OPAQUE, (3, 3) half alpha."""
    a = np.zeros((4, 4, 4), np.uint8)
    a[:, :2] = HIDDEN + (0,)
    a[:, 2:] = OPAQUE + (255,)
    a[3, 3] = (200, 100, 0, 128)
    Image.fromarray(a, "RGBA").save(path)
    return path


def _photo(path: Path, size=(64, 48), fmt=None, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(a, "RGB").save(path, fmt)
    return path


def _corrupt_set(folder: Path) -> dict[str, Path]:
    """One good PNG and JPEG plus every kind of bad file the scanner must catch."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"good_png": _photo(folder / "good.png"), "good_jpg": _photo(folder / "good.jpg", seed=1)}
    (folder / "empty.jpg").write_bytes(b"")
    files["empty"] = folder / "empty.jpg"
    png = _photo(folder / "tmp.png", seed=2).read_bytes()
    (folder / "trunc_half.png").write_bytes(png[: len(png) // 2])
    files["trunc_png"] = folder / "trunc_half.png"
    (folder / "trunc_end.png").write_bytes(png[:-12])  # pixel data complete, IEND chunk missing
    files["trunc_png_end"] = folder / "trunc_end.png"
    (folder / "tmp.png").unlink()
    jpg = _photo(folder / "tmp.jpg", seed=3).read_bytes()
    (folder / "trunc.jpg").write_bytes(jpg[: len(jpg) * 2 // 3])
    files["trunc_jpg"] = folder / "trunc.jpg"
    (folder / "tmp.jpg").unlink()
    (folder / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    files["text"] = folder / "notes.jpg"
    files["missing"] = folder / "never_there.png"
    return files


# ----------------------------------------------------------------------------------------------- load_rgb


@pytest.mark.parametrize("background, expected", [("white", (255, 255, 255)), ("black", (0, 0, 0)), ("raw", HIDDEN)])
def test_rgba_background(tmp_path, background, expected):
    img = load_rgb(_rgba_file(tmp_path / "a.png"), rgba_background=background)
    assert img.mode == "RGB" and img.size == (4, 4)
    a = np.asarray(img)
    assert (a[:, :2] == expected).all()  # under transparent pixels
    assert (a[:3, 2:] == OPAQUE).all()  # opaque pixels untouched
    half = a[3, 3].astype(int)
    if background == "raw":
        assert tuple(half) == (200, 100, 0)
    else:
        bg = np.array(expected)
        want = np.array([200, 100, 0]) * 128 / 255 + bg * (1 - 128 / 255)
        assert np.abs(half - want).max() <= 1


def test_la_palette_and_grey(tmp_path):
    la = np.zeros((2, 2, 2), np.uint8)
    la[0] = (90, 0)
    la[1] = (90, 255)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    a = np.asarray(load_rgb(tmp_path / "la.png", rgba_background="black"))
    assert (a[0] == 0).all() and (a[1] == 90).all()
    assert (np.asarray(load_rgb(tmp_path / "la.png", rgba_background="raw")) == 90).all()

    Image.fromarray(np.array([[0, 128], [200, 255]], np.uint8), "L").save(tmp_path / "grey.png")
    g = load_rgb(tmp_path / "grey.png")
    assert g.mode == "RGB" and np.asarray(g)[1, 0].tolist() == [200, 200, 200]

    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "grey16.png")
    assert np.asarray(load_rgb(tmp_path / "grey16.png"))[0].tolist() == [[0, 0, 0], [255, 255, 255]]

    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "pal.png")
    assert np.asarray(load_rgb(tmp_path / "pal.png"))[0].tolist() == [[255, 0, 0], [0, 0, 255]]
    pal.save(tmp_path / "pal_t.png", transparency=0)  # palette entry 0 (red) is transparent
    assert np.asarray(load_rgb(tmp_path / "pal_t.png"))[0].tolist() == [[255, 255, 255], [0, 0, 255]]
    assert np.asarray(load_rgb(tmp_path / "pal_t.png", rgba_background="raw"))[0].tolist() == [[255, 0, 0], [0, 0, 255]]


def test_load_rgb_rejects_unknown_background(tmp_path):
    with pytest.raises(FgrError, match="rgba_background"):
        load_rgb(_rgba_file(tmp_path / "a.png"), rgba_background="grey")


@pytest.mark.parametrize("kind, words", [("empty", "empty file"), ("trunc_png", "truncated"), ("trunc_jpg", "truncated"),
                                         ("text", "not an image"), ("missing", "does not exist")])
def test_load_rgb_corrupt(tmp_path, kind, words):
    path = _corrupt_set(tmp_path)[kind]
    with pytest.raises(CorruptImage) as err:
        load_rgb(path)
    msg = str(err.value)
    assert str(path) in msg and words in msg and "\n" not in msg
    assert err.value.path == path and isinstance(err.value, FgrError)


# ----------------------------------------------------------------------------------------------- scanning


def test_scan_skip_and_stop(tmp_path):
    f = _corrupt_set(tmp_path / "imgs")
    order = ["good_png", "empty", "trunc_png", "trunc_png_end", "good_jpg", "trunc_jpg", "text", "missing"]
    res = scan_images([f[k] for k in order], on_corrupt="skip")
    assert res.ok == [f["good_png"], f["good_jpg"]]
    reasons = dict(res.bad)
    assert [p for p, _ in res.bad] == [f[k] for k in order if not k.startswith("good")]
    assert "empty file" in reasons[f["empty"]]
    assert "truncated" in reasons[f["trunc_png"]].lower()
    assert reasons[f["trunc_png_end"]]  # caught by verify(): load() alone accepts it
    assert "truncated" in reasons[f["trunc_jpg"]]
    assert "not an image" in reasons[f["text"]]
    assert "does not exist" in reasons[f["missing"]]
    with pytest.raises(CorruptImage, match="empty.jpg"):
        scan_images([f[k] for k in order], on_corrupt="stop")
    with pytest.raises(FgrError, match="on_corrupt"):
        scan_images([], on_corrupt="ignore")


def test_scan_is_strict_even_when_truncated_loading_is_on(tmp_path, monkeypatch):
    f = _corrupt_set(tmp_path)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    res = scan_images([f["trunc_jpg"], f["trunc_png"]], cache=False)
    assert not res.ok and len(res.bad) == 2
    with pytest.raises(CorruptImage):
        load_rgb(f["trunc_jpg"])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_scan_cache_used_and_invalidated(tmp_path, monkeypatch):
    f = _corrupt_set(tmp_path / "imgs")
    paths = [f[k] for k in ("good_png", "good_jpg", "empty", "trunc_jpg", "text")]
    first = scan_images(paths)
    cache_file = tmp_path / "imgs" / images.SCAN_CACHE
    assert cache_file.is_file() and first.from_cache == 0
    assert set(json.loads(cache_file.read_text())["files"]) >= {"good.png", "good.jpg", "trunc.jpg"}

    calls = []
    real = images._check_file
    monkeypatch.setattr(images, "_check_file", lambda p: calls.append(Path(p).name) or real(p))
    again = scan_images(paths)
    assert calls == [] and again.from_cache == len(paths)
    assert again.ok == first.ok and again.bad == first.bad

    # a changed file is decoded again (size and mtime differ), the others still come from the cache
    data = f["good_jpg"].read_bytes()
    f["good_jpg"].write_bytes(data[: len(data) // 2])
    third = scan_images(paths)
    assert calls == ["good.jpg"] and third.from_cache == len(paths) - 1
    assert f["good_jpg"] in dict(third.bad)
    # same size, new mtime: decoded again too
    st = f["good_png"].stat()
    os.utime(f["good_png"], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    scan_images(paths)
    assert calls == ["good.jpg", "good.png"]


def test_scan_without_writable_folder(tmp_path, monkeypatch):
    f = _corrupt_set(tmp_path / "imgs")

    def refuse(*a, **k):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(images.io, "write_text", refuse)
    res = scan_images([f["good_png"], f["text"]])
    assert res.ok == [f["good_png"]] and len(res.bad) == 1
    assert not (tmp_path / "imgs" / images.SCAN_CACHE).exists()


def test_corrupt_cache_file_is_ignored(tmp_path):
    f = _corrupt_set(tmp_path / "imgs")
    (tmp_path / "imgs" / images.SCAN_CACHE).write_text("{not json")
    res = scan_images([f["good_png"], f["trunc_jpg"]])
    assert res.ok == [f["good_png"]] and res.from_cache == 0
    assert scan_images([f["good_png"], f["trunc_jpg"]]).from_cache == 2


# ----------------------------------------------------------------------------------------------- transforms


def test_resize_modes():
    img = Image.new("RGB", (200, 100), (10, 20, 30))
    assert resize(img, 64, "squash").size == (64, 64)
    assert resize(img, (30, 70), "squash").size == (30, 70)
    assert resize(img, 50, "short_side").size == (100, 50)
    assert resize(Image.new("RGB", (100, 300)), 50, "short_side").size == (50, 150)
    boxed = resize(img, 64, "keep_aspect")
    a = np.asarray(boxed)
    assert boxed.size == (64, 64)
    assert (a[:16] == 255).all() and (a[48:] == 255).all()  # white bars above and below
    assert (a[20:44] == (10, 20, 30)).all()
    assert (np.asarray(resize(img, 64, "keep_aspect", background="black"))[:16] == 0).all()
    with pytest.raises(FgrError, match="resize mode"):
        resize(img, 64, "crop")


def test_resample_filter_rule():
    assert resample_filter((200, 100), (100, 50)) is Image.Resampling.LANCZOS
    assert resample_filter((200, 100), (400, 50)) is Image.Resampling.LANCZOS  # one side shrinks
    assert resample_filter((200, 100), (400, 200)) is Image.Resampling.BICUBIC
    assert not hasattr(Image, "ANTIALIAS")  # why the filter is always named


def test_to_tensor():
    img = Image.new("RGB", (3, 2), (255, 0, 128))
    t = to_tensor(img)
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32
    want = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
            (128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    assert torch.allclose(t[:, 1, 2], torch.tensor(want), atol=1e-6)
    assert torch.allclose(to_tensor(img, mean=(0, 0, 0), std=(1, 1, 1))[0], torch.ones(2, 3))


# ----------------------------------------------------------------------------------------------- dataset


def test_image_list_dataset(tmp_path):
    f = _corrupt_set(tmp_path / "imgs")
    given = [f["good_png"], f["trunc_jpg"], f["good_jpg"], f["text"]]
    ds = ImageListDataset(given, transform=lambda im: to_tensor(resize(im, 32, "squash")))
    assert len(ds) == 2 and ds.paths == [f["good_png"], f["good_jpg"]] and ds.indices == [0, 2]
    assert [p for p, _ in ds.skipped] == [f["trunc_jpg"], f["text"]]
    assert ds.skipped_records()[0]["path"] == str(f["trunc_jpg"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch.shape == (2, 3, 32, 32)
    assert ImageListDataset(given)[0].mode == "RGB"  # no transform: the RGB image

    with pytest.raises(CorruptImage, match="trunc.jpg"):
        ImageListDataset(given, on_corrupt="stop")

    # a file that breaks after the scan is reported by name, not as a DataLoader traceback
    f["good_jpg"].write_bytes(b"")
    with pytest.raises(CorruptImage, match="good.jpg"):
        ds[1]
