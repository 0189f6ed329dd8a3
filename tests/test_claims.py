"""Per-query values, the paired bootstrap and the claims table, on cases whose answer is known."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from fgr_utils import claims, cli, queries
from fgr_utils.errors import FgrError
from fgr_utils.queries import QueryRef, QueryTable
from fgr_utils.results import Run, RunRecord
from fgr_utils.stats import paired_bootstrap

# --------------------------------------------------------------------------------------------
# The bootstrap
# --------------------------------------------------------------------------------------------


def test_identical_runs_give_an_interval_around_zero_and_no_verdict():
    a = np.random.default_rng(0).random(300)
    d = paired_bootstrap(a, a.copy())
    assert d.diff == 0 and d.low == 0 and d.high == 0 and d.verdict() == "not shown"


@pytest.mark.parametrize("shift, verdict", [(0.1, "holds"), (-0.1, "contradicted")])
def test_a_shifted_run_gives_its_shift(shift, verdict):
    b = np.random.default_rng(2).random(200)
    d = paired_bootstrap(b + shift, b)
    assert d.diff == pytest.approx(shift) and d.low == pytest.approx(shift) and d.high == pytest.approx(shift)
    assert d.verdict() == verdict and d.flipped().verdict() != verdict
    assert (d.a - d.b) == pytest.approx(shift) and d.queries == 200 and d.seeds == 1


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    covered = 0
    trials = 200
    for t in range(trials):
        b = rng.random(150)
        a = b + rng.normal(0.02, 0.1, 150)  # true mean difference 0.02
        d = paired_bootstrap(a, b, samples=400, seed=t)
        covered += d.low <= 0.02 <= d.high
    assert 0.88 <= covered / trials <= 0.99


def test_pairing_makes_the_interval_narrower_than_two_independent_samples():
    rng = np.random.default_rng(4)
    hardness = rng.random(400)  # per-query difficulty, shared by both runs
    a, b = hardness + 0.03 + rng.normal(0, 0.02, 400), hardness + rng.normal(0, 0.02, 400)
    d = paired_bootstrap(a, b)
    assert d.verdict() == "holds" and d.high - d.low < 0.02
    # the spread of the differences, not of the queries, sets the width
    assert d.high - d.low < 4 * 1.96 * np.std(a - b) / np.sqrt(400)


def test_a_macro_mean_keeps_every_group_and_equals_the_groups_mean():
    rng = np.random.default_rng(5)
    groups = ["collar"] * 20 + ["sleeve"] * 380
    b = rng.random(400)
    a = b + np.where(np.array(groups) == "collar", 0.2, 0.0)
    d = paired_bootstrap(a, b, stat="macro", groups=groups)
    assert d.diff == pytest.approx(0.1) and d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)
    weighted = paired_bootstrap(a, b)
    assert weighted.diff == pytest.approx(0.2 * 20 / 400)
    with pytest.raises(FgrError, match="groups"):
        paired_bootstrap(a, b, stat="macro")


def test_seeds_widen_the_interval_and_are_reported_one_by_one():
    rng = np.random.default_rng(6)
    b = rng.random((3, 300))
    a = b + np.array([[0.0], [0.05], [0.10]])  # a's gain depends on the seed
    d = paired_bootstrap(a, b)
    assert d.seeds == 3 and d.diff == pytest.approx(0.05)
    assert [x - y for x, y in zip(d.a_seeds, d.b_seeds)] == pytest.approx([0.0, 0.05, 0.10])
    assert d.low < 0.03 and d.high > 0.07  # the seed-to-seed spread is in the interval
    with pytest.raises(FgrError, match="not paired"):
        paired_bootstrap(a, b[:2])


def test_queries_without_a_value_are_left_out_as_the_metric_leaves_them():
    b = np.array([0.5, np.nan, 0.2, 0.4])
    d = paired_bootstrap(b + 0.1, b)
    assert d.queries == 3 and d.diff == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------
# Per-query tables and the run record
# --------------------------------------------------------------------------------------------


def test_a_table_round_trips_exactly_with_groups_and_nan(tmp_path):
    t = QueryTable(["q1", "q2", "q1"], {"ap": [1 / 3, math.nan, 0.1], "rank": [1, 2, 3]}, groups=["a", "a", "b"])
    path = t.write(tmp_path / "t.csv")
    back = QueryTable.read(path)
    assert back.ids == t.ids and back.groups == t.groups and back.columns["ap"][0] == 1 / 3
    assert math.isnan(back.columns["ap"][1]) and back.keys == [("a", "q1"), ("a", "q2"), ("b", "q1")]
    assert back.statistic(QueryRef("t", "ap")) == pytest.approx((1 / 3 + 0.1) / 2)
    assert back.statistic(QueryRef("t", "rank", "mean", "a")) == 1.5
    assert back.statistic(QueryRef("t", "rank", "macro")) == pytest.approx((1.5 + 3) / 2)
    path.write_text(path.read_text().rsplit("\n", 2)[0] + "\nq9,b\n")  # a torn last row
    with pytest.raises(FgrError, match="wrong length"):
        QueryTable.read(path)
    with pytest.raises(FgrError, match="unique"):
        QueryTable(["q", "q"], {"ap": [0, 1]})


def _run(tmp_path: Path, name: str = "r") -> Run:
    return Run(notebook="toy", name=name, profile="demo", dir=tmp_path / name, params={"seed": 0}, seed=0,
               device="cpu")


def test_a_logged_metric_must_be_the_statistic_of_its_queries(tmp_path):
    run = _run(tmp_path)
    means = run.log_queries("test", ["x", "y"], {"ap": [0.2, 0.6], "rank": [3, 1]}, prefix="s/", protocol="AP",
                            metrics=["ap"], split="test")
    assert means == {"ap": pytest.approx(0.4), "rank": 2.0}
    assert run.metrics == {"s/ap": pytest.approx(0.4)}
    assert run.metric_info["s/ap"]["per_query"] == {"table": "test", "column": "ap", "stat": "mean"}
    with pytest.raises(FgrError, match="is not the mean of per-query column test/ap"):
        run.log("other", 0.5, protocol="AP", per_query=QueryRef("test", "ap"))
    with pytest.raises(FgrError, match="has not kept"):
        run.log("other", 0.5, protocol="AP", per_query=QueryRef("valid", "ap"))
    run.finish()
    rec = RunRecord.open(run.dir)
    table, ref = rec.per_query("s/ap")
    assert table.ids == ["x", "y"] and ref.column == "ap"
    (run.dir / queries.FOLDER / "test.csv").unlink()
    with pytest.raises(FgrError, match="kept no per-query values .*make it again"):
        rec.per_query("s/ap")


# --------------------------------------------------------------------------------------------
# Claims over runs
# --------------------------------------------------------------------------------------------


def _finished(runs: Path, name: str, ids, ap, *, seed: int = 0, dataset: str = "toyset") -> None:
    run = Run(notebook="toy", name=name, profile="demo", dir=runs / "demo" / name, params={"seed": seed},
              seed=seed, device="cpu")
    run.log_queries("test", ids, {"ap": ap}, prefix=f"{dataset}/", protocol="AP", dataset=dataset, split="test")
    run.finish()


@pytest.fixture
def toy_claims(tmp_path, monkeypatch, isolated_dirs):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump([
        {"id": "better", "paper": "P", "track": "toy", "claim": "x beats y", "metric": "AP",
         "a": {"label": "x", "run": "x", "metric": "ap"}, "b": {"label": "y", "run": "y", "metric": "ap"},
         "direction": "greater", "published": [{"dataset": "Real", "a": 50.0, "b": 40.0, "source": "paper"}],
         "differs": "the toy data"},
        {"id": "worse", "paper": "P", "track": "toy", "claim": "x is below y", "metric": "AP",
         "a": {"label": "x", "run": "x", "metric": "ap"}, "b": {"label": "y", "run": "y", "metric": "ap"},
         "direction": "less", "published": []},
        {"id": "absent", "paper": "P", "track": "toy", "claim": "z beats y", "metric": "AP",
         "a": {"label": "z", "run": "z", "metric": "ap"}, "b": {"label": "y", "run": "y", "metric": "ap"},
         "direction": "greater"},
    ]))
    monkeypatch.setattr(claims, "CLAIMS", path)
    return isolated_dirs / "runs"


def test_claims_get_verdicts_from_the_runs_queries(toy_claims, capsys):
    ids = [f"q{i}" for i in range(100)]
    base = np.random.default_rng(0).random(100)
    _finished(toy_claims, "x", ids, np.clip(base + 0.2, 0, 1))
    _finished(toy_claims, "y", ids[::-1], base[::-1])  # the same queries in another order
    found = {r.claim["id"]: r for r in claims.evaluate("demo")}
    assert found["better"].verdict == "holds" and found["better"].dataset == "toyset"
    assert found["better"].diff.diff == pytest.approx(np.mean(np.clip(base + 0.2, 0, 1) - base))
    assert found["worse"].verdict == "contradicted"
    assert found["absent"].verdict == claims.NOT_RUN and "no finished run z" in found["absent"].reason
    assert cli.main(["claims", "--profile", "demo"]) == 0
    out = capsys.readouterr().out
    assert "[holds] better: P: x beats y" in out and "Real 50.0 vs 40.0" in out and "(100 queries)" in out
    assert "worse: the toy data" not in out and "[not run] absent" in out
    assert cli.main(["claims", "--profile", "demo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["verdict"] == "holds" and rows[0]["ours"]["seeds"] == 1 and rows[0]["ours"]["low"] > 0


def test_other_seeds_are_found_and_enter_the_interval(toy_claims):
    ids = [f"q{i}" for i in range(80)]
    rng = np.random.default_rng(1)
    for seed, gain in ((0, 0.0), (1, 0.1), (2, 0.2)):
        base = rng.random(80) * 0.5
        suffix = "" if seed == 0 else f"+seed={seed}"
        _finished(toy_claims, f"x{suffix}", ids, base + gain, seed=seed)
        _finished(toy_claims, f"y{suffix}", ids, base, seed=seed)
    r = next(r for r in claims.evaluate("demo") if r.claim["id"] == "better")
    assert r.diff.seeds == 3 and r.diff.diff == pytest.approx(0.1)
    assert "(mean ± sd over 3 seeds)" in claims.ours_text(r) and "80 queries x 3 seeds" in claims.interval_text(r)
    assert len(r.runs["a"]) == 3


def test_runs_on_other_queries_are_not_compared(toy_claims):
    _finished(toy_claims, "x", ["q1", "q2", "q3"], [0.1, 0.2, 0.3])
    _finished(toy_claims, "y", ["q1", "q2", "q4"], [0.1, 0.2, 0.3])
    r = next(r for r in claims.evaluate("demo") if r.claim["id"] == "better")
    assert r.diff is None and r.verdict == claims.NO_VERDICT and "did not answer the same queries" in r.reason


def test_the_declared_claims_name_runs_the_profiles_make():
    from fgr_utils import runner

    made = {run.name for nb in runner.list_notebooks() for run in runner.plan_runs(nb, "demo", ablations=True)}
    declared = claims.declared()
    assert {"qga-reranking", "arnet-over-triplet", "mstr-over-basic", "mstr-token-variance", "agman-over-asen",
            "rpf-over-asen"} <= {c["id"] for c in declared}
    for c in declared:
        assert {c["a"]["run"], c["b"]["run"]} <= made, c["id"]
        for p in c.get("published", []):
            assert {"dataset", "a", "b", "source"} <= set(p)


def test_the_ablations_name_runs_the_demo_makes_with_ablations():
    from fgr_utils import runner

    made = {run.name for nb in runner.list_notebooks() for run in runner.plan_runs(nb, "demo", ablations=True)}
    default = {run.name for nb in runner.list_notebooks() for run in runner.plan_runs(nb, "demo")}
    ids = {c["id"] for c in claims.declared()}
    ablations = claims.declared(claims.ABLATIONS)
    assert len(ablations) >= 6
    for c in ablations:
        assert {c["a"]["run"], c["b"]["run"]} <= made, c["id"]
        assert c["explains"] in ids, c["id"]
    # every ablation variant of the profile is compared by some ablation, and none runs by default
    compared = {c[side]["run"] for c in ablations + claims.declared() for side in ("a", "b")}
    # an ablation asks what no claim already asks (the same two runs and metrics)
    def pair(c):
        return tuple((c[side]["run"], c[side]["metric"]) for side in ("a", "b"))
    assert not {pair(c) for c in ablations} & {pair(c) for c in claims.declared()}
    assert made - default <= compared and made - default


def test_ablations_print_and_enter_the_report_once_their_runs_exist(toy_claims, tmp_path, monkeypatch, capsys):
    from fgr_utils import report

    path = tmp_path / "ablations.yaml"
    path.write_text(yaml.safe_dump([
        {"id": "part-helps", "paper": "P (ablation)", "track": "toy", "explains": "better", "claim": "x's part helps",
         "metric": "AP", "a": {"label": "x", "run": "x", "metric": "ap"},
         "b": {"label": "x without the part", "run": "x_off", "metric": "ap"}, "direction": "greater"}]))
    monkeypatch.setattr(claims, "ABLATIONS", path)
    ctx = report.ReportContext("demo", [], {}, set(), {})  # the section reads the profile's runs only
    ids = [f"q{i}" for i in range(60)]
    base = np.random.default_rng(2).random(60) * 0.5
    _finished(toy_claims, "x", ids, base + 0.3)
    assert cli.main(["claims", "--ablations", "--profile", "demo"]) == 0
    out = capsys.readouterr().out
    assert "\nAblations on profile demo" in out and "[not run] part-helps" in out
    assert report.ablations_section(ctx) == []  # no ablation run yet: no section
    _finished(toy_claims, "x_off", ids, base)
    assert cli.main(["claims", "--ablations", "--profile", "demo"]) == 0
    assert "[holds] part-helps: P (ablation): x's part helps" in capsys.readouterr().out
    heading, _, table = report.ablations_section(ctx)
    assert heading.text == "Ablations" and table.rows[0][1] == "`better`" and table.rows[0][-1] == "holds"
