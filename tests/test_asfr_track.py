"""The attribute-specific retrieval track: sampler, inputs, feature cache, crops, metrics, notebooks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_claims_decided, assert_queries_kept, read_json
from PIL import Image

from fgr_utils import cli
from fgr_utils.errors import FgrError
from fgr_utils.losses import cosine_triplet
from fgr_utils.results import RunRecord
from fgr_utils.tracks import asfr
from fgr_utils.tracks.asfr.train import _optimizer


def _groups():
    # attr 0: values 0 (ids 0-2), 1 (ids 3-4), 2 (id 5, a single image); attr 1: value 0 only (unusable)
    return {0: {0: np.array([0, 1, 2]), 1: np.array([3, 4]), 2: np.array([5])}, 1: {0: np.array([6, 7])},
            2: {3: np.array([8, 9]), 4: np.array([10, 11])}}


def test_sampler_follows_the_reference_rules():
    groups = _groups()
    rows = asfr.sample_triplets(groups, 3000, np.random.default_rng(0))
    value_of = {(a, int(i)): v for a, vals in groups.items() for v, ids in vals.items() for i in ids}
    for a, p, n, attr, vp, vn in rows:
        assert a != p and vp != vn
        assert value_of[(attr, a)] == value_of[(attr, p)] == vp and value_of[(attr, n)] == vn
    attrs, counts = np.unique(rows[:, 3], return_counts=True)
    assert attrs.tolist() == [0, 2]  # attribute 1 has one value: no triplet can use it
    assert abs(counts[0] - counts[1]) < 200  # attributes uniformly, not by frequency
    assert 2 not in rows[rows[:, 3] == 0, 4]  # a value with one image is never the positive value ...
    assert 2 in rows[rows[:, 3] == 0, 5]  # ... but can be the negative one
    assert np.array_equal(rows, asfr.sample_triplets(groups, 3000, np.random.default_rng(0)))
    with pytest.raises(FgrError, match="cannot make a triplet"):
        asfr.sample_triplets({1: {0: np.array([6, 7])}}, 5, np.random.default_rng(0))


def test_csn_lines_become_anchor_positive_negative():
    lines = np.array([[0, 1, 2, 0], [3, 4, 5, 1]])  # "a b c": a is closer to c than to b
    rows = asfr.fixed_triplets(lines, np.random.default_rng(0))
    for a, p, n, cond, vp, vn in rows:
        src = lines[lines[:, 0] == a][0]
        assert (p, n, cond) == (src[2], src[1], src[3]) and vp != vn
    assert len(set(rows[:, 4]) | set(rows[:, 5])) == 4  # pseudo-values never shared between triplets


def test_inputs_resize_short_side_then_centre_crop():
    inputs = asfr.asfr_inputs(32)
    img = Image.new("RGB", (96, 64), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 16, 64))  # a black band at the far left, outside the centre crop
    x = inputs.tensor(img)
    assert x.shape == (3, 32, 32)
    assert float(x.min()) > 1.5  # all white: the band was cropped away
    flipped = inputs.mirrored().tensor(Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)))
    plain = inputs.tensor(Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)))
    assert torch.equal(flipped, plain.flip(-1))


class _CountingTrunk(torch.nn.Module):
    """A frozen-stem trunk stand-in that counts the images its stem sees."""

    frozen_stem = True

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()), requires_grad=False)
        self.seen = 0

    def stem(self, x):
        self.seen += len(x)
        return {"layer3": x[:, :, ::8, ::8] * self.scale}


def _images(folder, n, size=32):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[0:size, 0:size + 8] / size
        arr = np.stack([127 + 120 * np.sin(6 * xx * rng.uniform(0.5, 1.5) + 3 * yy + rng.uniform(0, 6))
                        for _ in range(3)], axis=-1).astype(np.uint8)  # smooth: a one-pixel shift changes little
        Image.fromarray(arr).save(folder / f"{i}.png")
        paths.append(folder / f"{i}.png")
    return paths


def test_stem_features_are_cached_on_disk_with_mirror_views(tmp_path):
    paths = _images(tmp_path / "img", 5)
    inputs = asfr.asfr_inputs(32)
    trunk = _CountingTrunk()
    feats = asfr.Features(trunk, inputs, paths, flip_indices=[1, 3], cache_dir=tmp_path / "cache", progress=False)
    probe = 1  # one image through the stem for the maps' shapes
    assert trunk.seen == probe + 7  # every image once, the two training images' mirrors once more
    x = feats.item(1)["layer3"]
    assert x.shape == (3, 4, 4) and torch.allclose(x, inputs.tensor(Image.open(paths[1]))[:, ::8, ::8], atol=1e-2)
    assert not torch.allclose(feats.item(1, flip=True)["layer3"], x)
    assert torch.equal(feats.item(2, flip=True)["layer3"], feats.item(2)["layer3"])  # no mirror kept for it
    again = asfr.Features(trunk, inputs, paths, flip_indices=[1, 3], cache_dir=tmp_path / "cache", progress=False)
    assert trunk.seen == 2 * probe + 7 and torch.equal(again.item(3, flip=True)["layer3"], feats.item(3, flip=True)["layer3"])
    Image.fromarray(np.zeros((32, 40, 3), dtype=np.uint8)).save(paths[0])  # a changed file: its view is redone
    asfr.Features(trunk, inputs, paths, flip_indices=[1, 3], cache_dir=tmp_path / "cache", progress=False)
    assert trunk.seen == 3 * probe + 7 + 5  # the mirror view (images 1 and 3) is still valid
    for p in (tmp_path / "cache").glob("asfr-stem*.npy"):
        p.write_bytes(b"torn")
    asfr.Features(trunk, inputs, paths, flip_indices=[1, 3], cache_dir=tmp_path / "cache", progress=False)
    assert trunk.seen == 4 * probe + 12 + 7  # an unreadable cache is rebuilt, not trusted


def test_crops_follow_the_attention_and_are_reused_while_the_box_stays(tmp_path):
    from fgr_utils.backbones import create_backbone

    paths = _images(tmp_path / "img", 2, size=64)
    feats = asfr.Features(_CountingTrunk(), asfr.asfr_inputs(32), paths, progress=False)
    patch = create_backbone("vit-asfr-demo", img_size=32)
    crops = asfr.Crops(feats, patch)
    corner = torch.zeros(2, 4, 4)
    corner[:, 0, 0] = 1.0  # attention on the top-left cell
    rng_before = torch.get_rng_state()
    x = crops.inputs([0, 1], corner)
    assert crops.misses == 2 and crops.hits == 0 and x.shape[0] == 2
    # cut inside a training step: the crops draw nothing from the RNG the step's dropout uses
    assert torch.equal(torch.get_rng_state(), rng_before)
    crops.inputs([0, 1], corner)
    assert crops.hits == 2
    (box,) = crops.boxes(corner[:1])
    assert box[0] == 0 and box[1] == 0 and box[2] - box[0] == box[3] - box[1] < 32  # a square in the corner
    flat = torch.full((1, 4, 4), 1 / 16)
    assert crops.boxes(flat) == [(0, 0, 32, 32)]  # nothing stands out: the whole image
    # the crop comes from the original image: the corner of a 64 x 72 picture, not of the 32 px input
    img = Image.open(paths[0]).convert("RGB")
    want = np.asarray(img.crop((4, 0, 4 + 2 * box[2], 2 * box[3])).resize((32, 32)), dtype=np.float32)
    got = crops.crop(0, box).permute(1, 2, 0).numpy() * np.array(feats.inputs.std) + np.array(feats.inputs.mean)
    assert np.abs(got * 255 - want).mean() < 3.0


def test_query_picks_take_the_attributes_in_turn():
    queries = np.array([[10, 1, 0], [11, 0, 0], [12, 1, 1], [13, 1, 0], [14, 2, 0]])
    assert asfr.query_picks(queries, 3) == [1, 0, 4]  # the first query of attributes 0, 1, 2
    assert asfr.query_picks(queries, 10) == [1, 0, 4, 2, 3]  # then the second of those that have one


def test_browser_inputs_rank_candidates_under_the_query_attribute(isolated_dirs):
    from conftest import synth_in

    synth_in(isolated_dirs / "data", "asfr-garments")
    data = asfr.load_dataset("asfr-garments", "smoke").items
    torch.manual_seed(0)
    model = asfr.build(asfr.ModelConfig(method="asen_v2", n_attr=data.n_attr, trunk="effnet-demo", width=16,
                                        attr_dim=8, hidden=8)).eval()
    features = asfr.Features(model.trunk, asfr.asfr_inputs(64), data.paths, progress=False)
    out = asfr.browser_inputs(model, data, features, n_queries=3, depth=4)
    queries, cands = data.queries["test"], data.candidates["test"]
    picks = asfr.query_picks(queries, 3)
    assert out["queries"] == [data.paths[int(queries[i, 0])] for i in picks]
    for i, row in zip(range(3), queries[picks]):
        pool = cands[cands[:, 1] == row[1]]  # candidates listed under the query's attribute
        value = {data.paths[int(c[0])]: int(c[2]) for c in pool}
        assert len(out["rankings"][i]) == min(4, len(pool)) and set(out["rankings"][i]) <= set(value)
        assert out["hits"][i] == [value[p] == int(row[2]) for p in out["rankings"][i]]
        assert out["query_titles"][i].startswith(data.names[int(row[1])] + ": ")
    want = asfr.attention_maps(model, features, int(queries[picks[1], 0]), data.n_attr)[int(queries[picks[1], 1])]
    assert np.allclose(out["query_attention"](1), want, atol=1e-5)  # the query's attention under its attribute
    assert out["attention"](1, 0).shape == want.shape
    assert out["load"](out["queries"][0]).size == (64, 64)  # as the model sees it: resized and centre-cropped

    glob = asfr.build(asfr.ModelConfig(method="global", n_attr=data.n_attr, trunk="effnet-demo", width=16,
                                       embed_dim=8)).eval()
    assert "attention" not in asfr.browser_inputs(glob, data, features, n_queries=1, depth=2)
    data.protocol = "triplets"
    with pytest.raises(FgrError, match="protocol='splits'"):
        asfr.browser_inputs(model, data, features)


@pytest.mark.notebook
def test_asfr_track_smoke(isolated_dirs):
    assert cli.main(["reproduce", "--profile", "smoke", "--track", "asfr", "--no-progress"]) == 0
    runs = isolated_dirs / "runs/smoke"
    attributes = read_json(runs / "30_asfr_train-global/metrics.json")["datasets"]["asfr-garments"]["attributes"]
    assert len(attributes) == 8 and "sleeve_length" in attributes
    for method in asfr.METHODS:
        rec = read_json(runs / f"30_asfr_train-{method}/metrics.json")
        m, info = rec["metrics"], rec["metric_info"]
        for name in ["map/weighted", "map/macro", "triplet_acc"] + [f"map/{a}" for a in attributes]:
            assert 0.0 <= m[name] <= 1.0, (method, name)
        assert "query-weighted" in info["map/weighted"]["protocol"] and "macro" in info["map/macro"]["protocol"]
        assert info["map/weighted"]["split"] == "test"
        assert set(k.split("/")[1] for k in m if k.startswith("triplet_acc/")) == {
            "sleeve_length", "collar_design", "neckline_design", "pattern_design"}
        assert (runs / f"30_asfr_train-{method}/figures/retrieval.png").stat().st_size > 3_000
        # the contract: the loaded run (its selected checkpoint) reproduces the recorded test numbers
        again = asfr.AsfrRun.load(RunRecord.find(f"30_asfr_train-{method}", "smoke")).evaluate()
        assert set(again) == {k for k in m if k.startswith(("map/", "region/", "patch/", "triplet_acc"))}
        assert again == pytest.approx({k: m[k] for k in again}, abs=1e-6)
    rpf = read_json(runs / "30_asfr_train-rpf/metrics.json")["metrics"]
    assert {"s1/map/weighted", "region/map/weighted", "patch/map/weighted"} <= set(rpf)
    assert (runs / "30_asfr_train-rpf/checkpoints/s2/best.pt").exists()
    ev = read_json(runs / "31_asfr_eval/metrics.json")
    assert set(ev["upstream"]) == {f"30_asfr_train-{method}" for method in asfr.METHODS}
    for method in asfr.METHODS:
        own = read_json(runs / f"30_asfr_train-{method}/metrics.json")["metrics"]["map/weighted"]
        floor = read_json(runs / "30_asfr_train-global/metrics.json")["metrics"]["map/weighted"]
        assert ev["metrics"][f"gain_over_global/{method}"] == pytest.approx(own - floor)
    for method in ("asen_v2", "agman", "rpf"):
        assert (runs / f"31_asfr_eval/figures/attention-{method}.png").stat().st_size > 3_000
    for name in ("diagram", "browser", "browser-attention-q0"):
        assert (runs / f"31_asfr_eval/figures/{name}.png").stat().st_size > 3_000
    for method in (*asfr.METHODS, "agman_nocls"):
        assert_queries_kept(runs / f"30_asfr_train-{method}", "map/weighted", "map/macro", "map/collar_design",
                            "triplet_acc", "triplet_acc/sleeve_length")
    assert_queries_kept(runs / "30_asfr_train-rpf", "s1/map/weighted", "region/map/weighted", "patch/map/macro")
    assert_claims_decided("smoke", "asfr")
    executed = (runs / "31_asfr_eval/31_asfr_eval.ipynb").read_text()  # the report's table, ours beside published
    assert "ours: asfr-garments (synthetic stand-in)" in executed and "published: FashionAI (real data)" in executed


def test_trained_model_reloads_without_pretrained_weights(tmp_path):
    """trained_model never puts pretrained weights over a checkpoint (the student fork's ViT bug)."""
    import json

    from fgr_utils.checkpoints import save_checkpoint

    params = {"method": "rpf", "trunk": "effnet-demo", "pretrained": False, "weights_path": "", "width": 32,
              "attr_dim": 16, "hidden": 16, "embed_dim": 32, "agman_dim": 32, "patch_backbone": "vit-asfr-demo",
              "patch_pretrained": True, "patch_weights_path": "weights/never-there.npz", "loss_weighting": "learned"}
    with pytest.raises(FgrError, match="never-there"):
        asfr.build(asfr.ModelConfig.from_params(params, 3))
    model = asfr.build(asfr.ModelConfig.from_params(params, 3, trained=True))
    with torch.no_grad():
        model.cross_encoder.proj.weight.fill_(0.25)
    save_checkpoint(tmp_path / "checkpoints/s2/best.pt", {"model": model.state_dict()})
    (tmp_path / "metrics.json").write_text(json.dumps({"notebook": "30_asfr_train", "params": params, "metrics": {}}))
    loaded = asfr.trained_model(RunRecord.open(tmp_path), 3)
    assert not loaded.training and torch.all(loaded.cross_encoder.proj.weight == 0.25)


@pytest.mark.notebook
def test_training_on_csn_triplet_lists_reports_triplet_accuracy(isolated_dirs):
    from fgr_utils.data import synth

    synth.synthesize("asfr-garments", "smoke", 0)
    assert cli.main(["run", "30_asfr_train", "--profile", "smoke", "--variant", "asen_v2", "-p", "protocol=triplets",
                     "--name", "csn", "--no-progress"]) == 0
    rec = read_json(isolated_dirs / "runs/smoke/csn/metrics.json")
    m = rec["metrics"]
    assert not any(k.startswith("map/") for k in m)
    assert 0.0 <= m["triplet_acc"] <= 1.0 and "CSN triplet accuracy" in rec["metric_info"]["triplet_acc"]["protocol"]
    assert sorted(k.split("/")[1] for k in m if k.startswith("triplet_acc/")) == [
        "collar_design", "neckline_design", "pattern_design", "sleeve_length"]
    assert rec["datasets"]["asfr-garments"]["attributes"] == [
        "collar_design", "neckline_design", "pattern_design", "sleeve_length"]  # the model's conditions


@pytest.mark.parametrize("weighting, moves", [("learned", True), ("equal", False)])
def test_agman_loss_weights_train_only_when_learned(weighting, moves):
    """The released AG-MAN never hands its uncertainty weights to the optimiser ('equal')."""
    torch.manual_seed(0)
    cfg = asfr.ModelConfig(method="agman", n_attr=3, trunk="effnet-demo", width=16, attr_dim=8, hidden=8,
                           agman_dim=12, loss_weighting=weighting)
    model = asfr.build(cfg)
    opt, _ = _optimizer(model, "agman", asfr.TrainConfig(epochs=1, lr=0.01))
    before = model.loss_weights.params.detach().clone()
    feats = model.trunk.stem(torch.randn(6, 3, 64, 64))
    attr = torch.tensor([0, 1, 2, 0, 1, 2])
    out = model(feats, attr)
    a, p, n = out.embedding.chunk(3)
    loss = model.loss_weights(cosine_triplet(a, p, n, 0.2), model.type_loss(out.logits, attr))
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert (not torch.equal(before, model.loss_weights.params.detach())) == moves
    with pytest.raises(FgrError, match="loss_weighting"):
        asfr.ModelConfig(method="agman", n_attr=3, trunk="effnet-demo", loss_weighting="fixed")


def test_an_image_missing_from_a_split_stops_with_one_line(isolated_dirs):
    from conftest import synth_in

    root = synth_in(isolated_dirs / "data", "asfr-garments")
    assert len(asfr.load_dataset("asfr-garments", "smoke").items.paths) == 240
    victim = root / (root / "filenames_test.txt").read_text().splitlines()[3]
    victim.unlink()
    with pytest.raises(FgrError) as err:
        asfr.load_dataset("asfr-garments", "smoke")
    assert "1 image(s)" in str(err.value) and victim.name in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_dataset_names_the_ones_each_track_reads():
    """Every wing checks a dataset name against the registry's formats before it looks for any file."""
    from fgr_utils.tracks import fabric, sbir

    cases = [(fabric.load_dataset, "dataset", "sim-fabrics, printed-fabrics"),
             (fabric.load_landmark_set, "landmark set",
              "photo-landmarks, sim-revisited, oxford5k, paris6k, roxford5k, rparis6k"),
             (sbir.load_dataset, "dataset",
              "sbir-garments, sbir-garments-xdog, sbir-garments-canny, shoev2, chairv2, clothesv1"),
             (asfr.load_dataset, "dataset", "asfr-garments, fashionai, deepfashion, darn, zappos50k")]
    for load, what, known in cases:
        for name in ("nope", "sim-fabrics" if load is not fabric.load_dataset else "asfr-garments"):
            with pytest.raises(FgrError) as err:
                load(name)
            assert str(err.value) == f"{what} must be one of {known}, not {name!r}"
