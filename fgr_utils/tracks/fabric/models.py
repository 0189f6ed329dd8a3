"""The printed-fabric models: stage-1 global descriptor and stage-2 query-guided attention (QGA).

Stage 1 (``GlobalModel``): CLS token -> Linear(D, D) -> GELU -> Linear(D, 256); cosine similarity
at retrieval time (no normalisation inside the model), as released.

Stage 2 (``QGAModel``): the query motif's CLS token attends over a candidate fabric's patch tokens
(``nn.MultiheadAttention``, 8 heads, dropout 0.1); both sides are projected to 256-d
(``L2norm(GELU(Linear))``) and compared by cosine. ``attention_align`` is the released code's dead
head, kept only so state dicts stay compatible.

Because the candidate's tokens do not depend on the query, a shortlist is re-ranked from cached
tokens: :meth:`QGAModel.score_cached` computes the attention from the tokens with the module's own
projection weights, for all candidates of a query in one call, and gives the same scores as
:meth:`QGAModel.score` (tested to 1e-5).

Initialisation: ``attention_init="pytorch"`` is ``nn.MultiheadAttention``'s own (as released);
``"matching"`` (:meth:`QGAModel.matching_init`) starts the head as a soft nearest-patch matcher.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fgr_utils.errors import FgrError
from fgr_utils.backbones import Backbone, create_backbone, set_trainable


class GlobalModel(nn.Module):
    def __init__(self, backbone: Backbone, out_dim: int = 256):
        super().__init__()
        self.backbone = backbone
        d = backbone.dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.cls(self.backbone(x)))


def _proj(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(F.gelu(layer(x)), dim=-1)


ATTENTION_INITS = ("pytorch", "matching")


def _sign_split(d: int, p: int, generator: torch.Generator) -> torch.Tensor:
    """A (p, d) weight whose GELU output keeps both signs of the input: rows +x then -x.

    With p >= d every channel appears with + sign and as many as fit with - sign (zeros pad the rest);
    with p < d, a random orthonormal p/2-dimensional projection R of x enters as [Rx; -Rx].
    """
    if p >= d:
        w = torch.cat([torch.eye(d), -torch.eye(d), torch.zeros(max(p - 2 * d, 0), d)])[:p]
    else:
        r = torch.linalg.qr(torch.randn(d, p // 2, generator=generator))[0].T  # (p/2, d), orthonormal rows
        w = torch.cat([r, -r, torch.zeros(p % 2, d)])
    return w


class QGAModel(nn.Module):
    def __init__(self, backbone: Backbone, *, heads: int = 8, proj_dim: int = 256, dropout: float = 0.1,
                 attention_init: str = "pytorch"):
        super().__init__()
        self.backbone = backbone
        d = backbone.dim
        self.heads = heads
        self.attention = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.query_projection = nn.Linear(d, proj_dim)
        self.target_projection = nn.Linear(d, proj_dim)
        self.attention_align = nn.Linear(d, proj_dim)  # dead head of the release (never used)
        if attention_init not in ATTENTION_INITS:
            raise FgrError(f"attention_init must be one of {', '.join(ATTENTION_INITS)}, not {attention_init!r}")
        if attention_init == "matching":
            self.matching_init()

    @torch.no_grad()
    def matching_init(self, sharpness: float = 20.0, seed: int = 0) -> None:
        """Start the head as a soft nearest-patch matcher of the query token among the candidate's tokens.

        Query and key projections are the identity (the query's scaled so a head's logit is about
        ``sharpness`` x the cosine of the two tokens' channel slices, for tokens after a LayerNorm),
        values and output projection the identity, so the context is a softmax-weighted average of
        the best-matching patches; both 256-d projections keep the sign of every channel through the
        GELU (:func:`_sign_split`), so the initial score is close to the cosine of the query token and
        that context, and training refines a matcher that already works.
        """
        d = self.backbone.dim
        eye = torch.eye(d)
        scale = sharpness / math.sqrt(d // self.heads)  # logit = scale * q_h.k_h / sqrt(d_h); q_h.k_h ~ d_h cos
        self.attention.in_proj_weight.copy_(torch.cat([scale * eye, eye, eye]))
        self.attention.in_proj_bias.zero_()
        self.attention.out_proj.weight.copy_(eye)
        self.attention.out_proj.bias.zero_()
        generator = torch.Generator().manual_seed(seed)
        for layer in (self.query_projection, self.target_projection):
            layer.weight.copy_(_sign_split(d, layer.out_features, generator))
            layer.bias.zero_()

    # -- encoders ------------------------------------------------------------------------------
    def encode_query(self, x: torch.Tensor) -> torch.Tensor:
        """Query images -> CLS tokens (B, D)."""
        return self.backbone.cls(self.backbone(x))

    def encode_candidates(self, x: torch.Tensor) -> torch.Tensor:
        """Candidate images -> patch tokens (B, N, D); the CLS token is excluded."""
        return self.backbone.patches(self.backbone(x))

    def project_query(self, q: torch.Tensor) -> torch.Tensor:
        return _proj(self.query_projection, q)

    def project_target(self, context: torch.Tensor) -> torch.Tensor:
        return _proj(self.target_projection, context)

    # -- attention -----------------------------------------------------------------------------
    def attend(self, q: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) queries over (B, N, D) tokens -> context (B, D), head-averaged weights (B, N)."""
        context, weights = self.attention(q[:, None], tokens, tokens, need_weights=True,
                                          average_attn_weights=True)
        return context[:, 0], weights[:, 0]

    def score(self, q: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine score of each (query, candidate) pair (B,) and the attention map (B, N)."""
        context, weights = self.attend(q, tokens)
        return (self.project_query(q) * self.project_target(context)).sum(-1), weights

    def forward(self, query_images: torch.Tensor, candidate_images: torch.Tensor):
        """The released per-pair forward: encodes both images every time (used by the naive baseline)."""
        return self.score(self.encode_query(query_images), self.encode_candidates(candidate_images))

    # -- cached re-ranking ---------------------------------------------------------------------
    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # (B, H, N, d_h)

    def keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention's key and value projections of candidate tokens (B, N, D) each."""
        d = tokens.shape[-1]
        w, b = self.attention.in_proj_weight, self.attention.in_proj_bias
        k = F.linear(tokens, w[d:2 * d], b[d:2 * d])
        v = F.linear(tokens, w[2 * d:], b[2 * d:])
        return k, v

    def score_cached(self, q: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One query (D,) against K candidates' tokens (K, N, D) in one call -> scores (K,), maps (K, N).

        Same numbers as :meth:`score` in eval mode, without re-encoding anything.
        """
        d = tokens.shape[-1]
        w, b = self.attention.in_proj_weight, self.attention.in_proj_bias
        k, v = self.keys_values(tokens)
        qh = F.linear(q, w[:d], b[:d]).view(1, self.heads, 1, d // self.heads)  # (1, H, 1, d_h)
        att = torch.softmax(qh @ self._split_heads(k).transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        ctx = (att @ self._split_heads(v)).transpose(1, 2).reshape(tokens.shape[0], d)  # (K, D)
        ctx = self.attention.out_proj(ctx)
        scores = self.project_target(ctx) @ self.project_query(q)
        return scores, att.mean(1)[:, 0]


# --------------------------------------------------------------------------------------------
# Building the two models from a run's parameters
# --------------------------------------------------------------------------------------------

def build_global(backbone: str, *, pretrained: bool = False, weights_path: str | None = None,
                 img_size: int | None = None, trainable_blocks: int | None = 2, out_dim: int = 256) -> GlobalModel:
    bb = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path, img_size=img_size)
    set_trainable(bb, trainable_blocks)
    return GlobalModel(bb, out_dim)


def build_qga(backbone: str, *, pretrained: bool = False, weights_path: str | None = None,
              img_size: int | None = None, trainable_blocks: int | None = 2, heads: int = 8,
              init_backbone: dict | None = None, attention_init: str = "pytorch") -> QGAModel:
    """A separate stage-2 network; ``init_backbone`` (a backbone state dict) starts it from stage 1's.

    ``attention_init``: ``"pytorch"`` (as released) or ``"matching"`` (see :meth:`QGAModel.matching_init`).
    """
    bb = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path, img_size=img_size)
    if init_backbone is not None:
        bb.load_state_dict(init_backbone)
    set_trainable(bb, trainable_blocks)
    return QGAModel(bb, heads=heads, attention_init=attention_init)


def _weights(params: dict[str, Any], trained: bool) -> dict[str, Any]:
    """Pretrained weights for a model about to be trained; none under a trained checkpoint (the
    checkpoint is then the only source of every weight)."""
    if trained:
        return {"pretrained": False, "weights_path": None}
    return {"pretrained": params["pretrained"], "weights_path": params["weights_path"] or None}


def global_from_params(params: dict[str, Any], *, trained: bool = False) -> GlobalModel:
    """The stage-1 model a ``10_fabric_global`` run's parameters name (``trained``: to load its checkpoint)."""
    return build_global(params["backbone"], **_weights(params, trained), img_size=params["img_size"],
                        trainable_blocks=params["trainable_blocks"])


def qga_from_params(params: dict[str, Any], *, trained: bool = False, init_backbone: dict | None = None) -> QGAModel:
    """The stage-2 model an ``11_fabric_rerank`` run's parameters name (``trained``: to load its checkpoint)."""
    return build_qga(params["backbone"], **_weights(params, trained), img_size=params["img_size"],
                     trainable_blocks=params["trainable_blocks"], heads=params["heads"], init_backbone=init_backbone,
                     attention_init=params["attention_init"])


def backbone_state(checkpoint: dict[str, Any]) -> dict:
    """The backbone weights of a saved model's checkpoint."""
    prefix = "backbone."
    return {k[len(prefix):]: v for k, v in checkpoint["model"].items() if k.startswith(prefix)}
