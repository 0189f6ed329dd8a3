"""The sketch-based retrieval track: sampler, inputs, and the two notebooks on the smoke profile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_claims_decided, assert_queries_kept, read_json
from PIL import Image

from fgr_utils import cli
from fgr_utils.errors import FgrError
from fgr_utils.results import RunRecord
from fgr_utils.tracks import sbir


def test_unique_photo_batches_hold_each_sketch_once_and_no_photo_twice():
    pairs = [(Path(f"s{i}.png"), i // 3) for i in range(30)] + [(Path("t.png"), 10)]  # 3 sketches per photo
    batches = sbir.epoch_batches(pairs, 4, "unique_photo", np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    assert all(len({pairs[i][1] for i in b}) == len(b) <= 4 for b in batches)
    plain = sbir.epoch_batches(pairs, 4, "random", np.random.default_rng(0))
    assert any(len({pairs[i][1] for i in b}) < len(b) for b in plain)  # the released sampler repeats photos
    with pytest.raises(FgrError, match="batch_sampler"):
        sbir.epoch_batches(pairs, 4, "balanced", np.random.default_rng(0))


def test_augmented_view_is_seeded_and_differs_from_the_anchor():
    inputs = sbir.SbirInputs(32, "none")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    a = inputs.augmented(img, np.random.default_rng(5))
    assert a.shape == (3, 32, 32) and torch.equal(a, inputs.augmented(img, np.random.default_rng(5)))
    assert not torch.equal(a, inputs.anchor(img))
    assert inputs.anchor(img).max() <= 1.0  # no normalisation, as released
    with pytest.raises(FgrError, match="normalize"):
        sbir.SbirInputs(32, "clip")


class _Pairs:
    """Three sketches of two photos (sketch 2 is of photo 0)."""

    def pairs(self, split):
        return [(Path("s0.png"), 0), (Path("s1.png"), 1), (Path("s2.png"), 0)]

    def photos(self, split):
        return [Path("p0.png"), Path("p1.png")]


def test_browser_inputs_rank_every_sketch_by_cosine():
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    g = np.array([[1.0, 0.0], [0.6, 0.8]])
    out = sbir.browser_inputs(q, g, np.array([0, 1, 0]), _Pairs(), depth=2)
    assert out["queries"] == [Path("s0.png"), Path("s1.png"), Path("s2.png")]
    p0, p1 = Path("p0.png"), Path("p1.png")
    assert out["rankings"] == [[p0, p1], [p1, p0], [p1, p0]]
    assert out["hits"] == [[True, False], [True, False], [False, True]]  # sketch 2 finds its photo second
    assert out["query_titles"] == ["s0", "s1", "s2"]
    with pytest.raises(FgrError, match="not those of the test split"):
        sbir.browser_inputs(q[:2], g, np.array([0, 1]), _Pairs())


@pytest.mark.notebook
def test_sbir_track_smoke(isolated_dirs, capsys):
    assert cli.main(["reproduce", "--profile", "smoke", "--track", "sbir", "--no-progress"]) == 0
    runs = isolated_dirs / "runs/smoke"
    for method in sbir.METHODS:
        rec = read_json(runs / f"20_sbir_train-{method}/metrics.json")
        m = rec["metrics"]
        for k in sbir.KS:
            assert 0.0 <= m[f"acc@{k}/last"] <= 1.0 and 0.0 <= m[f"acc@{k}/best"] <= 1.0
            assert "ties optimistic" in rec["metric_info"][f"acc@{k}/best"]["protocol"]
        assert m["acc@1/best"] >= m["acc@1/last"]  # the best epoch is selected on test Acc@1
        assert m["acc@1/last"] <= m["acc@5/last"] <= m["acc@10/last"]
        assert m["data/test_photos"] == 12 and m["data/test_sketches"] == 32
        assert (runs / f"20_sbir_train-{method}/figures/retrieval.png").stat().st_size > 3_000
        # the contract: the loaded run (its last epoch) reproduces the last epoch's recorded numbers
        run = RunRecord.find(f"20_sbir_train-{method}", "smoke")
        assert sbir.SbirRun.load(run).evaluate() == pytest.approx({f"acc@{k}/last": m[f"acc@{k}/last"] for k in sbir.KS})
        assert_queries_kept(runs / f"20_sbir_train-{method}", *(f"acc@{k}/{w}" for k in sbir.KS for w in ("best", "last")))
    fig = read_json(runs / "21_sbir_figures/metrics.json")
    assert_queries_kept(runs / "21_sbir_figures", "token_variance/before training", "token_variance/20_sbir_train-arnet")
    assert_claims_decided("smoke", "sbir")
    assert set(fig["upstream"]) == {f"20_sbir_train-{method}" for method in sbir.METHODS} | {"contrast"}
    uniform = (17 * 17 - 1) / (3 * 17)  # vit-smoke: 16 patches + CLS
    m = fig["metrics"]
    for mode in ("token_index_arnet", "pixel_euclidean"):
        for modality in ("sketch", "photo"):
            assert m[f"attention/{modality}/{mode}/after/last_layer"] > 0
    assert m["attention/photo/token_index_arnet/uniform"] == pytest.approx(uniform)
    # an untrained smoke ViT attends almost uniformly, by both measures
    assert m["attention/photo/token_index_arnet/before/last_layer"] == pytest.approx(uniform, rel=0.05)
    assert 0 <= m["attention/photo/from_uniform/before/layer1"] < 0.1
    # the contrast: the fabric stage-1 ViT over a pretrained stem
    assert fig["upstream"]["contrast"] == str(runs / "10_fabric_global")
    assert 0 <= m["attention/contrast/from_uniform/after/layer1"] <= 1
    assert_queries_kept(runs / "21_sbir_figures", "attention/photo/token_index_arnet/after/last_layer",
                        "attention/sketch/from_uniform/after/layer1", "attention/contrast/pixel_euclidean/uniform")
    for name in ("tsne", "attention-token_index_arnet", "attention-pixel_euclidean", "attention-from-uniform",
                 "token-similarity", "diagram", "browser"):
        assert (runs / "21_sbir_figures/figures" / f"{name}.png").stat().st_size > 3_000

    # the released loader's single-digit glob drops the sketches of designers 10-12
    assert cli.main(["run", "20_sbir_train", "--profile", "smoke", "--variant", "arnet", "-p", "epochs=1",
                     "-p", "arnet_compat_single_digit=true", "--no-progress"]) == 0
    compat = next(p for p in runs.iterdir() if "arnet_compat_single_digit" in p.name)
    assert 0 < read_json(compat / "metrics.json")["metrics"]["data/test_sketches"] < 32
