"""`fgr data download / verify` for the attribute track's datasets, against a local HTTP server.

Tiny archives with the real layouts stand in for ut-zap50k-images.zip and csn_zappos_triplets.zip;
the registry specs keep their layout checks (the image count is lowered for the toy zip) and only
their addresses point at the local server. What was downloaded is then read with the kit's reader.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from fgr_utils import cli
from fgr_utils.data import attributes as A
from fgr_utils.data import registry
from fgr_utils.data.registry import LayoutCheck
from fgr_utils.errors import FgrError

try:
    from httpserver import FileServer, make_zip
except ImportError:  # tests/ became a package
    from tests.httpserver import FileServer, make_zip

SHOES = [f"Shoes/Oxfords/Brand{i % 2}/{7000 + i}.{i}.jpg" for i in range(6)]


def triplet_zip() -> bytes:
    """csn_zappos_triplets.zip: data/tripletlists/<condition>_tripletlist_<split>.txt and data/filenames.json."""
    files = {"data/filenames.json": "".join(f"{s}\n" for s in SHOES).encode()}
    for c, cond in enumerate(A.ZAPPOS_CONDITIONS):
        for s, split in enumerate(A.TRIPLET_SPLITS):
            rows = [((c + s + i) % 6, (c + i + 2) % 6, (c + s + i + 4) % 6) for i in range(5)]
            text = "".join(f"{a} {b} {x}\n" for a, b, x in rows)
            files[f"data/tripletlists/{cond}_tripletlist_{split}.txt"] = text.encode()
    return make_zip(files)


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


@pytest.fixture
def zappos(isolated_dirs, server, monkeypatch):
    """The zappos50k and csn-zappos-triplets specs pointed at the local server; returns the triplet zip."""
    images = make_zip({f"ut-zap50k-images/{s}": f"jpeg {s}".encode() * 50 for s in SHOES})
    triplets = triplet_zip()
    server.files.update({"ut-zap50k-images.zip": images, "csn_zappos_triplets.zip": triplets})
    for name, check in (("zappos50k", LayoutCheck("ut-zap50k-images/**/*.jpg", 6, 6, "images")),
                        ("csn-zappos-triplets", None)):
        spec = registry.get(name)
        archive = dataclasses.replace(spec.archives[0], url=server.url(spec.archives[0].name))
        changed = dataclasses.replace(spec, archives=(archive,), layout=(check,) if check else spec.layout)
        monkeypatch.setitem(registry.DATASETS, name, changed)
    return triplets


def test_download_zappos_and_csn_triplets_then_read(zappos, server, isolated_dirs, capsys):
    assert cli.main(["data", "download", "zappos50k", "--no-progress"]) == 0
    assert cli.main(["data", "download", "csn-zappos-triplets", "--no-progress"]) == 0  # zappos50k is there
    out = capsys.readouterr().out
    assert "zappos50k: downloaded and verified" in out and "csn-zappos-triplets: downloaded and verified" in out
    assert [p for m, p, _ in server.requests if m == "GET"] == ["/ut-zap50k-images.zip", "/csn_zappos_triplets.zip"]
    list_root, image_root = A.zappos_root()
    assert (list_root, image_root) == (registry.dataset_root("csn-zappos-triplets"), registry.dataset_root("zappos50k"))

    lists = A.load_triplet_lists(list_root, image_root, n_triplets=A.ZAPPOS_TRIPLETS)
    assert lists.image_root == image_root / "ut-zap50k-images"  # CSN's base path under the dataset folder
    assert lists.conditions == list(A.ZAPPOS_CONDITIONS) and lists.filenames == SHOES
    assert all(lists.path(i).read_bytes().startswith(b"jpeg ") for i in range(len(SHOES)))
    assert {split: len(t) for split, t in lists.triplets.items()} == {"train": 20, "val": 20, "test": 20}
    heel = (list_root / "data/tripletlists/heel_tripletlist_test.txt").read_text().split("\n")[0]
    assert tuple(map(int, heel.split())) + (3,) in {tuple(r) for r in lists.triplets["test"].tolist()}
    assert cli.main(["data", "verify", "zappos50k"]) == 0


def test_truncated_triplet_download_resumes(zappos, server, isolated_dirs, capsys):
    cut = len(zappos) // 2
    server.truncate["csn_zappos_triplets.zip"] = cut
    assert cli.main(["data", "download", "csn-zappos-triplets", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{cut} of {len(zappos)} bytes" in err and "resume" in err
    assert registry.status("zappos50k") == "present" and registry.status("csn-zappos-triplets") == "missing"

    server.truncate.clear()
    assert cli.main(["data", "download", "csn-zappos-triplets", "--no-progress"]) == 0
    assert server.range_requests("csn_zappos_triplets.zip") == [f"bytes={cut}-"]
    assert len(A.load_triplet_lists(*A.zappos_root()).triplets["val"]) == 20


def test_fashionai_is_manual_and_verify_lists_what_is_missing(isolated_dirs, capsys):
    dest = registry.dataset_root("fashionai")
    assert cli.main(["data", "download", "fashionai"]) == 0
    out = capsys.readouterr().out
    assert "cannot be downloaded automatically" in out and "tianchi.aliyun.com/competition/entrance/231671" in out
    assert f"Destination folder: {dest}" in out and "fgr data download asen-splits" in out
    assert not dest.exists()

    assert cli.main(["data", "verify", "fashionai"]) == 1
    out = capsys.readouterr().out
    assert f"folder {dest} does not exist" in out and "fashionAI_attributes_train1.zip" in out

    # a small copy in the real layout: images, label.csv, split files; meta.json in the asen-splits folder
    names = [f"fashionAI_attributes_train1/Images/{a}_labels/{i:032x}.jpg" for a in ("skirt_length", "coat_length")
             for i in range(3)]
    for n in names:
        (dest / n).parent.mkdir(parents=True, exist_ok=True)
        (dest / n).write_bytes(b"jpeg")
    (dest / "fashionAI_attributes_train1/Annotations").mkdir()
    (dest / "fashionAI_attributes_train1/Annotations/label.csv").write_text(
        f"Images/skirt_length_labels/{0:032x}.jpg,skirt_length_labels,nnynnn\n")
    split_files = {"filenames_train.txt": names[:2], "filenames_valid.txt": names[2:4], "filenames_test.txt": names[4:]}
    for file, lines in split_files.items():
        (dest / file).write_text("".join(f"{ln}\n" for ln in lines))
    for file, text in (("label_train.txt", "0 0 2\n1 0 3\n"), ("query_valid.txt", "0 0 1\n"),
                       ("candidate_valid.txt", "1 2 1\n"), ("query_test.txt", "0 0 5\n"),
                       ("candidate_test.txt", "1 2 7\n")):
        (dest / file).write_text(text)
    ref = A.REFERENCE_COUNTS["fashionai"]
    meta = {"FashionAI": {"ATTRIBUTES": list(ref["attributes"]),
                          "ATTRIBUTES_NUM": dict(zip(ref["attributes"], ref["values"])),
                          "ATTRIBUTES_VALUES": {a: ["Invisible"] + [f"v{j}" for j in range(1, n)]
                                                for a, n in zip(ref["attributes"], ref["values"])}}}
    asen = registry.dataset_root("asen-splits") / "data"
    asen.mkdir(parents=True)
    (asen / "meta.json").write_text(json.dumps(meta))

    assert cli.main(["data", "verify", "fashionai"]) == 1  # the layout wants the full set of images
    out = capsys.readouterr().out
    assert "1 problem(s)" in out
    assert "expected fashionAI_attributes_train*/Images/*_labels/*.jpg (>= 100000 images), found 6" in out
    ds = A.load_attribute_set(dest)  # but the reader takes the small copy, meta.json from asen-splits
    assert ds.name == "FashionAI" and ds.candidates["test"].tolist() == [[1, 2, 7]]
    assert ds.missing_images("test") == []
    with pytest.raises(FgrError, match="2 test images, the reference 18000"):
        ds.check_counts("fashionai")
