"""Data-parallel training: two CPU processes (gloo) end with the weights of one process trained on the
same global batches; rank 0 alone logs, evaluates and writes; the torchrun entry runs a notebook."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import read_json

from fgr_utils import cli
from fgr_utils.train import __main__ as torchrun_entry
from fgr_utils.train import parallel
from fgr_utils.errors import FgrError
from fgr_utils.checkpoints import load_checkpoint
from fgr_utils.train import fit
from fgr_utils.train.parallel import batch_items, shard

ROOT = Path(__file__).resolve().parents[1]
N = 24
CUTS = [0, 8, 16, 23, 24]  # batches of 8, 8, 7 (split 4 + 3) and 1 (rank 1's slice is empty)
SCORES = {1: 0.1, 2: 0.9, 3: 0.3}  # the selection metric: epoch 2 is best, so 3 epochs restore it


class _Items(torch.utils.data.Dataset):
    """(x, y) items; remembers which ones this process loaded."""

    def __init__(self, x, y):
        self.x, self.y, self.loaded = x, y, []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.loaded.append(int(i))
        return self.x[i], self.y[i]


def _problem(kind: str, init_seed: int):
    x = torch.randn(N, 4, generator=torch.Generator().manual_seed(0))
    y = torch.sin(x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]))
    torch.manual_seed(init_seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    data = _Items(x, y)

    def batches(epoch):
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(epoch)).tolist()
        index = [perm[a:b] for a, b in zip(CUTS, CUTS[1:])]
        if kind == "loader":  # a DataLoader: each process loads only its share of every batch
            return torch.utils.data.DataLoader(data, batch_sampler=index)
        return [{"x": x[i], "y": y[i], "ids": [f"item{j}" for j in i]} for i in index]  # sliced after collation

    def step(batch):
        xb, yb = (batch["x"], batch["y"]) if isinstance(batch, dict) else batch
        return F.mse_loss(model(xb), yb)  # a mean over items

    def evaluate(epoch):
        return {"score": SCORES[epoch], "val/mse": float(F.mse_loss(model(x), y)),
                "evaluated_by": int(os.environ.get("RANK", "0"))}

    return model, opt, sched, batches, step, evaluate, data


def _train(kind: str, init_seed: int, ckpt: Path, epochs: int, log=print):
    model, opt, sched, batches, step, evaluate, data = _problem(kind, init_seed)
    res = fit(model, opt, epochs=epochs, make_batches=batches, train_step=step, evaluate=evaluate, select="score",
              scheduler=sched, checkpoint_dir=ckpt, fingerprint="f", grad_clip=0.5, progress=False, log=log)
    return model, res, data


def _worker(rank: int, world: int, port: int, out: str, kind: str, ckpts: list[str], epochs: int, combine: bool):
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    if not combine:  # each process steps on its own slice's gradient: must not match
        parallel.combine_gradients = lambda params, weight, loss: loss
    logged: list[str] = []
    # other initial weights on every rank: fit starts all of them from rank 0's
    model, res, data = _train(kind, rank, Path(ckpts[rank]), epochs, log=logged.append)
    torch.save({"model": model.state_dict(), "history": res.history, "resumed_from": res.resumed_from,
                "loaded": sorted(data.loaded), "logged": logged}, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(out: Path, kind: str, ckpts: list[Path], epochs: int, combine: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(2, _free_port(), str(out), kind, [str(c) for c in ckpts], epochs, combine), nprocs=2)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _single(tmp_path: Path, kind: str, epochs: int, monkeypatch) -> tuple[dict, dict]:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    model, res, _ = _train(kind, 0, tmp_path / f"single-{kind}-{epochs}", epochs, log=lambda _: None)
    return model.state_dict(), {"history": res.history,
                                "last": load_checkpoint(tmp_path / f"single-{kind}-{epochs}" / "last.pt")["model"]}


def _close(a: dict, b: dict, atol: float = 1e-5) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


@pytest.mark.parametrize("kind", ["batches", "loader"])
def test_two_processes_match_one_process_on_the_same_global_batches(tmp_path, kind, monkeypatch):
    ckpts = [tmp_path / "ckpt0", tmp_path / "ckpt1"]
    ranks = _spawn(tmp_path / "out", kind, ckpts, epochs=3)
    weights, single = _single(tmp_path, kind, 3, monkeypatch)
    for r in ranks:
        assert _close(r["model"], weights)  # the restored best epoch (2), on every rank
    # the last epoch's weights, as rank 0 checkpointed them
    assert _close(load_checkpoint(ckpts[0] / "last.pt")["model"], single["last"])
    assert not _close(weights, single["last"])  # epoch 2 and 3 differ: the restore above is meaningful
    # the same history everywhere: the global batch's loss, rank 0's evaluation and best epoch
    for r in ranks:
        assert [row["evaluated_by"] for row in r["history"]] == [0, 0, 0]
        assert [row["score"] for row in r["history"]] == [0.1, 0.9, 0.3]
        assert np.allclose([row["loss"] for row in r["history"]], [row["loss"] for row in single["history"]],
                           atol=1e-6)
        assert [row["val/mse"] for row in r["history"]] == [row["val/mse"] for row in ranks[0]["history"]]
    assert len(ranks[0]["logged"]) == 3 and ranks[1]["logged"] == []  # rank 0 alone logs ...
    assert sorted(p.name for p in ckpts[0].iterdir()) == ["best.pt", "last.pt"]  # ... and checkpoints
    assert not ckpts[1].exists() or not any(ckpts[1].iterdir())
    if kind == "loader":  # each process loaded only its share of every batch: 4+4+4+1 and 4+4+3 items
        assert len(ranks[0]["loaded"]) == 3 * 13 and len(ranks[1]["loaded"]) == 3 * 11


def test_without_combining_gradients_the_weights_differ(tmp_path, monkeypatch):
    ranks = _spawn(tmp_path / "out", "batches", [tmp_path / "c0", tmp_path / "c1"], epochs=1, combine=False)
    weights, single = _single(tmp_path, "batches", 1, monkeypatch)
    assert not _close(ranks[0]["model"], weights, atol=1e-3) and not _close(ranks[1]["model"], weights, atol=1e-3)


def test_every_rank_resumes_from_the_shared_checkpoint_and_disagreement_stops(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    _spawn(tmp_path / "a", "batches", [shared, shared], epochs=1)
    ranks = _spawn(tmp_path / "b", "batches", [shared, shared], epochs=3)
    assert [r["resumed_from"] for r in ranks] == [1, 1]
    weights, _ = _single(tmp_path, "batches", 3, monkeypatch)
    assert all(_close(r["model"], weights) for r in ranks)
    # rank 1 cannot see rank 0's run folder (another node without a shared filesystem)
    with pytest.raises(Exception, match="shared filesystem"):
        _spawn(tmp_path / "c", "batches", [shared, tmp_path / "elsewhere"], epochs=4)


def test_shard_slices_every_leaf_and_the_slices_make_the_batch():
    batch = {"x": torch.arange(15.).reshape(5, 3), "pair": (np.arange(10).reshape(5, 2), torch.arange(5)),
             "ids": ["a", "b", "c", "d", "e"], "mode": "train", "scale": torch.tensor(2.0)}
    assert batch_items(batch) == 5
    for world, sizes in ((2, [3, 2]), (3, [2, 2, 1]), (6, [1, 1, 1, 1, 1, 0])):
        parts = [shard(batch, r, world) for r in range(world)]
        assert [len(p["ids"]) for p in parts] == sizes
        assert torch.equal(torch.cat([p["x"] for p in parts]), batch["x"])
        assert np.array_equal(np.concatenate([p["pair"][0] for p in parts]), batch["pair"][0])
        assert sum((list(p["ids"]) for p in parts), []) == batch["ids"]
        assert all(p["mode"] == "train" and p["scale"] is batch["scale"] for p in parts)


def test_shard_keeps_stacked_blocks_as_the_attribute_track_collates_them():
    from fgr_utils.tracks.asfr.train import _collate

    def item(t):  # stem maps of anchor, positive, negative; attribute; values; image indices
        views = [{"layer3": torch.full((2, 3, 3), float(10 * t + j))} for j in range(3)]
        return views, t % 4, torch.tensor([t, t + 1]), torch.tensor([3 * t, 3 * t + 1, 3 * t + 2])

    items = [item(t) for t in range(5)]
    whole = _collate(items)
    assert whole[0]["layer3"].shape[0] == 15 and batch_items(whole) == 5
    for rank, (lo, hi) in enumerate([(0, 3), (3, 5)]):
        mine, expected = shard(whole, rank, 2), _collate(items[lo:hi])
        assert torch.equal(mine[0]["layer3"], expected[0]["layer3"])
        assert all(torch.equal(a, b) for a, b in zip(mine[1:], expected[1:]))


def test_shard_refuses_entries_that_do_not_lead_with_the_batch():
    with pytest.raises(FgrError) as err:
        shard((torch.zeros(4, 2), torch.zeros(6)), 0, 2)
    assert "6 rows, not a multiple of 4" in str(err.value) and "\n" not in str(err.value)


def test_a_run_record_of_another_rank_than_0_writes_nothing(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fgr_utils.results import Run

    fig = plt.figure()
    for rank in (1, 0):
        run = Run(notebook="20_x", name="r", profile="p", dir=tmp_path, params={}, seed=0, device="cpu", rank=rank,
                  world_size=2)
        run.log("m", 0.5, protocol="p")
        dest = run.save_figure(fig, "curve")
        rec = run.finish()
        assert rec["processes"] == 2 and run.finished and run.figures == ["figures/curve.png"]
        assert dest.exists() == (tmp_path / "metrics.json").exists() == (rank == 0)
    plt.close(fig)
    assert "rank 1 of 2; rank 0 writes metrics.json" in capsys.readouterr().out


def _torchrun(*args: str, timeout: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fgr_utils.train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_entry_refuses_what_fgr_run_refuses_with_the_same_line(isolated_dirs, capsys):
    for argv in (["nope"], ["30_asfr_train", "--profile", "smoke", "-p", "nope=1"]):
        assert cli.main(["run", *argv]) == 1
        expected = capsys.readouterr().err
        assert torchrun_entry.main(argv) == 1
        assert capsys.readouterr().err == expected and len(expected.strip().splitlines()) == 1
    proc = _torchrun("30_asfr_train", "--profile", "smoke", "-p", "nope=1", timeout=120)
    assert proc.returncode != 0
    assert (proc.stdout + proc.stderr).count(expected.strip()) == 1  # rank 0 says it; rank 1 does not repeat it


@pytest.mark.notebook
def test_torchrun_entry_trains_a_notebook_in_two_processes(isolated_dirs):
    from fgr_utils.data import synth
    from fgr_utils.tracks.sbir import METHODS

    synth.synthesize("sbir-garments", "smoke", 0)
    # every variant of the profile: three kernels, one after another, on one torchrun store
    proc = _torchrun("20_sbir_train", "--profile", "smoke", "-p", "epochs=1", "--no-progress", timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("running 20_sbir_train (smoke profile, 2 processes)") == len(METHODS)
    assert proc.stdout.count("done in") == len(METHODS)
    for method in METHODS:
        run_dir = isolated_dirs / f"runs/smoke/20_sbir_train-{method}+epochs=1"
        assert list(run_dir.rglob("metrics.json")) == [run_dir / "metrics.json"]
        rec = read_json(run_dir / "metrics.json")
        assert rec["processes"] == 2 and 0.0 <= rec["metrics"]["acc@1/last"] <= 1.0
        assert read_json(run_dir / "run.json")["status"] == "complete"
        last = load_checkpoint(run_dir / "checkpoints/last.pt")
        assert last["epoch"] == 1 and (run_dir / "checkpoints/best.pt").exists()
        assert {p.name for p in (run_dir / "figures").iterdir()} == {"diagram.png", "training.png", "retrieval.png"}
        # rank 1 executed its own copy and wrote nothing else; its fit printed no epoch line
        assert [p.relative_to(run_dir) for p in (run_dir / "rank1").rglob("*")] == [Path("rank1/20_sbir_train.ipynb")]
        rank0, rank1 = ((run_dir / p).read_text() for p in ("20_sbir_train.ipynb", "rank1/20_sbir_train.ipynb"))
        assert "epoch=1 loss=" in rank0 and "epoch=1 loss=" not in rank1
        assert "rank 1 of 2; rank 0 writes metrics.json" in rank1
