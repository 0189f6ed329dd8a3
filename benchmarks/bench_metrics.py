"""How fast the evaluation code is at the real benchmarks' sizes (a measurement, not a test).

    .venv/bin/python benchmarks/bench_metrics.py

Sizes: ROxford5k (70 queries x 4,993 images) and the +1M distractor setting for revisited mAP,
FashionAI test (3,600 queries x 14,400 candidates, 8 attributes) for attribute MAP, a 10k x 10k
sketch-photo similarity for Acc@k, and exact vs FAISS flat search on 100k x 256 vectors.
"""
from __future__ import annotations

import time

import numpy as np

from fgr_utils import index, metrics


def timed(label: str, fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = min(_once(fn) for _ in range(repeat))
    print(f"{label:<58} {best * 1000:9.1f} ms")
    return best


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    rng = np.random.default_rng(0)

    def revisited(n_db: int):
        gnd = [{"easy": rng.choice(n_db, 20, replace=False).tolist(), "hard": rng.choice(n_db, 20, replace=False).tolist(),
                "junk": rng.choice(n_db, 10, replace=False).tolist()} for _ in range(70)]
        ranks = np.argsort(rng.random((70, n_db), dtype=np.float32), axis=1)
        return lambda: metrics.revisited_map_all(ranks, gnd)

    timed("revisited_map_all, 70 queries x 4,993 (ROxford5k)", revisited(4_993))
    timed("revisited_map_all, 70 queries x 1,004,993 (+1M)", revisited(1_004_993), repeat=1)

    counts_q = [422, 623, 535, 422, 341, 289, 703, 265]
    counts_c = [1703, 2383, 2088, 1722, 1401, 1269, 2734, 1100]
    q_attr = np.repeat(np.arange(8), counts_q)
    c_attr = np.repeat(np.arange(8), counts_c)
    q_emb = rng.standard_normal((len(q_attr), 1024)).astype(np.float32)
    c_emb = rng.standard_normal((len(c_attr), 1024)).astype(np.float32)
    q_val, c_val = rng.integers(0, 6, len(q_attr)), rng.integers(0, 6, len(c_attr))
    timed("attribute_map, FashionAI test (3,600 x 14,400, 1024-d)",
          lambda: metrics.attribute_map(q_emb, q_attr, q_val, c_emb, c_attr, c_val))

    sim = rng.standard_normal((10_000, 10_000)).astype(np.float32)
    true = rng.integers(0, 10_000, 10_000)
    timed("acc_at_k, 10,000 sketches x 10,000 photos", lambda: metrics.acc_at_k(sim, true))

    base = rng.standard_normal((100_000, 256)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[:1_000] + 0.05 * rng.standard_normal((1_000, 256)).astype(np.float32)
    for kind in ("exact", "flat"):
        idx = index.build_index(base, kind=kind)
        timed(f"{kind} search, 1,000 queries x 100,000 x 256, top 100", lambda: idx.search(queries, 100))


if __name__ == "__main__":
    main()
