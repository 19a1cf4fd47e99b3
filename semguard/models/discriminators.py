"""Multi-scale PatchGAN discriminators (pix2pixHD / SPADE style), unconditional and projected.

Each scale is a PatchGAN: a stack of 4x4 convolutions whose output is a map of logits,
one per overlapping image patch ("is this patch real?"). Scale s sees the image
average-pooled s times by 2, so coarse scales judge global layout and fine scales
texture. Spectral norm (optional) bounds each conv's Lipschitz constant and replaces
the instance norm.

ProjectionPatchDiscriminator asks "is this patch a real patch *of its class*?": a projection
discriminator (Miyato & Koyama 2018) per patch, as Enhancing Photorealism Enhancement
(Richter et al. 2022) conditions its patch discriminators on label embeddings. With phi(x) the
patch's features, psi a linear read-out and e_k a learnt embedding of class k,

    D(x, k) = psi(phi(x)) + <e_k, phi(x)>

is given for every class at once (logits [B,K,h,w]); the adversary reads each patch's value at
its label (semguard.losses.adversary.ProjectionAdversary). A sky patch is thus compared with
real sky patches, not with whatever real frames hold at that place: it judges how a class
looks, not where it is, and its field of view is the PatchGAN's (n_layers; patch_receptive_field).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from semguard.labels import NUM_CLASSES


class PatchDiscriminator(nn.Module):
    """One PatchGAN. image float [B,in_channels,H,W] -> logits float [B,out_channels,h,w].

    Layers: conv4x4 s2 (no norm), n_layers - 1 more conv4x4 s2 doubling channels (capped
    at 8*base), conv4x4 s1, conv4x4 s1 -> 1 channel. Padding 2 keeps h, w >= 1 for any
    input size (h ~ H / 2**n_layers + 2).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3,
                 spectral_norm: bool = True, out_channels: int = 1) -> None:
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
        layers.append(conv(out, out_channels, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


def patch_receptive_field(n_layers: int) -> int:
    """Input pixels across that one logit of a PatchDiscriminator (its finest scale) sees: n_layers 4x4
    stride-2 convolutions and two 4x4 stride-1 ones give 1 + 3 (2^n - 1) + 6 * 2^n = 9 * 2^n - 2
    (34, 70, 142, 286 px at 2-5 layers). It does not grow with the frame: on frames k times larger,
    log2(k) more layers keep the same share of the layout."""
    return 9 * 2**n_layers - 2


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


class ProjectionPatchDiscriminator(nn.Module):
    """n_scales projected PatchGANs (module docstring) on the image at full, 1/2, 1/4, ... resolution.

    image: float [B,in_channels,H,W]. Returns a list of n_scales maps [B,num_classes,h_s,w_s],
    finest scale first: channel k at a patch is D(patch, k) = psi(phi) + <e_k, phi>, phi the
    scale's feature_channels features of the patch.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, n_scales: int = 2,
                 spectral_norm: bool = True, num_classes: int = NUM_CLASSES, feature_channels: int = 64) -> None:
        super().__init__()
        if n_scales < 1 or n_layers < 1 or num_classes < 1:
            raise ValueError("ProjectionPatchDiscriminator needs n_scales, n_layers and num_classes >= 1, got "
                             f"{n_scales}, {n_layers}, {num_classes}")
        wrap = _spectral_norm if spectral_norm else (lambda layer: layer)
        self.num_classes = num_classes
        self.features = nn.ModuleList([PatchDiscriminator(in_channels, base_channels, n_layers, spectral_norm,
                                                          out_channels=feature_channels) for _ in range(n_scales)])
        self.read_out = nn.ModuleList([wrap(nn.Conv2d(feature_channels, 1, 1)) for _ in range(n_scales)])
        self.embedding = nn.ModuleList([wrap(nn.Conv2d(feature_channels, num_classes, 1, bias=False))
                                        for _ in range(n_scales)])

    @classmethod
    def from_config(cls, model_cfg) -> "ProjectionPatchDiscriminator":
        """Build from a semguard.config.ModelConfig: the patch settings of its `discriminator` section."""
        d = model_cfg.discriminator
        return cls(in_channels=3, base_channels=d.base_channels, n_layers=d.n_layers, n_scales=d.n_scales,
                   spectral_norm=d.spectral_norm, feature_channels=4 * d.base_channels)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        if image.ndim != 4:
            raise ValueError(f"discriminator input must be float [B,C,H,W], got shape {tuple(image.shape)}")
        logits = []
        for index, (features, read_out, embedding) in enumerate(zip(self.features, self.read_out, self.embedding)):
            if index > 0:
                image = F.avg_pool2d(image, 3, stride=2, padding=1, count_include_pad=False)
            phi = F.leaky_relu(features(image), 0.2)
            logits.append(read_out(phi) + embedding(phi))
        return logits
