"""Speed measurements behind ``fgr bench`` (measurements, not tests: they print their figures).

* ``rerank`` — re-ranking the stage-1 top 100 of each query from cached candidate tokens against
  the released approach, which runs the network on (query, candidate) for every pair; checks the two
  give the same scores and ends with ``rerank speedup: <x>x``.
* ``extract`` — batched feature extraction against the released one-image-at-a-time loop; ends
  with ``extract speedup: <x>x``.

Both use the profile's parameters of ``10_fabric_global`` / ``11_fabric_rerank`` (backbone,
resolution, preprocessing, dataset) and the trained weights of those runs when they exist (speed
does not depend on the weights; the agreement check holds for any weights).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from fgr_utils import fabric, runner
from fgr_utils.embed import extract, extract_loop
from fgr_utils.paths import runs_dir


def _params(profile: str, notebook: str) -> dict:
    (run,) = runner.plan_runs(runner.find_notebook(notebook), profile)
    return run.params


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _load_weights(model: torch.nn.Module, profile: str, run_name: str, say: Callable[[str], None]) -> None:
    ckpt = runs_dir() / profile / run_name / "checkpoints" / "best.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False) if ckpt.exists() else None
    if state is not None:
        model.load_state_dict(state["model"])
        say(f"weights: {ckpt}")
    else:
        say(f"weights: random initialisation (no {ckpt}; speed does not depend on the weights)")


def _setup(profile: str, notebook: str, build: Callable[[dict], torch.nn.Module], say):
    """The profile's dataset (from the stage-1 parameters), the notebook's inputs and model."""
    data = _params(profile, "10_fabric_global")
    p = _params(profile, notebook)
    fs, _ = fabric.load_dataset(data["dataset"], data["size"], data["data_seed"])
    inputs = fabric.fabric_inputs(p["img_size"], p["query_size"], resize=p["resize"],
                                  rgba_background=p["rgba_background"])
    torch.manual_seed(0)
    model = build(p).eval()
    _load_weights(model, profile, notebook, say)
    return p, fs, inputs, model


def bench_rerank(profile: str = "demo", queries: int = 10, shortlist: int = 100, say=print) -> float:
    p2, fs, inputs, model = _setup(profile, "11_fabric_rerank",
                                lambda p: fabric.build_qga(p["backbone"], img_size=p["img_size"], heads=p["heads"]), say)
    db_paths, q_paths = fs.fabric_paths("test"), fs.query_paths("test")[:queries]
    k = min(shortlist, len(db_paths))
    rng = np.random.default_rng(0)
    rows = np.stack([rng.permutation(len(db_paths))[:k] for _ in q_paths])
    say(f"profile {profile}: {p2['backbone']} at {p2['img_size']} px, {len(q_paths)} queries x top {k} "
        f"of {len(db_paths)} test fabrics, torch threads {torch.get_num_threads()}")

    t_cache, tokens = _timed(lambda: fabric.candidate_tokens(model, db_paths, inputs.fabric, progress=False))
    tokens = np.asarray(tokens, dtype=np.float32)

    def cached():
        q = fabric.query_cls(model, q_paths, inputs.query, progress=False)
        return fabric.rerank_queries(model, q, tokens, rows)

    cached()  # warm-up
    t_cached, s_cached = _timed(cached)
    q_imgs = [inputs.query(p)[None] for p in q_paths]
    c_imgs = [inputs.fabric(p)[None] for p in db_paths]  # preloaded: the naive side is not charged for decoding

    def naive():
        out = np.zeros(rows.shape, dtype=np.float32)
        with torch.no_grad():
            for i, q in enumerate(q_imgs):
                for j, r in enumerate(rows[i]):
                    out[i, j] = float(model(q, c_imgs[r])[0][0])
        return out

    t_naive, s_naive = _timed(naive)
    delta = float(np.abs(s_cached - s_naive).max())
    per_cached = t_cached / len(q_paths) + t_cache / len(fs.query_paths("test"))
    per_naive = t_naive / len(q_paths)
    say(f"token cache: {t_cache:.2f} s for {len(db_paths)} fabrics (once; amortised over "
        f"{len(fs.query_paths('test'))} test queries)")
    say(f"cached:  {1000 * per_cached:.1f} ms/query (query encoding + one attention call + amortised cache)")
    say(f"naive:   {1000 * per_naive:.1f} ms/query ({k} (query, candidate) forward passes)")
    say(f"max |score difference|: {delta:.2e} ({'agree' if delta <= 1e-4 else 'DISAGREE'} at 1e-4)")
    speedup = per_naive / per_cached
    say(f"rerank speedup: {speedup:.1f}x")
    return speedup


def bench_extract(profile: str = "demo", images: int = 256, batch_size: int = 4, say=print) -> float:
    p1, fs, inputs, model = _setup(profile, "10_fabric_global",
                                lambda p: fabric.build_global(p["backbone"], img_size=p["img_size"]), say)
    paths = (fs.fabric_paths("train") + fs.fabric_paths("test"))[:images]
    say(f"profile {profile}: {p1['backbone']} at {p1['img_size']} px, {len(paths)} fabric images, "
        f"batch {batch_size}, torch threads {torch.get_num_threads()}")
    pre = inputs.fabric
    extract(model, paths[:batch_size], pre, batch_size=batch_size, progress=False)  # warm-up
    t_batch, a = _timed(lambda: extract(model, paths, pre, batch_size=batch_size, progress=False))
    t_loop, b = _timed(lambda: extract_loop(model, paths, pre))
    delta = float(np.abs(np.asarray(a) - b).max())
    say(f"batched: {t_batch:.2f} s ({1000 * t_batch / len(paths):.2f} ms/image)")
    say(f"loop:    {t_loop:.2f} s ({1000 * t_loop / len(paths):.2f} ms/image)")
    say(f"max |feature difference|: {delta:.2e}")
    speedup = t_loop / t_batch
    say(f"extract speedup: {speedup:.1f}x")
    return speedup
