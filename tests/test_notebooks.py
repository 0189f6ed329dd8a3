"""Every notebook is committed stripped, declares typed and commented parameters, and runs on the
smoke profile; the recorded metrics are checked, not just the exit status."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_json

from fgr_utils import cli, runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_declared(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name} has outputs"
    assert "papermill" not in nb["metadata"]
    assert nb["metadata"]["kernelspec"]["name"] == "fgr"
    info = runner.load_notebook(path)  # parses the typed, commented parameters cell
    assert info.params and info.track in runner.TRACK_ORDER and info.purpose
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert nb["cells"].index(tagged[0]) <= 2, "the parameters cell should come right after the introduction"
    assert "start_run(" in "".join("".join(c["source"]) for c in nb["cells"])
    assert "".join(nb["cells"][-1]["source"]).strip().endswith("run.finish()")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_profile_file_names_declared_parameters(path):
    info = runner.load_notebook(path)
    for profile in runner.list_profiles():
        runner.plan_runs(info, profile)  # raises on an unknown key or a wrong type


@pytest.mark.notebook
def test_00_datasets_smoke(isolated_dirs):
    assert cli.main(["run", "00_datasets", "--profile", "smoke", "--no-progress"]) == 0
    run_dir = isolated_dirs / "runs/smoke/00_datasets"
    rec = read_json(run_dir / "metrics.json")
    m = rec["metrics"]
    assert m["photo-landmarks/queries"] > 0 and m["photo-landmarks/db_images"] > m["photo-landmarks/queries"]
    assert rec["metric_info"]["photo-landmarks/queries"]["unit"] == "count"
    assert rec["datasets"]["photo-landmarks"]["size"] == "smoke"
    assert (run_dir / "figures/samples-photo-landmarks.png").stat().st_size > 5_000
    gnd = isolated_dirs / "data/synth/photo-landmarks/smoke-seed0/gnd_photo-landmarks.pkl"
    assert gnd.exists()


@pytest.mark.notebook
def test_00_datasets_lists_corrupt_images_or_stops(isolated_dirs, capsys):
    from fgr_utils.data import synth

    root = synth.synthesize("photo-landmarks", "smoke", 0)
    victims = sorted((root / "jpg").glob("*.jpg"))[:2]
    victims[0].write_bytes(victims[0].read_bytes()[:200])  # truncated JPEG
    victims[1].write_bytes(b"")  # zero bytes
    assert cli.main(["run", "00_datasets", "--profile", "smoke", "--no-progress"]) == 0
    rec = read_json(isolated_dirs / "runs/smoke/00_datasets/metrics.json")
    listed = {Path(s["path"]).name: s["reason"] for s in rec["skipped_images"]}
    assert set(listed) == {victims[0].name, victims[1].name}
    assert "empty" in listed[victims[1].name]
    assert rec["metrics"]["photo-landmarks/readable_images"] == (
        rec["metrics"]["photo-landmarks/db_images"] + rec["metrics"]["photo-landmarks/queries"] - 2)

    capsys.readouterr()
    assert cli.main(["run", "00_datasets", "--profile", "smoke", "-p", "on_corrupt=stop", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CorruptImage" in err and victims[0].name in err


@pytest.mark.notebook
def test_missing_dataset_stops_in_the_data_cell_naming_the_fix(isolated_dirs, capsys):
    assert cli.main(["run", "00_datasets", "--profile", "smoke", "-p", "synthetic=[]", "-p", "download=[fashionai]",
                     "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "DatasetMissing: dataset fashionai is missing" in err and "fgr data download fashionai" in err
