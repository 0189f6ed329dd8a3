"""Shared fixtures: an isolated kit home (toy notebooks and profiles) and isolated data/run folders."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Kernels and papermill must never look at a user's or CI's display.
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    """Data and runs in a temporary folder; the real notebooks and params stay in use."""
    monkeypatch.setenv("FGR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FGR_RUNS_DIR", str(tmp_path / "runs"))
    for var in ("FGR_RUN_DIR", "FGR_NOTEBOOK", "FGR_PROFILE", "FGR_RUN_NAME", "FGR_FINGERPRINT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def make_notebook(path: Path, params: str, body: list[str], *, track: str = "core", purpose: str = "toy",
                  after: list[str] | None = None) -> Path:
    """Write a notebook whose second cell is the tagged parameters cell."""
    cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    cells.append(p)
    cells += [nbformat.v4.new_code_cell(src) for src in body]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "fgr", "display_name": "Python (fgr)", "language": "python"}
    nb.metadata["fgr"] = {"track": track, "purpose": purpose, "after": after or []}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


TOY_PARAMS = """\
seed: int = 0  # RNG seed
scale: float = 1.0  # multiplies the metric
label: str = "a"  # free text
fail: bool = False  # raise in the third cell
"""

TOY_BODY = [
    "import torch\nfrom fgr_utils import start_run\nrun = start_run('{stem}', globals())",
    "if fail:\n    raise ValueError('asked to fail')\nx = torch.rand(100).mean().item() * scale / 2",
    "run.log('toy/value', x, protocol='toy protocol', dataset='none', split='test')\n"
    "run.log('toy/count', 7, protocol='dataset count', unit='count')\nrun.finish()",
]


@pytest.fixture
def toy_home(tmp_path, monkeypatch, isolated_dirs):
    """A kit home with two toy notebooks (b runs after a) and profiles smoke/demo."""
    home = tmp_path / "home"
    for stem, after in (("01_a", []), ("02_b", ["01_a"])):
        make_notebook(home / "notebooks" / f"{stem}.ipynb", TOY_PARAMS,
                      [c.replace("{stem}", stem) for c in TOY_BODY], track="toy", purpose=f"toy {stem}", after=after)
    for profile in ("smoke", "demo"):
        (home / "params" / profile).mkdir(parents=True)
        (home / "params" / profile / "_profile.yaml").write_text(f"description: {profile} profile\n")
    monkeypatch.setenv("FGR_HOME", str(home))
    return home


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def synth_in(base: Path, name: str, seed: int = 0, size: str = "smoke") -> Path:
    """Generate synthetic set ``name`` under the data folder ``base`` (module-scoped fixtures use it)."""
    from fgr_utils.data.synth import synthesize

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FGR_DATA_DIR", str(base))
        return synthesize(name, size, seed)


def assert_queries_kept(run_dir: Path, *names: str) -> None:
    """Every metric of the run that names per-query values is their statistic, recomputed from the
    stored table; each of ``names`` (metric names) is one of them."""
    from fgr_utils import queries
    from fgr_utils.results import RunRecord

    run = RunRecord.open(run_dir)
    linked = {m for m, i in run.record["metric_info"].items() if "per_query" in i}
    assert set(names) <= linked, sorted(set(names) - linked)
    for metric in linked:
        table, ref = run.per_query(metric)
        assert table.statistic(ref) == pytest.approx(run.metrics[metric], abs=1e-12), metric
        assert (Path(run_dir) / queries.FOLDER / f"{ref.table}.csv").is_file()


def assert_claims_decided(profile: str, track: str) -> None:
    """Every claim of ``track`` gets a verdict from the profile's runs (none 'not run' or unpaired)."""
    from fgr_utils import claims

    results = [r for c in claims.declared() if c["track"] == track for r in claims.evaluate_claim(c, profile)]
    assert results
    for r in results:
        assert r.verdict in ("holds", "not shown", "contradicted"), (r.claim["id"], r.reason)
        assert r.diff.low <= r.diff.diff <= r.diff.high and r.diff.queries > 1
