"""Adversarial losses over multi-scale discriminator outputs.

Each function takes a list of logit maps (one per discriminator scale; a single tensor
is accepted as a one-scale list), computes the loss per scale as a mean over all logits,
and averages over scales. Modes (D = discriminator logits, r = real, f = fake):

- "hinge":          L_D = mean(relu(1 - D(r))) + mean(relu(1 + D(f)));  L_G = -mean(D(f))
- "lsgan":          L_D = 0.5 * (mean((D(r) - 1)^2) + mean(D(f)^2));     L_G = mean((D(f) - 1)^2)
- "nonsaturating":  L_D = mean(softplus(-D(r))) + mean(softplus(D(f)));  L_G = mean(softplus(-D(f)))

(softplus(-x) = -log sigmoid(x): the non-saturating GAN loss of Goodfellow et al.)
Hinge L_D is 0 once real logits are >= 1 and fake logits <= -1.

Optional pixel weights (float [B,H,W] in [0,1], e.g. where paired source and target labels
agree) turn each mean into a weighted mean: the map is area-resized to each logit map, so
a patch counts by the share of its pixels that carry weight; sum(w * l) / sum(w), and 0
(still attached to the graph) where no weight is left.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

GAN_MODES: tuple[str, ...] = ("hinge", "lsgan", "nonsaturating")

Logits = torch.Tensor | Sequence[torch.Tensor]


def _as_list(logits: Logits, name: str) -> list[torch.Tensor]:
    items = [logits] if isinstance(logits, torch.Tensor) else list(logits)
    if not items:
        raise ValueError(f"{name}: expected at least one logit map, got an empty list")
    return items


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"unknown GAN loss mode '{mode}'; valid modes: {', '.join(GAN_MODES)}")


def weight_like(weight: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    """Pixel weights float [B,H,W] -> weights of the logit map [B,C,h,w] (area resize), or None."""
    if weight is None:
        return None
    if weight.ndim != 3 or logits.ndim != 4 or weight.shape[0] != logits.shape[0]:
        raise ValueError(f"pixel weight must be float [B,H,W] with the logits' B, got {tuple(weight.shape)} "
                         f"for logits {tuple(logits.shape)}")
    resized = F.interpolate(weight[:, None].to(torch.float32), size=logits.shape[-2:], mode="area")
    return resized.expand_as(logits)


def _mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum().clamp_min(1e-12)


def generator_loss(fake_logits: Logits, mode: str = "hinge", weight: torch.Tensor | None = None) -> torch.Tensor:
    """Generator's adversarial loss (scalar) on the discriminator's logits of translated images.

    weight: optional pixel weights float [B,H,W] (see the module docstring)."""
    _check_mode(mode)
    losses = []
    for fake in _as_list(fake_logits, "fake_logits"):
        w = weight_like(weight, fake)
        if mode == "hinge":
            losses.append(_mean(-fake, w))
        elif mode == "lsgan":
            losses.append(_mean((fake - 1).pow(2), w))
        else:
            losses.append(_mean(F.softplus(-fake), w))
    return torch.stack(losses).mean()


def discriminator_loss(real_logits: Logits, fake_logits: Logits, mode: str = "hinge",
                       weight: torch.Tensor | None = None, fake_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Discriminator's loss (scalar): real target images vs (detached) translated images.

    weight: optional pixel weights float [B,H,W] of each (real, fake) pair, applied to both;
    fake_weight: other weights for the fake images (then `weight` holds the real ones')."""
    _check_mode(mode)
    reals, fakes = _as_list(real_logits, "real_logits"), _as_list(fake_logits, "fake_logits")
    if len(reals) != len(fakes):
        raise ValueError(f"real_logits has {len(reals)} scales but fake_logits has {len(fakes)}")
    losses = []
    for real, fake in zip(reals, fakes):
        w_real, w_fake = weight_like(weight, real), weight_like(weight if fake_weight is None else fake_weight, fake)
        if mode == "hinge":
            losses.append(_mean(F.relu(1 - real), w_real) + _mean(F.relu(1 + fake), w_fake))
        elif mode == "lsgan":
            losses.append(0.5 * (_mean((real - 1).pow(2), w_real) + _mean(fake.pow(2), w_fake)))
        else:
            losses.append(_mean(F.softplus(-real), w_real) + _mean(F.softplus(fake), w_fake))
    return torch.stack(losses).mean()
