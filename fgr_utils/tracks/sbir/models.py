"""Fine-grained sketch-based retrieval models: ARNet Basic, ARNet + MSTR, and the triplet baseline.

ARNet (``shared/reference/fgsbir_arnet.md`` §1-3) has two encoders that do not share weights, one for
sketches and one for photos; each is a ViT whose final-norm CLS token goes through ``Linear(D, 512)``.
Its loss is four NT-Xent terms over a plain and an augmented view of each side (:meth:`ARNet.loss`).

MSTR (multi-scale token recycling) reuses the patch tokens at three scales, mixes what it recycles
into the CLS (0.9 · cls + 0.1 · r) and adds a token-relation loss. ``impl="paper_intent"`` is the
module as the paper describes it; ``impl="as_released"`` reproduces the released code's behaviour:
per-scale transformers kept in a plain list (never trained, never saved, dropout always on),
``batch_first=False`` on batch-first input (attention runs across the batch), scales built from runs
of consecutive raster-order tokens, and a relation target with blocks missing or misplaced.

The triplet baseline is one encoder shared by both modalities (a siamese network) with a triplet
margin loss of 0.3 on L2-normalised embeddings, the Triplet-SN-style row.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fgr_utils.errors import FgrError
from fgr_utils.losses import nt_xent, token_relation_loss
from fgr_utils.backbones import Backbone, create_backbone, set_trainable

METHODS = ("triplet", "arnet", "arnet_mstr")
MSTR_IMPLS = ("paper_intent", "as_released")


class Encoder(nn.Module):
    """One modality's ViT and its head: ``Linear(D, out_dim)`` on the image token."""

    def __init__(self, backbone: Backbone, out_dim: int = 512):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.dim, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> (projection (B, out_dim), all tokens (B, prefix + N, D))."""
        tokens = self.backbone(x)
        return self.head(self.backbone.cls(tokens)), tokens


# --------------------------------------------------------------------------------------------
# MSTR
# --------------------------------------------------------------------------------------------

def _centres(side: int) -> torch.Tensor:
    """Centres of a side x side grid's cells in [0, 1]^2, raster order (side^2, 2)."""
    c = (torch.arange(side, dtype=torch.float64) + 0.5) / side
    return torch.stack(torch.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)


def relation_target_paper(sides: tuple[int, ...]) -> torch.Tensor:
    """The token-relation target of the paper's intent, for scales of ``sides[s]`` x ``sides[s]`` tokens.

    1 on the diagonal; 0.5 between a coarse token and every finer token it summarises (at any finer
    scale); 0 elsewhere. A finer token belongs to the coarse cell that contains its centre — for
    14 -> 7 -> 2 the 7 x 7 middle grid does not split evenly into 2 x 2, and centre containment is
    the rule chosen here.
    """
    sizes = [s * s for s in sides]
    t = torch.zeros(sum(sizes), sum(sizes), dtype=torch.float64)
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    for fine in range(len(sides)):
        for coarse in range(fine + 1, len(sides)):
            cell = torch.clamp((_centres(sides[fine]) * sides[coarse]).floor().long(), max=sides[coarse] - 1)
            parent = cell[:, 0] * sides[coarse] + cell[:, 1]
            rows = offsets[fine] + torch.arange(sizes[fine])
            t[rows, offsets[coarse] + parent] = 0.5
    t = torch.maximum(t, t.T)
    t.fill_diagonal_(1.0)
    return t.float()


def relation_target_released(sizes: tuple[int, ...]) -> torch.Tensor:
    """The released target with its indexing slips (reference §3): the finest <-> middle block from
    the raster runs, the finest <-> coarsest block never filled, and the middle <-> coarsest block
    from slices that overlap by one token. (The reference records that the slices overlap, not their
    exact bounds; here each coarse token's slice runs one token past its share.)"""
    n0, n1, n2 = sizes
    t = torch.zeros(sum(sizes), sum(sizes))
    run = n0 // n1
    for i in range(n0):
        t[i, n0 + i // run] = t[n0 + i // run, i] = 0.5
    share = n1 // n2
    for j in range(n2):
        for i in range(j * share, min((j + 1) * share + 1, n1)):
            t[n0 + i, n0 + n1 + j] = t[n0 + n1 + j, n0 + i] = 0.5
    t.fill_diagonal_(1.0)
    return t


class MSTR(nn.Module):
    """Multi-scale token recycling for one modality (grid ``side`` x ``side`` patch tokens).

    Scales: all tokens; 2 x 2 pooled; pooled to 2 x 2 (ViT-B/16 at 224: 196, 49, 4 tokens). Each
    scale has its own 2-layer transformer encoder; the outputs are concatenated, ``Linear(T, 1)``
    over the token axis recycles them into one vector ``r``, and the image token becomes
    ``(1 - mix) · cls + mix · r``.
    """

    def __init__(self, dim: int, side: int, *, impl: str = "paper_intent", heads: int = 8, ffn: int = 2048,
                 layers: int = 2, dropout: float = 0.1, mix: float = 0.1, channels: int = 16):
        super().__init__()
        if impl not in MSTR_IMPLS:
            raise FgrError(f"mstr_impl must be one of {', '.join(MSTR_IMPLS)}, not {impl!r}")
        if side % 2:
            raise FgrError(f"MSTR needs an even token grid, got {side} x {side}")
        self.impl, self.side, self.mix, self.channels = impl, side, mix, channels
        sides = (side, side // 2, 2)
        self.sizes = tuple(s * s for s in sides)

        def encoder():
            layer = nn.TransformerEncoderLayer(dim, heads, ffn, dropout, batch_first=impl == "paper_intent")
            return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

        if impl == "paper_intent":
            self.encoders = nn.ModuleList(encoder() for _ in sides)
            target = relation_target_paper(sides)
        else:
            self.encoders = [encoder() for _ in sides]  # a plain list: not registered, as released
            target = relation_target_released(self.sizes)
        self.recycle = nn.Linear(sum(self.sizes), 1)
        self.register_buffer("relation_target", target, persistent=False)

    def scales(self, patches: torch.Tensor) -> list[torch.Tensor]:
        """(B, N, D) patch tokens -> the three scales' token sets."""
        b, n, d = patches.shape
        if n != self.side * self.side:
            raise FgrError(f"MSTR built for {self.side} x {self.side} tokens got {n}")
        if self.impl == "as_released":  # runs of s^2 consecutive raster-order tokens, averaged
            return [patches.reshape(b, n // (s * s), s, s, d).mean((2, 3)) for s in (1, 2, self.side // 2)]
        grid = patches.transpose(1, 2).reshape(b, d, self.side, self.side)
        pooled = [F.avg_pool2d(grid, 2), F.adaptive_avg_pool2d(grid, 2)]
        return [patches] + [p.flatten(2).transpose(1, 2) for p in pooled]

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (mixed image token (B, D), recycled tokens of all scales (B, T, D))."""
        outs = []
        for enc, x in zip(self.encoders, self.scales(patches)):
            if self.impl == "as_released":
                enc.to(x.device)  # unregistered, so .to() on the model never moved it
            outs.append(enc(x))
        tokens = torch.cat(outs, 1)
        r = self.recycle(tokens.transpose(1, 2))[..., 0]
        return (1 - self.mix) * cls + self.mix * r, tokens

    def relation_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        return token_relation_loss(tokens, self.relation_target, self.channels)


# --------------------------------------------------------------------------------------------
# ARNet and the triplet baseline
# --------------------------------------------------------------------------------------------

#: ARNet's four loss terms (:meth:`ARNet.loss`); an ablation trains with a subset
ARNET_LOSSES = ("l1", "l2", "l3", "l4")


class ARNet(nn.Module):
    """Two encoders (sketch, photo), optionally each with its MSTR module.

    For ablations the same encoder may be passed twice (one shared encoder, as the triplet baseline),
    and ``losses`` may keep only some of the four terms."""

    def __init__(self, sketch: Encoder, photo: Encoder, *, mstr: str | None = None, tau: float = 0.07,
                 mstr_heads: int = 8, mstr_ffn: int = 2048, losses: tuple[str, ...] = ARNET_LOSSES):
        super().__init__()
        losses = tuple(dict.fromkeys(losses))
        if not losses or set(losses) - set(ARNET_LOSSES):
            raise FgrError(f"arnet_losses must be a non-empty subset of {list(ARNET_LOSSES)}, not {list(losses)}")
        self.sketch, self.photo, self.tau, self.losses = sketch, photo, tau, losses
        self.mstr_sketch = self.mstr_photo = None
        if mstr is not None:
            grid = sketch.backbone.grid
            if grid[0] != grid[1]:
                raise FgrError(f"MSTR needs a square token grid, got {grid}")
            self.mstr_sketch = MSTR(sketch.backbone.dim, grid[0], impl=mstr, heads=mstr_heads, ffn=mstr_ffn)
            self.mstr_photo = MSTR(photo.backbone.dim, grid[0], impl=mstr, heads=mstr_heads, ffn=mstr_ffn)

    def _encode(self, encoder: Encoder, mstr: MSTR | None, x: torch.Tensor):
        """-> (projection, raw image token, recycled tokens or None)."""
        tokens = encoder.backbone(x)
        cls = encoder.backbone.cls(tokens)
        if mstr is None:
            return encoder.head(cls), cls, None
        mixed, recycled = mstr(cls, encoder.backbone.patches(tokens))
        return encoder.head(mixed), cls, recycled

    def embed_sketch(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._encode(self.sketch, self.mstr_sketch, x)[0], dim=-1)

    def embed_photo(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._encode(self.photo, self.mstr_photo, x)[0], dim=-1)

    def loss(self, skt: torch.Tensor, skt_aug: torch.Tensor, img: torch.Tensor,
             img_aug: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 NTX(proj skt, proj img) + L2 NTX(cls skt_aug, cls skt) + L3 NTX(cls img_aug, cls img)
        + L4 NTX(cls skt, cls img), unweighted (only the terms in ``losses``); with MSTR also each side's
        relation loss (views' CLS are the raw tokens, the projections come from the mixed ones)."""
        p_s, c_s, r_s = self._encode(self.sketch, self.mstr_sketch, skt)
        p_i, c_i, r_i = self._encode(self.photo, self.mstr_photo, img)
        parts = {}
        if "l1" in self.losses:
            parts["l1"] = nt_xent(p_s, p_i, self.tau)
        if "l2" in self.losses:
            parts["l2"] = nt_xent(self._encode(self.sketch, self.mstr_sketch, skt_aug)[1], c_s, self.tau)
        if "l3" in self.losses:
            parts["l3"] = nt_xent(self._encode(self.photo, self.mstr_photo, img_aug)[1], c_i, self.tau)
        if "l4" in self.losses:
            parts["l4"] = nt_xent(c_s, c_i, self.tau)
        if self.mstr_sketch is not None:
            parts["rec_sketch"] = self.mstr_sketch.relation_loss(r_s)
            parts["rec_photo"] = self.mstr_photo.relation_loss(r_i)
        total = sum(parts.values())
        return total, {k: float(v.detach()) for k, v in parts.items()}


class Siamese(nn.Module):
    """The triplet baseline: one encoder shared by sketches and photos."""

    def __init__(self, encoder: Encoder, margin: float = 0.3):
        super().__init__()
        self.encoder = encoder
        self.triplet = nn.TripletMarginLoss(margin=margin)

    def embed_sketch(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(x)[0], dim=-1)

    embed_photo = embed_sketch

    def loss(self, skt: torch.Tensor, img: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Triplet (sketch, its photo, another photo), margin on the L2 distance of normalised embeddings."""
        loss = self.triplet(self.embed_sketch(skt), self.embed_photo(img), self.embed_photo(neg))
        return loss, {"triplet": float(loss.detach())}


# --------------------------------------------------------------------------------------------
# Building a method from a run's parameters
# --------------------------------------------------------------------------------------------

def build_model(method: str, backbone: str, *, pretrained: bool = False, weights_path: str | None = None,
                img_size: int | None = None, trainable_blocks: int | None = None, embed_dim: int = 512,
                mstr_impl: str = "paper_intent", mstr_ffn: int = 2048, margin: float = 0.3,
                tau: float = 0.07, shared: bool = False, losses: tuple[str, ...] = ARNET_LOSSES) -> ARNet | Siamese:
    if method not in METHODS:
        raise FgrError(f"method must be one of {', '.join(METHODS)}, not {method!r}")

    def encoder() -> Encoder:
        bb = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path, img_size=img_size)
        set_trainable(bb, trainable_blocks)
        return Encoder(bb, embed_dim)

    if method == "triplet":
        return Siamese(encoder(), margin=margin)
    sketch = encoder()
    return ARNet(sketch, sketch if shared else encoder(), mstr=mstr_impl if method == "arnet_mstr" else None,
                 tau=tau, mstr_ffn=mstr_ffn, losses=tuple(losses))


def model_from_params(params: dict[str, Any], *, trained: bool = False) -> ARNet | Siamese:
    """The model a ``20_sbir_train`` run's parameters name (``trained``: no pretrained weights, a
    checkpoint is loaded over it)."""
    return build_model(params["method"], params["backbone"], pretrained=params["pretrained"] and not trained,
                       weights_path=(params["weights_path"] or None) if not trained else None,
                       img_size=params["img_size"], trainable_blocks=params["trainable_blocks"],
                       embed_dim=params["embed_dim"], mstr_impl=params["mstr_impl"], mstr_ffn=params["mstr_ffn"],
                       shared=params.get("arnet_shared", False),
                       losses=tuple(params.get("arnet_losses") or ARNET_LOSSES))


def encoders(model: ARNet | Siamese) -> dict[str, Any]:
    """The backbone that encodes each modality (one shared backbone for the siamese baseline)."""
    if isinstance(model, Siamese):
        return {"sketch": model.encoder.backbone, "photo": model.encoder.backbone}
    return {"sketch": model.sketch.backbone, "photo": model.photo.backbone}
