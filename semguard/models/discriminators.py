"""Multi-scale PatchGAN discriminator (pix2pixHD / SPADE style).

Each scale is a PatchGAN: a stack of 4x4 convolutions whose output is a map of logits,
one per overlapping image patch ("is this patch real?"). Scale s sees the image
average-pooled s times by 2, so coarse scales judge global layout and fine scales
texture. Spectral norm (optional) bounds each conv's Lipschitz constant and replaces
the instance norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


class PatchDiscriminator(nn.Module):
    """One PatchGAN. image float [B,in_channels,H,W] -> logits float [B,1,h,w].

    Layers: conv4x4 s2 (no norm), n_layers - 1 more conv4x4 s2 doubling channels (capped
    at 8*base), conv4x4 s1, conv4x4 s1 -> 1 channel. Padding 2 keeps h, w >= 1 for any
    input size (h ~ H / 2**n_layers + 2).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3,
                 spectral_norm: bool = True) -> None:
        super().__init__()

        def conv(cin: int, cout: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(cin, cout, 4, stride=stride, padding=2)
            return _spectral_norm(layer) if spectral_norm else layer

        def norm(channels: int) -> nn.Module:
            return nn.Identity() if spectral_norm else nn.InstanceNorm2d(channels, affine=True)

        layers: list[nn.Module] = [conv(in_channels, base_channels, 2), nn.LeakyReLU(0.2, inplace=True)]
        channels = base_channels
        for _ in range(1, n_layers):
            out = min(channels * 2, base_channels * 8)
            layers += [conv(channels, out, 2), norm(out), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        out = min(channels * 2, base_channels * 8)
        layers += [conv(channels, out, 1), norm(out), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(conv(out, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


class MultiScalePatchDiscriminator(nn.Module):
    """n_scales PatchGANs on the image at full, 1/2, 1/4, ... resolution.

    image: float [B,in_channels,H,W] (translated or real, in [-1,1]).
    Returns a list of n_scales logit maps [B,1,h_s,w_s], finest scale first.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3,
                 n_scales: int = 2, spectral_norm: bool = True) -> None:
        super().__init__()
        if n_scales < 1 or n_layers < 1:
            raise ValueError(f"MultiScalePatchDiscriminator needs n_scales >= 1 and n_layers >= 1, got {n_scales}, {n_layers}")
        self.scales = nn.ModuleList(
            [PatchDiscriminator(in_channels, base_channels, n_layers, spectral_norm) for _ in range(n_scales)]
        )

    @classmethod
    def from_config(cls, model_cfg) -> "MultiScalePatchDiscriminator":
        """Build from a semguard.config.ModelConfig (its `discriminator` section)."""
        d = model_cfg.discriminator
        return cls(in_channels=3, base_channels=d.base_channels, n_layers=d.n_layers,
                   n_scales=d.n_scales, spectral_norm=d.spectral_norm)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        if image.ndim != 4:
            raise ValueError(f"discriminator input must be float [B,C,H,W], got shape {tuple(image.shape)}")
        logits = []
        for index, scale in enumerate(self.scales):
            if index > 0:
                image = F.avg_pool2d(image, 3, stride=2, padding=1, count_include_pad=False)
            logits.append(scale(image))
        return logits
