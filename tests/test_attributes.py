"""ASEN split files and CSN triplet lists (fgr_utils.data.attributes), and the asfr-garments stand-in."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import synth_in
from PIL import Image

from fgr_utils.data import attributes as A
from fgr_utils.data import samples
from fgr_utils.data.synth import GENERATORS
from fgr_utils.data.synth import asfr_garments as G
from fgr_utils.data.synth import manifest as synth_manifest
from fgr_utils.data.synth.garments import Garment, render_photo
from fgr_utils.errors import DatasetMissing, FgrError

# ---------------------------------------------------------------------------------------------------
# a small hand-written dataset in ASEN's format (DeepFashion-like: several pairs per train line)

META = {"Toy": {"ATTRIBUTES": ["shape", "colour"], "ATTRIBUTES_NUM": {"shape": 3, "colour": 2},
                "ATTRIBUTES_VALUES": {"shape": ["round", "square", "star"], "colour": ["red", "blue"]}}}
FILES = {
    "filenames_train.txt": "img/t0.jpg\nimg/t1.jpg\nimg/t2.jpg\nimg/t3.jpg\n",
    "filenames_valid.txt": "img/v0.jpg\nimg/v1.jpg\nimg/v2.jpg\n",
    "filenames_test.txt": "img/s0.jpg\nimg/s1.jpg\nimg/s2.jpg\n",
    "label_train.txt": "0 0 1 1 0\n1 0 2\n\n2 1 1\n3 0 1 1 1\n",
    "query_valid.txt": "0 0 1\n1 1 0\n",
    "candidate_valid.txt": "2 0 1\n",
    "query_test.txt": "0 1 1\n",
    "candidate_test.txt": "1 1 1\n2 0 2\n",
}


def write_set(root: Path, files: dict[str, str] = FILES, meta: dict | None = META) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    if meta is not None:
        (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_reader_ids_pair_expansion_and_groups(tmp_path):
    ds = A.load_attribute_set(write_set(tmp_path / "toy"))
    assert ds.name == "Toy" and ds.attributes == ["shape", "colour"]
    assert ds.values["shape"] == ["round", "square", "star"] and ds.n_values(0) == 3 and ds.n_values(1) == 2
    assert ds.filenames["valid"] == ["img/v0.jpg", "img/v1.jpg", "img/v2.jpg"]
    # "0 0 1 1 0" is two pairs of image 0; the empty line is skipped
    assert ds.train_labels.tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 2], [2, 1, 1], [3, 0, 1], [3, 1, 1]]
    assert ds.queries["valid"].tolist() == [[0, 0, 1], [1, 1, 0]]
    assert ds.candidates["test"].tolist() == [[1, 1, 1], [2, 0, 2]]
    groups = ds.train_groups()
    assert {a: {v: ids.tolist() for v, ids in g.items()} for a, g in groups.items()} == {
        0: {1: [0, 3], 2: [1]}, 1: {0: [0], 1: [2, 3]}}
    assert ds.path("test", 2) == tmp_path / "toy" / "img/s2.jpg"
    with pytest.raises(FgrError, match="outside the 3 test images"):
        ds.path("test", 3)


def test_counts_and_missing_images(tmp_path):
    root = write_set(tmp_path / "toy")
    ds = A.load_attribute_set(root)
    c = ds.counts()
    assert c["train"] == {"images": 4, "labels": 6, "labels_per_attribute": {"shape": 3, "colour": 3}}
    assert c["test"]["queries"] == 1 and c["test"]["candidates"] == 2
    assert c["test"]["queries_per_attribute"] == {"shape": 0, "colour": 1}
    assert c["valid"]["candidates_per_attribute"] == {"shape": 1, "colour": 0}
    (root / "img").mkdir()
    (root / "img" / "s1.jpg").write_bytes(b"x")
    assert ds.missing_images("test") == [root / "img/s0.jpg", root / "img/s2.jpg"]


def test_image_paths_and_without_nothing(tmp_path):
    root = write_set(tmp_path / "toy")
    ds = A.load_attribute_set(root)
    names = ("t0", "t1", "t2", "t3", "v0", "v1", "v2", "s0", "s1", "s2")  # train, valid, test in id order
    assert ds.image_paths() == [root / "img" / f"{n}.jpg" for n in names]
    assert ds.without({}) is ds and ds.without({root / "img/other.jpg": "empty file (0 bytes)"}) is ds


def test_an_unreadable_image_leaves_with_its_labels_queries_and_candidates(tmp_path):
    root = write_set(tmp_path / "toy")
    ds = A.load_attribute_set(root)
    bad = {root / "img/t1.jpg": "truncated image data", root / "img/v0.jpg": "empty file (0 bytes)",
           root / "img/s2.jpg": "not an image"}
    out = ds.without(bad)
    assert out.filenames == {"train": ["img/t0.jpg", "img/t2.jpg", "img/t3.jpg"], "valid": ["img/v1.jpg", "img/v2.jpg"],
                             "test": ["img/s0.jpg", "img/s1.jpg"]}
    # ids renumbered over the images kept: train 2 -> 1, 3 -> 2; valid 1 -> 0, 2 -> 1
    assert out.train_labels.tolist() == [[0, 0, 1], [0, 1, 0], [1, 1, 1], [2, 0, 1], [2, 1, 1]]
    assert out.queries["valid"].tolist() == [[0, 1, 0]] and out.candidates["valid"].tolist() == [[1, 0, 1]]
    assert out.queries["test"].tolist() == [[0, 1, 1]] and out.candidates["test"].tolist() == [[1, 1, 1]]
    assert out.path("valid", 0) == root / "img/v1.jpg"
    assert out.image_paths() == [p for p in ds.image_paths() if p not in bad]
    assert out.counts()["train"] == {"images": 3, "labels": 5, "labels_per_attribute": {"shape": 2, "colour": 3}}
    assert (out.name, out.attributes, out.values) == (ds.name, ds.attributes, ds.values)
    assert len(ds.train_labels) == 6 and len(ds.filenames["train"]) == 4  # the set itself is unchanged


@pytest.mark.parametrize("file, text, line, words", [
    ("query_test.txt", "0 1 1\n0 1\n", 2, "expected 'img_id attr value' (3 integers), got '0 1'"),
    ("query_test.txt", "0 1 1\n\n0 abc 1\n", 3, "expected 'img_id attr value' (3 integers), got '0 abc 1'"),
    ("label_train.txt", "0 0 1\n1 0 2 1\n", 2, "whole attribute-value pairs"),
    ("label_train.txt", "0 0 1\n1 0 x\n", 2, "got '1 0 x'"),
    ("label_train.txt", "0 0 1\n-1 0 1\n", 2, "image id -1 is outside filenames_train.txt (ids 0-3)"),
    ("candidate_valid.txt", "2 0 1\n3 0 1\n", 2, "image id 3 is outside filenames_valid.txt (ids 0-2)"),
    ("query_valid.txt", "0 2 0\n", 1, "attribute 2 is outside 0-1"),
    ("candidate_test.txt", "1 1 1\n2 1 2\n", 2, "value 2 of attribute 1 (colour) is outside 0-1"),
    ("label_train.txt", "0 0 1 1 5\n", 1, "value 5 of attribute 1 (colour)"),
])
def test_malformed_lines_name_file_and_line(tmp_path, file, text, line, words):
    root = write_set(tmp_path / "toy", {**FILES, file: text})
    with pytest.raises(FgrError) as err:
        A.load_attribute_set(root)
    msg = str(err.value)
    assert f"{file} line {line}: " in msg and words in msg
    assert "fgr data download asen-splits" in msg and "\n" not in msg


def test_meta_and_missing_file_errors(tmp_path):
    bad = json.loads(json.dumps(META))
    bad["Toy"]["ATTRIBUTES_NUM"]["shape"] = 4
    with pytest.raises(FgrError, match=r"ATTRIBUTES_NUM\['shape'\] is 4 but ATTRIBUTES_VALUES\['shape'\] lists 3"):
        A.load_attribute_set(write_set(tmp_path / "a", meta=bad))
    root = write_set(tmp_path / "b", {k: v for k, v in FILES.items() if k != "candidate_valid.txt"})
    with pytest.raises(DatasetMissing) as err:
        A.load_attribute_set(root)
    assert "candidate_valid.txt is missing" in str(err.value) and "fgr data download asen-splits" in str(err.value)
    root = write_set(tmp_path / "c", {**FILES, "filenames_test.txt": "a.jpg\n\nb.jpg\n"})
    with pytest.raises(FgrError, match="filenames_test.txt line 2 is empty"):
        A.load_attribute_set(root)
    with pytest.raises(FgrError, match="no dataset 'Other'; pass name= one of: Toy"):
        A.load_attribute_set(root, "Other")


def test_meta_lookup_order(isolated_dirs):
    base = isolated_dirs / "sets"
    other_values = {**META["Toy"]["ATTRIBUTES_VALUES"], "colour": ["cyan", "magenta"]}
    both = {"FashionAI": META["Toy"], "DeepFashion": {**META["Toy"], "ATTRIBUTES_VALUES": other_values}}
    # 1. the asen-splits dataset folder, key chosen by the folder name
    asen = isolated_dirs / "data" / "asen-splits" / "data"
    asen.mkdir(parents=True)
    (asen / "meta.json").write_text(json.dumps(both))
    assert A.load_attribute_set(write_set(base / "fashionai", meta=None)).name == "FashionAI"
    assert A.load_attribute_set(write_set(base / "DEEPFASHION", meta=None)).values["colour"] == ["cyan", "magenta"]
    with pytest.raises(FgrError, match="none is called 'other'; pass name= one of: FashionAI, DeepFashion"):
        A.load_attribute_set(write_set(base / "other", meta=None))
    assert A.load_attribute_set(base / "other", "deepfashion").name == "DeepFashion"
    # 2. the parent folder wins over asen-splits, 3. the folder itself over its parent
    (base / "meta.json").write_text(json.dumps({"Parent": META["Toy"]}))
    assert A.load_attribute_set(base / "other").name == "Parent"
    write_set(base / "other")
    assert A.load_attribute_set(base / "other").name == "Toy"
    # an explicit meta= overrides the search
    assert A.load_attribute_set(base / "other", meta=asen / "meta.json", name="FashionAI").name == "FashionAI"
    (asen / "meta.json").unlink()
    (base / "meta.json").unlink()
    with pytest.raises(DatasetMissing, match="fgr data download asen-splits"):
        A.load_attribute_set(base / "fashionai")


# ---------------------------------------------------------------------------------------------------
# reference counts


def _fashionai_like(root: Path, rng: np.random.Generator) -> Path:
    """Split files with exactly FashionAI's published counts (no images)."""
    ref = A.REFERENCE_COUNTS["fashionai"]
    names = [f"{a}_labels" for a in ref["attributes"]]
    meta = {"FashionAI": {"ATTRIBUTES": names, "ATTRIBUTES_NUM": dict(zip(names, ref["values"])),
                          "ATTRIBUTES_VALUES": {a: [f"v{j}" for j in range(n)] for a, n in zip(names, ref["values"])}}}
    files = {"label_train.txt": "0 0 1\n1 3 2\n"}
    for split in ("train", "valid", "test"):
        n = 2 if split == "train" else 18_000
        files[f"filenames_{split}.txt"] = "".join(f"Images/x/{split}{i}.jpg\n" for i in range(n))
    for split in ("valid", "test"):
        q = ref["splits"][split]["queries"]
        c = ref["splits"]["test"]["candidates"]  # valid candidates are not published: any split of the rest
        for kind, per, start in (("query", q, 0), ("candidate", c, sum(q))):
            attr = np.repeat(np.arange(8), per)
            value = rng.integers(0, np.array(ref["values"])[attr])
            rows = np.column_stack([start + np.arange(len(attr)), attr, value])
            files[f"{kind}_{split}.txt"] = "\n".join(" ".join(map(str, r)) for r in rows) + "\n"
    return write_set(root, files, meta)


def test_fashionai_reference_counts(tmp_path):
    root = _fashionai_like(tmp_path / "fai", np.random.default_rng(0))
    ds = A.load_attribute_set(root)
    ds.check_counts("fashionai")
    assert ds.counts()["test"]["queries"] == 3600 and ds.counts()["test"]["candidates"] == 14_400
    # one test query of neckline_design (attribute 6) fewer
    lines = (root / "query_test.txt").read_text().splitlines()
    del lines[next(i for i, ln in enumerate(lines) if ln.split()[1] == "6")]
    (root / "query_test.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(FgrError) as err:
        A.load_attribute_set(root).check_counts("fashionai")
    msg = str(err.value)
    assert ("702 test queries of attribute 6 (neckline_design_labels; reference neckline_design), "
            "the reference 703") in msg
    assert "fgr data download asen-splits" in msg and "\n" not in msg
    with pytest.raises(FgrError, match="has 8 attributes, the deepfashion reference has 5"):
        ds.check_counts("deepfashion")
    with pytest.raises(FgrError, match="no reference counts for 'zappos'"):
        ds.check_counts("zappos")


def test_value_counts_checked_for_deepfashion_and_darn(tmp_path):
    for dataset in ("deepfashion", "darn"):
        ref = A.REFERENCE_COUNTS[dataset]
        names = list(ref["attributes"])
        values = {a: [str(j) for j in range(n)] for a, n in zip(names, ref["values"])}
        meta = {"X": {"ATTRIBUTES": names, "ATTRIBUTES_NUM": {a: len(v) for a, v in values.items()},
                      "ATTRIBUTES_VALUES": values}}
        A.load_attribute_set(write_set(tmp_path / dataset, meta=meta)).check_counts(dataset)
        values[names[2]].pop()
        meta["X"]["ATTRIBUTES_NUM"][names[2]] -= 1
        with pytest.raises(FgrError, match=f"attribute 2 \\({names[2]}; reference {names[2]}\\) has "
                                           f"{ref['values'][2] - 1} values, the reference {ref['values'][2]}"):
            A.load_attribute_set(write_set(tmp_path / dataset, meta=meta)).check_counts(dataset)


# ---------------------------------------------------------------------------------------------------
# CSN triplet lists


def write_lists(base: Path, conditions=A.ZAPPOS_CONDITIONS, per_file: int = 6, n_images: int = 12) -> Path:
    lists = base / "data" / "tripletlists"
    lists.mkdir(parents=True)
    (base / "data" / "filenames.json").write_text("".join(f"Shoes/Brand/{i}.jpg\n" for i in range(n_images)))
    for c, cond in enumerate(conditions):
        for s, split in enumerate(A.TRIPLET_SPLITS):
            rows = [((c + s + i) % n_images, (c + 2 * i + 1) % n_images, (3 * c + i + 2) % n_images)
                    for i in range(per_file)]
            (lists / f"{cond}_tripletlist_{split}.txt").write_text("".join(f"{a} {b} {x}\n" for a, b, x in rows))
    return base


def _multiset(rows: np.ndarray) -> Counter:
    return Counter(map(tuple, rows.tolist()))


def test_triplet_lists_pool_conditions_keep_lines(tmp_path):
    base = write_lists(tmp_path / "csn")
    tl = A.load_triplet_lists(base, tmp_path)
    assert tl.conditions == list(A.ZAPPOS_CONDITIONS)
    assert tl.filenames[3] == "Shoes/Brand/3.jpg"
    for split in A.TRIPLET_SPLITS:
        expected = Counter()
        for c, cond in enumerate(A.ZAPPOS_CONDITIONS):
            for line in (base / "data/tripletlists" / f"{cond}_tripletlist_{split}.txt").read_text().splitlines():
                expected[tuple(map(int, line.split())) + (c,)] += 1  # a b c kept in order, condition appended
        assert _multiset(tl.triplets[split]) == expected
    assert tl.counts()["val"] == {"triplets": 24, "per_condition": {c: 6 for c in A.ZAPPOS_CONDITIONS}}
    # pooled and shuffled: the conditions are mixed, not in file order
    assert tl.triplets["train"][:, 3].tolist() != sorted(tl.triplets["train"][:, 3].tolist())


def test_a_triplet_naming_a_dropped_image_leaves(tmp_path):
    base = write_lists(tmp_path / "csn")
    tl = A.load_triplet_lists(base, tmp_path)
    assert tl.image_paths() == [tmp_path / f"Shoes/Brand/{i}.jpg" for i in range(12)]
    assert tl.without({}) is tl and tl.without({tmp_path / "x.jpg": "empty file (0 bytes)"}) is tl
    dropped = {tmp_path / "Shoes/Brand/3.jpg": "truncated image data", tmp_path / "Shoes/Brand/7.jpg": "not an image"}
    out = tl.without(dropped)
    assert out.filenames == [f for f in tl.filenames if tl.image_root / f not in dropped]

    def by_path(t: A.TripletLists, split: str) -> Counter:
        return Counter((*(t.path(int(i)) for i in r[:3]), int(r[3])) for r in t.triplets[split])

    for split in A.TRIPLET_SPLITS:
        want = Counter({k: n for k, n in by_path(tl, split).items() if not set(k[:3]) & set(dropped)})
        assert by_path(out, split) == want and sum(want.values()) < len(tl.triplets[split])
        assert out.triplets[split].dtype == np.int64 and out.triplets[split][:, :3].max() < len(out.filenames)
    assert out.conditions == tl.conditions and out.image_root == tl.image_root


def test_triplet_shuffle_is_seeded_and_truncation_follows_csn(tmp_path):
    base = write_lists(tmp_path / "csn")
    one, again = A.load_triplet_lists(base, tmp_path, seed=3), A.load_triplet_lists(base, tmp_path, seed=3)
    other = A.load_triplet_lists(base, tmp_path, seed=4)
    assert np.array_equal(one.triplets["train"], again.triplets["train"])
    assert not np.array_equal(one.triplets["train"], other.triplets["train"])
    assert _multiset(one.triplets["train"]) == _multiset(other.triplets["train"])
    assert not np.array_equal(one.triplets["train"], one.triplets["val"])  # each split its own stream

    cut = A.load_triplet_lists(base, tmp_path, n_triplets={"train": 8, "test": 100}, seed=3)
    assert np.array_equal(cut.triplets["train"], one.triplets["train"][:8])  # 8 * 4 / 4
    assert len(cut.triplets["val"]) == 24 and len(cut.triplets["test"]) == 24  # absent / more than there are
    two = A.load_triplet_lists(base, tmp_path, conditions=["heel", "class"], n_triplets={"train": 8})
    assert len(two.triplets["train"]) == 4  # 8 * 2 / 4
    assert two.conditions == ["heel", "class"] and set(two.triplets["train"][:, 3].tolist()) <= {0, 1}
    with pytest.raises(FgrError, match="unknown split"):
        A.load_triplet_lists(base, tmp_path, n_triplets={"valid": 1})


def test_triplet_conditions_image_root_and_errors(tmp_path):
    base = write_lists(tmp_path / "other", conditions=("zeta", "alpha"))
    assert A.load_triplet_lists(base / "data" / "tripletlists", tmp_path).conditions == ["alpha", "zeta"]

    base = write_lists(tmp_path / "csn")
    images = tmp_path / "zappos"
    for i in range(12):
        (images / "ut-zap50k-images" / "Shoes" / "Brand").mkdir(parents=True, exist_ok=True)
        (images / "ut-zap50k-images" / "Shoes" / "Brand" / f"{i}.jpg").write_bytes(b"jpg")
    tl = A.load_triplet_lists(base, images)
    assert tl.image_root == images / "ut-zap50k-images" and tl.path(5).is_file()
    direct = A.load_triplet_lists(base, images / "ut-zap50k-images")
    assert direct.image_root == images / "ut-zap50k-images"
    assert A.load_triplet_lists(base, tmp_path / "nowhere").image_root == tmp_path / "nowhere"

    bad = base / "data/tripletlists/gender_tripletlist_val.txt"
    bad.write_text("0 1 2\n\n3 4 12\n")
    with pytest.raises(FgrError) as err:
        A.load_triplet_lists(base, images)
    msg = str(err.value)
    assert "gender_tripletlist_val.txt line 3: index out of range in 3 4 12 (filenames.json lists 12 images" in msg
    assert "\n" not in msg
    bad.write_text("0 1\n")
    with pytest.raises(FgrError, match="gender_tripletlist_val.txt line 1: expected 'a b c' \\(3 integers\\)"):
        A.load_triplet_lists(base, images)
    bad.unlink()
    with pytest.raises(DatasetMissing, match="gender_tripletlist_val.txt is missing"):
        A.load_triplet_lists(base, images)
    with pytest.raises(DatasetMissing, match="no tripletlists/ folder"):
        A.load_triplet_lists(tmp_path / "zappos", images)


# ---------------------------------------------------------------------------------------------------
# the synthetic asfr-garments


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(G, "MAX_WORKERS", 2)
        return synth_in(tmp_path_factory.mktemp("asfr"), G.NAME)


@pytest.fixture(scope="module")
def record(smoke) -> dict:
    return json.loads((smoke / G.JSON_FILE).read_text())


def test_registered_and_plans():
    assert {"smoke", "demo"} <= set(GENERATORS[G.NAME].sizes)
    assert G.asfr_plan("smoke") == G.AsfrPlan(160, 40, 40, 64, (200, 50, 50))
    assert G.asfr_plan("demo") == G.AsfrPlan(2400, 500, 1000, 192, (4000, 1000, 2000))
    plan = G.asfr_plan("1k")
    assert (plan.train, plan.valid, plan.test, plan.px) == (600, 130, 270, 192)
    assert G.asfr_plan("300").px == 64
    with pytest.raises(FgrError, match="too small"):
        G.asfr_plan("150")
    for spec in G.ATTRIBUTE_SPECS:
        assert spec.values[0] == "Invisible" and len(set(spec.values)) == len(spec.values)
    assert G._SPEC["collar_design"].values == ("Invisible", "shirt", "mandarin", "peter-pan", "turtle", "hood")
    assert G._SPEC["skirt_length"].values == ("Invisible", "thigh", "knee", "calf", "ankle")


def test_smoke_reads_with_the_real_readers(smoke):
    ds = A.load_attribute_set(smoke)
    assert ds.name == G.NAME and ds.attributes == [s.name for s in G.ATTRIBUTE_SPECS]
    assert all(ds.values[a][0] == "Invisible" for a in ds.attributes)
    assert [len(ds.filenames[s]) for s in A.SPLITS] == [160, 40, 40]
    assert not any(ds.missing_images(s) for s in A.SPLITS)
    assert all(p.startswith(f"Images/{ds.attributes[a]}_labels/") for p, a in
               zip((ds.filenames["train"][i] for i in ds.train_labels[:, 0]), ds.train_labels[:, 1]))
    with Image.open(ds.path("test", 0)) as im:
        assert im.mode == "RGB" and im.size == (64, 64)
    tl = A.load_triplet_lists(smoke / "zappos", smoke, conditions=G.CONDITIONS)
    assert tl.image_root == smoke and len(tl.filenames) == 240 and tl.path(0).is_file()
    assert {s: len(t) for s, t in tl.triplets.items()} == {"train": 800, "val": 200, "test": 200}
    counts = synth_manifest(smoke)["counts"]
    assert counts == {"train_images": 160, "valid_images": 40, "test_images": 40, "valid_queries": 8,
                      "valid_candidates": 32, "test_queries": 8, "test_candidates": 32, "train_triplets": 800,
                      "val_triplets": 200, "test_triplets": 200, "px": 64}


def test_smoke_labels_splits_and_shares(smoke):
    ds = A.load_attribute_set(smoke)
    lines = (smoke / "label_train.txt").read_text().splitlines()
    assert all(len(ln.split()) == 3 for ln in lines)  # one pair per train image, as FashionAI
    assert sorted(ds.train_labels[:, 0].tolist()) == list(range(160))
    per_attr = np.bincount(ds.train_labels[:, 1], minlength=8)
    assert per_attr.argmax() == 6 and per_attr[1] > per_attr[4]  # FashionAI's shares: neckline most, sleeve > collar
    # about 5 % Invisible where a category lacks the attribute; pattern applies to every garment
    has_invisible = [i for i, s in enumerate(G.ATTRIBUTE_SPECS) if s.invisible_categories]
    rows = ds.train_labels[np.isin(ds.train_labels[:, 1], has_invisible)]
    assert 0.03 <= np.mean(rows[:, 2] == 0) <= 0.1
    assert not np.any((ds.train_labels[:, 1] == 7) & (ds.train_labels[:, 2] == 0))
    groups = ds.train_groups()
    for a in range(8):  # the triplet sampler needs two values with two images
        assert sum(len(ids) >= 2 for ids in groups[a].values()) >= 2
    for split in A.EVAL_SPLITS:
        q, c = ds.queries[split], ds.candidates[split]
        assert sorted(q[:, 0].tolist() + c[:, 0].tolist()) == list(range(40))  # query or candidate, never both
        for a in range(8):
            nq, nc = int(np.sum(q[:, 1] == a)), int(np.sum(c[:, 1] == a))
            assert nq == max(1, round(0.2 * (nq + nc)))
            for v in q[q[:, 1] == a, 2]:
                assert np.any((c[:, 1] == a) & (c[:, 2] == v))
        assert len(c) == 4 * len(q)


def test_labelled_value_is_the_rendered_garment(smoke, record):
    images = record["images"]
    assert [im["path"] for im in images] == (smoke / "zappos/filenames.json").read_text().splitlines()
    for im in images:
        spec = G._SPEC[im["attr"]]
        g = Garment.from_json(im["garment"])
        if im["value"] == G.INVISIBLE:
            assert g.category in spec.invisible_categories
        else:
            assert g.category in spec.categories and getattr(g, spec.garment_attr) == im["value"]
            assert spec.value_of(g) == im["value"]
    for k in (0, 77, 239):  # the PNG is that garment, drawn from the image's own stream
        im = images[k]
        rng = np.random.default_rng([0, G._STREAMS["image"], k])
        g = G.draw_garment(rng, G._SPEC[im["attr"]], im["value"])
        assert g.to_json() == im["garment"]
        with Image.open(smoke / im["path"]) as png:
            assert np.array_equal(np.asarray(png), np.asarray(render_photo(g, 64, rng)))


def test_triplets_follow_the_full_garments(smoke, record):
    images = record["images"]
    garments = [Garment.from_json(im["garment"]) for im in images]
    split_of = {"train": "train", "val": "valid", "test": "test"}
    for cond in G.CONDITIONS:
        spec = G._SPEC[cond]
        for tsplit, n in (("train", 200), ("val", 50), ("test", 50)):
            rows = np.loadtxt(smoke / "zappos/tripletlists" / f"{cond}_tripletlist_{tsplit}.txt", dtype=int, ndmin=2)
            assert rows.shape == (n, 3)
            labelled_other = 0
            for a, b, c in rows:
                va, vb, vc = (spec.value_of(garments[i]) for i in (a, b, c))
                assert None not in (va, vb, vc) and va == vc != vb and a != c
                assert {images[i]["split"] for i in (a, b, c)} == {split_of[tsplit]}
                labelled_other += images[a]["attr"] != cond
            assert labelled_other > 0  # images labelled under another attribute take part too


def test_output_does_not_depend_on_worker_count(smoke, tmp_path, monkeypatch):
    monkeypatch.setattr(G, "MAX_WORKERS", 1)  # the fixture rendered with two worker processes
    serial = synth_in(tmp_path, G.NAME)

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "synth-manifest.json"}

    a, b = files(smoke), files(serial)
    assert len(a) == 240 + 12 + 1 + 10 and a == b


def test_attribute_figure(smoke):
    fig = samples.sample_figure(G.NAME, smoke, n=4)
    assert len(fig.axes) == 8 * 4
    for row, spec in enumerate(G.ATTRIBUTE_SPECS):
        titles = [ax.get_title() for ax in fig.axes[4 * row:4 * row + 4]]
        assert titles[0].startswith(f"{spec.name}: ")
        shown = [titles[0].split(": ")[1]] + titles[1:]
        assert set(shown) <= set(spec.values) and len(set(shown)) == 4  # different values first
