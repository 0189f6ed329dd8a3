"""Evaluating a sketch-retrieval model: embeddings of a split's sketches and photos, ARNet's Acc@k."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fgr_utils.checkpoints import load_checkpoint
from fgr_utils.data.sketches import SketchSet
from fgr_utils.embed import extract
from fgr_utils.errors import FgrError
from fgr_utils.metrics import acc_at_k, ranks_of_true
from fgr_utils.tracks.sbir.data import ImageStore, SbirInputs
from fgr_utils.train import FitResult

KS = (1, 5, 10)


def embed(model, paths: Sequence[Path], inputs: SbirInputs, store: ImageStore, modality: str, *,
          device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """L2-normalised retrieval embeddings (N, 512) of sketches or photos (batched, eval mode)."""
    def encode(m, x):
        return m.embed_sketch(x) if modality == "sketch" else m.embed_photo(x)

    return extract(model, paths, lambda p: inputs.anchor(store(p)), encode=encode, batch_size=batch_size,
                   device=device, progress=False)


def embeddings(model, sketches: SketchSet, split: str, inputs: SbirInputs, store: ImageStore | None = None, *,
               device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sketch embeddings, photo embeddings, index of each sketch's photo) of a split."""
    store = store or ImageStore(inputs.aug_size)
    pairs = sketches.pairs(split)
    q = embed(model, [p for p, _ in pairs], inputs, store, "sketch", device=device)
    g = embed(model, sketches.photos(split), inputs, store, "photo", device=device)
    return q, g, np.array([i for _, i in pairs])


def evaluate(model, sketches: SketchSet, split: str, inputs: SbirInputs, store: ImageStore, *,
             tie_rule: str = "optimistic", device: str = "cpu") -> dict[str, float]:
    """ARNet's Acc@1/5/10 (fractions; ARNet prints percent): every sketch of ``split`` against the
    gallery of all its photos."""
    q, g, true = embeddings(model, sketches, split, inputs, store, device=device)
    return {f"acc@{k}": v for k, v in acc_at_k(q @ g.T, true, KS, ties=tie_rule).items()}


def test_queries(model, sketches: SketchSet, inputs: SbirInputs, checkpoint_dir: Path, *,
                 tie_rule: str = "optimistic", device: str = "cpu") -> tuple[list[str], dict[str, np.ndarray]]:
    """Per test sketch (ids: the sketch files' names): the rank of its own photo among all test photos
    (``rank/<when>``) and its Acc@k hit, 1 or 0 (``acc@<k>/<when>``), at the best test epoch
    (``best.pt`` in ``checkpoint_dir``) and at the last (the weights ``model`` holds after training).
    Their means are the Acc@k that :func:`evaluate` gave those epochs."""
    import copy

    best = load_checkpoint(Path(checkpoint_dir) / "best.pt")
    if best is None:
        raise FgrError(f"no readable {Path(checkpoint_dir) / 'best.pt'}: train the run again")
    at_best = copy.deepcopy(model)
    at_best.load_state_dict(best["model"])
    store = ImageStore(inputs.aug_size)
    ids = [Path(p).name for p, _ in sketches.pairs("test")]
    values: dict[str, np.ndarray] = {}
    for when, m in (("best", at_best), ("last", model)):
        q, g, true = embeddings(m.eval(), sketches, "test", inputs, store, device=device)
        ranks = ranks_of_true(q @ g.T, true, ties=tie_rule)
        values[f"rank/{when}"] = ranks
        values.update({f"acc@{k}/{when}": (ranks <= k).astype(np.float64) for k in KS})
    return ids, values


def protocol(tie_rule: str) -> str:
    return (f"Acc@k (ARNet): every test sketch against all test photos, cosine of L2-normalised "
            f"embeddings, ties {tie_rule}")


def summary(result: FitResult):
    """Acc@1/5/10 of the best and the last epoch, in percent, as a small table."""
    import pandas as pd  # heavy to import; only a notebook shows tables

    rows = {f"best (epoch {result.best_epoch})": result.best, f"last (epoch {result.last.get('epoch')})": result.last}
    table = {name: {f"acc@{k}": round(100 * row[f"acc@{k}"], 2) for k in KS} for name, row in rows.items()}
    return pd.DataFrame(table).T
