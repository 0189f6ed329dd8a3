"""The fine-grained sketch-based retrieval track: data, the three methods, training, Acc@k, figures.

The notebooks ``20_sbir_train`` and ``21_sbir_figures`` call what is here. A method is one of:

* ``triplet`` — a siamese encoder shared by both modalities, triplet margin 0.3 (the Triplet-SN row);
* ``arnet`` — ARNet Basic: two encoders, four NT-Xent terms over plain and augmented views;
* ``arnet_mstr`` — ARNet + MSTR (``mstr_impl``: ``paper_intent`` or ``as_released``).

Faithful-vs-fixed switches (``shared/reference/fgsbir_arnet.md`` §12), default fixed:
``arnet_compat_single_digit`` (the reader), ``normalize`` (``none`` as released / ``vit``),
``batch_sampler`` (``random`` as released / ``unique_photo``), ``mstr_impl``, ``tie_rule``
(``argsort`` is between the two; ``optimistic`` and ``pessimistic`` are stated), and model selection
(the release keeps the best test epoch; both the best and the last epoch are recorded).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from fgr_utils.data import images
from fgr_utils.data.transforms import Preprocess
from fgr_utils.errors import FgrError
from fgr_utils.metrics import acc_at_k
from fgr_utils.models.arnet import ARNet, Encoder, Siamese
from fgr_utils.models.backbones import create_backbone, set_trainable
from fgr_utils.train import FitResult, TupleDataset, fit

METHODS = ("triplet", "arnet", "arnet_mstr")
SAMPLERS = ("random", "unique_photo")
NORMALIZE = {"none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), "vit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
             "imagenet": (images.IMAGENET_MEAN, images.IMAGENET_STD)}
KS = (1, 5, 10)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SbirInputs:
    """ARNet's three transforms at input size ``size`` (the paper: 224).

    anchor / eval: ``Resize((size, size))``; augmented view: ``Resize(size·268/224)`` ->
    ``RandomRotation(30)`` -> ``RandomHorizontalFlip(p=0.8)`` -> ``CenterCrop(size)`` (as released,
    the rotation fills with black). ``normalize``: ``none`` as released (the pretrained ViT expects
    normalised input), ``vit`` (mean = std = 0.5) or ``imagenet``.
    """

    size: int
    normalize: str = "none"

    def __post_init__(self):
        if self.normalize not in NORMALIZE:
            raise FgrError(f"normalize must be one of {', '.join(NORMALIZE)}, not {self.normalize!r}")

    @cached_property
    def pre(self) -> Preprocess:
        mean, std = NORMALIZE[self.normalize]
        return Preprocess(size=self.size, resize="squash", mean=mean, std=std)

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "normalize": self.normalize, "anchor": f"Resize(({self.size}, {self.size}))",
                "augmented": f"Resize({self.aug_size}) > RandomRotation(30) > RandomHorizontalFlip(0.8) > "
                             f"CenterCrop({self.size})"}

    @property
    def aug_size(self) -> int:
        return round(self.size * 268 / 224)

    def anchor(self, img: Image.Image) -> torch.Tensor:
        return self.pre.tensor(img)

    def augmented(self, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        s = self.aug_size
        img = img.resize((s, s), Image.Resampling.BICUBIC)
        img = img.rotate(float(rng.uniform(-30, 30)), resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0))
        if rng.random() < 0.8:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        left = (s - self.size) // 2
        img = img.crop((left, left, left + self.size, left + self.size))
        mean, std = NORMALIZE[self.normalize]
        return images.to_tensor(img, mean, std)


class ImageStore:
    """Decoded images of a set, kept in memory at the augmentation size (small sets: every epoch
    re-reads nothing from disk)."""

    def __init__(self, size: int):
        self.size = size
        self._images: dict[str, Image.Image] = {}

    def __call__(self, path: str | Path | Image.Image) -> Image.Image:
        """The image of ``path`` (kept), or an already decoded image (an upload: not kept), shrunk alike."""
        if isinstance(path, Image.Image):
            return self._shrink(path)
        key = str(path)
        img = self._images.get(key)
        if img is None:
            img = self._images[key] = self._shrink(images.load_rgb(path))
        return img

    def _shrink(self, img: Image.Image) -> Image.Image:
        if max(img.size) > self.size:
            img = img.resize((self.size, self.size), Image.Resampling.LANCZOS)
        return img


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def build_model(method: str, backbone: str, *, pretrained: bool = False, weights_path: str | None = None,
                img_size: int | None = None, trainable_blocks: int | None = None, embed_dim: int = 512,
                mstr_impl: str = "paper_intent", mstr_ffn: int = 2048, margin: float = 0.3,
                tau: float = 0.07) -> ARNet | Siamese:
    if method not in METHODS:
        raise FgrError(f"method must be one of {', '.join(METHODS)}, not {method!r}")

    def encoder() -> Encoder:
        bb = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path, img_size=img_size)
        set_trainable(bb, trainable_blocks)
        return Encoder(bb, embed_dim)

    if method == "triplet":
        return Siamese(encoder(), margin=margin)
    return ARNet(encoder(), encoder(), mstr=mstr_impl if method == "arnet_mstr" else None, tau=tau,
                 mstr_ffn=mstr_ffn)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    batch_sampler: str = "unique_photo"
    lr_schedule: str = "constant"  # "constant" (released) or "cosine" (annealed to 0 over the epochs)
    tie_rule: str = "optimistic"
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    eval_train: bool = False


def epoch_batches(pairs: Sequence[tuple[Path, int]], batch_size: int, sampler: str,
                  rng: np.random.Generator) -> list[list[int]]:
    """Indices into ``pairs`` grouped in batches, every sketch once per epoch.

    ``random``: a plain shuffle (two sketches of one photo can share a batch, and then that photo is
    a negative of its own sketch in NT-Xent: the released behaviour). ``unique_photo``: each batch
    holds at most one sketch per photo (a sketch that would repeat a photo waits for a later batch).
    """
    if sampler not in SAMPLERS:
        raise FgrError(f"batch_sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    order = rng.permutation(len(pairs)).tolist()
    if sampler == "random":
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    open_batches: list[tuple[list[int], set[int]]] = []
    for i in order:
        photo = pairs[i][1]
        for items, photos in open_batches:
            if photo not in photos:
                items.append(i)
                photos.add(photo)
                break
        else:
            open_batches.append(([i], {photo}))
        full = [b for b in open_batches if len(b[0]) == batch_size]
        batches.extend(b[0] for b in full)
        open_batches = [b for b in open_batches if len(b[0]) < batch_size]
    batches.extend(b[0] for b in open_batches)
    return batches


def _epoch_loader(method: str, pairs, photos, inputs: SbirInputs, store: ImageStore, cfg: TrainConfig, epoch: int):
    """One epoch's batches: ARNet (skt, skt_aug, img, img_aug) or triplet (skt, img, another photo)."""
    batches = epoch_batches(pairs, cfg.batch_size, cfg.batch_sampler, np.random.default_rng((cfg.seed, epoch, 29)))
    n_photos = len(photos)

    def load(i: int, rng: np.random.Generator):
        sketch, photo = pairs[i]
        skt, img = store(sketch), store(photos[photo])
        if method == "triplet":
            other = (photo + 1 + int(rng.integers(n_photos - 1))) % n_photos  # any other photo
            return inputs.anchor(skt), inputs.anchor(img), inputs.anchor(store(photos[other]))
        return inputs.anchor(skt), inputs.augmented(skt, rng), inputs.anchor(img), inputs.augmented(img, rng)

    dataset = TupleDataset(list(range(len(pairs))), load, seed=cfg.seed, epoch=epoch)
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=cfg.workers)


def embed(model, paths: Sequence[Path], inputs: SbirInputs, store: ImageStore, modality: str, *,
          device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """L2-normalised retrieval embeddings (N, 512) of sketches or photos (batched, eval mode)."""
    from fgr_utils.embed import extract

    def encode(m, x):
        return m.embed_sketch(x) if modality == "sketch" else m.embed_photo(x)

    return extract(model, paths, lambda p: inputs.anchor(store(p)), encode=encode, batch_size=batch_size,
                   device=device, progress=False)


def embeddings(model, sketches, split: str, inputs: SbirInputs, store: ImageStore | None = None, *,
               device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sketch embeddings, photo embeddings, index of each sketch's photo) of a split."""
    store = store or ImageStore(inputs.aug_size)
    pairs = sketches.pairs(split)
    q = embed(model, [p for p, _ in pairs], inputs, store, "sketch", device=device)
    g = embed(model, sketches.photos(split), inputs, store, "photo", device=device)
    return q, g, np.array([i for _, i in pairs])


def evaluate(model, sketches, split: str, inputs: SbirInputs, store: ImageStore, *, tie_rule: str = "optimistic",
             device: str = "cpu") -> dict[str, float]:
    """ARNet's Acc@1/5/10 (fractions; ARNet prints percent): every sketch of ``split`` against the
    gallery of all its photos."""
    q, g, true = embeddings(model, sketches, split, inputs, store, device=device)
    return {f"acc@{k}": v for k, v in acc_at_k(q @ g.T, true, KS, ties=tie_rule).items()}


def train(model, sketches, inputs: SbirInputs, cfg: TrainConfig, method: str, *, checkpoint_dir: Path,
          fingerprint: str, progress: bool = True) -> FitResult:
    """Adam over every trainable parameter (constant rate as released, or cosine-annealed); test Acc@k
    every epoch (the release selects on it)."""
    model.to(cfg.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise FgrError(f"lr_schedule must be 'constant' or 'cosine', not {cfg.lr_schedule!r}")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs) if cfg.lr_schedule == "cosine" else None
    store = ImageStore(inputs.aug_size)
    pairs, photos = sketches.pairs("train"), sketches.photos("train")
    if not pairs:
        raise FgrError("the training split has no sketch-photo pairs: check the dataset with fgr data verify")

    def step(batch):
        batch = [x.to(cfg.device) for x in batch]
        return model.loss(*batch)[0]

    def evaluate_epoch(epoch: int) -> dict[str, float]:
        row = evaluate(model, sketches, "test", inputs, store, tie_rule=cfg.tie_rule, device=cfg.device)
        if cfg.eval_train:
            row.update({f"train/{k}": v for k, v in evaluate(model, sketches, "train", inputs, store,
                                                              tie_rule=cfg.tie_rule, device=cfg.device).items()})
        return row

    return fit(model, opt, epochs=cfg.epochs,
               make_batches=lambda e: _epoch_loader(method, pairs, photos, inputs, store, cfg, e),
               train_step=step, evaluate=evaluate_epoch, select="acc@1", scheduler=sched, checkpoint_dir=checkpoint_dir,
               fingerprint=fingerprint, progress=progress, restore_best=False)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

SYNTHETIC = ("sbir-garments", "sbir-garments-xdog", "sbir-garments-canny")


def load_dataset(dataset: str, size: str = "demo", seed: int = 0, *, arnet_compat_single_digit: bool = False):
    """The sketch set and its root: a generated stand-in, or a real set checked against its known counts.

    Images that cannot be decoded are then left out (``SketchSet.without_unreadable``: an unreadable
    sketch leaves; an unreadable photo leaves the gallery with its sketches) and listed in
    ``.skipped`` for ``run.skip_images``. The counts are checked on the files as released, before that.
    """
    from fgr_utils.data import registry, synth
    from fgr_utils.data.sketches import AB_FOLDERS, load_sketches

    if dataset in SYNTHETIC:
        root = synth.require_synth(dataset, size, seed)
        sketches = load_sketches(root, arnet_compat_single_digit=arnet_compat_single_digit)
        return sketches.without_unreadable(), root
    if dataset not in AB_FOLDERS:
        raise FgrError(f"dataset must be one of {', '.join(SYNTHETIC + tuple(AB_FOLDERS))}, not {dataset!r}")
    root = registry.require(dataset)
    sketches = load_sketches(root, name=AB_FOLDERS[dataset], arnet_compat_single_digit=arnet_compat_single_digit)
    if not arnet_compat_single_digit:
        sketches.check_counts(dataset)
    return sketches.without_unreadable(), root


def protocol(tie_rule: str) -> str:
    return (f"Acc@k (ARNet): every test sketch against all test photos, cosine of L2-normalised "
            f"embeddings, ties {tie_rule}")


def summary(result: FitResult):
    """Acc@1/5/10 of the best and the last epoch, in percent, as a small table."""
    import pandas as pd

    rows = {"best (epoch %s)" % result.best_epoch: result.best, "last (epoch %s)" % result.last.get("epoch"): result.last}
    return pd.DataFrame({name: {f"acc@{k}": round(100 * row[f"acc@{k}"], 2) for k in KS} for name, row in rows.items()}).T


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def retrieval_rows(q: np.ndarray, g: np.ndarray, true: np.ndarray, sketches, picks: Sequence[int], k: int, *,
                   split: str = "test") -> dict[str, list]:
    """The sketches ``picks`` of ``split`` (rows of ``q``, from :func:`embeddings`) with their top ``k``
    photos by cosine, whether each is the sketch's own photo, and a title (the sketch's file name)."""
    pairs, photos = sketches.pairs(split), sketches.photos(split)
    picks = [int(i) for i in picks]
    top = np.argsort(-(q[picks] @ g.T), axis=1, kind="stable")[:, :k]
    return {"queries": [pairs[i][0] for i in picks], "rankings": [[photos[j] for j in row] for row in top],
            "hits": [[j == true[i] for j in row] for i, row in zip(picks, top)],
            "query_titles": [Path(pairs[i][0]).stem for i in picks]}


def retrieval_figure(model, sketches, inputs: SbirInputs, *, n_queries: int = 4, k: int = 5, device: str = "cpu",
                     title: str | None = None):
    """Test sketches and their top ``k`` photos, the true photo framed green."""
    from fgr_utils import viz

    q, g, true = embeddings(model, sketches, "test", inputs, device=device)
    rows = retrieval_rows(q, g, true, sketches, viz.spread(len(q), n_queries), k)
    return viz.retrieval_grid(rows["queries"], rows["rankings"], rows["hits"], query_titles=rows["query_titles"],
                              suptitle=title)


def browser_inputs(q: np.ndarray, g: np.ndarray, true: np.ndarray, sketches, *, depth: int = 10,
                   split: str = "test") -> dict[str, list]:
    """What :func:`fgr_utils.browser.retrieval_browser` needs to browse every sketch of ``split``
    (``q, g, true`` from :func:`embeddings`): its top ``depth`` photos, its own photo a hit."""
    if len(q) != len(sketches.pairs(split)) or len(g) != len(sketches.photos(split)):
        raise FgrError(f"the embeddings ({len(q)} sketches, {len(g)} photos) are not those of the {split} split: "
                       f"pass what sbir.embeddings(model, sketches, {split!r}, ...) returned")
    return retrieval_rows(q, g, true, sketches, range(len(q)), depth, split=split)


def load_trained(run_dir: Path, *, initial: bool = False):
    """The model of a finished ``20_sbir_train`` run (its last epoch), or, with ``initial``, the same
    architecture as it was before training (same seed): the 'before' of every comparison figure."""
    from fgr_utils.results import read_record
    from fgr_utils.train import load_checkpoint

    p = read_record(run_dir)["params"]
    torch.manual_seed(int(p["seed"]))
    model = build_model(p["method"], p["backbone"], pretrained=p["pretrained"], weights_path=p["weights_path"] or None,
                        img_size=p["img_size"], trainable_blocks=p["trainable_blocks"], embed_dim=p["embed_dim"],
                        mstr_impl=p["mstr_impl"], mstr_ffn=p["mstr_ffn"])
    if not initial:
        state = load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")
        if state is None:
            raise FgrError(f"no readable checkpoint in {run_dir}/checkpoints: run 20_sbir_train again")
        model.load_state_dict(state["model"])
    return model.eval(), p


def encoders(model) -> dict[str, Any]:
    """The backbone that encodes each modality (one shared backbone for the siamese baseline)."""
    if isinstance(model, Siamese):
        return {"sketch": model.encoder.backbone, "photo": model.encoder.backbone}
    return {"sketch": model.sketch.backbone, "photo": model.photo.backbone}


def attention_distances(backbone, paths: Sequence[Path], inputs: SbirInputs, *, mode: str, patch: float,
                        batch_size: int = 50) -> list[np.ndarray]:
    """Per layer, the per-head mean attention distance over ``paths`` (``fgr_utils.attention``)."""
    from fgr_utils.attention import capture_attention, mean_attention_distance

    store = ImageStore(inputs.size)
    sums: list[np.ndarray] | None = None
    n = 0
    with torch.no_grad():
        for i in range(0, len(paths), batch_size):
            x = torch.stack([inputs.anchor(store(p)) for p in paths[i:i + batch_size]])
            with capture_attention(backbone) as maps:
                backbone(x)
            d = [len(x) * mean_attention_distance(a, mode=mode, grid=backbone.grid, patch=patch,
                                                   prefix_tokens=backbone.num_prefix_tokens) for a in maps]
            sums = d if sums is None else [s + v for s, v in zip(sums, d)]
            n += len(x)
    return [s / n for s in sums]


def token_variance(backbone, paths: Sequence[Path], inputs: SbirInputs) -> tuple[float, np.ndarray]:
    """Mean over images of the variance of the final tokens' cosine-similarity matrix (ARNet's
    diversity measure), and the first image's matrix."""
    from fgr_utils.attention import token_similarity_variance

    store = ImageStore(inputs.size)
    with torch.no_grad():
        tokens = backbone(torch.stack([inputs.anchor(store(p)) for p in paths]))
    results = [token_similarity_variance(t) for t in tokens]
    return float(np.mean([v for _, v in results])), results[0][0]
