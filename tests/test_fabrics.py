"""The fabric simulator (sim-fabrics, sim-revisited), the motif bank and the one fabric reader."""
from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import synth_in
from PIL import Image

from fgr_utils.data.fabrics import (DATASET_FOLDER, MANIFEST_FILE, FabricRecord, FabricSet, MotifRecord, QueryRecord,
                                    element_key, fabric_key, load_fabrics)
from fgr_utils.data.images import load_rgb
from fgr_utils.data.landmarks import load_landmarks
from fgr_utils.data.reader import without_unreadable
from fgr_utils.data.synth import manifest as synth_manifest
from fgr_utils.data.synth import motifs as M
from fgr_utils.errors import DatasetMissing, FgrError

SYNTH_MANIFEST = "synth-manifest.json"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return synth_in(tmp_path_factory.mktemp("fabrics"), "sim-fabrics")


@pytest.fixture(scope="module")
def ds(smoke) -> FabricSet:
    return load_fabrics(smoke)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != SYNTH_MANIFEST}


# ---------------------------------------------------------------------------------------------------
# generation


def test_generate_smoke_layout_and_counts(smoke, ds, tmp_path, monkeypatch):
    monkeypatch.setenv("FGR_DATA_DIR", str(tmp_path))
    assert smoke.name == "smoke-seed0" and smoke.parent.name == "sim-fabrics"
    counts = synth_manifest(smoke)["counts"]
    assert synth_manifest(smoke)["seconds"] < 5
    for split in ("train", "validation", "test"):
        imgs = sorted((smoke / DATASET_FOLDER / split / "img" / "images").glob("*.png"))
        assert len(imgs) == counts[f"{split}_fabrics"] > 0
    for f in ("Train_split.json", "Validation_split.json", "Test_split.json", "train_sub.txt", "val_sub.txt",
              "TestAll_index.csv", "Test_element.csv", "test.txt", "element_all/test.txt", MANIFEST_FILE):
        assert (smoke / f).is_file(), f
    elements = sorted((smoke / "element img").glob("*.png"))
    assert len(elements) == counts["motifs"] and all(p.name.endswith(",.png") for p in elements)
    c = ds.counts()
    assert c["total"]["fabrics"] == counts["fabrics"] and c["test"]["queries"] == counts["test_queries"] == c["test"]["motifs"]
    assert len(ds.categories) >= 6
    rec = json.loads((smoke / "Train_split.json").read_text())
    assert all(len(r) % 2 == 0 and len(r) >= 6 for r in rec)  # 2n+2 with n >= 2 motifs
    n = (len(rec[0]) - 2) // 2
    f = ds.fabric(rec[0][1], "train")
    assert list(f.motif_ids) == rec[0][2:n + 2] and list(f.categories) == rec[0][n + 2:]
    img = Image.open(f.path)
    assert img.mode == "RGB" and img.size == (96, 96)
    assert 2 <= len(f.motif_ids) <= 4 and len(set(f.motif_ids)) == len(f.motif_ids)
    split = ds.split("val")  # aliases accepted
    assert split.name == "validation" and [x.id for x in split.fabrics] == ds.fabric_ids("validation")
    assert ds.query_paths("test") == [q.path for q in ds.queries_of("test")] and len(ds.query_ids("test")) == counts["test_queries"]
    assert ds.fabric_path(ds.fabric_ids("test")[0]) == ds.fabric_paths("test")[0]


def test_deterministic(smoke, tmp_path):
    again = synth_in(tmp_path / "a", "sim-fabrics", seed=0)
    assert _files(again) == _files(smoke)  # manifest, paper files and every image byte
    other = synth_in(tmp_path / "b", "sim-fabrics", seed=1)
    a, b = _files(smoke), _files(other)
    assert a[MANIFEST_FILE] != b[MANIFEST_FILE]
    assert a[f"{DATASET_FOLDER}/test/img/images/te00000.png"] != b[f"{DATASET_FOLDER}/test/img/images/te00000.png"]


def test_motif_pools_disjoint(ds):
    pools = {s: {m.id for m in ds.motifs_of(s)} for s in ("train", "validation", "test")}
    assert not pools["train"] & pools["test"] and not pools["train"] & pools["validation"]
    assert not pools["validation"] & pools["test"]
    for s, ids in pools.items():
        used = {m for f in ds.fabrics_of(s) for m in f.motif_ids}
        assert used <= ids, f"{s} fabrics use motifs outside the {s} pool"
        assert ids <= used  # every pool motif is printed somewhere
    cats = {s: {m.category for m in ds.motifs_of(s)} for s in pools}
    assert cats["train"] == cats["validation"] == cats["test"]  # same categories, new instances


def test_queries_have_relevant_and_hard_negatives(ds):
    for split in ("test", "validation"):
        fabrics = ds.fabrics_of(split)
        for q in ds.queries_of(split):
            contains = {f.id for f in fabrics if q.element_id in f.motif_ids}
            assert contains and ds.relevant(q) == contains
            hard = [f for f in fabrics if q.category in f.categories and q.element_id not in f.motif_ids]
            assert hard, f"{split} query {q.query_id} has no hard negative"
            assert q.path == ds.motif(q.element_id).path


def test_boxes_inside_the_image(ds):
    n = 0
    for f in ds.fabrics:
        w, h = Image.open(f.path).size
        seen = set()
        for mid, x1, y1, x2, y2 in f.boxes:
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert mid in f.motif_ids
            seen.add(mid)
            n += 1
        assert seen == set(f.motif_ids)  # every motif of a fabric has placed copies
    assert n > 10 * len(ds.fabrics)  # motifs are repeated


def test_query_pngs_are_rgba_with_both_stored_backgrounds(ds):
    kinds = Counter()
    for q in ds.queries:
        with Image.open(q.path) as im:
            assert im.mode == "RGBA"
            a = np.asarray(im)
        clear = a[:, :, 3] == 0
        assert clear.any() and (a[:, :, 3] == 255).any()
        stored = a[clear][:, :3]
        kinds["black" if (stored == 0).all() else "white" if (stored == 255).all() else "mixed"] += 1
        if kinds["black"] and kinds["white"]:
            break
    assert kinds["black"] and kinds["white"] and not kinds["mixed"]
    # so the rgba_background switch matters for a black-stored motif
    m = next(m for m in ds.motifs if m.stored_background == "black")
    raw, white = np.asarray(load_rgb(m.path, rgba_background="raw")), np.asarray(load_rgb(m.path))
    assert raw[0, 0].tolist() == [0, 0, 0] and white[0, 0].tolist() == [255, 255, 255]


def test_motif_bank_family_look():
    bank = M.make_bank(3, 12)
    assert len({m.id for m in bank}) == len(bank) and all(len(m.id) == 5 and m.id.isdigit() for m in bank)
    assert len({m.signature() for m in bank}) == len(bank)
    assert [m.signature() for m in M.make_bank(3, 4)] == [m.signature() for m in bank[: 4 * len(M.CATEGORIES)]]
    florals = [m for m in bank if m.category == "floral"]
    assert {tuple(sorted(m.detail)) for m in florals} == {("centre", "inner", "petal", "petals")}  # one family
    img = M.render_motif(bank[0], 64)
    assert img.mode == "RGBA" and max(img.size) == round(64 * bank[0].size)
    assert M.render_motif(bank[0], 64).tobytes() == img.tobytes()


# ---------------------------------------------------------------------------------------------------
# the reader: converter path, normalisation, errors


def test_converter_round_trip(smoke, ds, tmp_path):
    copy = tmp_path / "download" / "unknown-top" / "Dataset"
    shutil.copytree(smoke, copy)
    (copy / MANIFEST_FILE).unlink()
    conv = load_fabrics(tmp_path / "download")  # the dataset folder is searched for
    assert conv.source == "converted" and conv.root == copy and not conv.problems
    assert (copy / MANIFEST_FILE).is_file()

    def rel(p: Path, root: Path) -> str:
        return p.relative_to(root).as_posix()

    def fabrics(d):
        return {(f.split, f.id): (f.motif_ids, f.categories, rel(f.path, d.root)) for f in d.fabrics}

    def queries(d):
        return {q.query_id: (q.split, q.element_id, q.category, set(q.relevant), rel(q.path, d.root)) for q in d.queries}

    assert fabrics(conv) == fabrics(ds)
    assert queries(conv) == queries(ds)
    assert {(m.id, m.split, m.category) for m in conv.motifs} == {(m.id, m.split, m.category) for m in ds.motifs}
    for q in ds.queries:
        assert conv.relevant(q.query_id) == ds.relevant(q) and conv.relevant(q.query_id, "category") == ds.relevant(q, "category")
    # the file names carry a trailing comma; every key is the part before it
    row = next(csv.reader((copy / "Test_element.csv").read_text().splitlines()[1:2]))
    assert row[0].endswith(",.png") and element_key(row[0]) == row[1] and row[1] in {q.query_id for q in conv.queries}
    again = load_fabrics(copy)  # now from the written manifest
    assert again.source == "converted" and fabrics(again) == fabrics(ds) and queries(again) == queries(ds)
    # a changed source file makes the manifest stale: converted again
    index = copy / "TestAll_index.csv"
    rows = list(csv.reader(index.read_text().splitlines()))
    rows[0][0] = rows[0][0] + ","  # "12345" -> "12345," (as splitext keys would be) - still normalised
    with open(index, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert queries(load_fabrics(copy)) == queries(ds)


def _kaggle_like(root: Path) -> Path:
    """A tiny hand-written set in the paper's layout, nested under an unknown top folder."""
    data = root / "finegrained" / "Dataset"
    imgs = {}
    for split, ids in (("train", ["a1", "a2"]), ("test", ["t1", "t2", "t3"])):
        folder = data / DATASET_FOLDER / split / "img" / "images"
        folder.mkdir(parents=True)
        for i in ids:
            Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / f"{i}.png")
            imgs[i] = folder / f"{i}.png"
    el = data / "element img"
    el.mkdir()
    for name in ("10640,.png", "10681,.png", "20001,x.png", "30000,.png"):
        Image.new("RGBA", (6, 6), (0, 0, 0, 0)).save(el / name)
    (data / "Train_split.json").write_text(json.dumps([[0, "a1.png", 20001, "floral"], [1, "a2", "30000", "10", "leaf", "floral"]]))
    (data / "train_sub.txt").write_text("/abs/where/it/was/element img/20001,x.png floral\nelement img/30000,.png leaf\n")
    (data / "Test_element.csv").write_text('query_filename,class\n"10640,.png","10640,"\n"10681,.png",10681\n')
    (data / "TestAll_index.csv").write_text("10640,\nt1.png\nt3\n")
    return data


def test_converter_on_paper_files(tmp_path, caplog):
    data = _kaggle_like(tmp_path)
    d = load_fabrics(tmp_path)
    assert d.root == data and d.source == "converted"
    assert [(f.id, f.motif_ids, f.categories) for f in d.fabrics_of("train")] == [
        ("a1", ("20001",), ("floral",)), ("a2", ("30000", "10"), ("leaf", "floral"))]
    assert {f.id for f in d.fabrics_of("test")} == {"t1", "t2", "t3"}  # no Test_split.json: the images
    assert d.motif("20001").path == data / "element img" / "20001,x.png"  # absolute path resolved by name
    q = d.query("10640,.png")
    assert q.query_id == "10640" and q.element_id == "10640" and d.relevant(q) == {"t1", "t3"}
    assert d.query("10681").relevant == ()
    assert any("no ground truth" in p and "10681" in p for p in d.problems)
    assert any("no ground truth" in r.getMessage() for r in caplog.records)
    assert "10681" in (data / MANIFEST_FILE).read_text()


def test_converter_category_keyed_ground_truth(tmp_path):
    data = _kaggle_like(tmp_path)
    (data / "Test_split.json").write_text(json.dumps([[0, "t1", "10640", "floral"], [1, "t2", "10681", "floral"],
                                                      [2, "t3", "10681", "10640", "floral", "floral"]]))
    (data / "Test_element.csv").write_text("query_filename,class\n10640,.png,floral\n")  # unquoted comma
    (data / "TestAll_index.csv").write_text("floral\nt1\nt2\nt3\n")
    d = load_fabrics(data)
    q = d.query("10640")
    assert q.class_key == "floral" and q.category == "floral"
    assert d.relevant(q) == {"t1", "t3"} and d.relevant(q, "category") == {"t1", "t2", "t3"}
    assert any("keys 1 queries on categories" in p for p in d.problems)


def test_layout_mismatch_is_one_line(smoke, tmp_path):
    copy = tmp_path / "zip" / "Dataset"
    shutil.copytree(smoke, copy)
    (copy / MANIFEST_FILE).unlink()
    (copy / "Train_split.json").unlink()
    with pytest.raises(FgrError) as e:
        load_fabrics(tmp_path / "zip")
    msg = str(e.value)
    assert "\n" not in msg and f"found {DATASET_FOLDER}/train but no Train_split.json" in msg
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    with pytest.raises(FgrError, match=f"found neither {MANIFEST_FILE} nor a {DATASET_FOLDER} folder") as e:
        load_fabrics(tmp_path / "empty")
    assert "\n" not in str(e.value)
    with pytest.raises(DatasetMissing):
        load_fabrics(tmp_path / "nowhere")


def test_missing_files_one_line(smoke, tmp_path):
    copy = tmp_path / "set"
    shutil.copytree(smoke, copy)
    gone = sorted((copy / DATASET_FOLDER / "test" / "img" / "images").glob("*.png"))[:7]
    for p in gone:
        p.unlink()
    with pytest.raises(FgrError) as e:
        load_fabrics(copy)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("7 of ") and "and 2 more" in msg and gone[0].name in msg
    assert len(load_fabrics(copy, check_files=False).missing_files()) == 7
    (copy / MANIFEST_FILE).write_text('{"fabrics": []}')
    with pytest.raises(FgrError, match="not a fabrics manifest"):
        load_fabrics(copy)


def test_keys():
    assert element_key("element img/10640,.png") == "10640" == element_key("10640,") == element_key(10640)
    assert element_key("10681.png") == "10681" and element_key("C:\\x\\10681,abc.png") == "10681"
    assert fabric_key("SimulatedPrintedFabrics-17k/test/img/images/te00001.png") == "te00001" == fabric_key("te00001")


# ---------------------------------------------------------------------------------------------------
# leaving images out (FabricSet.without)


def _tiny(root: Path) -> FabricSet:
    """Train a, b; test t1..t4; a validation fabric that shares the id t2; queries q1..q3 (test) and v1."""
    def fab(fid, split, mids):
        return FabricRecord(fid, root / split / f"{fid}.png", split, tuple(mids), ("floral",) * len(mids))

    fabrics = [fab("a", "train", ["m1"]), fab("b", "train", ["m1", "m2"]), fab("t1", "test", ["q1"]),
               fab("t2", "test", ["q1", "q2"]), fab("t3", "test", ["q2"]), fab("t4", "test", ["q3"]),
               fab("t2", "validation", ["v1"])]
    motifs = [MotifRecord(m, root / "element img" / f"{m},.png", "floral", split)
              for m, split in (("m1", "train"), ("m2", "train"), ("q1", "test"), ("q2", "test"), ("q3", "test"),
                               ("v1", "validation"))]
    queries = [QueryRecord(q, root / "element img" / f"{q},.png", split, q, "floral", rel)
               for q, split, rel in (("q1", "test", ("t1", "t2")), ("q2", "test", ("t2", "t3")),
                                     ("q3", "test", ("t4",)), ("v1", "validation", ("t2",)))]
    return FabricSet(root, fabrics, motifs, queries, problems=["as read"])


def test_image_paths_are_fabrics_then_motifs_each_once(tmp_path):
    fs = _tiny(tmp_path)
    assert fs.image_paths() == [f.path for f in fs.fabrics] + [m.path for m in fs.motifs] == fs.paths()


def test_without_nothing_is_the_set_itself(tmp_path):
    fs = _tiny(tmp_path)
    assert fs.without({}) is fs and fs.without({tmp_path / "elsewhere.png": "empty file (0 bytes)"}) is fs


def test_an_unreadable_fabric_leaves_its_split_and_every_relevant_list(tmp_path):
    fs = _tiny(tmp_path)
    out = fs.without({fs.fabric("t2", "test").path: "truncated image data"})
    assert out.fabric_ids("test") == ["t1", "t3", "t4"] and out.fabric_ids("train") == ["a", "b"]
    assert out.fabric_ids("validation") == ["t2"]  # the same id in another split stays
    assert [(q.query_id, q.relevant) for q in out.queries] == [
        ("q1", ("t1",)), ("q2", ("t3",)), ("q3", ("t4",)), ("v1", ("t2",))]
    assert out.relevant("q1") == {"t1"} and out.problems == ["as read"] and out.motifs == fs.motifs
    assert fs.fabric_ids("test") == ["t1", "t2", "t3", "t4"]  # the set itself is unchanged


def test_a_query_without_a_relevant_fabric_left_is_dropped_and_noted(tmp_path):
    fs = _tiny(tmp_path)
    bad = {fs.fabric("t4", "test").path: "empty file (0 bytes)", fs.motif("q1").path: "not an image"}
    out = fs.without(bad)
    assert out.query_ids("test") == ["q2"]  # q1: its motif is unreadable; q3: t4 was its only relevant fabric
    assert [m.id for m in out.motifs] == ["m1", "m2", "q2", "q3", "v1"]  # q3's motif itself is readable
    assert out.problems == ["as read", "test query q3 left out: every fabric relevant to it is unreadable"]
    assert (out.root, out.source, out.gt_key, out.manifest_path) == (fs.root, fs.source, fs.gt_key, fs.manifest_path)


def test_without_unreadable_on_a_generated_set(smoke, tmp_path):
    copy = tmp_path / "set"
    shutil.copytree(smoke, copy)
    raw = load_fabrics(copy)
    fabric, query = raw.fabrics_of("train")[0], raw.queries_of("test")[0]
    fabric.path.write_bytes(fabric.path.read_bytes()[:100])
    query.path.write_bytes(b"")
    (fs,), skipped = without_unreadable(raw)
    assert [p for p, _ in skipped] == [fabric.path, query.path]  # in image_paths order
    assert "truncated" in skipped[0][1] and "empty" in skipped[1][1]
    assert fabric.id not in fs.fabric_ids("train") and query.query_id not in fs.query_ids("test")
    assert len(fs.fabrics) == len(raw.fabrics) - 1 and len(fs.queries) == len(raw.queries) - 1


# ---------------------------------------------------------------------------------------------------
# ground truth levels and samplers


def test_gt_key_category_vs_element(ds, smoke):
    for q in ds.queries_of("test"):
        inst, cat = ds.relevant(q, "element_id"), ds.relevant(q, "category")
        assert inst < cat  # hard negatives: same category, other motif
        assert cat == {f.id for f in ds.fabrics_of("test") if q.category in f.categories}
        assert set(ds.by_category("test")[q.category]) == cat
    by_cat = load_fabrics(smoke, gt_key="category")
    q = by_cat.queries_of("test")[0]
    assert by_cat.relevant(q) == ds.relevant(q, "category")
    with pytest.raises(FgrError, match="gt_key"):
        load_fabrics(smoke, gt_key="class")


def test_triplet_sampler(ds):
    fab = {f.path: f for f in ds.fabrics}
    mot = {m.path: m for m in ds.motifs}
    rng = np.random.default_rng(0)
    cat = ds.sample_triplets("train", "category", None, rng)
    assert len(cat) == len(ds.motifs_of("train"))  # one epoch: one triplet per motif
    for a, p, n in cat:
        m = mot[a]
        assert m.split == "train" and fab[p].split == fab[n].split == "train"
        assert m.category in fab[p].categories and m.category not in fab[n].categories
    inst = ds.sample_triplets("train", "instance", 200, rng, hard_fraction=1.0)
    assert len(inst) == 200
    for a, p, n in inst:
        m = mot[a]
        assert m.id in fab[p].motif_ids and m.id not in fab[n].motif_ids
        assert m.category in fab[n].categories  # always the hard kind when hard_fraction = 1
    easy = ds.sample_triplets("train", "instance", 200, np.random.default_rng(1), hard_fraction=0.0)
    assert all(mot[a].id not in fab[n].motif_ids for a, _, n in easy)
    assert any(mot[a].category not in fab[n].categories for a, _, n in easy)
    assert ds.sample_triplets("train", "instance", 5, 7) == ds.sample_triplets("train", "instance", 5, 7)
    with pytest.raises(FgrError, match="level"):
        ds.sample_triplets("train", "pixel", 5, 0)


# ---------------------------------------------------------------------------------------------------
# sim-revisited


def test_sim_revisited_smoke(tmp_path):
    root = synth_in(tmp_path, "sim-revisited")
    assert synth_manifest(root)["seconds"] < 5
    ds = load_landmarks(root)
    assert ds.name == "sim-revisited" and ds.protocol == "revisited"
    counts = ds.check_counts(expected=(60, 12))
    assert counts["missing"] == 0
    assert not set(ds.qimlist) & set(ds.imlist)
    for i, g in enumerate(ds.gnd):
        e, h, j = set(g["easy"]), set(g["hard"]), set(g["junk"])
        assert e and h and not (e & h or e & j or h & j)
        w, hgt = Image.open(ds.query_paths[i]).size
        x1, y1, x2, y2 = g["bbx"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= hgt and (x2 - x1) * (y2 - y1) >= 0.04 * w * hgt
    views = json.loads((root / "sim-revisited-views.json").read_text())
    labels = Counter(lab for v in views["db"] for lab in v["labels"].values())
    assert labels["easy"] and labels["hard"] and labels["junk"]
    assert any(v["target"] == "negative" and not v["labels"] for v in views["db"])  # same-category negatives
    again = synth_in(tmp_path / "again", "sim-revisited")
    assert _files(again) == _files(root)
