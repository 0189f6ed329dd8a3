"""The robustness suite (issue 8): every requirement, and the test that covers it.

Tests named without a file are in this file; the others already existed.

1. A training run killed with SIGKILL mid-epoch resumes from its last checkpoint and ends with the
   same weights and metrics as an uninterrupted run (CPU, fixed seed):
   - ``test_fit_killed_mid_epoch_resumes_to_the_uninterrupted_weights``: ``fit`` in a child process
     that stops inside a step of epoch 2 and gets SIGKILL; a second process resumes.
   - ``test_fgr_run_killed_mid_epoch_resumes_to_the_same_metrics``: ``fgr run 20_sbir_train`` (smoke,
     triplet) killed, its kernel included, inside the first step of epoch 2, then run again.
   - test_train.py ``test_resume_gives_the_same_weights_as_an_uninterrupted_run`` (in one process).
2. Two runs with the same seed give identical ``metrics.json`` metrics:
   - ``test_same_seed_gives_identical_metrics_and_weights_on_a_training_notebook`` (20_sbir_train).
   - test_runner.py ``test_same_seed_same_metrics`` (a toy notebook; another seed differs).
3. Corrupt and zero-byte image files inside a dataset are skipped and listed:
   - test_images.py ``test_scan_skip_and_stop``, ``test_image_list_dataset``.
   - test_notebooks.py ``test_00_datasets_lists_corrupt_images_or_stops`` (listed in metrics.json).
   - test_corrupt_images.py (every track's loader and training notebook):
     the shared scan, ``test_unreadable_images_names_each_file_once_and_rescans_from_the_cache``;
     the loaders leave a truncated and a zero-byte image out as each protocol allows,
     ``test_fabric_loader_drops_unreadable_fabrics_and_query_motifs``,
     ``test_sketch_loader_drops_unreadable_sketches_and_photos_with_their_sketches``,
     ``test_attribute_loader_drops_every_row_that_names_an_unreadable_image``; the revisited
     landmark protocol needs every image and stops with one line naming the unreadable ones,
     ``test_an_unreadable_landmark_image_stops_with_one_line``; the notebooks run and list the
     files in metrics.json's ``skipped_images``: ``test_fabric_notebooks_skip_and_list_unreadable_images``
     (10, 11), ``test_sbir_notebook_skips_and_lists_unreadable_images`` (20),
     ``test_asfr_notebook_skips_and_lists_unreadable_images`` (30).
   A truncated feature cache or index file is detected and rebuilt:
   - test_train.py ``test_truncated_cache_is_rebuilt``; ``test_zero_byte_feature_cache_is_rebuilt``.
   - test_asfr_track.py ``test_stem_features_are_cached_on_disk_with_mirror_views`` (stem cache).
   - test_images.py ``test_corrupt_cache_file_is_ignored`` (the image scan cache).
   - ``test_torn_served_collection_is_rebuilt`` (the index a user loads: ``fgr serve``'s collection
     in ``RUN/index/``); test_serve.py ``test_the_collection_is_kept_under_the_model_hash_and_rebuilt_when_it_changes``.
   - test_index.py ``test_truncated_index_file``: a saved FAISS/exact/KD-tree index cut short is
     refused with one line saying to rebuild it (no command loads a saved index file).
   A checkpoint write that fails midway leaves the previous checkpoint intact:
   - ``test_failed_checkpoint_write_keeps_the_previous_checkpoint`` (best.pt and last.pt).
   - test_index.py ``test_save_is_atomic`` (an index file); test_train.py
     ``test_other_parameters_do_not_resume_and_torn_checkpoints_are_ignored`` (a torn last.pt).
4. A notebook run with a wrong parameter type, a missing dataset, or an unknown profile fails in
   seconds with one clear line:
   - ``test_bad_runs_fail_fast_with_one_line`` (the ``fgr`` command in a subprocess; prints the
     time each took).
   - test_runner.py ``test_plan_refuses_unknown_key_and_wrong_type_naming_allowed``;
     test_notebooks.py ``test_missing_dataset_stops_in_the_data_cell_naming_the_fix``.
5. Property-based tests (hypothesis) of the metrics:
   - AP in [0, 1]: test_metrics.py ``test_revisited_ap_in_unit_interval``,
     ``test_fabric_ap_bounds_and_perfect_ranking``, ``test_attribute_ap_in_unit_interval``;
     ``test_returned_list_ap_properties`` (the AP of what an index returned).
   - AP = 1 for a perfect ranking: test_metrics.py ``test_revisited_perfect_ranking_scores_one``,
     ``test_fabric_ap_bounds_and_perfect_ranking``, ``test_attribute_ap_in_unit_interval``;
     ``test_returned_list_ap_properties``.
   - Invariance to junk placement: test_metrics.py ``test_revisited_ap_is_invariant_to_junk_placement``;
     ``test_attribute_ap_ignores_where_candidates_of_other_attributes_sit`` (their analogue of junk:
     candidates never ranked for the query).
   - Weighted MAP = macro MAP when query counts are equal: test_metrics.py
     ``test_weighted_equals_macro_for_equal_counts`` (``combine_attribute_maps``);
     ``test_attribute_map_weighted_equals_macro_for_equal_query_counts`` (``attribute_map``).
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import read_json, synth_in
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from fgr_utils import search
from fgr_utils.results import RunRecord
from fgr_utils.tracks.base import Catalogue, TrainedRun
from fgr_utils.checkpoints import load_checkpoint
from fgr_utils.train import fit

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
PAUSED = "paused inside epoch 2"  # what the child prints before it blocks, waiting to be killed
HYPO = settings(max_examples=60, deadline=None)
LINUX = sys.platform.startswith("linux")


# ============================================================================================
# 1. SIGKILL mid-epoch, then resume (fit in child processes)
# ============================================================================================


def toy_problem(seed: int = 0, pause_at: tuple[int, int] | None = None):
    """A small regression network with dropout (so the restored RNG state matters) and a decaying rate.

    ``pause_at=(epoch, step)``: that training step prints ``PAUSED`` and blocks, so a parent process can
    kill it mid-epoch. Returns fit's arguments: model, optimiser, scheduler, batches, step, evaluate.
    """
    g = torch.Generator().manual_seed(1234)  # the data never depends on seed
    x = torch.randn(48, 6, generator=g)
    y = torch.sin(x @ torch.randn(6, 1, generator=g))
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    where = {"epoch": 0, "step": 0}

    def batches(epoch):
        where.update(epoch=epoch, step=0)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        return [order[i:i + 8] for i in range(0, len(x), 8)]

    def step(idx):
        where["step"] += 1
        if pause_at == (where["epoch"], where["step"]):
            print(PAUSED, flush=True)
            time.sleep(600)
        return F.mse_loss(model(x[idx]), y[idx])

    def evaluate(epoch):
        return {"val/neg_mse": -float(F.mse_loss(model(x), y))}

    return model, opt, sched, batches, step, evaluate


CHILD = """\
import json, sys
import torch
sys.path.insert(0, {tests!r})
from test_robustness import toy_problem
from fgr_utils.train import fit

checkpoints, out, pause = sys.argv[1], sys.argv[2], sys.argv[3] == "pause"
model, opt, sched, batches, step, evaluate = toy_problem(pause_at=(2, 3) if pause else None)
res = fit(model, opt, epochs=4, make_batches=batches, train_step=step, evaluate=evaluate, select="val/neg_mse",
          scheduler=sched, checkpoint_dir=checkpoints, fingerprint="robustness", progress=False)
torch.save(model.state_dict(), out + ".pt")
with open(out + ".json", "w") as f:
    json.dump({{"history": [{{k: v for k, v in row.items() if k != "seconds"}} for row in res.history],
               "best_epoch": res.best_epoch, "resumed_from": res.resumed_from}}, f)
"""


def _child_cmd(script: Path, checkpoints: Path, out: Path, mode: str) -> list[str]:
    return [sys.executable, str(script), str(checkpoints), str(out), mode]


def _finished(out: Path) -> tuple[dict, dict]:
    return torch.load(f"{out}.pt"), json.loads(Path(f"{out}.json").read_text())


def test_fit_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "train_toy.py"
    script.write_text(CHILD.format(tests=str(TESTS)))
    ckpt = tmp_path / "killed"
    child = subprocess.Popen(_child_cmd(script, ckpt, tmp_path / "never", "pause"), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in child.stdout:  # fit's epoch lines, then the pause marker
            seen.append(line.rstrip())
            if line.strip() == PAUSED:
                os.kill(child.pid, signal.SIGKILL)
                break
        assert child.wait(timeout=60) == -signal.SIGKILL, "\n".join(seen)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert seen[-1] == PAUSED and any(s.startswith("epoch=1 ") for s in seen)
    assert not any(s.startswith("epoch=2 ") for s in seen)  # killed inside epoch 2, before its end
    assert load_checkpoint(ckpt / "last.pt")["epoch"] == 1
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.pt", "last.pt"]

    resumed = subprocess.run(_child_cmd(script, ckpt, tmp_path / "resumed", "run"), cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from epoch 1" in resumed.stdout
    straight = subprocess.run(_child_cmd(script, tmp_path / "straight", tmp_path / "straight", "run"), cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stdout + straight.stderr

    w_resumed, rec_resumed = _finished(tmp_path / "resumed")
    w_straight, rec_straight = _finished(tmp_path / "straight")
    assert rec_resumed["resumed_from"] == 1 and rec_straight["resumed_from"] is None
    assert rec_resumed["history"] == rec_straight["history"]  # losses, rates and validation numbers
    assert len(rec_straight["history"]) == 4 and rec_resumed["best_epoch"] == rec_straight["best_epoch"]
    assert w_resumed.keys() == w_straight.keys()
    for name in w_straight:
        assert torch.equal(w_resumed[name], w_straight[name]), name


# ============================================================================================
# 1-2. The same through `fgr run` on a real training notebook (smoke profile)
# ============================================================================================

SBIR_RUN = ["run", "20_sbir_train", "--profile", "smoke", "--variant", "triplet", "--no-progress"]


def _fgr(*args: str) -> list[str]:
    return [sys.executable, "-m", "fgr_utils.cli", *args]


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FGR_")}
    env.update(FGR_DATA_DIR=str(base / "data"), FGR_RUNS_DIR=str(base / "runs"), MPLBACKEND="Agg")
    return env


def _fgr_ok(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(_fgr(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _model_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.fixture(scope="module")
def sbir_home(tmp_path_factory):
    """sbir-garments (smoke) and one uninterrupted smoke run of 20_sbir_train's triplet variant."""
    base = tmp_path_factory.mktemp("sbir")
    synth_in(base / "data", "sbir-garments")
    env = _env(base)
    _fgr_ok(SBIR_RUN + ["--name", "straight"], env)
    return base, env


# Loaded by every Python process of the killed run (PYTHONPATH): once epoch 1's checkpoint exists, the
# kernel's next backward pass (the first step of epoch 2) writes a marker and blocks until it is killed.
# A smoke epoch takes a tenth of a second, so waiting on the clock instead could miss epoch 2.
PAUSE_HOOK = """\
import os, time
from pathlib import Path

import torch

_after, _marker = Path(os.environ["PAUSE_AFTER"]), Path(os.environ["PAUSE_MARKER"])
_backward = torch.autograd.backward


def _pausing_backward(*args, **kwargs):
    if _after.exists():
        _marker.write_text(str(os.getpid()))
        time.sleep(600)
    return _backward(*args, **kwargs)


torch.autograd.backward = _pausing_backward
"""


@pytest.mark.notebook
@pytest.mark.skipif(not LINUX, reason="finds the kernel process through /proc")
def test_fgr_run_killed_mid_epoch_resumes_to_the_same_metrics(sbir_home):
    base, env = sbir_home
    runs = base / "runs" / "smoke"
    killed = runs / "killed"
    hook, marker = base / "pause_hook", base / "paused"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
    paused_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")])),
                  "PAUSE_AFTER": str(killed / "checkpoints" / "last.pt"), "PAUSE_MARKER": str(marker)}
    log = (base / "killed.log").open("w")
    # fgr in a session of its own; jupyter_client starts the kernel (which trains) in another one
    proc = subprocess.Popen(_fgr(*SBIR_RUN, "--name", "killed"), cwd=ROOT, env=paused_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    kernels: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():  # epoch 1 is over and epoch 2's first step has begun
            assert proc.poll() is None and time.monotonic() < deadline, (base / "killed.log").read_text()
            time.sleep(0.05)
        kernels = _children(proc.pid)
        assert int(marker.read_text()) in kernels  # the training kernel is what paused
        for pid in kernels:
            os.killpg(pid, signal.SIGKILL)  # the kernel leads its own process group
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        log.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert kernels, "no kernel process was found under fgr run"
    deadline = time.monotonic() + 30
    while not all(_gone(pid) for pid in kernels):
        assert time.monotonic() < deadline, "the kernel survived SIGKILL"
        time.sleep(0.05)
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["epoch"] == 1  # killed before epoch 2 ended
    assert not (killed / "metrics.json").exists()

    _fgr_ok(SBIR_RUN + ["--name", "killed"], env)  # the same command again
    assert "resuming from epoch 1" in (killed / "20_sbir_train.ipynb").read_text()
    assert read_json(killed / "metrics.json")["metrics"] == read_json(runs / "straight/metrics.json")["metrics"]
    _same_weights(_model_weights(killed), _model_weights(runs / "straight"))
    history = [{k: v for k, v in row.items() if k != "seconds"}
               for row in load_checkpoint(killed / "checkpoints" / "last.pt")["history"]]
    assert history == [{k: v for k, v in row.items() if k != "seconds"}
                       for row in load_checkpoint(runs / "straight" / "checkpoints" / "last.pt")["history"]]


@pytest.mark.notebook
def test_same_seed_gives_identical_metrics_and_weights_on_a_training_notebook(sbir_home):
    base, env = sbir_home
    runs = base / "runs" / "smoke"
    _fgr_ok(SBIR_RUN + ["--name", "again"], env)
    first, again = read_json(runs / "straight/metrics.json"), read_json(runs / "again/metrics.json")
    assert first["seed"] == again["seed"] == 0
    assert again["metrics"] == first["metrics"] and "acc@10/last" in first["metrics"]
    _same_weights(_model_weights(runs / "again"), _model_weights(runs / "straight"))


# ============================================================================================
# 3. Torn caches and collections are rebuilt; a failed checkpoint write keeps the previous one
# ============================================================================================


def test_zero_byte_feature_cache_is_rebuilt(tmp_path, capsys):
    from PIL import Image

    from fgr_utils.data.transforms import Preprocess
    from fgr_utils.embed import extract

    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(paths[-1])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    pre = Preprocess(size=16)
    good = np.array(extract(model, paths, pre, cache_dir=tmp_path / "cache", progress=False))
    (cache,) = (tmp_path / "cache").glob("*.npy")
    cache.write_bytes(b"")  # what a crash between creating and filling a file can leave
    again = extract(model, paths, pre, cache_dir=tmp_path / "cache", progress=False)
    assert "rebuilding it" in capsys.readouterr().out
    assert np.array_equal(np.asarray(again), good) and cache.stat().st_size > 0


class _ToyRun(TrainedRun):
    """A run without a model: its catalogue is fixed vectors, so only the collection logic is exercised."""

    track = "toy"
    notebooks = ("toy",)
    catalogued = 0

    @property
    def dataset(self) -> str:
        return "toy"

    @property
    def root(self):
        return self.run.dir

    def model_hash(self) -> str:
        return "5eed" * 16

    @staticmethod
    def _vectors() -> np.ndarray:
        v = np.random.default_rng(0).standard_normal((60, 8))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def catalogue(self) -> Catalogue:
        type(self).catalogued += 1
        return Catalogue([f"item{i}" for i in range(60)], [f"img/{i}.png" for i in range(60)], {"image": self._vectors()})

    def embed(self, img, groups):
        return self._vectors()[:1]  # item 0's own vector

    def bench_sets(self, catalogue):
        return []

    def evaluate(self):
        return {}

    def browser_inputs(self, **options):
        return {}


@pytest.mark.parametrize("cut", ["half", "all but the end", "zero bytes"])
def test_torn_served_collection_is_rebuilt(tmp_path, capsys, cut):
    run = RunRecord(tmp_path, {"notebook": "toy", "params": {}})
    first = search.Searcher(_ToyRun(run))
    (path,) = (tmp_path / "index").glob("collection-*.npz")
    raw = path.read_bytes()
    path.write_bytes({"half": raw[: len(raw) // 2], "all but the end": raw[:-20], "zero bytes": b""}[cut])
    capsys.readouterr()
    before = _ToyRun.catalogued
    again = search.Searcher(_ToyRun(run))
    assert "rebuilding the collection" in capsys.readouterr().out
    assert _ToyRun.catalogued == before + 1
    assert np.array_equal(again.collection.vectors["image"], first.collection.vectors["image"])
    assert search.Collection.load(path) is not None  # the file on disk is whole again
    pos, _, _ = again.search(None, again.groups, k=3)
    assert pos[0] == 0  # the rebuilt index answers: item 0's own vector finds it first


@pytest.mark.parametrize("failing", ["best.pt", "last.pt"])
def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failing):
    model, opt, sched, batches, step, _ = toy_problem()
    snapshots = {}

    def evaluate(epoch):  # a score that improves every epoch, so best.pt is written every epoch
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"val": float(epoch)}

    real_save = torch.save

    def torn_save(obj, f, *args, **kwargs):
        target = "best.pt" if "row" in obj else "last.pt"
        if obj.get("epoch") == 2 and target == failing:
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            part = buf.getvalue()[: len(buf.getvalue()) // 2]
            if isinstance(f, (str, os.PathLike)):
                Path(f).write_bytes(part)
            else:
                f.write(part)
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="No space left"):
        fit(model, opt, epochs=3, make_batches=batches, train_step=step, evaluate=evaluate, select="val",
            scheduler=sched, checkpoint_dir=tmp_path, fingerprint="f", progress=False, log=lambda _: None)
    monkeypatch.undo()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 and [r["epoch"] for r in last["history"]] == [1]
    _same_weights(last["model"], snapshots[1])
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == (1 if failing == "best.pt" else 2)  # best.pt is written before last.pt
    _same_weights(best["model"], snapshots[best["epoch"]])

    # the run goes on from last.pt and ends where an uninterrupted run ends
    model, opt, sched, batches, step, _ = toy_problem(seed=7)
    res = fit(model, opt, epochs=3, make_batches=batches, train_step=step, evaluate=lambda e: {"val": float(e)},
              select="val", scheduler=sched, checkpoint_dir=tmp_path, fingerprint="f", progress=False,
              log=lambda _: None)
    straight_model, opt, sched, batches, step, _ = toy_problem()
    fit(straight_model, opt, epochs=3, make_batches=batches, train_step=step, evaluate=lambda e: {"val": float(e)},
        select="val", scheduler=sched, checkpoint_dir=tmp_path / "straight", fingerprint="f", progress=False,
        log=lambda _: None)
    assert res.resumed_from == 1
    _same_weights(model.state_dict(), straight_model.state_dict())


# ============================================================================================
# 4. Bad runs fail in seconds with one line
# ============================================================================================


def test_bad_runs_fail_fast_with_one_line(tmp_path):
    cases = {
        "wrong parameter type": (["run", "20_sbir_train", "--profile", "smoke", "-p", "epochs=two"],
                                 ["parameter 'epochs' must be int", "'two'", "from -p"]),
        "missing dataset": (SBIR_RUN,
                            ["DatasetMissing", "sbir-garments", "fgr data synth sbir-garments --size smoke --seed 0"]),
        "unknown profile": (["run", "20_sbir_train", "--profile", "nope"],
                            ["unknown profile 'nope'", "known: ", "smoke"]),
    }
    results = {}
    for label, (args, _) in cases.items():
        base = tmp_path / label.replace(" ", "_")  # empty data and run folders: no dataset generated
        t0 = time.perf_counter()
        done = subprocess.run(_fgr(*args), cwd=ROOT, env=_env(base), capture_output=True, text=True, timeout=300)
        results[label] = (time.perf_counter() - t0, done, (base / "runs").exists())
    print()
    for label, (seconds, _, _) in results.items():
        print(f"fails fast: {label}: {seconds:.2f} s")
    for label, (args, words) in cases.items():
        _, done, made_run_folder = results[label]
        assert made_run_folder == (label == "missing dataset")  # the others are refused before any run
        assert done.returncode == 1, (label, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fgr: "), (label, done.stderr)
        for w in words:
            assert w in lines[0], (label, w, lines[0])


# ============================================================================================
# 5. Metric properties not covered by tests/test_metrics.py
# ============================================================================================


@st.composite
def _attribute_data(draw, equal_counts: bool = False):
    n_attr = draw(st.integers(1, 4))
    n_val = draw(st.integers(1, 3))
    per_attr = draw(st.integers(1, 5))
    qa = (np.repeat(np.arange(n_attr), per_attr) if equal_counts
          else np.array(draw(st.lists(st.integers(0, n_attr - 1), min_size=1, max_size=12))))
    n_c = draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q = rng.integers(-1, 2, size=(len(qa), 3)).astype(np.float64)  # small integers: many exact ties
    c = rng.integers(-1, 2, size=(n_c, 3)).astype(np.float64)
    return (q, qa, rng.integers(0, n_val, len(qa)), c, rng.integers(0, n_attr, n_c),
            rng.integers(0, n_val, n_c), rng)


@HYPO
@given(_attribute_data(equal_counts=True))
def test_attribute_map_weighted_equals_macro_for_equal_query_counts(data):
    from fgr_utils.metrics import attribute_map

    q, qa, qv, c, ca, cv, _ = data
    res = attribute_map(q, qa, qv, c, ca, cv)
    assert len(set(res["queries"].values())) == 1
    assert res["weighted"] == pytest.approx(res["macro"])
    assert res["weighted"] == pytest.approx(float(np.mean(res["aps"])))


@HYPO
@given(_attribute_data())
def test_attribute_ap_ignores_where_candidates_of_other_attributes_sit(data):
    """A query ranks only its attribute's candidates: moving the others anywhere, or adding candidates
    of an attribute no query asks about, changes no AP (each attribute's own order is kept, so ties
    break the same way)."""
    from fgr_utils.metrics import attribute_map

    q, qa, qv, c, ca, cv, rng = data
    extra = rng.integers(0, 6)
    c2 = np.concatenate([c, rng.integers(-1, 2, size=(extra, 3)).astype(np.float64)])
    ca2 = np.concatenate([ca, np.full(extra, 99)])
    cv2 = np.concatenate([cv, rng.integers(0, 3, extra)])
    slots = rng.permutation(len(c2))  # new place of each candidate ...
    order = np.empty(len(c2), dtype=int)
    for a in np.unique(ca2):  # ... but within one attribute the original order
        members = np.flatnonzero(ca2 == a)
        order[np.sort(slots[members])] = members
    before = attribute_map(q, qa, qv, c, ca, cv)
    after = attribute_map(q, qa, qv, c2[order], ca2[order], cv2[order])
    np.testing.assert_array_equal(after["aps"], before["aps"])
    assert after["per_attribute"] == before["per_attribute"]


@HYPO
@given(st.integers(1, 30), st.data())
def test_returned_list_ap_properties(n, data):
    """The AP of what an index returned: in [0, 1], 1 when every relevant item comes first, the plain
    full-ranking AP of the returned prefix (unreturned relevant items are misses), -1 padding ignored."""
    from fgr_utils.metrics import full_ap, returned_list_metrics

    ranking = data.draw(st.permutations(range(n)))
    relevant = sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n)))
    k = data.draw(st.integers(1, n))
    pad = data.draw(st.integers(0, 3))
    found = np.array([list(ranking[:k]) + [-1] * pad])
    ap, first = returned_list_metrics(found, [relevant])
    assert 0.0 <= ap[0] <= 1.0 + 1e-12
    assert ap[0] == pytest.approx(full_ap(ranking[:k], relevant))
    hits = [i for i, x in enumerate(ranking[:k]) if x in set(relevant)]
    assert first[0] == (hits[0] + 1 if hits else k + pad + 1)
    if relevant:
        perfect = relevant + [x for x in ranking if x not in set(relevant)]
        ap_perfect, first_perfect = returned_list_metrics(np.array([perfect]), [relevant])
        assert ap_perfect[0] == pytest.approx(1.0) and first_perfect[0] == 1
        full, _ = returned_list_metrics(np.array([list(ranking)]), [relevant])
        assert full[0] == pytest.approx(full_ap(ranking, relevant))
