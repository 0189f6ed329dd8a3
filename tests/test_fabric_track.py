"""The printed-fabric track: re-ranking helpers, and notebooks 10-12 end to end on the smoke profile."""
from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import assert_claims_decided, assert_queries_kept, read_json

from fgr_utils import cli, rerank, tracks
from fgr_utils.results import RunRecord
from fgr_utils.tracks.fabric import rerank_rankings


def test_shortlist_merge_fuse_reorder():
    ranking = np.array([5, 3, 9, 1, 0, 7])
    assert rerank.shortlist(ranking, 3).tolist() == [5, 3, 9]
    assert rerank.shortlist(ranking, 3, exclude=[3, 1]).tolist() == [5, 9, 0]  # protocol-aware: junk skipped
    merged = rerank.merge(ranking, np.array([9, 5, 0]))
    assert merged.tolist() == [9, 5, 0, 3, 1, 7] and sorted(merged) == sorted(ranking)
    assert rerank.fuse(np.array([1.0, 0.0]), np.array([0.0, 1.0]), None).tolist() == [1.0, 0.0]
    assert rerank.fuse(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.25).tolist() == [0.75, 0.25]  # 0.25 * stage 1 + 0.75 * stage 2
    assert rerank.reorder(np.array([4, 2, 8]), np.array([0.5, 0.9, 0.5])).tolist() == [2, 4, 8]  # stable on ties
    with pytest.raises(Exception, match="fusion weight"):
        rerank.fuse(np.zeros(2), np.zeros(2), 1.5)


def test_rerank_rankings_only_touches_the_top_k():
    positions = np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
    global_scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]] * 2)
    qga = np.array([[0.1, 0.3, 0.2], [0.0, 0.0, 1.0]])
    out = rerank_rankings(positions, global_scores, qga, None)
    assert out.tolist() == [[1, 2, 0, 3, 4], [2, 4, 3, 1, 0]]
    # a fusion weight of 1 keeps the global order
    assert rerank_rankings(positions, global_scores, qga, 1.0).tolist() == positions.tolist()


def test_browser_inputs_put_the_shortlist_attention_on_the_reranked_results(tmp_path):
    from conftest import synth_in

    from fgr_utils.data.fabrics import load_fabrics
    from fgr_utils.data.transforms import Preprocess
    from fgr_utils.tracks.fabric import browser_inputs

    fs = load_fabrics(synth_in(tmp_path, "sim-fabrics"))
    ids, queries = fs.fabric_ids("test"), fs.queries_of("test")
    rankings = [ids[::-1] for _ in queries]  # every query: the fabrics in reverse order
    candidates = np.tile(np.arange(len(ids) - 3, len(ids)), (len(queries), 1))[:, ::-1]  # its top 3, re-ranked
    attention = np.random.default_rng(0).random((len(queries), 3, 4))
    out = browser_inputs(fs, "test", rankings, candidates, attention, (2, 2), Preprocess(size=32), depth=5)
    assert out["queries"] == [q.path for q in queries] and len(out["rankings"][0]) == 5
    assert out["rankings"][1][0] == fs.fabric_path(ids[-1])
    assert out["hits"][1] == [f in queries[1].relevant for f in ids[::-1][:5]]
    assert np.array_equal(out["attention"](1, 2), attention[1, 2].reshape(2, 2))  # rank 3 = candidate row 3
    assert out["attention"](1, 3) is None  # outside the shortlist: no attention was computed for it
    assert out["load"](out["queries"][0]).size == (32, 32)


@pytest.mark.notebook
def test_fabric_track_smoke(isolated_dirs, capsys):
    assert cli.main(["reproduce", "--profile", "smoke", "--track", "fabric", "--no-progress"]) == 0
    out = capsys.readouterr().out
    started = [line.split("] ")[1].split(":")[0] for line in out.splitlines() if line.endswith("(smoke profile)")]
    assert started == ["00_datasets", "10_fabric_global", "11_fabric_rerank", "12_landmarks"]
    runs = isolated_dirs / "runs/smoke"
    s1 = read_json(runs / "10_fabric_global/metrics.json")
    s2 = read_json(runs / "11_fabric_rerank/metrics.json")
    for name in ("stage1/map", "stage2/map", "stage1/ap@10", "stage2/ap@10", "stage1/p@1", "stage2/p@1"):
        assert 0.0 <= s2["metrics"][name] <= 1.0
        assert s2["metric_info"][name]["split"] == "test"
    # stage 2's record recomputes stage 1 from the stored ranking: the same numbers as the stage-1 run
    for name, value in s1["metrics"].items():
        if name.startswith("stage1/") and "val_map" not in name:
            assert s2["metrics"][name] == pytest.approx(value)
    assert s2["notes"]["switches"]["anchor_index_bug"] is False
    sizes = s2["notes"]["preprocessing"]
    assert (sizes["fabric"]["size"], sizes["query"]["size"]) == (32, 16)  # smoke: queries at print scale
    for fig in ("stage2-training", "stage1-retrieval", "stage2-retrieval", "diagram", "browser",
                "browser-attention-q0", "browser-attention-q1"):
        assert (runs / "11_fabric_rerank/figures" / f"{fig}.png").stat().st_size > 3_000
    # the contract: a loaded run reproduces its recorded test numbers from its checkpoint, and a
    # re-ranking run names the stage-1 run it read
    assert s2["upstream"]["stage1"] == str(runs / "10_fabric_global")
    for name in ("10_fabric_global", "11_fabric_rerank"):
        run = RunRecord.find(name, "smoke")
        again = tracks.load(run).evaluate()
        assert set(again) == {k for k in run.metrics if k.startswith(("stage1/", "stage2/")) and "val_map" not in k}
        assert again == pytest.approx({k: run.metrics[k] for k in again}, abs=1e-12)
    assert_queries_kept(runs / "10_fabric_global", "stage1/map", "stage1/ap@10", "stage1/f1@100")
    assert_queries_kept(runs / "11_fabric_rerank", "stage1/map", "stage2/map", "stage2/p@1")
    assert_queries_kept(runs / "12_landmarks", "sim-revisited/stage1/hard/map",
                        "sim-revisited/stage2/protocol_aware/medium/map", "sim-revisited/stage2/blind/easy/map")
    assert_claims_decided("smoke", "fabric")
    lm = read_json(runs / "12_landmarks/metrics.json")
    assert set(lm["upstream"]) == {"stage1", "stage2"}
    for protocol in ("easy", "medium", "hard"):
        assert f"sim-revisited/stage1/{protocol}/map" in lm["metrics"]
        for mode in ("protocol_aware", "blind"):
            info = lm["metric_info"][f"sim-revisited/stage2/{mode}/{protocol}/map"]
            assert mode.replace("_", "-") in info["protocol"] and protocol in info["protocol"]


@pytest.mark.notebook
def test_rerank_and_extract_benchmarks_print_their_lines(isolated_dirs, capsys):
    assert cli.main(["run", "00_datasets", "--profile", "smoke", "-p", "synthetic=[sim-fabrics]",
                     "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["bench", "rerank", "--profile", "smoke", "--queries", "3"]) == 0
    out = capsys.readouterr().out
    assert "(agree at 1e-4)" in out
    assert re.search(r"^rerank speedup: \d+\.\dx$", out, re.M)
    assert cli.main(["bench", "extract", "--profile", "smoke", "--images", "40"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^extract speedup: \d+\.\dx$", out, re.M)
    assert float(re.search(r"max \|feature difference\|: (\S+)", out).group(1)) < 1e-4
