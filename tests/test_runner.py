"""Parameters, profiles, run planning and notebook execution through papermill."""
from __future__ import annotations

import pytest
from conftest import read_json

from fgr_utils import cli, runner
from fgr_utils.errors import FgrError
from fgr_utils.runner import Param, check_value, parse_parameters


def test_parse_parameters_types_defaults_comments():
    params = parse_parameters(
        "epochs: int = 3  # passes over the data\n"
        "lr: float = 1  # learning rate\n"
        "names: list[str] = ['a', 'b']  # which sets\n"
        "weights: str | None = None  # optional path\n"
        "opts: dict = {'k': 1}  # extra options\n"
        "flag: bool = True  # a switch\n")
    assert params["epochs"] == Param("epochs", "int", 3, "passes over the data")
    assert params["lr"].default == 1.0 and isinstance(params["lr"].default, float)
    assert params["names"].type == "list[str]" and params["names"].default == ["a", "b"]
    assert params["weights"].optional and params["weights"].default is None
    assert params["opts"].default == {"k": 1}
    assert params["flag"].comment == "a switch"


@pytest.mark.parametrize("source, message", [
    ("epochs: int = 3\n", "needs a comment"),
    ("epochs = 3  # no type\n", "only 'name: type = literal"),
    ("import os  # no\n", "only 'name: type = literal"),
    ("epochs: int = 1 + 2  # computed\n", "must be a literal"),
    ("epochs: tuple = (1,)  # a tuple\n", "is not one of"),
    ("epochs: int = 'three'  # wrong default\n", "must be int"),
    ("runs: int = 1  # reserved\n", "reserved"),
])
def test_parse_parameters_refuses(source, message):
    with pytest.raises(FgrError, match=message):
        parse_parameters(source)


def test_check_value_rules():
    p_int = Param("n", "int", 1, "c")
    assert check_value(p_int, 4, "x") == 4
    with pytest.raises(FgrError, match="'n' must be int, got True"):
        check_value(p_int, True, "x")
    assert check_value(Param("f", "float", 1.0, "c"), 2, "x") == 2.0
    with pytest.raises(FgrError, match="must be list\\[int\\]"):
        check_value(Param("l", "list[int]", [], "c"), [1, "2"], "x")
    with pytest.raises(FgrError):
        check_value(Param("s", "str", "", "c"), None, "x")
    assert check_value(Param("s", "str", "", "c", optional=True), None, "x") is None


def test_plan_layers_defaults_profile_cli(toy_home):
    (toy_home / "params/demo/01_a.yaml").write_text("scale: 3\nlabel: from-profile\n")
    nb = runner.find_notebook("01_a")
    (run,) = runner.plan_runs(nb, "demo")
    assert run.params == {"seed": 0, "scale": 3.0, "label": "from-profile", "fail": False}
    assert run.name == "01_a"
    (run,) = runner.plan_runs(nb, "demo", {"scale": "0.5", "label": "123"})
    assert run.params["scale"] == 0.5 and run.params["label"] == "123"
    assert run.name.startswith("01_a+") and "scale=0.5" in run.name
    assert run.dir.parent.name == "demo"


def test_plan_refuses_unknown_key_and_wrong_type_naming_allowed(toy_home):
    nb = runner.find_notebook("01_a.ipynb")
    with pytest.raises(FgrError, match=r"'epoch' \(from -p\) is not declared by notebook 01_a; allowed: fail, label, scale, seed"):
        runner.plan_runs(nb, "demo", {"epoch": "3"})
    with pytest.raises(FgrError, match=r"'seed' must be int, got 'x'"):
        runner.plan_runs(nb, "demo", {"seed": "x"})
    (toy_home / "params/demo/01_a.yaml").write_text("sead: 1\n")
    with pytest.raises(FgrError, match=r"'sead' \(from params/demo/01_a.yaml\) is not declared"):
        runner.plan_runs(nb, "demo")
    with pytest.raises(FgrError, match="unknown profile 'nope'; known: smoke, demo"):
        runner.plan_runs(nb, "nope")


def test_variants(toy_home):
    (toy_home / "params/demo/01_a.yaml").write_text("scale: 2\nruns:\n  small: {label: s}\n  big: {label: b, scale: 4}\n")
    nb = runner.find_notebook("01_a")
    runs = runner.plan_runs(nb, "demo")
    assert [(r.name, r.params["label"], r.params["scale"]) for r in runs] == [
        ("01_a-small", "s", 2.0), ("01_a-big", "b", 4.0)]
    (only,) = runner.plan_runs(nb, "demo", variant="big")
    assert only.name == "01_a-big"
    with pytest.raises(FgrError, match="no variant 'huge'.*small, big"):
        runner.plan_runs(nb, "demo", variant="huge")


def test_ablations_are_planned_only_when_asked_and_found_by_name(toy_home):
    (toy_home / "params/demo/01_a.yaml").write_text(
        "runs:\n  full: {label: f}\nablations:\n  small: {label: o, scale: 0.5}\n")
    nb = runner.find_notebook("01_a")
    assert [r.name for r in runner.plan_runs(nb, "demo")] == ["01_a-full"]
    assert [r.name for r in runner.plan_runs(nb, "demo", ablations=True)] == ["01_a-full", "01_a-small"]
    (only,) = runner.plan_runs(nb, "demo", variant="small")
    assert (only.name, only.params["scale"]) == ("01_a-small", 0.5)
    assert [r.name for r in runner.plan_profile("demo", ablations=True)] == ["01_a-full", "01_a-small", "02_b"]
    assert runner.remake_hint("01_a-small", "demo") == "run `fgr run 01_a --variant small --profile demo` first"
    (toy_home / "params/demo/01_a.yaml").write_text("runs:\n  full: {}\nablations:\n  full: {label: x}\n")
    with pytest.raises(FgrError, match="in both 'runs' and 'ablations'"):
        runner.plan_runs(nb, "demo")
    (toy_home / "params/demo/01_a.yaml").write_text("ablations:\n  small: {label: x}\n")
    with pytest.raises(FgrError, match="beside 'runs'"):
        runner.plan_runs(nb, "demo")


def test_order_and_cycles(toy_home, tmp_path):
    nbs = runner.list_notebooks()
    assert [n.stem for n in runner.order_notebooks(list(reversed(nbs)))] == ["01_a", "02_b"]
    a, b = nbs
    cyclic = [a.__class__(**{**a.__dict__, "after": ("02_b",)}), b]
    with pytest.raises(FgrError, match="cycle"):
        runner.order_notebooks(cyclic)
    with pytest.raises(FgrError, match="runs after 'zz'"):
        runner.order_notebooks([a.__class__(**{**a.__dict__, "after": ("zz",)})])


def test_run_writes_manifest_metrics_and_executed_copy(toy_home, isolated_dirs, capsys):
    assert cli.main(["run", "01_a", "--profile", "smoke", "-p", "scale=1.5", "--name", "first", "--no-progress"]) == 0
    run_dir = isolated_dirs / "runs/smoke/first"
    rec = read_json(run_dir / "metrics.json")
    assert (run_dir / "01_a.ipynb").exists()
    assert rec["run"] == "first" and rec["notebook"] == "01_a" and rec["profile"] == "smoke"
    assert rec["params"] == {"seed": 0, "scale": 1.5, "label": "a", "fail": False}
    assert rec["metric_info"]["toy/value"] == {"protocol": "toy protocol", "unit": "fraction",
                                               "dataset": "none", "split": "test"}
    assert 0 < rec["metrics"]["toy/value"] < 0.75 and rec["metrics"]["toy/count"] == 7
    for key in ("versions", "seed", "device", "seconds", "started", "finished", "git_commit"):
        assert key in rec
    assert rec["versions"]["torch"] and rec["device"] == "cpu"
    assert read_json(run_dir / "run.json")["status"] == "complete"


def test_same_seed_same_metrics(toy_home, isolated_dirs):
    for name in ("r1", "r2"):
        assert cli.main(["run", "01_a", "--profile", "smoke", "--name", name, "--no-progress"]) == 0
    m1 = read_json(isolated_dirs / "runs/smoke/r1/metrics.json")["metrics"]
    m2 = read_json(isolated_dirs / "runs/smoke/r2/metrics.json")["metrics"]
    assert m1 == m2
    assert cli.main(["run", "01_a", "--profile", "smoke", "--name", "r3", "-p", "seed=1", "--no-progress"]) == 0
    assert read_json(isolated_dirs / "runs/smoke/r3/metrics.json")["metrics"] != m1


def test_failing_cell_names_notebook_cell_and_exception(toy_home, isolated_dirs, capsys):
    assert cli.main(["run", "01_a", "--profile", "smoke", "-p", "fail=true", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "notebook 01_a failed in cell" in err and "ValueError: asked to fail" in err and "if fail:" in err
    run_dir = next((isolated_dirs / "runs/smoke").iterdir())
    assert read_json(run_dir / "run.json")["status"] == "failed"
    assert not (run_dir / "metrics.json").exists()


def test_the_kernel_process_stderr_goes_to_the_run_log_not_the_terminal(toy_home, isolated_dirs, capfd):
    from conftest import TOY_PARAMS, make_notebook

    make_notebook(toy_home / "notebooks" / "03_noisy.ipynb", TOY_PARAMS,
                  ["import os\nos.write(2, b'kernel noise on fd 2\\n')", "raise ValueError('asked to fail')"])
    assert cli.main(["run", "03_noisy", "--profile", "smoke", "--no-progress"]) == 1
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("fgr: notebook 03_noisy failed"), err
    assert "kernel noise on fd 2" in (isolated_dirs / "runs/smoke/03_noisy" / runner.KERNEL_LOG).read_text()


def test_bad_parameter_refused_before_anything_runs(toy_home, isolated_dirs, capsys):
    assert cli.main(["run", "01_a", "--profile", "smoke", "-p", "epochs=3"]) == 1
    err = capsys.readouterr().err
    assert "'epochs'" in err and "allowed: fail, label, scale, seed" in err
    assert not (isolated_dirs / "runs").exists()


def test_reproduce_skips_up_to_date_and_reruns_on_change(toy_home, isolated_dirs, capsys):
    assert cli.main(["reproduce", "--profile", "smoke", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] 01_a: running" in out and "[2/2] 02_b: running" in out
    report = (isolated_dirs / "runs/smoke/REPORT.md").read_text()
    assert "## Track: toy" in report and "Protocol: toy protocol" in report and "| toy/count | 7 |" in report

    assert cli.main(["reproduce", "--profile", "smoke", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "01_a: up to date" in out and "02_b: up to date" in out

    # a changed parameter re-runs that notebook and, through the fingerprint, what depends on it
    (toy_home / "params/smoke/01_a.yaml").write_text("scale: 0.5\n")
    assert cli.main(["reproduce", "--profile", "smoke", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "01_a: running" in out and "02_b: running" in out

    # only one track's notebooks
    assert cli.main(["reproduce", "--profile", "smoke", "--track", "toy", "--force", "--no-progress"]) == 0
    assert "01_a: running" in capsys.readouterr().out
    assert cli.main(["reproduce", "--profile", "smoke", "--track", "nope"]) == 1


def test_results_json_schema(toy_home, isolated_dirs, capsys):
    assert cli.main(["reproduce", "--profile", "smoke", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["results", "--profile", "smoke", "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in rows] == ["01_a", "02_b"]
    for r in rows:
        assert set(r) == {"run", "notebook", "params", "metrics", "seconds"}
        assert all(isinstance(v, float) for v in r["metrics"].values())
        assert r["seconds"] > 0
    assert cli.main(["results", "--profile", "smoke"]) == 0
    assert "toy/value" in capsys.readouterr().out


def test_checkpoints_follow_the_runner_fingerprint(monkeypatch, tmp_path):
    """Under the runner a checkpoint is resumed only with the same parameters *and* code."""
    from fgr_utils.results import Run

    run = Run(notebook="10_x", name="10_x", profile="demo", dir=tmp_path, params={"a": 1}, seed=0, device="cpu")
    by_params = run.fingerprint
    assert by_params == Run(notebook="10_x", name="r", profile="p", dir=tmp_path, params={"a": 1}, seed=0,
                            device="cpu").fingerprint
    assert by_params != Run(notebook="10_x", name="r", profile="p", dir=tmp_path, params={"a": 2}, seed=0,
                            device="cpu").fingerprint
    monkeypatch.setenv("FGR_NOTEBOOK", "10_x")
    monkeypatch.setenv("FGR_FINGERPRINT", "code-and-params")
    assert run.fingerprint == "code-and-params"
    monkeypatch.setenv("FGR_NOTEBOOK", "other")
    assert run.fingerprint == by_params


@pytest.mark.notebook
def test_reproduce_with_seeds_runs_each_seed_reading_its_own_upstream(toy_home, isolated_dirs, capsys):
    """--seeds N: every per_seed notebook runs once per model seed, as <run>+seed=<k>, and a run of seed
    k reads the upstream run of seed k; a notebook not marked per_seed runs once."""
    import json

    from conftest import TOY_PARAMS, make_notebook

    make_notebook(toy_home / "notebooks" / "02_b.ipynb", TOY_PARAMS, [
        "from fgr_utils import start_run\nrun = start_run('02_b', globals())",
        "up = run.upstream('01_a')\nrun.note('read', [up.name, up.params['seed']])",
        "run.log('toy/value', 0.5, protocol='toy', split='test')\nrun.finish()"], track="toy", after=["01_a"])
    make_notebook(toy_home / "notebooks" / "03_c.ipynb", TOY_PARAMS, [
        "from fgr_utils import start_run\nrun = start_run('03_c', globals())",
        "run.log('toy/value', 0.5, protocol='toy', split='test')\nrun.finish()"], track="toy", after=["02_b"])
    for stem in ("01_a", "02_b"):
        path = toy_home / "notebooks" / f"{stem}.ipynb"
        nb = json.loads(path.read_text())
        nb["metadata"]["fgr"]["per_seed"] = True
        path.write_text(json.dumps(nb))
    assert cli.main(["reproduce", "--profile", "demo", "--seeds", "3", "--no-progress"]) == 0
    runs = isolated_dirs / "runs/demo"
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == [
        "01_a", "01_a+seed=1", "01_a+seed=2", "02_b", "02_b+seed=1", "02_b+seed=2", "03_c"]
    for k, suffix in ((0, ""), (1, "+seed=1"), (2, "+seed=2")):
        rec = read_json(runs / f"02_b{suffix}/metrics.json")
        assert rec["seed"] == k and rec["notes"]["read"] == [f"01_a{suffix}", k]
    assert read_json(runs / "reproduce.json")["seeds"] == 3
    values = {read_json(runs / f"01_a{s}/metrics.json")["metrics"]["toy/value"] for s in ("", "+seed=1", "+seed=2")}
    assert len(values) == 3  # the model seed changes what is drawn
    assert "--seeds 3" in (runs / "REPORT.md").read_text()
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--profile", "demo", "--seeds", "x"])
    assert cli.main(["reproduce", "--profile", "demo", "--seeds", "0", "--no-progress"]) == 1
    assert "--seeds must be at least 1" in capsys.readouterr().err
