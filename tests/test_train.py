"""The shared trainer (checkpoints, resume, best epoch) and cached extraction."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fgr_utils.data.transforms import Preprocess
from fgr_utils.embed import extract, extract_loop
from fgr_utils.backbones import create_backbone
from fgr_utils.tracks.fabric.models import GlobalModel
from fgr_utils.checkpoints import load_checkpoint
from fgr_utils.train import fit


def _problem(seed: int = 0):
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))  # the data never depends on seed
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def batches(epoch):
        g = torch.Generator().manual_seed(epoch)
        perm = torch.randperm(32, generator=g)
        return [(x[perm[i:i + 8]], y[perm[i:i + 8]]) for i in range(0, 32, 8)]

    def step(batch):
        xb, yb = batch
        return torch.nn.functional.mse_loss(model(xb), yb)

    def evaluate(epoch):
        return {"val/neg_mse": -float(torch.nn.functional.mse_loss(model(x), y))}

    return model, opt, sched, batches, step, evaluate


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    model, opt, sched, batches, step, evaluate = _problem()
    straight = fit(model, opt, epochs=4, make_batches=batches, train_step=step, evaluate=evaluate,
                   scheduler=sched, checkpoint_dir=tmp_path / "a", fingerprint="f", progress=False, restore_best=False)
    w_straight = model.weight.detach().clone()

    model, opt, sched, batches, step, evaluate = _problem()
    fit(model, opt, epochs=2, make_batches=batches, train_step=step, evaluate=evaluate, scheduler=sched,
        checkpoint_dir=tmp_path / "b", fingerprint="f", progress=False)
    model, opt, sched, batches, step, evaluate = _problem(seed=99)  # a fresh process: other initial weights
    resumed = fit(model, opt, epochs=4, make_batches=batches, train_step=step, evaluate=evaluate, scheduler=sched,
                  checkpoint_dir=tmp_path / "b", fingerprint="f", progress=False, restore_best=False)
    assert resumed.resumed_from == 2 and len(resumed.history) == 4
    assert torch.equal(model.weight, w_straight)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_other_parameters_do_not_resume_and_torn_checkpoints_are_ignored(tmp_path, capsys):
    model, opt, sched, batches, step, evaluate = _problem()
    fit(model, opt, epochs=1, make_batches=batches, train_step=step, checkpoint_dir=tmp_path, fingerprint="f",
        progress=False)
    model, opt, sched, batches, step, evaluate = _problem()
    res = fit(model, opt, epochs=1, make_batches=batches, train_step=step, checkpoint_dir=tmp_path,
              fingerprint="other", progress=False)
    assert res.resumed_from is None and "belongs to other parameters" in capsys.readouterr().out
    raw = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(raw[: len(raw) // 2])
    assert load_checkpoint(tmp_path / "last.pt") is None
    model, opt, sched, batches, step, evaluate = _problem()
    res = fit(model, opt, epochs=1, make_batches=batches, train_step=step, checkpoint_dir=tmp_path,
              fingerprint="other", progress=False)
    assert res.resumed_from is None and "ignoring unreadable checkpoint" in capsys.readouterr().out


def test_best_epoch_is_selected_and_restored(tmp_path):
    model, opt, sched, batches, step, evaluate = _problem()
    scores = iter([0.1, 0.9, 0.3])
    res = fit(model, opt, epochs=3, make_batches=batches, train_step=step, evaluate=lambda e: {"val": next(scores)},
              select="val", checkpoint_dir=tmp_path, fingerprint="f", progress=False)
    assert res.best_epoch == 2 and res.best["val"] == 0.9 and res.last["val"] == 0.3
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 2 and torch.equal(best["model"]["weight"], model.weight)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(9):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_extract_batches_match_the_loop_and_cache_is_keyed(images, tmp_path):
    torch.manual_seed(0)
    model = GlobalModel(create_backbone("vit-smoke"))
    pre = Preprocess(size=32)
    cache = tmp_path / "cache"
    a = extract(model, images, pre, batch_size=4, cache_dir=cache, progress=False)
    assert np.allclose(np.asarray(a), extract_loop(model, images, pre), atol=1e-5)
    assert len(list(cache.glob("*.npy"))) == 1
    extract(model, images, pre, batch_size=4, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npy"))) == 1  # reused
    with torch.no_grad():
        model.head[0].weight.add_(1.0)
    extract(model, images, pre, batch_size=4, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npy"))) == 2  # other weights, other key
    extract(model, images, Preprocess(size=32, resize="squash"), cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npy"))) == 3  # other preprocessing, other key


def test_truncated_cache_is_rebuilt(images, tmp_path, capsys):
    model = GlobalModel(create_backbone("vit-smoke"))
    pre = Preprocess(size=32)
    good = np.asarray(extract(model, images, pre, cache_dir=tmp_path, progress=False)).copy()
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(path.read_bytes()[:200])
    again = extract(model, images, pre, cache_dir=tmp_path, progress=False)
    assert "rebuilding" in capsys.readouterr().out
    assert np.array_equal(np.asarray(again), good)
