"""The attribute-specific fashion retrieval track: data, the four methods, training, MAP, figures.

The notebooks ``30_asfr_train`` and ``31_asfr_eval`` call what is here. The task: given an image
and a named attribute (sleeve length, collar design...), rank the candidates by that attribute
alone. A method is one of (``shared/reference/asfr_rpf_agman.md``):

* ``global`` -- an attribute-agnostic embedding trained on the same triplets: the floor;
* ``asen_v2`` -- ASENet_V2, attribute-aware spatial and channel attention (the AG-MAN baseline);
* ``agman`` -- AG-MAN: multi-level features, the improved attention, a learned mask and the
  attribute-type classification loss;
* ``rpf`` -- RPF: a region branch (stage s1), then a patch branch on an attention-guided crop,
  trained jointly with E-InfoNCE (stage s2), fused with weight beta at test time.

Two protocols: ``splits`` (ASEN split files; attribute-specific MAP, query-weighted and macro,
validation MAP selects the epoch, the test split is reported) and ``triplets`` (CSN triplet lists
as Zappos50k; triplet accuracy, the val list selects).

Faithful-vs-fixed switches, default fixed: ``loss_weighting`` (AG-MAN: ``equal`` as released, where
the uncertainty weights never reach the optimiser, or ``learned``), ``val_flip`` (RPF s1 as
released: validation images randomly flipped), ``agman_cls`` (the released Zappos script builds the
attribute-type loss and never uses it).

**Speed.** When the trunk's lower part is a frozen pretrained network (the demo), its outputs are
computed once per image (and per mirror image for training) and cached on disk, shared by every
method's run; an epoch then costs only the trainable layers. RPF's crops are cut from the current
region attention at every step, as the paper does; their frozen-stem features are cached per
(image, box), so a crop is re-encoded only when its box moves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from fgr_utils.data import images
from fgr_utils.errors import FgrError
from fgr_utils.metrics import attribute_map, triplet_accuracy
from fgr_utils.train import FitResult, fit

METHODS = ("global", "asen_v2", "agman", "rpf")
PROTOCOLS = ("splits", "triplets")
SYNTHETIC = ("asfr-garments",)
REAL = {"fashionai": "FashionAI", "deepfashion": "DeepFashion", "darn": "DARN", "zappos50k": "Zappos50k"}
LOSS_WEIGHTING = ("learned", "equal")


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AsfrInputs:
    """``Resize(size)`` (short side) + ``CenterCrop(size)`` + ImageNet normalisation, the papers'
    transform; training adds a horizontal flip (RPF s2 does not)."""

    size: int = 224
    mean: tuple[float, float, float] = images.IMAGENET_MEAN
    std: tuple[float, float, float] = images.IMAGENET_STD

    def describe(self) -> dict[str, Any]:
        return {"transform": f"Resize({self.size}) > CenterCrop({self.size}) > Normalize(ImageNet)",
                "train": "+ RandomHorizontalFlip (not in RPF s2)", "size": self.size}

    def prepare(self, img: Image.Image) -> Image.Image:
        img = images.resize(img, self.size, "short_side")
        w, h = img.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))

    def tensor(self, img: Image.Image, flip: bool = False) -> torch.Tensor:
        img = self.prepare(img)
        if flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return images.to_tensor(img, self.mean, self.std)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

@dataclass
class AsfrData:
    """One dataset under one protocol, with every image in one list (``paths``).

    ``names``: the attributes (splits) or conditions (triplets), in index order. ``train``: for
    ``splits`` the (attr -> value -> image indices) groups the sampler draws from; for ``triplets``
    the fixed (a, b, c, condition) list. ``lines[split]``: (image, attr, value) rows of the queries
    and ``cand[split]`` of the candidates (splits), or ``triplets[split]`` (a, b, c, condition).
    ``zappos``: triplet lists over the same images for a triplet accuracy (the synthetic set has them).
    """

    name: str
    protocol: str
    root: Path
    names: list[str]
    paths: list[Path]
    value_names: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    queries: dict[str, np.ndarray] = field(default_factory=dict)
    candidates: dict[str, np.ndarray] = field(default_factory=dict)
    triplets: dict[str, np.ndarray] = field(default_factory=dict)
    zappos: dict[str, np.ndarray] = field(default_factory=dict)  # triplets in ``paths`` indices, conditions as attrs
    zappos_conditions: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable images left out: (path, reason)

    @property
    def n_attr(self) -> int:
        return len(self.names)

    def eval_split(self, which: str) -> str:
        return {"splits": {"valid": "valid", "test": "test"},
                "triplets": {"valid": "val", "test": "test"}}[self.protocol][which]

    def train_indices(self) -> np.ndarray:
        if self.protocol == "splits":
            return np.unique(np.concatenate([ids for vals in self.groups.values() for ids in vals.values()]))
        return np.unique(self.triplets["train"][:, :3])


def _require_images(attrs, name: str) -> None:
    """Stop (one line) when an image the split files name is not on disk: the set is incomplete."""
    from fgr_utils.data.attributes import SPLITS
    from fgr_utils.errors import DatasetMissing

    missing = [p for split in SPLITS for p in attrs.missing_images(split)]
    if missing:
        raise DatasetMissing(f"{name}: {len(missing)} image(s) named in the split files are not on disk (first: "
                             f"{missing[0]}); place them as `fgr data download {name}` says, then run "
                             f"`fgr data verify {name}`")


def _from_attribute_set(attrs, name: str, protocol: str) -> AsfrData:
    offsets, paths = {}, []
    for split in ("train", "valid", "test"):
        offsets[split] = len(paths)
        paths.extend(attrs.path(split, i) for i in range(len(attrs.filenames[split])))

    def lines(rows: np.ndarray, split: str) -> np.ndarray:
        out = rows.astype(np.int64).copy()
        out[:, 0] += offsets[split]
        return out

    groups = {a: {v: ids + offsets["train"] for v, ids in vals.items()} for a, vals in attrs.train_groups().items()}
    return AsfrData(name=name, protocol=protocol, root=Path(attrs.root), names=list(attrs.attributes), paths=paths,
                    value_names={a: list(attrs.values[a]) for a in attrs.attributes}, groups=groups,
                    queries={s: lines(attrs.queries[s], s) for s in ("valid", "test")},
                    candidates={s: lines(attrs.candidates[s], s) for s in ("valid", "test")},
                    counts=attrs.counts())


def _attach_triplets(data: AsfrData, lists, *, as_training: bool) -> None:
    """Map a triplet list's file indices onto ``data.paths`` (adding images it does not have)."""
    where = {str(p): i for i, p in enumerate(data.paths)}
    index = np.empty(len(lists.filenames), dtype=np.int64)
    for i in range(len(lists.filenames)):
        key = str(lists.path(i))
        if key not in where:
            where[key] = len(data.paths)
            data.paths.append(Path(key))
        index[i] = where[key]
    mapped = {}
    for split, rows in lists.triplets.items():
        rows = np.asarray(rows, dtype=np.int64)
        mapped[split] = np.column_stack([index[rows[:, 0]], index[rows[:, 1]], index[rows[:, 2]], rows[:, 3]])
    if as_training:
        data.triplets, data.names = mapped, list(lists.conditions)
    else:
        data.zappos, data.zappos_conditions = mapped, list(lists.conditions)


def load_dataset(dataset: str, size: str = "demo", seed: int = 0, *, protocol: str = "splits",
                 n_triplets: dict[str, int] | None = None) -> AsfrData:
    """The dataset under ``protocol``: a generated stand-in or a real set checked against its counts.

    An image the split files name that is not on disk stops the load (the set is incomplete). Images
    that cannot be decoded are left out: every split list, query, candidate, label and triplet that
    names one leaves with it, and they are listed in ``.skipped`` for ``run.skip_images``. Published
    counts are checked on the files as released, before that. (CSN's lists are not checked for missing
    images: those are left out and listed like unreadable ones.)
    """
    from fgr_utils.data import attributes, registry, synth

    if protocol not in PROTOCOLS:
        raise FgrError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if dataset in SYNTHETIC:
        root = synth.require_synth(dataset, size, seed)
        attrs = attributes.load_attribute_set(root, dataset)
        _require_images(attrs, dataset)
        lists = attributes.load_triplet_lists(root / "zappos", root, n_triplets=n_triplets, seed=seed)
        bad = images.unreadable_images(attrs.image_paths() + lists.image_paths())
        data = _from_attribute_set(attrs.without(bad), dataset, protocol)
        if protocol == "triplets":
            data.groups, data.queries, data.candidates = {}, {}, {}
        _attach_triplets(data, lists.without(bad), as_training=protocol == "triplets")
        data.skipped = list(bad.items())
        return data
    if dataset not in REAL:
        raise FgrError(f"dataset must be one of {', '.join(SYNTHETIC + tuple(REAL))}, not {dataset!r}")
    if dataset == "zappos50k":
        if protocol != "triplets":
            raise FgrError("zappos50k is evaluated on CSN triplet lists: set protocol='triplets'")
        list_root, image_root = attributes.zappos_root()
        lists = attributes.load_triplet_lists(list_root, image_root, n_triplets=n_triplets or attributes.ZAPPOS_TRIPLETS,
                                              seed=seed)
        bad = images.unreadable_images(lists.image_paths())
        data = AsfrData(name=dataset, protocol=protocol, root=Path(image_root), names=[], paths=[])
        _attach_triplets(data, lists.without(bad), as_training=True)
        data.skipped = list(bad.items())
        return data
    if protocol != "splits":
        raise FgrError(f"{dataset} comes with ASEN split files: set protocol='splits'")
    root = registry.require(dataset)
    attrs = attributes.load_attribute_set(root, REAL[dataset])
    attrs.check_counts(dataset)
    _require_images(attrs, dataset)
    bad = images.unreadable_images(attrs.image_paths())
    data = _from_attribute_set(attrs.without(bad), dataset, protocol)
    data.skipped = list(bad.items())
    return data


# --------------------------------------------------------------------------------------------
# Triplet sampling (asfr_rpf_agman.md section 1.3)
# --------------------------------------------------------------------------------------------

def sample_triplets(groups: dict[int, dict[int, np.ndarray]], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows (anchor, positive, negative, attr, v+, v-): the attribute uniformly, then two
    distinct values v+ != v- (v+ among those with two images or more), anchor and positive two
    distinct images of v+, the negative an image of v-."""
    usable = []
    for a in sorted(groups):
        pos = [v for v, ids in groups[a].items() if len(ids) >= 2]
        if pos and len(groups[a]) >= 2:
            usable.append((a, pos, sorted(groups[a])))
    if not usable:
        raise FgrError("no attribute has two values with images (and one value with two images): "
                       "the training labels cannot make a triplet")
    out = np.empty((n, 6), dtype=np.int64)
    for t in range(n):
        a, pos, values = usable[int(rng.integers(len(usable)))]
        vp = pos[int(rng.integers(len(pos)))]
        others = [v for v in values if v != vp]
        vn = others[int(rng.integers(len(others)))]
        ids = groups[a][vp]
        i, j = rng.choice(len(ids), size=2, replace=False)
        neg = groups[a][vn]
        out[t] = (ids[i], ids[j], neg[int(rng.integers(len(neg)))], a, vp, vn)
    return out


def fixed_triplets(triplets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A CSN list ``a b c`` (a closer to c) as (anchor a, positive c, negative b, condition, v+, v-),
    shuffled. Values are unknown: each triplet gets its own pair of pseudo-values (a and c share one)."""
    rows = triplets[rng.permutation(len(triplets))]
    t = np.arange(len(rows), dtype=np.int64)
    return np.column_stack([rows[:, 0], rows[:, 2], rows[:, 1], rows[:, 3], 2 * t, 2 * t + 1])


# --------------------------------------------------------------------------------------------
# Features: the trunk's stem outputs, cached when the stem is frozen
# --------------------------------------------------------------------------------------------

class Features:
    """What the trainable part of a model reads for image ``i`` (and its mirror image).

    With a frozen stem: the stem's outputs of every image of ``paths`` (view 0) and of the mirror
    images of ``flip_indices`` (view 1), computed once and cached in ``cache_dir`` as float16 (the key
    hashes the stem's weights, the files and the transform). Otherwise: the preprocessed image itself
    (``{"image": tensor}``), and the trunk's stem runs with the rest of the model.
    """

    def __init__(self, trunk, inputs: AsfrInputs, paths: Sequence[Path], *, flip_indices: Sequence[int] = (),
                 cache_dir: Path | None = None, device: str = "cpu", batch_size: int = 32, progress: bool = True):
        self.inputs, self.device = inputs, device
        self.paths = [p if isinstance(p, Image.Image) else Path(p) for p in paths]  # or uploaded images
        self.cached = bool(getattr(trunk, "frozen_stem", False))
        self.flip_row = {int(i): r for r, i in enumerate(sorted({int(i) for i in flip_indices}))}
        self.views: list[dict[str, torch.Tensor]] = []
        if self.cached:
            self._build(trunk, cache_dir, batch_size, progress)

    def _build(self, trunk, cache_dir: Path | None, batch_size: int, progress: bool) -> None:
        """Both views through :func:`fgr_utils.embed.extract` (its cache, atomic writes, torn-file rebuild),
        the stem's maps flattened into one row per image and split back here. The cache key hashes
        only the frozen modules, so every method's run (whatever its trainable layers) shares it."""
        from fgr_utils.embed import extract

        trunk = trunk.to(self.device)
        frozen = [m for m in trunk.modules() if getattr(m, "always_frozen", False)]
        with torch.no_grad():
            shapes = {k: tuple(v.shape[1:]) for k, v in trunk.stem(self.image(0)[None].to(self.device)).items()}

        def encode(_, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([v.flatten(1) for v in trunk.stem(x).values()], dim=1)

        for flip, paths in ((False, self.paths), (True, [self.paths[i] for i in sorted(self.flip_row)])):
            if not paths:
                self.views.append({})
                continue
            rows = torch.from_numpy(np.array(extract(
                nn.ModuleList(frozen) if frozen else trunk, paths, _View(self.inputs, flip), encode=encode,
                batch_size=batch_size, device=self.device, cache_dir=cache_dir, dtype="float16",
                name="asfr-stem" + ("-mirror" if flip else ""), progress=progress)))
            parts = torch.split(rows, [int(np.prod(s)) for s in shapes.values()], dim=1)
            self.views.append({k: part.reshape(len(paths), *shape) for (k, shape), part in zip(shapes.items(), parts)})

    def image(self, i: int, flip: bool = False) -> torch.Tensor:
        return self.inputs.tensor(images.open_rgb(self.paths[i]), flip)

    def item(self, i: int, flip: bool = False) -> dict[str, torch.Tensor]:
        if not self.cached:
            return {"image": self.image(i, flip)}
        if flip and i in self.flip_row:
            return {k: v[self.flip_row[i]].float() for k, v in self.views[1].items()}
        return {k: v[i].float() for k, v in self.views[0].items()}

    def batch(self, indices: Sequence[int], flips: Sequence[bool] | None = None) -> dict[str, torch.Tensor]:
        flips = flips if flips is not None else [False] * len(indices)
        items = [self.item(int(i), bool(f)) for i, f in zip(indices, flips)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def stem_outputs(self, trunk, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The stem's outputs for a batch from :meth:`batch` (runs the stem when nothing is cached)."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return batch if self.cached else trunk.stem(batch["image"])


@dataclass(frozen=True)
class _View:
    """Path -> the network input of the image (``flip``: its mirror image); described for cache keys."""

    inputs: AsfrInputs
    flip: bool

    def __call__(self, path: Path | Image.Image) -> torch.Tensor:
        return self.inputs.tensor(images.open_rgb(path), self.flip)

    def describe(self) -> dict[str, Any]:
        return {**self.inputs.describe(), "mean": self.inputs.mean, "std": self.inputs.std, "mirrored": self.flip}


class Crops:
    """RPF's patch-branch input: the attention-guided square crop of each image, re-encoded.

    The box comes from the region attention in the trunk's input frame; it is mapped back onto the
    original image (undoing Resize + CenterCrop), cut from it and resized to the patch backbone's
    size. With a frozen patch stem, the stem features of each (image, box) are kept, so an unmoved
    box costs nothing the next time.
    """

    def __init__(self, features: Features, backbone, *, threshold: float = 0.1, device: str = "cpu"):
        self.features, self.backbone, self.threshold, self.device = features, backbone, threshold, device
        self.size = int(backbone.img_size)
        self.cached = backbone.frozen_stem is not None
        self._stem: dict[tuple, torch.Tensor] = {}
        self.hits = self.misses = 0

    def boxes(self, attention: torch.Tensor) -> list[tuple[int, int, int, int]]:
        from fgr_utils.models.asfr import crop_boxes

        return [tuple(int(x) for x in b) for b in crop_boxes(attention.detach().float().cpu(),
                                                             self.features.inputs.size, self.threshold)]

    def crop(self, i: int, box: tuple[int, int, int, int]) -> torch.Tensor:
        from fgr_utils.models.asfr import to_original

        img = images.open_rgb(self.features.paths[i])
        piece = img.crop(to_original(box, img.size, self.features.inputs.size))
        piece = images.resize(piece, self.size, "squash")
        return images.to_tensor(piece, self.features.inputs.mean, self.features.inputs.std)

    def inputs(self, indices: Sequence[int], attention: torch.Tensor) -> torch.Tensor:
        """Patch-backbone input for a batch: crop stem features (frozen stem) or crop images."""
        boxes = self.boxes(attention)
        if not self.cached:
            return torch.stack([self.crop(int(i), b) for i, b in zip(indices, boxes)]).to(self.device)
        keys = [(int(i), b) for i, b in zip(indices, boxes)]
        todo = [k for k in dict.fromkeys(keys) if k not in self._stem]
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if todo:
            with torch.no_grad():
                x = torch.stack([self.crop(i, b) for i, b in todo]).to(self.device)
                out = self.backbone.stem_features(x).to(torch.float16).cpu()
            self._stem.update(zip(todo, out))
        return torch.stack([self._stem[k].float() for k in keys]).to(self.device)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

@dataclass
class ModelConfig:
    """What :func:`build` needs; the notebook's parameters of the same names."""

    method: str
    n_attr: int
    trunk: str = "resnet50"
    pretrained: bool = False
    weights_path: str = ""
    width: int = 256  # demo trunk: channels of its trainable stage (ResNet-50: 1024, fixed)
    attr_dim: int = 512
    hidden: int = 512
    embed_dim: int = 1024  # global and RPF (RPF: = the trunk's channels); AG-MAN uses agman_dim
    agman_dim: int = 512
    patch_backbone: str = "vit-b16"
    patch_pretrained: bool = False
    patch_weights_path: str = ""
    loss_weighting: str = "learned"


def build(cfg: ModelConfig) -> nn.Module:
    from fgr_utils.models import asfr as models
    from fgr_utils.models.backbones import create_backbone

    if cfg.method not in METHODS:
        raise FgrError(f"method must be one of {', '.join(METHODS)}, not {cfg.method!r}")
    if cfg.loss_weighting not in LOSS_WEIGHTING:
        raise FgrError(f"loss_weighting must be one of {', '.join(LOSS_WEIGHTING)}, not {cfg.loss_weighting!r}")
    trunk = models.create_trunk(cfg.trunk, pretrained=cfg.pretrained, weights_path=cfg.weights_path or None,
                                width=cfg.width)
    if cfg.method == "global":
        return models.build_model("global", trunk, cfg.n_attr, embed_dim=cfg.embed_dim)
    if cfg.method == "asen_v2":
        return models.build_model("asen_v2", trunk, cfg.n_attr, attr_dim=cfg.attr_dim, hidden=cfg.hidden)
    if cfg.method == "agman":
        from fgr_utils.losses import AutomaticWeightedLoss

        model = models.build_model("agman", trunk, cfg.n_attr, attr_dim=cfg.attr_dim, hidden=cfg.hidden,
                                   embed_dim=cfg.agman_dim)
        model.loss_weights = AutomaticWeightedLoss(2)
        model.loss_weights.requires_grad_(cfg.loss_weighting == "learned")
        return model
    patch = create_backbone(cfg.patch_backbone, pretrained=cfg.patch_pretrained,
                            weights_path=cfg.patch_weights_path or None)
    return models.build_model("rpf", trunk, cfg.n_attr, attr_dim=cfg.attr_dim, hidden=cfg.hidden,
                              embed_dim=cfg.embed_dim, patch_backbone=patch)


# --------------------------------------------------------------------------------------------
# Embedding and evaluation
# --------------------------------------------------------------------------------------------

def embed(model, features: Features, rows: np.ndarray, *, crops: Crops | None = None,
          beta: float = 0.3, batch_size: int = 64, flip_rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Embeddings of (image, attr) rows under each row's attribute (eval mode, no gradients).

    Returns ``{"embedding": ...}``, and for RPF with a patch branch (``crops`` given) also
    ``"region"``, ``"patch"`` and the beta-fused ``"embedding"``. ``flip_rng`` flips images at random
    (RPF s1's released validation, which reused the training transform).
    """
    from fgr_utils.models.asfr import fuse

    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for s in range(0, len(rows), batch_size):
            part = rows[s:s + batch_size]
            flips = (flip_rng.random(len(part)) < 0.5).tolist() if flip_rng is not None else None
            feats = features.stem_outputs(model.trunk, features.batch(part[:, 0], flips))
            attr = torch.as_tensor(part[:, 1], device=features.device)
            res = model(feats, attr)
            vecs = {"embedding": res.embedding}
            if crops is not None:
                patch = model.patch(crops.inputs(part[:, 0], res.attention), attr, from_stem=crops.cached)
                vecs = {"region": res.embedding, "patch": patch, "embedding": fuse(res.embedding, patch, beta)}
            for k, v in vecs.items():
                out.setdefault(k, []).append(v.float().cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def map_metrics(q: np.ndarray, c: np.ndarray, queries: np.ndarray, candidates: np.ndarray,
                names: Sequence[str]) -> dict[str, float]:
    """``map/weighted``, ``map/macro`` and ``map/<attribute>`` of one embedding (fractions)."""
    res = attribute_map(q, queries[:, 1], queries[:, 2], c, candidates[:, 1], candidates[:, 2])
    row = {"map/weighted": res["weighted"], "map/macro": res["macro"]}
    row.update({f"map/{names[a]}": v for a, v in res["per_attribute"].items()})
    return row


def evaluate_split(model, data: AsfrData, features: Features, which: str, *,
                   crops: Crops | None = None, beta: float = 0.3,
                   flip_rng: np.random.Generator | None = None) -> dict[str, float]:
    """The protocol's numbers on the ``valid`` or ``test`` split.

    ``splits``: MAP of the (fused) embedding, plus ``region/...`` and ``patch/...`` MAPs for RPF with
    its patch branch. ``triplets``: ``triplet_acc`` and ``triplet_acc/<condition>``.
    """
    split = data.eval_split(which)
    if data.protocol == "triplets":
        return triplet_metrics(model, features, data.triplets[split], data.names, crops=crops, beta=beta)
    q_rows, c_rows = data.queries[split], data.candidates[split]
    q = embed(model, features, q_rows, crops=crops, beta=beta, flip_rng=flip_rng)
    c = embed(model, features, c_rows, crops=crops, beta=beta, flip_rng=flip_rng)
    row = map_metrics(q["embedding"], c["embedding"], q_rows, c_rows, data.names)
    for part in ("region", "patch"):
        if part in q:
            row.update({f"{part}/{k}": v for k, v in map_metrics(q[part], c[part], q_rows, c_rows, data.names).items()})
    return row


def triplet_metrics(model, features: Features, triplets: np.ndarray, conditions: Sequence[str], *,
                    attr_of: dict[int, int] | None = None, crops: Crops | None = None,
                    beta: float = 0.3) -> dict[str, float]:
    """CSN triplet accuracy (section 1.6): ``sim(a, c) > sim(a, b)`` under the condition's embedding.

    ``attr_of`` maps a condition index to the model's attribute index (a model trained on split
    files evaluated on triplet lists of the same images); by default they coincide.
    """
    attr_of = attr_of or {c: c for c in range(len(conditions))}
    keep = np.array([int(c) in attr_of for c in triplets[:, 3]], dtype=bool)
    triplets = triplets[keep]
    if not len(triplets):
        raise FgrError("no triplet's condition is an attribute of the model")
    attrs = np.array([attr_of[int(c)] for c in triplets[:, 3]])
    pairs = np.unique(np.concatenate([np.column_stack([triplets[:, j], attrs]) for j in range(3)]), axis=0)
    emb = embed(model, features, pairs, crops=crops, beta=beta)["embedding"]
    row_of = {(int(i), int(a)): r for r, (i, a) in enumerate(pairs)}

    def vecs(col: int) -> np.ndarray:
        return emb[[row_of[(int(i), int(a))] for i, a in zip(triplets[:, col], attrs)]]

    a, b, c = vecs(0), vecs(1), vecs(2)
    res = triplet_accuracy(np.sum(a * c, axis=1), np.sum(a * b, axis=1), triplets[:, 3])
    row = {"triplet_acc": res["accuracy"]}
    row.update({f"triplet_acc/{conditions[k]}": v for k, v in res["per_condition"].items()})
    return row


def zappos_metrics(model, data: AsfrData, features: Features, *, crops: Crops | None = None,
                   beta: float = 0.3) -> dict[str, float]:
    """Triplet accuracy on the test triplet list that comes with a split-file set (its conditions
    named like the model's attributes); empty when there is none."""
    if not data.zappos or "test" not in data.zappos:
        return {}
    attr_of = {k: data.names.index(c) for k, c in enumerate(data.zappos_conditions) if c in data.names}
    if not attr_of:
        return {}
    return triplet_metrics(model, features, data.zappos["test"], data.zappos_conditions, attr_of=attr_of,
                           crops=crops, beta=beta)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    epochs: int
    lr: float
    lr_step: int = 3
    lr_gamma: float = 0.9
    batch_size: int = 16  # triplets per step
    triplets_per_epoch: int = 100_000
    margin: float = 0.2
    flip: bool = True
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    # RPF stage 2
    stage: int = 1
    patch_lr: float = 5.5e-5
    patch_weight: float = 0.1
    infonce_weight: float = 0.04
    tau: float = 0.07
    alpha: float = 12.0
    beta: float = 0.3
    val_flip: bool = False  # RPF s1 as released: the validation images are randomly flipped
    agman_cls: bool = True


class _Triplets(torch.utils.data.Dataset):
    """One epoch's triplets as model inputs: (stem outputs of a, p, n stacked, attr, values)."""

    def __init__(self, rows: np.ndarray, features: Features, flips: np.ndarray):
        self.rows, self.features, self.flips = rows, features, flips

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, t: int):
        r = self.rows[t]
        items = [self.features.item(int(r[j]), bool(self.flips[t, j])) for j in range(3)]
        return items, int(r[3]), torch.as_tensor(r[4:6]), torch.as_tensor(r[:3])


def _collate(batch):
    """(stem outputs of the 3B images stacked: anchors, then positives, then negatives; attrs (B,);
    values (B, 2); image indices (3B,) in the same order)."""
    feats = {k: torch.stack([b[0][j][k] for j in range(3) for b in batch]) for k in batch[0][0][0]}
    index = torch.stack([b[3] for b in batch]).T.reshape(-1)
    return feats, torch.tensor([b[1] for b in batch]), torch.stack([b[2] for b in batch]), index


def epoch_rows(data: AsfrData, cfg: TrainConfig, epoch: int) -> np.ndarray:
    """The epoch's triplets: redrawn from the groups (splits) or the fixed list reshuffled (triplets)."""
    rng = np.random.default_rng((cfg.seed, epoch, 31))
    if data.protocol == "splits":
        return sample_triplets(data.groups, cfg.triplets_per_epoch, rng)
    rows = fixed_triplets(data.triplets["train"], rng)
    return rows[:cfg.triplets_per_epoch] if cfg.triplets_per_epoch else rows


def _loader(data: AsfrData, features: Features, cfg: TrainConfig, epoch: int):
    rows = epoch_rows(data, cfg, epoch)
    rng = np.random.default_rng((cfg.seed, epoch, 37))
    flips = (rng.random((len(rows), 3)) < 0.5) & cfg.flip
    return torch.utils.data.DataLoader(_Triplets(rows, features, flips), batch_size=cfg.batch_size, shuffle=False,
                                       num_workers=cfg.workers, collate_fn=_collate)


def make_step(model, method: str, features: Features, cfg: TrainConfig, crops: Crops | None = None):
    """The loss of one batch of triplets for ``method`` (and RPF's stage)."""
    from fgr_utils.losses import cosine_triplet, e_infonce

    def triplet(emb: torch.Tensor) -> torch.Tensor:
        a, p, n = emb.chunk(3)
        return cosine_triplet(a, p, n, cfg.margin)

    def step(batch):
        feats, attr, values, index = batch
        feats = features.stem_outputs(model.trunk, feats)
        attr3 = attr.repeat(3).to(features.device)
        out = model(feats, attr3)
        loss = triplet(out.embedding)
        if method == "agman" and cfg.agman_cls:
            loss = model.loss_weights(loss, model.type_loss(out.logits, attr3))
        if method == "rpf" and cfg.stage == 2:
            patch = model.patch(crops.inputs(index.tolist(), out.attention), attr3, from_stem=crops.cached)
            vals3 = torch.cat([values[:, 0], values[:, 0], values[:, 1]]).to(features.device)
            loss = loss + cfg.patch_weight * triplet(patch) + cfg.infonce_weight * e_infonce(
                out.embedding, patch, out.background, attr3, vals3, tau=cfg.tau, alpha=cfg.alpha)
        return loss

    return step

def _optimizer(model, method: str, cfg: TrainConfig):
    """Adam with StepLR(lr_step, lr_gamma); RPF s2: two groups, region branch + attribute embedding at
    ``lr``, patch branch at ``patch_lr`` (section 4.5)."""
    if method == "rpf" and cfg.stage == 2:
        opt = torch.optim.Adam(model.param_groups(cfg.lr, cfg.patch_lr))
    else:
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    return opt, torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step, cfg.lr_gamma)


def selection_metric(data: AsfrData) -> str:
    return "valid/map/weighted" if data.protocol == "splits" else "valid/triplet_acc"


def train(model, method: str, data: AsfrData, features: Features, cfg: TrainConfig, *, checkpoint_dir: Path,
          fingerprint: str, crops: Crops | None = None, progress: bool = True) -> FitResult:
    """One stage of training: ``triplets_per_epoch`` triplets an epoch, the validation number every
    epoch, the best epoch kept (and restored at the end)."""
    if method == "rpf" and cfg.stage == 2 and crops is None:
        raise FgrError("RPF stage 2 needs the crops of its patch branch")
    model.to(cfg.device)
    opt, sched = _optimizer(model, method, cfg)
    step = make_step(model, method, features, cfg, crops)
    eval_crops = crops if method == "rpf" and cfg.stage == 2 else None

    def evaluate(epoch: int) -> dict[str, float]:
        rng = np.random.default_rng((cfg.seed, epoch, 41)) if cfg.val_flip and method == "rpf" and cfg.stage == 1 else None
        row = evaluate_split(model, data, features, "valid", crops=eval_crops, beta=cfg.beta, flip_rng=rng)
        return {f"valid/{k}": v for k, v in row.items()}

    return fit(model, opt, epochs=cfg.epochs, make_batches=lambda e: _loader(data, features, cfg, e), train_step=step,
               evaluate=evaluate, select=selection_metric(data), scheduler=sched, checkpoint_dir=checkpoint_dir,
               fingerprint=fingerprint, progress=progress, restore_best=True)


TRIPLET_PROTOCOL = "CSN triplet accuracy: sim(a, c) > sim(a, b) under the condition's embedding"
MAP_PROTOCOL = "attribute-specific MAP (ASEN): each query ranks all candidates of its attribute, full ranking"


def log_metrics(run, row: dict[str, float], data: AsfrData, *, prefix: str = "", beta: float | None = None) -> None:
    """Record a row of test numbers with its protocol (weighted and macro MAP labelled as such)."""
    select = "checkpoint by validation weighted MAP" if data.protocol == "splits" else "checkpoint by val accuracy"
    fused = f", RPF fused with beta {beta}" if beta is not None else ""
    for key, value in row.items():
        if "triplet_acc" in key:
            how = f"{TRIPLET_PROTOCOL}, {select}; " + ("all conditions" if key.endswith("triplet_acc") else "one condition")
        else:
            kind = ("query-weighted over attributes (official)" if key.endswith("map/weighted") else
                    "macro: unweighted mean over attributes" if key.endswith("map/macro") else "one attribute")
            how = f"{MAP_PROTOCOL}, {select}{fused}; {kind}"
        run.log(prefix + key, value, protocol=how, dataset=data.name, split="test")


def summary(rows: dict[str, dict[str, float]], names: Sequence[str]):
    """A table (percent): one column per method/stage, rows weighted, macro, then each attribute."""
    import pandas as pd

    keys = ["map/weighted", "map/macro"] + [f"map/{n}" for n in names]
    labels = {"map/weighted": "overall, query-weighted (official)", "map/macro": "overall, macro (unweighted)"}
    table = {col: {labels.get(k, k.removeprefix("map/")): round(100 * r[k], 2) for k in keys if k in r}
             for col, r in rows.items()}
    return pd.DataFrame(table)


# --------------------------------------------------------------------------------------------
# Loading a trained run, figures
# --------------------------------------------------------------------------------------------

MODEL_PARAMS = ("trunk", "pretrained", "weights_path", "width", "attr_dim", "hidden", "embed_dim", "agman_dim",
                "patch_backbone", "patch_pretrained", "patch_weights_path", "loss_weighting")


def model_config(params: dict[str, Any], n_attr: int) -> ModelConfig:
    return ModelConfig(method=params["method"], n_attr=n_attr, **{k: params[k] for k in MODEL_PARAMS if k in params})


def load_trained(run_dir: Path, n_attr: int):
    """The selected model of a finished ``30_asfr_train`` run (RPF: stage 2's), in eval mode.

    Pretrained weights are never loaded over it: the model is built without them and the trained
    checkpoint is the only source (the student API fork overwrote the fine-tuned ViT this way).
    """
    from fgr_utils.results import read_record
    from fgr_utils.train import load_checkpoint

    params = dict(read_record(run_dir)["params"])
    cfg = model_config({**params, "pretrained": False, "patch_pretrained": False}, n_attr)
    model = build(cfg)
    ckpt_dir = Path(run_dir) / "checkpoints"
    path = ckpt_dir / ("s2" if params["method"] == "rpf" else "") / "best.pt"
    state = load_checkpoint(path)
    if state is None:
        raise FgrError(f"no readable checkpoint {path}: run 30_asfr_train again")
    model.load_state_dict(state["model"])
    return model.eval(), params


def attention_maps(model, features: Features, index: int, n_attr: int) -> np.ndarray:
    """(n_attr, H, W): the spatial attention of image ``index`` under every attribute."""
    model.eval()
    with torch.no_grad():
        feats = features.stem_outputs(model.trunk, features.batch([index] * n_attr))
        out = model(feats, torch.arange(n_attr, device=features.device))
    if out.attention is None:
        raise FgrError("this model has no spatial attention (the global embedding ignores the attribute)")
    return out.attention.float().cpu().numpy()


def attention_figure(model, features: Features, index: int, names: Sequence[str], *, title: str = ""):
    """One image under each attribute: where the model looks when asked about that attribute."""
    from fgr_utils import viz

    maps = attention_maps(model, features, index, len(names))
    img = features.inputs.prepare(images.load_rgb(features.paths[index]))
    return viz.attention_overlays([img] * len(names), list(maps), maps.shape[1:], titles=list(names), suptitle=title)


def query_picks(queries: np.ndarray, n: int) -> list[int]:
    """``n`` query rows that take the attributes in turn: the first query of each attribute, then the
    second of each, and so on (an attribute with no query left is passed over)."""
    by_attr = [np.flatnonzero(queries[:, 1] == a) for a in sorted(set(queries[:, 1].tolist()))]
    picks: list[int] = []
    for r in range(max((len(rows) for rows in by_attr), default=0)):
        picks += [int(rows[r]) for rows in by_attr if r < len(rows)]
    return picks[:n]


def ranked_candidates(model, data: AsfrData, features: Features, picks: Sequence[int], k: int, *,
                      crops: Crops | None = None, beta: float = 0.3) -> dict[str, list]:
    """Test queries ``picks`` (rows of the test query list) and their top ``k`` candidates under the
    query's attribute: image indices (``queries``, ``rankings``), hits (same value as the query) and
    titles (``attribute: value``). Each attribute's candidates are embedded once."""
    split = data.eval_split("test")
    queries, cands = data.queries[split], data.candidates[split]
    rows = queries[list(picks)]
    q = embed(model, features, rows, crops=crops, beta=beta)["embedding"]
    pools: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    results, hits, titles = [], [], []
    for row, vec in zip(rows, q):
        a = int(row[1])
        if a not in pools:
            pool = cands[cands[:, 1] == a]
            pools[a] = (pool, embed(model, features, pool, crops=crops, beta=beta)["embedding"])
        pool, c = pools[a]
        top = np.argsort(-(c @ vec), kind="stable")[:k]
        results.append([int(pool[j, 0]) for j in top])
        hits.append([int(pool[j, 2]) == int(row[2]) for j in top])
        name = data.names[a]
        values = data.value_names.get(name, [])
        titles.append(f"{name}: {values[int(row[2])] if int(row[2]) < len(values) else int(row[2])}")
    return {"queries": [int(r[0]) for r in rows], "attributes": [int(r[1]) for r in rows], "rankings": results,
            "hits": hits, "query_titles": titles}


def retrieval_figure(model, data: AsfrData, features: Features, *, n_queries: int = 4, k: int = 6,
                     crops: Crops | None = None, beta: float = 0.3, title: str | None = None):
    """Test queries of different attributes and their top ``k`` candidates of that attribute; a
    candidate with the query's value is framed green."""
    from fgr_utils import viz

    picks = query_picks(data.queries[data.eval_split("test")], n_queries)
    r = ranked_candidates(model, data, features, picks, k, crops=crops, beta=beta)
    return viz.retrieval_grid([features.paths[i] for i in r["queries"]],
                              [[features.paths[i] for i in row] for row in r["rankings"]], r["hits"],
                              query_titles=r["query_titles"], suptitle=title)


def browser_inputs(model, params: dict[str, Any], data: AsfrData, *, n_queries: int = 16, depth: int = 10,
                   device: str = "cpu") -> dict[str, Any]:
    """What :func:`fgr_utils.browser.retrieval_browser` needs to browse a trained run's test queries.

    ``model`` and ``params``: what :func:`load_trained` returned. ``n_queries`` test queries taking
    the attributes in turn, each with its top ``depth`` candidates under the query's attribute, ranked
    as the run's test did (RPF: the fused score with the run's ``beta``). With a spatial attention,
    the query and each result show where the model looks when asked about that attribute (computed
    when drawn). The frozen stem's features come from the cache the training run wrote.
    """
    from fgr_utils.paths import runs_dir

    if data.protocol != "splits":
        raise FgrError("the browser needs query and candidate lists: use a run with protocol='splits'")
    features = Features(model.trunk, AsfrInputs(params["img_size"]), data.paths,
                        cache_dir=runs_dir() / "cache" if params.get("cache_stem", True) else None, device=device,
                        progress=False)
    crops = None
    if params["method"] == "rpf":
        crops = Crops(features, model.patch_backbone, threshold=params["crop_threshold"], device=device)
    picks = query_picks(data.queries[data.eval_split("test")], n_queries)
    r = ranked_candidates(model, data, features, picks, depth, crops=crops, beta=params.get("beta", 0.3))
    out: dict[str, Any] = {"queries": [features.paths[i] for i in r["queries"]],
                           "rankings": [[features.paths[i] for i in row] for row in r["rankings"]],
                           "hits": r["hits"], "query_titles": r["query_titles"],
                           "load": lambda path: features.inputs.prepare(images.load_rgb(path))}  # as the model sees it
    if params["method"] != "global":  # the global embedding has no attention
        def under(image: int, attr: int) -> np.ndarray:
            return attention_maps(model, features, image, data.n_attr)[attr]

        out["query_attention"] = lambda i: under(r["queries"][i], r["attributes"][i])
        out["attention"] = lambda i, j: under(r["rankings"][i][j], r["attributes"][i])
    return out
