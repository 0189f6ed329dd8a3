"""The attribute track's heads: ASENet_V2, AG-MAN, RPF and a global floor, on a shared trunk.

Specification: ``shared/reference/asfr_rpf_agman.md`` §2 (ASENet_V2), §3 (AG-MAN), §4 (RPF). A head
reads the trunk's layer2/layer3 maps and the attribute (a LongTensor (B,) of attribute-type indices)
and returns an :class:`AsfrOutput`.

* :class:`GlobalEmbedding` — attribute-agnostic floor: layer3 -> mean pool -> Linear -> L2.
* :class:`ASENv2` — ASENet_V2 (§2): attribute embedding, spatial attention (ASA) with BatchNorm on the
  image side, channel attention (ACA), no final FC; the embedding is C3-dimensional.
* :class:`AGMAN` — AG-MAN (§3): multi-level fusion of layer2 into layer3, attribute-guided attention
  (AGA: scaled 1 x 1 conv, ASA with Swish, CBAM spatial attention, ACA), a CSN-style learned mask and
  an attribute-type classification branch on ``trunk.make_layer4()``.
* :class:`RPF` — RPF (§4): the region branch (channel LayerNorm, ASA, foreground/background pooling,
  a residual MLP head shared by both) and, in stage 2, the patch branch (a ViT over an attention-guided
  crop and a one-layer cross-encoder whose query is the attribute token). :func:`fuse` is the
  test-time β fusion, :func:`crop_boxes` / :func:`to_original` the crop (shared with ASEN++).

Dimension names: ``attr_dim`` is the attribute embedding's width (papers: 512), ``hidden`` the width
of the attention/gating layers (512), ``embed_dim`` the output embedding (AG-MAN 512, RPF 1024). Where
the reference's layer sizes are all 512 the mapping is: ASENet_V2 ASA and ACA attribute layers
``attr_dim -> hidden``, ACA ``FC(C3 + hidden -> hidden) -> FC(hidden -> C3)``; AG-MAN's ASA attribute
layer ``attr_dim -> embed_dim`` (its dot product is with the embed_dim-channel AGA features), its ACA
``attr_dim -> hidden`` and ``FC(embed_dim + hidden -> hidden) -> FC(hidden -> embed_dim)``; RPF's ASA
``C3 -> hidden`` and ``attr_dim -> hidden``.

The triplet loss of all three papers (``MarginRankingLoss(0.2)`` on dot products of unit vectors) is
:func:`fgr_utils.losses.cosine_triplet`; :func:`~fgr_utils.losses.e_infonce` is RPF's E-InfoNCE and
:class:`~fgr_utils.losses.AutomaticWeightedLoss` AG-MAN's loss weighting.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fgr_utils.backbones import Backbone
from fgr_utils.errors import FgrError
from fgr_utils.tracks.asfr.trunks import Trunk

METHODS = ("global", "asen_v2", "agman", "rpf")


@dataclass
class AsfrOutput:
    embedding: torch.Tensor                    # (B, D), L2-normalised
    attention: torch.Tensor | None             # (B, H, W), softmax over positions; None for the global model
    background: torch.Tensor | None = None     # RPF: region background embedding (B, D), L2-normalised
    logits: torch.Tensor | None = None         # AG-MAN: attribute-type logits (B, n_attr)


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------

def _spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> softmax over the H·W positions, same shape."""
    b, h, w = logits.shape
    return torch.softmax(logits.reshape(b, h * w), dim=1).reshape(b, h, w)


def _pool(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum over positions: (B, C, H, W) x (B, H, W) -> (B, C)."""
    return torch.einsum("bchw,bhw->bc", x, weights)


def _check_attr(attr: torch.Tensor) -> None:
    if attr.dim() != 1:
        raise FgrError(f"attr must be a 1-D LongTensor of attribute indices, got shape {tuple(attr.shape)}")


class GlobalEmbedding(nn.Module):
    """Attribute-agnostic floor: layer3 -> global average pool -> Linear(C3, embed_dim) -> L2."""

    def __init__(self, trunk: Trunk, embed_dim: int = 1024):
        super().__init__()
        self.trunk, self.embed_dim = trunk, embed_dim
        self.fc = nn.Linear(trunk.channels["layer3"], embed_dim)

    def forward(self, feats: dict[str, torch.Tensor], attr: torch.Tensor | None = None) -> AsfrOutput:
        x = self.trunk.top(feats)["layer3"].mean((2, 3))
        return AsfrOutput(F.normalize(self.fc(x), dim=-1), None)


# --------------------------------------------------------------------------------------------
# ASENet_V2 (§2)
# --------------------------------------------------------------------------------------------

class ASENv2(nn.Module):
    """ASENet_V2: ASA (BatchNorm -> tanh image side) then ACA; the C3-d gated feature, L2-normalised."""

    def __init__(self, trunk: Trunk, n_attr: int, attr_dim: int = 512, hidden: int = 512):
        super().__init__()
        c3 = trunk.channels["layer3"]
        self.trunk, self.n_attr, self.hidden, self.embed_dim = trunk, n_attr, hidden, c3
        self.attr_embedding = nn.Embedding(n_attr, attr_dim)
        # ASA
        self.asa_image = nn.Sequential(nn.Conv2d(c3, hidden, 1), nn.BatchNorm2d(hidden), nn.Tanh())
        self.asa_attr = nn.Sequential(nn.Linear(attr_dim, hidden), nn.Tanh())
        # ACA
        self.aca_attr = nn.Sequential(nn.Linear(attr_dim, hidden), nn.ReLU(inplace=True))
        self.aca_gate = nn.Sequential(nn.Linear(c3 + hidden, hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, c3), nn.Sigmoid())

    def forward(self, feats: dict[str, torch.Tensor], attr: torch.Tensor) -> AsfrOutput:
        _check_attr(attr)
        x = self.trunk.top(feats)["layer3"]
        a = self.attr_embedding(attr)
        key = self.asa_image(x)                                            # (B, hidden, H, W)
        q = self.asa_attr(a)                                               # (B, hidden)
        att = _spatial_softmax(torch.einsum("bchw,bc->bhw", key, q) / math.sqrt(self.hidden))
        pooled = _pool(x, att)                                             # (B, C3)
        mask = self.aca_gate(torch.cat([pooled, self.aca_attr(a)], dim=1))
        return AsfrOutput(F.normalize(pooled * mask, dim=-1), att)


# --------------------------------------------------------------------------------------------
# AG-MAN (§3)
# --------------------------------------------------------------------------------------------

class AGMAN(nn.Module):
    """AG-MAN: multi-level fusion + attribute-guided attention + CSN mask, and a type classifier.

    The learned scalars w (on the fused map), w1 (on the spatial attention) and w2 (on the channel
    mask) start at 1. Two components can be switched off for ablations: ``multilevel=False`` drops the
    layer2 path (the map is layer3 alone, C3 channels, and the type classifier reads layer3), and
    ``mask=False`` drops the CSN mask (every embedding dimension serves every attribute).
    """

    def __init__(self, trunk: Trunk, n_attr: int, attr_dim: int = 512, hidden: int = 512, embed_dim: int = 512,
                 multilevel: bool = True, mask: bool = True):
        super().__init__()
        c2, c3 = trunk.channels["layer2"], trunk.channels["layer3"]
        self.trunk, self.n_attr, self.embed_dim = trunk, n_attr, embed_dim
        self.attr_embedding = nn.Embedding(n_attr, attr_dim)
        # multi-level fusion: layer2 -> max-pool /2 -> 1x1 conv, added to layer3
        self.down = nn.MaxPool2d(3, stride=2, padding=1)
        self.lateral = nn.Conv2d(c2, c3, 1) if multilevel else None
        # AGA
        self.w = nn.Parameter(torch.ones(()))
        self.reduce = nn.Conv2d(2 * c3 if multilevel else c3, embed_dim, 1)
        self.asa_image = nn.Sequential(nn.BatchNorm2d(embed_dim), nn.Tanh())
        self.asa_attr = nn.Sequential(nn.Linear(attr_dim, embed_dim), nn.SiLU())
        self.w1 = nn.Parameter(torch.ones(()))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)          # CBAM spatial attention
        self.aca_attr = nn.Sequential(nn.Linear(attr_dim, hidden), nn.SiLU())
        self.aca_gate = nn.Sequential(nn.Linear(embed_dim + hidden, hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, embed_dim), nn.Sigmoid())
        self.w2 = nn.Parameter(torch.ones(()))
        # CSN-style learned mask: 0.1 everywhere, 1.0 on the attribute's own block of embed_dim // n_attr
        self.masks = nn.Embedding(n_attr, embed_dim) if mask else None
        self.reset_masks()
        # attribute-type classification branch
        self.layer4, c4 = trunk.make_layer4()
        self.classifier = nn.Linear(c4, n_attr)

    @torch.no_grad()
    def reset_masks(self) -> None:
        if self.masks is None:
            return
        block = self.embed_dim // self.n_attr
        self.masks.weight.fill_(0.1)
        for a in range(self.n_attr):
            self.masks.weight[a, a * block:(a + 1) * block] = 1.0

    def forward(self, feats: dict[str, torch.Tensor], attr: torch.Tensor) -> AsfrOutput:
        _check_attr(attr)
        maps = self.trunk.top(feats)
        l3 = maps["layer3"]
        if self.lateral is not None:
            x_local = l3 + self.lateral(self.down(maps["layer2"]))
            x = self.reduce(torch.cat([l3, x_local], dim=1) * self.w)      # (B, embed_dim, H, W)
        else:
            x_local = l3
            x = self.reduce(l3 * self.w)
        a = self.attr_embedding(attr)
        att = _spatial_softmax(torch.einsum("bchw,bc->bhw", self.asa_image(x), self.asa_attr(a))
                               / math.sqrt(self.embed_dim))
        x = x * (self.w1 * att)[:, None]
        s = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)))
        pooled = (x * s).sum((2, 3))                                       # (B, embed_dim)
        gate = self.aca_gate(torch.cat([pooled, self.aca_attr(a)], dim=1))
        emb = pooled * (self.w2 * gate)
        if self.masks is not None:
            emb = emb * F.relu(self.masks(attr))
        logits = self.classifier(self.layer4(x_local).mean((2, 3)))
        return AsfrOutput(F.normalize(emb, dim=-1), att, logits=logits)

    def type_loss(self, logits: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
        """BCE-with-logits against the one-hot of the attribute type (values are ignored)."""
        return F.binary_cross_entropy_with_logits(logits, F.one_hot(attr, self.n_attr).to(logits.dtype))


# --------------------------------------------------------------------------------------------
# RPF (§4)
# --------------------------------------------------------------------------------------------

_LN_EPS = 1e-6  # RPF's LayerNorms (channel norm, attribute norm, head norms)


class ResidualMLP(nn.Module):
    """x + Dropout(Linear(Dropout(act(Linear(LayerNorm(x)))))), hidden = dim // 2."""

    def __init__(self, dim: int, act: type[nn.Module] = nn.ReLU, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim, eps=_LN_EPS), nn.Linear(dim, dim // 2), act(),
                                 nn.Dropout(dropout), nn.Linear(dim // 2, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def _trunc_normal_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CrossEncoder(nn.Module):
    """RPF's patch-side cross-encoder: the attribute token attends over a ViT's patch tokens.

    Linear(attr_dim -> width) makes the query token; learned type embeddings (0: attribute token,
    1: patches) are added; one LayerNorm shared by query and patches; one multi-head cross-attention
    layer (no attention dropout); Linear(width -> embed_dim) -> residual MLP (GELU) -> LayerNorm.
    The new Linear layers and the type embeddings are trunc-normal (std 0.02); the attention's own
    projections keep PyTorch's initialisation.
    """

    def __init__(self, attr_dim: int, width: int, embed_dim: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.query = nn.Linear(attr_dim, width)
        self.type_embedding = nn.Parameter(torch.zeros(2, width))
        self.norm = nn.LayerNorm(width, eps=_LN_EPS)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.proj = nn.Linear(width, embed_dim)
        self.mlp = ResidualMLP(embed_dim, nn.GELU, dropout)
        self.out_norm = nn.LayerNorm(embed_dim, eps=_LN_EPS)
        nn.init.trunc_normal_(self.type_embedding, std=0.02)
        for m in (self.query, self.proj, self.mlp):
            _trunc_normal_init(m)

    def forward(self, patches: torch.Tensor, attr_vec: torch.Tensor) -> torch.Tensor:
        """(B, N, width) patch tokens, (B, attr_dim) attribute vectors -> (B, embed_dim), not normalised."""
        q = self.norm(self.query(attr_vec)[:, None] + self.type_embedding[0])
        kv = self.norm(patches + self.type_embedding[1])
        ctx = self.attention(q, kv, kv, need_weights=False)[0][:, 0]
        return self.out_norm(self.mlp(self.proj(ctx)))


class RPF(nn.Module):
    """RPF: region branch (``forward``) and, with a ``patch_backbone``, the patch branch (:meth:`patch`).

    The attribute embedding (with its LayerNorm) is shared by both branches. The region head needs
    ``C3 == embed_dim`` because the background feature goes through the foreground's MLP and norms
    without the foreground's first Linear.
    """

    def __init__(self, trunk: Trunk, n_attr: int, attr_dim: int = 512, hidden: int = 512, embed_dim: int = 1024,
                 patch_backbone: Backbone | None = None, dropout: float = 0.1, patch_heads: int | None = None):
        super().__init__()
        c3 = trunk.channels["layer3"]
        if c3 != embed_dim:
            raise FgrError(f"RPF needs embed_dim == the trunk's layer3 channels ({c3}), got {embed_dim}: the "
                           "background embedding reuses the foreground MLP without its C3 -> embed_dim Linear")
        self.trunk, self.n_attr, self.hidden, self.embed_dim = trunk, n_attr, hidden, embed_dim
        self.attr_embedding = nn.Embedding(n_attr, attr_dim)
        self.attr_norm = nn.LayerNorm(attr_dim, eps=_LN_EPS)
        # region branch
        self.feat_norm = nn.LayerNorm(c3, eps=_LN_EPS)  # channel LayerNorm at every location
        self.asa_image = nn.Sequential(nn.Conv2d(c3, hidden, 1), nn.Tanh())
        self.asa_attr = nn.Sequential(nn.Linear(attr_dim, hidden), nn.Tanh())
        self.fg_proj = nn.Linear(c3, embed_dim)
        self.mlp = ResidualMLP(embed_dim, nn.ReLU, dropout)
        self.out_norm = nn.LayerNorm(embed_dim, eps=_LN_EPS)
        # patch branch (stage 2)
        self.patch_backbone = patch_backbone
        self.cross_encoder: CrossEncoder | None = None
        if patch_backbone is not None:
            heads = patch_heads or patch_backbone.blocks[0].attn.num_heads
            if patch_backbone.dim % heads:
                raise FgrError(f"RPF patch_heads={heads} does not divide the patch backbone's width "
                               f"{patch_backbone.dim}; pick a divisor")
            self.cross_encoder = CrossEncoder(attr_dim, patch_backbone.dim, embed_dim, heads, dropout)

    @property
    def has_patch_branch(self) -> bool:
        return self.cross_encoder is not None

    def attribute(self, attr: torch.Tensor) -> torch.Tensor:
        """The shared, LayerNorm-ed attribute vectors (B, attr_dim)."""
        _check_attr(attr)
        return self.attr_norm(self.attr_embedding(attr))

    # -- region branch (§4.1) ------------------------------------------------------------------
    def region_features(self, feats: dict[str, torch.Tensor], attr: torch.Tensor):
        """-> (foreground f (B, C3), background b (B, C3), attention A (B, H, W)) before the head."""
        x = self.trunk.top(feats)["layer3"]
        x = self.feat_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        att = _spatial_softmax(torch.einsum("bchw,bc->bhw", self.asa_image(x), self.asa_attr(self.attribute(attr)))
                               / math.sqrt(self.hidden))
        inv = 1 - att
        background = inv / inv.sum((1, 2), keepdim=True)
        return _pool(x, att), _pool(x, background), att

    def head(self, x: torch.Tensor, *, foreground: bool = True) -> torch.Tensor:
        """The region head: [Linear ->] residual MLP -> LayerNorm (the Linear on the foreground only)."""
        return self.out_norm(self.mlp(self.fg_proj(x) if foreground else x))

    def forward(self, feats: dict[str, torch.Tensor], attr: torch.Tensor) -> AsfrOutput:
        f, b, att = self.region_features(feats, attr)
        return AsfrOutput(F.normalize(self.head(f), dim=-1), att,
                          background=F.normalize(self.head(b, foreground=False), dim=-1))

    # -- patch branch (§4.2) -------------------------------------------------------------------
    def patch(self, x: torch.Tensor, attr: torch.Tensor, *, from_stem: bool = False) -> torch.Tensor:
        """Crops (B, 3, S, S) — or, with ``from_stem=True``, the patch backbone's frozen-stem maps of the
        crops (``patch_backbone.stem_features(crops)``) — -> L2-normalised patch embeddings (B, embed_dim)."""
        if self.patch_backbone is None:
            raise FgrError("this RPF model has no patch branch; build it with patch_backbone=... for stage 2")
        bb = self.patch_backbone
        if from_stem and bb.frozen_stem is None:
            raise FgrError(f"from_stem=True needs a patch backbone with a frozen stem; {bb.spec.name} takes images")
        with bb.stem_inputs() if from_stem else contextlib.nullcontext():
            tokens = bb(x)
        return F.normalize(self.cross_encoder(bb.patches(tokens), self.attribute(attr)), dim=-1)

    def param_groups(self, region_lr: float, patch_lr: float) -> list[dict]:
        """Stage-2 optimiser groups (§4.5): region branch + attribute embedding + trunk at ``region_lr``;
        patch backbone + cross-encoder at ``patch_lr``. Only trainable parameters, each exactly once."""
        patch_ids = set()
        for m in (self.patch_backbone, self.cross_encoder):
            if m is not None:
                patch_ids |= {id(p) for p in m.parameters()}
        region = [p for p in self.parameters() if p.requires_grad and id(p) not in patch_ids]
        patch = [p for p in self.parameters() if p.requires_grad and id(p) in patch_ids]
        groups = [{"params": region, "lr": region_lr, "name": "region"}]
        if patch:
            groups.append({"params": patch, "lr": patch_lr, "name": "patch"})
        return groups


def fuse(region: torch.Tensor, patch: torch.Tensor, beta: float) -> torch.Tensor:
    """[√β·ℓ2(region), √(1−β)·ℓ2(patch)]: unit norm, and the dot product of two fused vectors is
    β·cos_region + (1−β)·cos_patch (§4.4)."""
    if not 0.0 <= beta <= 1.0:
        raise FgrError(f"fusion beta must lie in [0, 1], got {beta}")
    return torch.cat([math.sqrt(beta) * F.normalize(region, dim=-1),
                      math.sqrt(1.0 - beta) * F.normalize(patch, dim=-1)], dim=-1)


# --------------------------------------------------------------------------------------------
# Attention-guided crop (§4.2, shared with ASEN++)
# --------------------------------------------------------------------------------------------

def crop_boxes(attention: torch.Tensor, size: int, threshold: float = 0.1) -> torch.Tensor:
    """Square crop boxes (B, 4) = (x0, y0, x1, y1), exclusive ends, in the ``size`` x ``size`` input frame.

    Per image: upsample the (detached) map bilinearly to size x size, min-max normalise, keep the
    pixels >= threshold x max, take their tight bounding box (the whole image if none pass, e.g. a
    flat map), grow it to a square of side max(w, h) centred on the box, shift it inside the image.
    """
    if attention.dim() != 3:
        raise FgrError(f"crop_boxes needs attention maps of shape (B, h, w), got {tuple(attention.shape)}")
    a = F.interpolate(attention.detach().float()[:, None], size=(size, size), mode="bilinear",
                      align_corners=False)[:, 0]
    lo = a.amin((1, 2), keepdim=True)
    hi = a.amax((1, 2), keepdim=True)
    span = hi - lo
    norm = torch.where(span > 0, (a - lo) / span.clamp_min(1e-12), torch.zeros_like(a))
    peak = norm.amax((1, 2), keepdim=True)
    mask = (norm >= threshold * peak) & (peak > 0)      # a flat map (peak 0) keeps nothing -> whole image
    cols, rows = mask.any(1), mask.any(2)               # (B, size): x- and y-extent
    idx = torch.arange(size, device=a.device)
    none = ~cols.any(1)

    def extent(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.where(m, idx, size).amin(1)
        last = torch.where(m, idx, -1).amax(1) + 1
        return torch.where(none, 0, first), torch.where(none, size, last)

    x0, x1 = extent(cols)
    y0, y1 = extent(rows)
    side = torch.maximum(x1 - x0, y1 - y0)

    def place(lo_: torch.Tensor, hi_: torch.Tensor) -> torch.Tensor:
        start = lo_ + torch.div((hi_ - lo_) - side, 2, rounding_mode="floor")  # centred on the box
        return torch.minimum(start.clamp_min(0), size - side)

    nx0, ny0 = place(x0, x1), place(y0, y1)
    return torch.stack([nx0, ny0, nx0 + side, ny0 + side], dim=1).long()


def to_original(box, original_size: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """Map a box (x0, y0, x1, y1) in the Resize(short side -> size) + CenterCrop(size) frame back to
    the original image of ``original_size`` = (W, H): scale by short_side / size and add the centre
    crop's offset. Returns integer pixel bounds (outward-rounded, clamped) ready for ``PIL.Image.crop``."""
    w, h = original_size
    short = min(w, h)
    r = short / size
    off_x, off_y = (w - short) / 2, (h - short) / 2
    x0, y0, x1, y1 = (float(v) for v in box)
    return (max(0, math.floor(x0 * r + off_x + 1e-6)), max(0, math.floor(y0 * r + off_y + 1e-6)),
            min(w, math.ceil(x1 * r + off_x - 1e-6)), min(h, math.ceil(y1 * r + off_y - 1e-6)))


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------

_CONSTRUCTORS = {"global": GlobalEmbedding, "asen_v2": ASENv2, "agman": AGMAN, "rpf": RPF}
_DIMS = {"global": ("embed_dim",), "asen_v2": ("attr_dim", "hidden"),
         "agman": ("attr_dim", "hidden", "embed_dim", "multilevel", "mask"),
         "rpf": ("attr_dim", "hidden", "embed_dim", "patch_backbone", "dropout", "patch_heads")}
_ALL_DIMS = {d for dims in _DIMS.values() for d in dims}


def build_model(method: str, trunk: Trunk, n_attr: int, **dims) -> nn.Module:
    """Build one of :data:`METHODS` on ``trunk``.

    ``dims`` may be one set shared by all methods: a dimension some other method takes but this one
    does not is dropped (``global`` ignores ``attr_dim``/``hidden``; ``asen_v2``'s embedding is always
    C3-dimensional, so an ``embed_dim`` other than C3 is an error); a name no method takes is an error.
    """
    if method not in _CONSTRUCTORS:
        raise FgrError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    unknown = sorted(set(dims) - _ALL_DIMS)
    if unknown:
        raise FgrError(f"unknown model dimension(s) {', '.join(unknown)}; valid: {', '.join(sorted(_ALL_DIMS))}")
    if method == "asen_v2" and dims.get("embed_dim") not in (None, trunk.channels["layer3"]):
        raise FgrError(f"asen_v2's embedding has the trunk's layer3 width ({trunk.channels['layer3']}); "
                       f"set embed_dim to that or leave it out (got {dims['embed_dim']})")
    kwargs = {k: v for k, v in dims.items() if k in _DIMS[method]}
    if method == "global":
        return GlobalEmbedding(trunk, **kwargs)
    return _CONSTRUCTORS[method](trunk, n_attr, **kwargs)
