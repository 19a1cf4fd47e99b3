"""Segmentation discriminator (OASIS, Sushko et al. 2021): an adversary that reads labels.

A patch discriminator only asks "does this look real?", so it rewards the target data
set's *layout* (tree crowns where the simulator shows sky). This one is a segmenter with
num_classes + 1 outputs per pixel: on real target images it learns to read their target
labels, on translated images to read the extra class "fake" (index num_classes); the
generator is asked to make it read the *source* label on each translated pixel (losses:
semguard.losses.segmentation_adversarial). Painting trees into the sky then makes the
adversary read "vegetation" where the source says "sky": a penalty, not a reward.

Network: a U-Net of residual blocks with spectral norm. Encoder: n_levels blocks, each
halving the resolution (channels base, 2 base, ... capped at 8 base); decoder: n_levels
blocks, each doubling it and concatenating the encoder map of that resolution; a 1x1
conv gives the logits at the input resolution. Any H, W: the input is padded
(replicate) to a multiple of 2**n_levels and the logits are cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from semguard.labels import NUM_CLASSES


def _conv(cin: int, cout: int, kernel: int, spectral_norm: bool) -> nn.Module:
    layer = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
    return _spectral_norm(layer) if spectral_norm else layer


class _ResidualBlock(nn.Module):
    """x -> resample(x) + conv(lrelu(conv(lrelu(x)))), resample = avg-pool /2, nearest x2 or none."""

    def __init__(self, cin: int, cout: int, resample: str, spectral_norm: bool, first: bool = False) -> None:
        super().__init__()
        self.resample = resample
        self.first = first
        self.conv1 = _conv(cin, cout, 3, spectral_norm)
        self.conv2 = _conv(cout, cout, 3, spectral_norm)
        self.shortcut = _conv(cin, cout, 1, spectral_norm) if cin != cout else nn.Identity()

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(self._resample(x))
        h = x if self.first else F.leaky_relu(x, 0.2)
        if self.resample == "up":
            h = self._resample(h)
        h = self.conv2(F.leaky_relu(self.conv1(h), 0.2))
        if self.resample == "down":
            h = self._resample(h)
        return skip + h


class SegmentationDiscriminator(nn.Module):
    """image float [B,in_channels,H,W] in [-1,1] -> logits float [B,num_classes+1,H,W].

    Channel c < num_classes: "a real image showing train id c"; channel num_classes: "fake".
    """

    def __init__(self, in_channels: int = 3, num_classes: int = NUM_CLASSES, base_channels: int = 32,
                 n_levels: int = 4, spectral_norm: bool = True) -> None:
        super().__init__()
        if n_levels < 1 or base_channels < 1:
            raise ValueError(f"SegmentationDiscriminator needs n_levels >= 1 and base_channels >= 1, "
                             f"got {n_levels}, {base_channels}")
        self.num_classes = int(num_classes)
        self.fake_class = int(num_classes)
        self.size_multiple = 2 ** int(n_levels)
        widths = [min(base_channels * 2 ** i, base_channels * 8) for i in range(n_levels)]
        self.down = nn.ModuleList()
        channels = in_channels
        for index, width in enumerate(widths):
            self.down.append(_ResidualBlock(channels, width, "down", spectral_norm, first=index == 0))
            channels = width
        self.up = nn.ModuleList()
        # decoder level j (deepest first) takes the previous decoder map concatenated with the
        # encoder map of the same resolution (none above the first encoder level)
        for level in reversed(range(n_levels)):
            out = widths[level - 1] if level > 0 else base_channels
            cin = channels if level == n_levels - 1 else channels + widths[level]
            self.up.append(_ResidualBlock(cin, out, "up", spectral_norm))
            channels = out
        self.head = nn.Conv2d(channels, self.num_classes + 1, 1)

    @classmethod
    def from_config(cls, model_cfg) -> "SegmentationDiscriminator":
        """Build from a semguard.config.ModelConfig (its `discriminator` section)."""
        d = model_cfg.discriminator
        return cls(in_channels=3, num_classes=NUM_CLASSES, base_channels=d.seg_base_channels, n_levels=d.seg_levels,
                   spectral_norm=d.spectral_norm)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4:
            raise ValueError(f"discriminator input must be float [B,C,H,W], got shape {tuple(image.shape)}")
        height, width = int(image.shape[2]), int(image.shape[3])
        pad_h, pad_w = (-height) % self.size_multiple, (-width) % self.size_multiple
        x = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for index, block in enumerate(self.up):
            if index > 0:
                x = torch.cat([x, skips[-1 - index]], dim=1)
            x = block(x)
        return self.head(F.leaky_relu(x, 0.2))[:, :, :height, :width]


def receptive_field(n_levels: int, base_channels: int = 8, probe: int = 256) -> tuple[int, int]:
    """(height, width) in input pixels that one output pixel of an `n_levels` discriminator can see.

    Measured, not derived: the support of the input gradient of one output logit near the
    centre of a `probe` x `probe` input (float64, fixed random weights, no spectral norm; the
    support depends on the architecture only). It grows about 2x per level (the deepest level's
    3x3 convolutions act on 2**n_levels-pixel cells) and does not depend on the frame size: to
    bound it to the same share of the layout on frames k times larger, add log2(k) levels.
    """
    generator = torch.Generator().manual_seed(0)
    network = SegmentationDiscriminator(num_classes=2, base_channels=base_channels, n_levels=n_levels,
                                        spectral_norm=False).double()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.3)
    image = torch.zeros(1, 3, probe, probe, dtype=torch.float64, requires_grad=True)
    centre = probe // 2 + 1   # off the 2**k cell boundaries' symmetric point
    network(image)[0, 0, centre, centre].backward()
    support = image.grad.abs().sum(dim=(0, 1)) > 0
    rows = torch.nonzero(support.any(dim=1)).flatten()
    columns = torch.nonzero(support.any(dim=0)).flatten()
    if rows.numel() == 0:
        return 0, 0
    return int(rows[-1] - rows[0] + 1), int(columns[-1] - columns[0] + 1)
