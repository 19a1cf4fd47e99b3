"""The downstream detector: torchvision's FCOS on a small backbone, trained from scratch.

Why a module of its own: the benchmark asks "does a detector trained on translated frames
find the real boxes?", and the answer must come from a well-kept detector (torchvision's
FCOS: its loss, box coder, NMS) that no download can feed. Every part is built here with
`weights=None`; nothing is fetched.

Why the anchor centres move: torchvision's AnchorGenerator puts the point of feature cell i
at pixel i * stride (the cell's corner), and FCOS only assigns a box to points strictly inside
it, so a 3x4 box between two corners gets no positive point at all. `CellCentreAnchors` puts
the point at the cell's centre, (i + 1/2) * stride in half-open pixel coordinates, so any box at
least one stride wide holds one; and the finest level has stride 2, because the objects of
small frames (a 64x128 toy frame's lights are 3x6 px) are smaller than a stride-8 cell.

`build_detector(**build)` rebuilds a detector from the plain `build` dict a checkpoint holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import FeaturePyramidNetwork

from semguard.errors import ConfigError


class CellCentreAnchors(AnchorGenerator):
    """torchvision's AnchorGenerator with each point at its cell's centre (module docstring)."""

    def grid_anchors(self, grid_sizes: list[list[int]], strides: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        anchors = super().grid_anchors(grid_sizes, strides)
        out = []
        for level_anchors, (stride_h, stride_w) in zip(anchors, strides):
            half = torch.stack([stride_w, stride_h, stride_w, stride_h]).to(level_anchors) / 2
            out.append(level_anchors + half)
        return out


def _conv_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    """A plain CNN of len(channels) stages, each halving the size, with an FPN on top.

    forward(image float [B,3,H,W]) -> OrderedDict of [B,fpn_channels,H/s,W/s], one per stage,
    strides s = 2, 4, 8, ... (2**k for stage k = 1..len(channels)).
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128), fpn_channels: int = 32):
        super().__init__()
        stages, previous = [], 3
        for width in channels:
            stages.append(_conv_block(previous, int(width), stride=2))
            previous = int(width)
        self.stages = nn.ModuleList(stages)
        self.fpn = FeaturePyramidNetwork([int(c) for c in channels], int(fpn_channels))
        self.out_channels = int(fpn_channels)
        self.strides = tuple(2 ** (k + 1) for k in range(len(channels)))

    def forward(self, image: torch.Tensor) -> OrderedDict:
        features, x = OrderedDict(), image
        for index, stage in enumerate(self.stages):
            x = stage(x)
            features[str(index)] = x
        return self.fpn(features)


class Resnet18Backbone(nn.Module):
    """torchvision's resnet18 (random weights) and an FPN over its last len(channels) stages
    (strides 4, 8, 16, 32 for all four). channels: ignored beyond their count (resnet18's own)."""

    RESNET_CHANNELS = (64, 128, 256, 512)

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512), fpn_channels: int = 64):
        super().__init__()
        levels = len(channels)
        if not 1 <= levels <= 4:
            raise ConfigError(f"the resnet18 detector backbone has 1..4 FPN levels, got {levels}")
        net = resnet18(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.first = 4 - levels
        self.fpn = FeaturePyramidNetwork(list(self.RESNET_CHANNELS[self.first:]), int(fpn_channels))
        self.out_channels = int(fpn_channels)
        self.strides = tuple(2 ** (k + 2) for k in range(self.first, 4))

    def forward(self, image: torch.Tensor) -> OrderedDict:
        x, features = self.stem(image), OrderedDict()
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index >= self.first:
                features[str(index)] = x
        return self.fpn(features)


BACKBONES = {"tiny": TinyBackbone, "resnet18": Resnet18Backbone}

DEFAULT_BUILD = {
    "backbone": "tiny",
    "channels": [16, 32, 64, 128],
    "fpn_channels": 32,
    "head_convs": 2,
    "score_thresh": 0.05,
    "nms_thresh": 0.6,
    "detections_per_img": 100,
}


def build_detector(*, num_classes: int, size: Sequence[int], backbone: str = "tiny",
                   channels: Sequence[int] = (16, 32, 64, 128), fpn_channels: int = 32, head_convs: int = 2,
                   score_thresh: float = 0.05, nms_thresh: float = 0.6, detections_per_img: int = 100) -> FCOS:
    """An FCOS detector with random weights (nothing downloaded).

    num_classes: detector classes (labels 0..num_classes-1, no background class: FCOS scores
    each class with a sigmoid). size: (H, W) the detector sees: frames are resized (aspect
    kept) so that they fit min_size = min(H, W) and max_size = max(H, W); frames of that size
    are not resized. backbone: a BACKBONES name; channels: its stage widths (one FPN level
    each); fpn_channels: a multiple of 32 (FCOSHead's GroupNorm has 32 groups); head_convs:
    convolutions in each head tower. score_thresh, nms_thresh, detections_per_img: FCOS
    post-processing (a low score threshold keeps the low-confidence tail that mAP integrates).
    The returned model carries `.build`, the arguments that rebuild it.
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown detector backbone {backbone!r}; valid backbones: {', '.join(BACKBONES)}")
    if int(fpn_channels) <= 0 or int(fpn_channels) % 32:
        raise ConfigError(f"detector fpn_channels must be a positive multiple of 32 (FCOSHead's GroupNorm), "
                          f"got {fpn_channels}")
    if int(num_classes) < 1:
        raise ConfigError(f"detector num_classes must be at least 1, got {num_classes}")
    if len(size) != 2 or min(int(s) for s in size) < 8:
        raise ConfigError(f"detector size must be (H, W) of at least 8 px, got {tuple(size)}")
    features = BACKBONES[backbone](channels=channels, fpn_channels=fpn_channels)
    # anchor size = stride: FCOS reads a level's object-size range as [4, 8] x the anchor size
    anchors = CellCentreAnchors(tuple((s,) for s in features.strides), ((1.0,),) * len(features.strides))
    head = FCOSHead(features.out_channels, 1, int(num_classes), num_convs=int(head_convs))
    height, width = (int(s) for s in size)
    model = FCOS(features, int(num_classes), min_size=min(height, width), max_size=max(height, width),
                 image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], anchor_generator=anchors, head=head,
                 score_thresh=float(score_thresh), nms_thresh=float(nms_thresh),
                 detections_per_img=int(detections_per_img))
    model.build = {"num_classes": int(num_classes), "size": [height, width], "backbone": backbone,
                   "channels": [int(c) for c in channels], "fpn_channels": int(fpn_channels),
                   "head_convs": int(head_convs), "score_thresh": float(score_thresh),
                   "nms_thresh": float(nms_thresh), "detections_per_img": int(detections_per_img)}
    return model
