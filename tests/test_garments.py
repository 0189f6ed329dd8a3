"""The garment renderer (attributes, geometry, photo / sketch / pseudo-sketch renderers) and sbir-garments."""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import synth_in
from PIL import Image
from scipy import ndimage

from fgr_utils.data.synth import GENERATORS
from fgr_utils.data.synth import garments as G
from fgr_utils.data.synth import manifest as synth_manifest
from fgr_utils.data.synth import sbir_garments as S
from fgr_utils.data.synth.garments import geometry
from fgr_utils.errors import FgrError

SKETCH_NAME = re.compile(r"^(g\d{5})_(\d+)\.png$")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return synth_in(tmp_path_factory.mktemp("garments"), S.NAME)


@pytest.fixture(scope="module")
def meta(smoke) -> dict:
    return json.loads((smoke / S.JSON_FILE).read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "synth-manifest.json"}


def _dark(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L")) < 128


def _outline_score(sketch: Image.Image, mask: np.ndarray, r: int) -> float:
    """F1 of sketch strokes against the mask's boundary, both within ``r`` pixels."""
    dark = _dark(sketch)
    precision = (dark & ndimage.binary_dilation(mask, iterations=r)).sum() / max(dark.sum(), 1)
    edge = mask & ~ndimage.binary_erosion(mask)
    recall = (edge & ndimage.binary_dilation(dark, iterations=r)).sum() / max(edge.sum(), 1)
    return float(2 * precision * recall / max(precision + recall, 1e-9))


# ---------------------------------------------------------------------------------------------------
# the dataset


def test_registered_with_presets_and_counts():
    for name in (S.NAME, f"{S.NAME}-xdog", f"{S.NAME}-canny"):
        assert {"smoke", "demo"} <= set(GENERATORS[name].sizes)
    assert S.garment_plan("smoke") == S.GarmentPlan(24, 12, 64)
    assert S.garment_plan("demo").px == 128
    plan = S.garment_plan("50")
    assert (plan.train_photos + plan.test_photos, plan.px) == (50, 64)
    with pytest.raises(FgrError, match="at least 4"):
        S.garment_plan("3")


def test_smoke_layout_pairs_and_counts(smoke, meta):
    counts = synth_manifest(smoke)["counts"]
    assert synth_manifest(smoke)["seconds"] < 5
    photos = {split: {p.stem for p in (smoke / f"{split}B").glob("*.png")} for split in ("train", "test")}
    assert (len(photos["train"]), len(photos["test"])) == (24, 12) == (counts["train_photos"], counts["test_photos"])
    assert not photos["train"] & photos["test"]
    per_photo = Counter()
    ks = []
    for split in ("train", "test"):
        sketches = sorted((smoke / f"{split}A").glob("*.png"))
        assert len(sketches) == counts[f"{split}_sketches"]
        for s in sketches:
            m = SKETCH_NAME.match(s.name)
            assert m, s.name
            assert m.group(1) in photos[split], f"{s.name} has no photo in {split}B"
            k = int(m.group(2))
            assert 1 <= k <= 12
            assert meta["sketches"][s.stem] == {"photo": m.group(1), "split": split, "k": k, "designer": k,
                                                "source": "designer"}
            per_photo[m.group(1)] += 1
            ks.append(k)
    assert set(per_photo.values()) <= {2, 3} and len(per_photo) == 36
    # two-digit suffixes exist, and ARNet's glob("<photo>_?.png") would silently lose exactly those
    assert counts["multi_digit_sketches"] == sum(k >= 10 for k in ks) > 0
    for split in ("train", "test"):
        kept = sum(len(list((smoke / f"{split}A").glob(f"{p}_?.png"))) for p in photos[split])
        assert kept == counts[f"{split}_sketches"] - sum(
            1 for s in meta["sketches"].values() if s["split"] == split and s["k"] >= 10)
    img = Image.open(next((smoke / "trainB").glob("*.png")))
    sk = Image.open(next((smoke / "testA").glob("*.png")))
    assert (img.size, img.mode, sk.size, sk.mode) == ((64, 64), "RGB", (64, 64), "L")


def test_smoke_metadata_and_fine_grained_families(meta):
    assert set(meta["photos"]) == {f"g{i:05d}" for i in range(36)}
    families = defaultdict(list)
    for pid, p in meta["photos"].items():
        g = G.Garment.from_json(p)  # validates every stored attribute set
        assert p["attributes"] == g.attributes()
        families[(p["split"], p["family"])].append(g)
    assert {s for s, _ in families} == {"train", "test"}
    assert not {f for s, f in families if s == "train"} & {f for s, f in families if s == "test"}
    assert all(len(v) >= 3 for v in families.values())
    for members in families.values():
        shared = {(g.category, g.silhouette, g.length, g.colour, g.proportions) for g in members}
        assert len(shared) == 1, "a family shares its cut and colour"
        details = [tuple(getattr(g, a) for a in G.DETAILS) for g in members]
        assert len(set(details)) == len(details), "family members differ in details"
    # category alone never singles out a test photo
    cats = Counter(p["attributes"]["category"] for p in meta["photos"].values() if p["split"] == "test")
    assert min(cats.values()) >= 3


def test_same_seed_same_bytes_other_seed_differs(smoke, tmp_path):
    again = synth_in(tmp_path / "a", S.NAME)
    assert _files(again) == _files(smoke)
    other = synth_in(tmp_path / "b", S.NAME, seed=1)
    a, b = _files(smoke), _files(other)
    photo = lambda files, pid: next(v for k, v in files.items() if k.endswith(f"B/{pid}.png"))  # noqa: E731
    assert all(photo(a, f"g{i:05d}") != photo(b, f"g{i:05d}") for i in range(36))
    assert a[S.JSON_FILE] != b[S.JSON_FILE]


def test_pseudo_sketch_sets_share_photos_and_names(smoke, tmp_path):
    canny = synth_in(tmp_path, f"{S.NAME}-canny")
    ours, theirs = _files(smoke), _files(canny)
    assert sorted(ours) == sorted(theirs)
    assert all(ours[f] == theirs[f] for f in ours if "B/" in f), "the same photos, byte for byte"
    assert any(ours[f] != theirs[f] for f in ours if "A/" in f)
    meta = json.loads((canny / S.JSON_FILE).read_text())
    assert {s["source"] for s in meta["sketches"].values()} == {"canny"}
    assert {s["designer"] for s in meta["sketches"].values()} == {None}
    # two pseudo-sketches of one photo differ (each k re-poses the photo)
    by_photo = defaultdict(list)
    for name, s in meta["sketches"].items():
        by_photo[s["photo"]].append(theirs[f"{s['split']}A/{name}.png"])
    assert all(len(set(v)) == len(v) for v in by_photo.values())


# ---------------------------------------------------------------------------------------------------
# attributes


def test_sampled_garments_stay_in_the_vocabulary():
    assert tuple(ATTR for ATTR in G.ATTRIBUTES) == tuple(f for f in G.Garment.__dataclass_fields__ if f != "proportions")
    rng = np.random.default_rng(0)
    seen = defaultdict(set)
    for _ in range(400):
        g = G.sample_garment(rng)
        for name, v in g.attributes().items():
            assert v in G.ATTRIBUTES[name]
            seen[name].add(v)
        top = g.category not in ("skirt", "trousers")
        assert (g.sleeve_length != G.NA) == top and (g.collar != G.NA) == top and (g.neckline != G.NA) == top
        assert (g.lapel != G.NA) == (g.category == "coat")
        assert (g.accent == G.NA) == (g.print == "solid")
    assert {k: set(v) for k, v in G.ATTRIBUTES.items()} == dict(seen), "every value is reachable"


def test_fixing_any_value_holds():
    rng = np.random.default_rng(1)
    for name, values in G.ATTRIBUTES.items():
        for v in values:
            g = G.sample_garment(rng, **{name: v})
            assert getattr(g, name) == v
    for _ in range(20):
        g = G.sample_garment(rng, category="coat", collar="hood", print="stripes")
        assert (g.category, g.collar, g.print, g.lapel) == ("coat", "hood", "stripes", "none")
        assert g.neckline in ("round", "v") and g.accent not in (G.NA, g.colour)
    assert G.sample_garment(rng, neckline="square").category in ("tshirt", "shirt", "dress")


@pytest.mark.parametrize("fixed, words", [
    ({"collar": "bowtie"}, ["collar", "'bowtie'", "peter-pan"]),
    ({"colr": "red"}, ["unknown", "'colr'", "colour"]),
    ({"category": "skirt", "collar": "hood"}, ["skirt", "collar"]),
    ({"lapel": "notched", "neckline": "round"}, ["lapel", "neckline='v'"]),
])
def test_bad_fixed_values_raise_one_line(fixed, words):
    with pytest.raises(FgrError) as e:
        G.sample_garment(np.random.default_rng(0), **fixed)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("sample_garment:")
    for w in words:
        assert w in msg


def test_garment_checks_itself():
    g = G.sample_garment(np.random.default_rng(2), category="skirt")
    with pytest.raises(FgrError, match="sleeve_length"):
        G.Garment(**{**g.attributes(), "sleeve_length": "long"})
    with pytest.raises(FgrError, match="proportions"):
        G.Garment(**g.attributes(), proportions=(3.0, 1.0))
    assert G.Garment.from_json(json.loads(json.dumps(g.to_json()))) == g


# ---------------------------------------------------------------------------------------------------
# renderers


def _garments(seed: int, n: int) -> list[G.Garment]:
    rng = np.random.default_rng(seed)
    return [G.sample_garment(rng, category=G.CATEGORIES[i % 6]) for i in range(n)]


def test_photo_is_a_filled_garment_on_a_light_card():
    g = G.sample_garment(np.random.default_rng(3), category="dress", colour="navy", print="solid")
    pose = G.sample_pose(np.random.default_rng(0))
    photo = G.render_photo(g, 128, np.random.default_rng(4), pose=pose)
    assert (photo.mode, photo.size) == ("RGB", (128, 128))
    grey = np.asarray(photo.convert("L"), float)
    mask = G.garment_mask(g, 128, pose)
    inner, outer = ndimage.binary_erosion(mask, iterations=2), ~ndimage.binary_dilation(mask, iterations=4)
    assert 0.1 < mask.mean() < 0.7
    assert grey[inner].mean() < 90 and grey[outer].mean() > 200, "navy fabric fills the mask; the card is light"
    assert grey[inner].std() < 25, "filled, not a line drawing"
    assert G.render_photo(g, 64, np.random.default_rng(4)).size == (64, 64)


def test_sketch_follows_its_photos_outline_not_another_category():
    same, other = [], []
    for i, g in enumerate(_garments(5, 12)):
        h = _garments(50 + i, 12)[(i + 3) % 12]  # a garment of another category
        assert h.category != g.category
        pose = G.sample_pose(np.random.default_rng(i))
        G.render_photo(g, 128, np.random.default_rng(i), pose=pose)
        mask = G.garment_mask(g, 128, pose)
        for designer in (1, 6, 11):
            sk = G.render_sketch(g, G.DESIGNERS[designer], 128, np.random.default_rng([i, designer]))
            assert sk.mode == "L" and 0.01 < _dark(sk).mean() < 0.4
            same.append(_outline_score(sk, mask, 5))
            other.append(_outline_score(G.render_sketch(h, designer, 128, np.random.default_rng([i, designer])), mask, 5))
    same, other = np.array(same), np.array(other)
    assert np.median(same) > 0.85 and same.min() > 0.6
    assert (same > other).mean() > 0.9 and np.median(other) < np.median(same) - 0.15


def test_designers_range_from_neat_to_rough():
    assert sorted(G.DESIGNERS) == list(range(1, 13))
    g = _garments(6, 1)[0]
    mask = G.garment_mask(g, 128)
    neat = G.render_sketch(g, 1, 128, np.random.default_rng(0), pose=G.Pose())
    rough = G.render_sketch(g, 12, 128, np.random.default_rng(0), pose=G.Pose())
    assert _outline_score(neat, mask, 2) > _outline_score(rough, mask, 2)
    # omission: a designer who never draws pockets / buttons / print / seams leaves fewer strokes
    busy = G.sample_garment(np.random.default_rng(7), category="coat", pockets="patch", buttons="6", print="checks")
    full = G.SketchStyle("all")
    bare = G.SketchStyle("bare", omit_pockets=1, omit_buttons=1, omit_print=1, omit_seams=1)
    a = _dark(G.render_sketch(busy, full, 128, np.random.default_rng(1), pose=G.Pose())).sum()
    b = _dark(G.render_sketch(busy, bare, 128, np.random.default_rng(1), pose=G.Pose())).sum()
    assert b < 0.6 * a
    with pytest.raises(FgrError, match="designer number"):
        G.render_sketch(g, 13, 64, np.random.default_rng(0))


def test_geometry_is_shared_and_print_is_clipped():
    g = G.sample_garment(np.random.default_rng(8), category="tshirt", print="dots", sleeve_length="short")
    geom = G.garment_geometry(g)
    assert geom is G.garment_geometry(g)
    assert {"body", "sleeve"} <= {p.kind for p in geom.parts if p.group == "outline"}
    pts = np.vstack(geom.print_strokes)
    inside = np.zeros(len(pts), bool)
    for r in geom.region:
        inside |= geometry._inside(pts, r)
    assert inside.all() and len(geom.print_strokes) < len(geom.prints)


def test_xdog_and_canny_draw_the_photos_edges():
    g = G.sample_garment(np.random.default_rng(9), category="coat", colour="red", print="solid")
    pose = G.sample_pose(np.random.default_rng(1))
    photo = G.render_photo(g, 128, np.random.default_rng(2), pose=pose)
    mask = G.garment_mask(g, 128, pose)
    edge = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_erosion(mask, iterations=3)
    for sk in (G.xdog(photo), G.canny_sketch(photo)):
        assert sk.mode == "L" and sk.size == (128, 128)
        dark = _dark(sk)
        assert (np.asarray(sk) > 200).mean() > 0.8, "mostly white"
        assert dark.sum() > 50 and (dark & edge).sum() / dark.sum() > 0.6, "dark pixels lie on the outline"
    # the XDoG formula: a flat image is all white; a step gets a dark line on its dark side only
    assert (np.asarray(G.xdog(np.full((32, 32), 0.5))) == 255).all()
    step = np.full((32, 32), 0.9)
    step[:, :16] = 0.3
    cols = np.flatnonzero((np.asarray(G.xdog(step)) < 128).any(axis=0))
    assert cols.size and cols.min() >= 12 and cols.max() <= 15
    with pytest.raises(FgrError, match="sigma"):
        G.xdog(photo, sigma=0)
