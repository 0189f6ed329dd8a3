"""Notebooks opened by hand (JupyterLab, plain papermill, nbconvert) read the runs of a profile they
name (``latest``: the last ``fgr reproduce``), record into ``runs/interactive/``, and every "has not
finished" message names a command that works as printed: the tests run each suggested command."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time

import papermill as pm
import pytest
from conftest import make_notebook, read_json

from fgr_utils import cli, runner
from fgr_utils.errors import FgrError
from fgr_utils.results import RunRecord, reading_profile

READER_PARAMS = """\
profile: str = "latest"  # whose runs are read
source: str = "01_a"  # the run read
seed: int = 0  # RNG seed
"""
READER_BODY = [
    "from fgr_utils import start_run\nrun = start_run('05_reader', globals())",
    "up = run.upstream(source, role='source')\nrun.log('read/value', up.metrics['toy/value'], protocol='copied')",
    "run.note('read_from', str(up.dir))\nrun.finish()",
]


@pytest.fixture
def reader_home(toy_home):
    make_notebook(toy_home / "notebooks" / "05_reader.ipynb", READER_PARAMS, READER_BODY, track="toy",
                  purpose="reads a run", after=["01_a"])
    (toy_home / "params/smoke/01_a.yaml").write_text("runs:\n  x: {scale: 2.0}\n  y: {scale: 3.0}\n")
    (toy_home / "params/smoke/05_reader.yaml").write_text("source: 01_a-x\n")
    return toy_home


def by_hand(home, stem, out, **params):
    """What `papermill notebooks/<stem>.ipynb out.ipynb -k fgr [-p ...]` does: no runner, no FGR_ run variables."""
    assert not any(k in os.environ for k in ("FGR_RUN_DIR", "FGR_NOTEBOOK", "FGR_PROFILE"))
    return pm.execute_notebook(str(home / "notebooks" / f"{stem}.ipynb"), str(out), parameters=params,
                               kernel_name="fgr", progress_bar=False, cwd=str(home / "notebooks"))


def outputs(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_by_hand_reads_the_last_reproduced_profile_and_says_so(reader_home, isolated_dirs, tmp_path, capsys):
    assert cli.main(["reproduce", "--profile", "smoke", "--no-progress"]) == 0
    nb = by_hand(reader_home, "05_reader", tmp_path / "out.ipynb", source="01_a-x")
    rec = read_json(isolated_dirs / "runs/interactive/05_reader/metrics.json")
    smoke_x = read_json(isolated_dirs / "runs/smoke/01_a-x/metrics.json")
    assert rec["profile"] == "interactive" and rec["reads"] == "smoke" and rec["params"]["profile"] == "latest"
    assert rec["upstream"]["source"] == str(isolated_dirs / "runs/smoke/01_a-x")
    assert rec["metrics"]["read/value"] == smoke_x["metrics"]["toy/value"]
    first = outputs(nb).splitlines()[0]
    assert first.startswith("05_reader, run by hand: records into ") and "reads the runs of profile 'smoke'" in first

    # a later reproduction of another profile becomes "latest"; a named profile is read as named
    time.sleep(0.05)
    (reader_home / "params/demo/01_a.yaml").write_text("runs:\n  x: {scale: 1.5}\n")
    (reader_home / "params/demo/05_reader.yaml").write_text("source: 01_a-x\n")
    assert cli.main(["reproduce", "--profile", "demo", "--no-progress"]) == 0
    assert reading_profile("latest") == "demo"
    by_hand(reader_home, "05_reader", tmp_path / "out2.ipynb", source="01_a-x")
    assert read_json(isolated_dirs / "runs/interactive/05_reader/metrics.json")["reads"] == "demo"
    by_hand(reader_home, "05_reader", tmp_path / "out3.ipynb", source="01_a-x", profile="smoke")
    assert read_json(isolated_dirs / "runs/interactive/05_reader/metrics.json")["reads"] == "smoke"


def test_a_run_made_by_hand_is_read_by_another_notebook_by_hand(reader_home, isolated_dirs, tmp_path):
    assert cli.main(["reproduce", "--profile", "smoke", "--no-progress"]) == 0
    by_hand(reader_home, "01_a", tmp_path / "a.ipynb", scale=0.25)  # a student retrains with another parameter
    mine = read_json(isolated_dirs / "runs/interactive/01_a/metrics.json")
    by_hand(reader_home, "05_reader", tmp_path / "r.ipynb", source="interactive/01_a")
    rec = read_json(isolated_dirs / "runs/interactive/05_reader/metrics.json")
    assert rec["metrics"]["read/value"] == mine["metrics"]["toy/value"]
    assert rec["upstream"]["source"] == str(isolated_dirs / "runs/interactive/01_a")
    # the same through the profile parameter, and through a folder
    by_hand(reader_home, "05_reader", tmp_path / "r2.ipynb", source="01_a", profile="interactive")
    assert read_json(isolated_dirs / "runs/interactive/05_reader/metrics.json")["reads"] == "interactive"
    assert RunRecord.find(str(isolated_dirs / "runs/smoke/01_a-y")).params["scale"] == 3.0


def test_the_runner_sets_profile_and_refuses_it_as_a_parameter(reader_home, isolated_dirs, capsys):
    nb = runner.find_notebook("05_reader")
    assert runner.plan_runs(nb, "demo")[0].params["profile"] == "demo"
    assert cli.main(["run", "05_reader", "--profile", "smoke", "-p", "profile=demo"]) == 1
    assert "set by the runner to the profile it runs: choose it with --profile" in capsys.readouterr().err
    (reader_home / "params/smoke/05_reader.yaml").write_text("profile: demo\n")
    with pytest.raises(FgrError, match="params/smoke/05_reader.yaml"):
        runner.plan_runs(nb, "smoke")


def test_an_unknown_profile_and_no_runs_at_all_are_one_line_each(reader_home, isolated_dirs):
    with pytest.raises(FgrError, match=r"not one of latest, smoke, demo, interactive"):
        reading_profile("demo2")
    with pytest.raises(FgrError, match=r"run `fgr reproduce --profile demo` first"):
        reading_profile("latest")


def suggested(message: str) -> list[str]:
    """The command a one-line error suggests (the backticked ``fgr ...`` it names)."""
    found = re.findall(r"`(fgr [^`]+)`", message)
    assert found, f"the message suggests no command: {message}"
    return shlex.split(found[0])[1:]


def follow_hints(command: list[str], capfd, followed: list[str] | None = None, depth: int = 0) -> list[str]:
    """Run ``fgr <command>``; when it fails, follow the command its one-line message suggests (and
    that command's own hints, in turn), then run ``command`` again, which must then succeed.
    Returns the suggested commands in the order they were found."""
    followed = [] if followed is None else followed
    assert depth < 6, f"hints do not end: {followed}"
    capfd.readouterr()
    if cli.main(command) == 0:
        return followed
    errors = [line for line in re.split(r"[\r\n]", capfd.readouterr().err) if line.startswith("fgr: ")]
    assert len(errors) == 1, errors  # (the rest on stderr is papermill's progress bar)
    err = errors[0]
    hint = suggested(err)
    assert "fgr " + shlex.join(hint) not in followed, f"the same hint twice: {err}"
    followed.append("fgr " + shlex.join(hint))
    follow_hints(hint, capfd, followed, depth + 1)
    capfd.readouterr()
    assert cli.main(command) == 0, f"`fgr {shlex.join(command)}` still fails after {followed}: {capfd.readouterr().err}"
    return followed


def test_every_not_finished_message_names_a_command_that_works(reader_home, isolated_dirs, capfd):
    # a variant of the profile
    assert follow_hints(["run", "05_reader", "--profile", "smoke", "-p", "source=01_a-y"], capfd) == [
        "fgr run 01_a --variant y --profile smoke"]
    # a run made with -p overrides: the command rebuilds the same name
    assert follow_hints(["run", "05_reader", "--profile", "smoke", "-p", "source=01_a-x+label=b,scale=0.5"],
                        capfd) == ["fgr run 01_a --variant x --profile smoke -p label=b -p scale=0.5"]
    assert RunRecord.find("01_a-x+label=b,scale=0.5", "smoke").params["scale"] == 0.5
    # a name the profile does not make: the message lists what it makes and what exists
    capfd.readouterr()
    assert cli.main(["run", "05_reader", "--profile", "smoke", "-p", "source=01_a"]) == 1
    err = capfd.readouterr().err
    assert "profile smoke makes no run of that name (it runs 01_a-x, 01_a-y; finished: 01_a-x+label=b,scale=0.5, " \
           "01_a-y)" in err
    assert cli.main(suggested(err)) == 0  # `fgr results --profile smoke`


def test_the_no_runs_message_by_hand_names_a_command_that_works(reader_home, isolated_dirs, tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as e:
        by_hand(reader_home, "05_reader", tmp_path / "out.ipynb")
    assert cli.main(suggested(e.value.evalue)) == 0  # fgr reproduce --profile demo
    by_hand(reader_home, "05_reader", tmp_path / "out.ipynb", source="01_a")
    assert read_json(isolated_dirs / "runs/interactive/05_reader/metrics.json")["reads"] == "demo"


def test_a_missing_run_by_hand_is_named_with_what_writes_it(reader_home, isolated_dirs):
    with pytest.raises(FgrError, match=r"it is written when notebook 01_a is run by hand: open "
                                       r"notebooks/01_a.ipynb in JupyterLab"):
        RunRecord.find("interactive/01_a")


def test_a_real_chain_of_hints_ends_in_a_finished_run(isolated_dirs, capfd):
    """The real notebooks on the smoke profile, from empty folders: re-ranking needs stage 1, which needs
    its data; each message's command is run as printed until the re-ranker runs."""
    followed = follow_hints(["run", "11_fabric_rerank", "--profile", "smoke", "--no-progress"], capfd)
    assert followed[0] == "fgr run 10_fabric_global --profile smoke", followed
    assert RunRecord.find("11_fabric_rerank", "smoke").upstream("stage1").name == "10_fabric_global"


def test_nbconvert_by_hand_reads_the_reproduced_runs(reader_home, isolated_dirs, tmp_path):
    """`jupyter nbconvert --execute` on the fgr kernel, as a user types it (a separate process)."""
    assert cli.main(["reproduce", "--profile", "smoke", "--no-progress"]) == 0
    env = dict(os.environ)  # FGR_HOME, FGR_RUNS_DIR, FGR_DATA_DIR: the toy kit; no runner variables
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.kernel_name=fgr", "--output-dir", str(tmp_path),
           str(reader_home / "notebooks/05_reader.ipynb"), "--ExecutePreprocessor.timeout=600"]
    # source "01_a" is not a run of smoke (it has variants): the error is the notebook's, one line
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "profile smoke makes no run of that name" in done.stderr
    (reader_home / "notebooks/05_reader.ipynb").write_text(
        (reader_home / "notebooks/05_reader.ipynb").read_text().replace('\\"01_a\\"', '\\"01_a-y\\"'))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_json(isolated_dirs / "runs/interactive/05_reader/metrics.json")["upstream"]["source"].endswith(
        "runs/smoke/01_a-y")
