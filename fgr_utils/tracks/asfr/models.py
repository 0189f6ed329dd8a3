"""Building one of the attribute track's methods from a run's parameters: a trunk, a head on it and,
for RPF, the patch backbone."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from fgr_utils.backbones import create_backbone
from fgr_utils.errors import FgrError
from fgr_utils.losses import AutomaticWeightedLoss
from fgr_utils.tracks.base import config_from
from fgr_utils.tracks.asfr.heads import build_model
from fgr_utils.tracks.asfr.trunks import create_trunk

#: AG-MAN's loss weighting: ``learned`` uncertainty weights, or ``equal`` (as released: never optimised)
LOSS_WEIGHTING = ("learned", "equal")


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
    agman_multilevel: bool = True  # ablation switches of AG-MAN (heads.AGMAN)
    agman_mask: bool = True

    def __post_init__(self):
        if self.loss_weighting not in LOSS_WEIGHTING:
            raise FgrError(f"loss_weighting must be one of {', '.join(LOSS_WEIGHTING)}, not {self.loss_weighting!r}")

    @classmethod
    def from_params(cls, params: dict[str, Any], n_attr: int, *, trained: bool = False) -> ModelConfig:
        """The model a ``30_asfr_train`` run's parameters name; ``trained``: without pretrained weights,
        because a trained checkpoint is loaded over it and is then the only source of every weight
        (the student fork of RPF overwrote its fine-tuned patch ViT by loading ImageNet weights after it)."""
        given = {"pretrained": False, "patch_pretrained": False} if trained else {}
        return config_from(cls, params, n_attr=n_attr, **given)


def build(cfg: ModelConfig) -> nn.Module:
    """The trunk, then the patch backbone (RPF), then the head, in that order (the weights drawn from the
    RNG depend on it)."""
    trunk = create_trunk(cfg.trunk, pretrained=cfg.pretrained, weights_path=cfg.weights_path or None,
                         width=cfg.width)
    dims: dict[str, Any] = {"attr_dim": cfg.attr_dim, "hidden": cfg.hidden}
    if cfg.method != "asen_v2":  # ASENet_V2's embedding is the trunk's layer3 width
        dims["embed_dim"] = cfg.agman_dim if cfg.method == "agman" else cfg.embed_dim
    if cfg.method == "agman":
        dims.update(multilevel=cfg.agman_multilevel, mask=cfg.agman_mask)
    if cfg.method == "rpf":
        dims["patch_backbone"] = create_backbone(cfg.patch_backbone, pretrained=cfg.patch_pretrained,
                                                 weights_path=cfg.patch_weights_path or None)
    model = build_model(cfg.method, trunk, cfg.n_attr, **dims)
    if cfg.method == "agman":
        model.loss_weights = AutomaticWeightedLoss(2)
        model.loss_weights.requires_grad_(cfg.loss_weighting == "learned")
    return model
