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

from fgr_utils import runner
from fgr_utils.embed import extract, extract_loop
from fgr_utils.errors import FgrError
from fgr_utils.index import build_index, recall_at_k
from fgr_utils.metrics import returned_list_metrics
from fgr_utils.results import RunRecord
from fgr_utils.search import open_run
from fgr_utils.serve import create_app, running
from fgr_utils.tracks import fabric


def _params(profile: str, notebook: str) -> dict:
    (run,) = runner.plan_runs(runner.find_notebook(notebook), profile)
    return run.params


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _load_weights(model: torch.nn.Module, profile: str, run_name: str, say: Callable[[str], None]) -> None:
    """The finished run's selected weights (its best epoch) when it exists, else the random ones."""
    try:
        run = RunRecord.find(run_name, profile)
        model.load_state_dict(run.checkpoint()["model"])
        say(f"weights: {run.checkpoint_path()}")
    except FgrError as e:
        say(f"weights: random initialisation ({e}; speed does not depend on the weights)")


def _setup(profile: str, notebook: str, build: Callable[[dict], torch.nn.Module], say):
    """The profile's dataset (from the stage-1 parameters), the notebook's inputs and model."""
    data = _params(profile, "10_fabric_global")
    p = _params(profile, notebook)
    fs = fabric.load_dataset(data["dataset"], data["size"], data["data_seed"]).items
    inputs = fabric.inputs_from_params(p)
    torch.manual_seed(0)
    model = build(p).eval()
    _load_weights(model, profile, notebook, say)
    return p, fs, inputs, model


def bench_rerank(profile: str = "demo", queries: int = 10, shortlist: int = 100, say=print) -> float:
    p2, fs, inputs, model = _setup(profile, "11_fabric_rerank", lambda p: fabric.qga_from_params(p, trained=True), say)
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
    p1, fs, inputs, model = _setup(profile, "10_fabric_global", lambda p: fabric.global_from_params(p, trained=True),
                                   say)
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


# --------------------------------------------------------------------------------------------
# Index benchmark (issue: search at scale)
# --------------------------------------------------------------------------------------------

def clustered_unit_vectors(n: int, dim: int, *, clusters: int | None = None, spread: float = 0.9, seed: int = 0,
                           draw: int = 0, chunk: int = 100_000) -> np.ndarray:
    """``n`` L2-normalised float32 vectors around random unit centres (``clusters``, default n / 1000,
    at least 8): a stand-in for image embeddings, which are clustered, not uniform on the sphere.
    The centres depend on ``seed`` only, the points also on ``draw`` (0: the collection, 1: queries
    from the same clusters). ``spread`` is the noise norm relative to a centre. Drawn in chunks, so
    1M x 256 needs 1 GiB."""
    k = clusters or max(8, n // 1000)
    centres = np.random.default_rng(seed).standard_normal((k, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng((seed, draw))
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = centres[rng.integers(k, size=m)] + rng.standard_normal((m, dim)).astype(np.float32) * (spread / np.sqrt(dim))
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def index_configs(n: int, dim: int) -> list[tuple[str, str, dict, dict]]:
    """(label, kind, build parameters, search parameters) of every configuration the benchmark times."""
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    train = min(n, 64 * nlist)
    m = next(d for d in (dim // 8, dim // 4, dim // 2, dim, 1) if d and dim % d == 0)
    configs = [("exact numpy", "exact", {}, {}), ("faiss flat-ip", "flat", {}, {})]
    configs += [(f"ivf nlist={nlist} nprobe={p}", "ivf", {"nlist": nlist, "train_size": train}, {"nprobe": p})
                for p in (1, 2, 4, 8, 16, 32, 64) if p <= nlist]
    configs += [(f"hnsw M=16 efSearch={e}", "hnsw", {"M": 16, "ef_construction": 64}, {"ef_search": e})
                for e in (16, 32, 64, 128)]
    configs += [(f"ivfpq nlist={nlist} m={m} nprobe={p} refine x{f}", "ivfpq",
                 {"nlist": nlist, "m": m, "train_size": train, "refine": True}, {"nprobe": p, "k_factor": f})
                for p, f in ((8, 4), (16, 8), (32, 8)) if p <= nlist]
    configs += [(f"lsh nbits={2 * dim} refine x10", "lsh", {"nbits": 2 * dim}, {"k_factor": 10}),
                ("sklearn kdtree", "kdtree", {}, {})]
    return configs


def bench_index(n: int = 1_000_000, dim: int = 256, queries: int = 1000, k: int = 10, kdtree_queries: int = 20,
                seed: int = 0, say=print) -> list[dict]:
    """Build every index of :func:`index_configs` over ``n`` clustered unit vectors and time ``queries``
    searches: build seconds, memory, queries per second, recall@k against exact search. The KD-tree
    is timed on ``kdtree_queries`` queries only (it is slow in high dimension: the point of the
    control). Ends with ``best ann: <config> recall@10 <r> qps <q> (<x>x flat, <y>x kdtree)``: the
    fastest approximate configuration with recall@10 >= 0.95."""
    base = clustered_unit_vectors(n, dim, seed=seed)
    q = clustered_unit_vectors(queries, dim, clusters=max(8, n // 1000), seed=seed, draw=1)
    say(f"index benchmark: {n:,} x {dim} clustered unit vectors, {len(q)} queries, k={k}, inner product")
    rows = _bench_configs([(base, q, None)], n, dim, k=k, kdtree_queries=kdtree_queries, say=say)
    say(best_ann_line(rows, k))
    return rows


def bench_run(run_dir, k: int = 10, say=print) -> tuple[list[dict], tuple[str, ...]]:
    """The index benchmark on a trained run's own collection and test queries (one index per group,
    e.g. per attribute): next to speed and recall@k, the track's metric (attribute MAP, mAP, Acc@k)
    computed from what each index returns for a full-depth search, unreturned items counting as
    misses (``asfr_rpf_agman.md`` §6 rule 8). Returns the rows and the metric names."""
    searcher = open_run(run_dir)
    sets = searcher.bench_sets()
    n = max(len(b.database) for b in sets)
    dim = sets[0].database.shape[1]
    say(f"index benchmark on {searcher.run_dir.name} ({searcher.trained.dataset}): {len(sets)} group(s), "
        f"{sum(len(b.queries) for b in sets)} test queries, up to {n:,} x {dim} vectors per group")
    rows = _bench_configs([(b.database, b.queries, b.relevant) for b in sets], n, dim, k=k,
                          kdtree_queries=None, say=say, metrics=searcher.trained.bench_metrics)
    say(best_ann_line(rows, k))
    return rows, searcher.trained.bench_metrics


def _track_metrics(parts: list[tuple[np.ndarray, np.ndarray]], names: tuple[str, ...]) -> dict[str, float]:
    """Track metrics from each group's (per-query AP, first-hit rank): pooled MAP ("map",
    "map/weighted"), mean of group MAPs ("map/macro"), Acc@k ("acc@<k>")."""
    out: dict[str, float] = {}
    if not parts:
        return out
    ap = np.concatenate([a for a, _ in parts])
    first = np.concatenate([f for _, f in parts])
    for name in names:
        if name in ("map", "map/weighted"):
            out[name] = float(ap.mean())
        elif name == "map/macro":
            out[name] = float(np.mean([a.mean() for a, _ in parts]))
        elif name.startswith("acc@"):
            out[name] = float(np.mean(first <= int(name[4:])))
    return out


def _bench_configs(groups: list[tuple[np.ndarray, np.ndarray, list | None]], n: int, dim: int, *, k: int,
                   kdtree_queries: int | None, say, metrics: tuple[str, ...] = ()) -> list[dict]:
    """Time every configuration over ``groups`` of (database, queries, relevant or None), one index
    per group: summed build time and memory, QPS over all queries, recall@k against the first
    (exact) configuration, and with ``relevant`` the track metrics of a full-depth search.
    A configuration the sizes do not allow (e.g. PQ codebooks on a few hundred vectors) is skipped
    with its reason."""
    rows: list[dict] = []
    truth: list[np.ndarray] = []
    built: dict[tuple, list] = {}
    for label, kind, build_params, search_params in index_configs(n, dim):
        key = (kind, tuple(sorted(build_params.items())))
        build_s = 0.0
        try:
            if key not in built:
                pairs = [_timed(lambda db=db: build_index(db, kind, "ip", **build_params)) for db, _, _ in groups]
                build_s, built[key] = sum(t for t, _ in pairs), [ix for _, ix in pairs]
            indexes = built[key]
            for index in indexes:
                if search_params:
                    index.set_params(**search_params)
        except FgrError as e:
            say(f"{label:<44} skipped: {e}")
            continue
        seconds, found, parts, count = 0.0, [], [], 0
        for index, (db, q, relevant) in zip(indexes, groups):
            sub = q[:kdtree_queries] if kind == "kdtree" and kdtree_queries else q
            t, (_, ids) = _timed(lambda: index.search(sub, min(k, len(db))))
            seconds, count = seconds + t, count + len(sub)
            found.append(ids)
            if relevant is not None:
                parts.append(returned_list_metrics(index.search(q, len(db))[1], relevant))
        if not truth:
            truth = found
        recall = sum(recall_at_k(ids, t[:len(ids)], ids.shape[1]) * len(ids) for ids, t in zip(found, truth)) / count
        row = {"config": label, "kind": kind, "build_s": build_s,
               "memory_mb": sum(ix.memory_bytes() for ix in indexes) / 2**20, "qps": count / seconds,
               "recall": recall, **_track_metrics(parts, metrics)}
        rows.append(row)
        extra = "".join(f"  {m} {row[m]:.4f}" for m in metrics if m in row)
        say(f"{label:<44} build {build_s:7.1f} s  memory {row['memory_mb']:8.1f} MiB  "
            f"qps {row['qps']:10.1f}  recall@{k} {row['recall']:.3f}{extra}")
    return rows


def best_ann(rows: list[dict], min_recall: float = 0.95) -> tuple[dict | None, dict, dict]:
    """(the fastest approximate row with recall >= ``min_recall`` or None, the flat row, the KD-tree row)."""
    flat = next(r for r in rows if r["kind"] == "flat")
    kd = next(r for r in rows if r["kind"] == "kdtree")
    ann = [r for r in rows if r["kind"] not in ("exact", "flat", "kdtree") and r["recall"] >= min_recall]
    return (max(ann, key=lambda r: r["qps"]) if ann else None), flat, kd


def per_kind(rows: list[dict], min_recall: float = 0.95) -> dict[str, dict]:
    """One row per index kind, the one to deploy: the fastest reaching ``min_recall``, else the most exact."""
    out: dict[str, dict] = {}
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        good = [r for r in mine if r["recall"] >= min_recall]
        out[kind] = max(good, key=lambda r: r["qps"]) if good else max(mine, key=lambda r: (r["recall"], r["qps"]))
    return out


def best_ann_line(rows: list[dict], k: int = 10) -> str:
    best, flat, kd = best_ann(rows)
    if best is None:
        return f"best ann: none reaches recall@{k} 0.95"
    return (f"best ann: {best['config']} recall@{k} {best['recall']:.3f} qps {best['qps']:.0f} "
            f"({best['qps'] / flat['qps']:.1f}x flat, {best['qps'] / kd['qps']:.1f}x kdtree)")


def bench_serve(run_dir, requests: int = 500, concurrency: int = 8, k: int = 10, say=print) -> dict:
    """A bounded load on the retrieval service over loopback: the run served by uvicorn on a free
    port of 127.0.0.1, ``requests`` POST /search from ``concurrency`` client threads, each sending
    one of the collection's images (attribute-specific runs: one attribute, every fourth request
    two). Ends with ``serve p50 <ms> p95 <ms> errors <n>`` (client-side latency)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx  # the [serve] extra

    searcher = open_run(run_dir)
    bodies = [(searcher.trained.root / p).read_bytes() for p in searcher.collection.paths[:32]]
    groups = searcher.groups

    def form(i: int) -> dict:
        if not searcher.trained.attribute_specific:
            return {"k": str(k)}
        names = [groups[i % len(groups)]] + ([groups[(i + 1) % len(groups)]] if i % 4 == 3 and len(groups) > 1 else [])
        return {"k": str(k), "attributes": ",".join(names)}

    with running(create_app(searcher)) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.post("/search", files={"image": ("q", bodies[0])}, data=form(0))  # warm-up, not counted

        def one(i: int) -> tuple[float, bool]:
            t = time.perf_counter()
            try:
                ok = client.post("/search", files={"image": ("q", bodies[i % len(bodies)])}, data=form(i)).status_code == 200
            except httpx.HTTPError:
                ok = False
            return (time.perf_counter() - t) * 1e3, ok

        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - t0
    ms = np.array([r[0] for r in results])
    out = {"requests": requests, "concurrency": concurrency, "p50_ms": float(np.percentile(ms, 50)),
           "p95_ms": float(np.percentile(ms, 95)), "errors": sum(not r[1] for r in results),
           "throughput_rps": requests / wall}
    say(f"{searcher.run_dir.name}: {requests} requests, {concurrency} concurrent, {out['throughput_rps']:.1f} req/s")
    say(f"serve p50 {out['p50_ms']:.1f} p95 {out['p95_ms']:.1f} errors {out['errors']}")
    return out


def main(args) -> int:
    """``fgr bench rerank | extract | index | serve`` (the parsed arguments of :mod:`fgr_utils.cli`)."""
    if args.what == "index":
        if args.run:
            bench_run(RunRecord.find(args.run, args.profile))
        else:
            bench_index(args.n, args.dim, queries=args.queries or 1000)
        return 0
    if args.what == "serve":
        if not args.run:
            raise FgrError("fgr bench serve needs --run RUN_DIR (a finished 10/11/20/30 run)")
        res = bench_serve(RunRecord.find(args.run, args.profile), requests=args.requests,
                          concurrency=args.concurrency)
        return 0 if res["errors"] == 0 else 1
    runner.check_profile(args.profile)
    if args.what == "rerank":
        bench_rerank(args.profile, queries=args.queries or 10)
    elif args.what == "extract":
        bench_extract(args.profile, images=args.images)
    return 0
