"""SPADE: normalisation whose scale and shift are predicted, per pixel, from the conditioning.

Park et al., "Semantic Image Synthesis with Spatially-Adaptive Normalization" (2019).
A parameter-free normalisation would wash the label layout out of the features; SPADE
puts it back at every block, at that block's resolution:

    SPADE(x, m) = norm(x) * (1 + gamma(m')) + beta(m')

where norm is instance normalisation without affine parameters, m' is the conditioning
m resized to x's spatial size, and gamma, beta are small conv nets on m'.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize_condition(condition: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a conditioning tensor [B,C,H,W] to `size` (h, w).

    Downsampling averages ("area"), so a box one pixel wide still leaves a fractional
    trace at coarse resolutions instead of being skipped by nearest sampling.
    """
    if tuple(condition.shape[-2:]) == tuple(size):
        return condition
    if condition.shape[-2] >= size[0] and condition.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(condition, size)
    return F.interpolate(condition, size=size, mode="nearest")


class SpadeNorm(nn.Module):
    """SPADE normalisation of a feature map.

    x: float [B, norm_channels, h, w]; condition: float [B, condition_channels, H, W]
    (any H, W; resized to h, w). Returns norm(x) * (1 + gamma) + beta, same shape as x.
    With condition_channels == 0 this is instance norm with learned affine parameters
    (an unconditioned ablation with the same architecture), and condition must be None.
    """

    def __init__(self, norm_channels: int, condition_channels: int, hidden_channels: int = 64) -> None:
        super().__init__()
        self.condition_channels = condition_channels
        self.norm = nn.InstanceNorm2d(norm_channels, affine=condition_channels == 0)
        if condition_channels > 0:
            self.shared = nn.Sequential(nn.Conv2d(condition_channels, hidden_channels, 3, padding=1), nn.ReLU(inplace=True))
            self.gamma = nn.Conv2d(hidden_channels, norm_channels, 3, padding=1)
            self.beta = nn.Conv2d(hidden_channels, norm_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        normalized = self.norm(x)
        if self.condition_channels == 0:
            return normalized
        if condition is None:
            raise ValueError(f"SpadeNorm expects a condition with {self.condition_channels} channels, got None")
        hidden = self.shared(resize_condition(condition, x.shape[-2:]))
        return normalized * (1 + self.gamma(hidden)) + self.beta(hidden)


class SpadeResBlock(nn.Module):
    """SPADE residual block (Park et al.): two SPADE-ReLU-conv3x3 stages plus a shortcut.

    out = conv2(act(SPADE2(conv1(act(SPADE1(x, m))), m))) + shortcut(x, m)
    where shortcut = conv1x1(SPADE_s(x, m)) when in_channels != out_channels, else x.
    x: float [B, in_channels, h, w] -> [B, out_channels, h, w].
    """

    def __init__(self, in_channels: int, out_channels: int, condition_channels: int, hidden_channels: int = 64) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm1 = SpadeNorm(in_channels, condition_channels, hidden_channels)
        self.conv1 = nn.Conv2d(in_channels, middle, 3, padding=1)
        self.norm2 = SpadeNorm(middle, condition_channels, hidden_channels)
        self.conv2 = nn.Conv2d(middle, out_channels, 3, padding=1)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_shortcut = SpadeNorm(in_channels, condition_channels, hidden_channels)
            self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        shortcut = self.conv_shortcut(self.norm_shortcut(x, condition)) if self.learned_shortcut else x
        h = self.conv1(self.act(self.norm1(x, condition)))
        h = self.conv2(self.act(self.norm2(h, condition)))
        return shortcut + h
