"""Adversarial losses over multi-scale discriminator outputs.

Each function takes a list of logit maps (one per discriminator scale; a single tensor
is accepted as a one-scale list), computes the loss per scale as a mean over all logits,
and averages over scales. Modes (D = discriminator logits, r = real, f = fake):

- "hinge":          L_D = mean(relu(1 - D(r))) + mean(relu(1 + D(f)));  L_G = -mean(D(f))
- "lsgan":          L_D = 0.5 * (mean((D(r) - 1)^2) + mean(D(f)^2));     L_G = mean((D(f) - 1)^2)
- "nonsaturating":  L_D = mean(softplus(-D(r))) + mean(softplus(D(f)));  L_G = mean(softplus(-D(f)))

(softplus(-x) = -log sigmoid(x): the non-saturating GAN loss of Goodfellow et al.)
Hinge L_D is 0 once real logits are >= 1 and fake logits <= -1.
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


def generator_loss(fake_logits: Logits, mode: str = "hinge") -> torch.Tensor:
    """Generator's adversarial loss (scalar) on the discriminator's logits of translated images."""
    _check_mode(mode)
    losses = []
    for fake in _as_list(fake_logits, "fake_logits"):
        if mode == "hinge":
            losses.append(-fake.mean())
        elif mode == "lsgan":
            losses.append((fake - 1).pow(2).mean())
        else:
            losses.append(F.softplus(-fake).mean())
    return torch.stack(losses).mean()


def discriminator_loss(real_logits: Logits, fake_logits: Logits, mode: str = "hinge") -> torch.Tensor:
    """Discriminator's loss (scalar): real target images vs (detached) translated images."""
    _check_mode(mode)
    reals, fakes = _as_list(real_logits, "real_logits"), _as_list(fake_logits, "fake_logits")
    if len(reals) != len(fakes):
        raise ValueError(f"real_logits has {len(reals)} scales but fake_logits has {len(fakes)}")
    losses = []
    for real, fake in zip(reals, fakes):
        if mode == "hinge":
            losses.append(F.relu(1 - real).mean() + F.relu(1 + fake).mean())
        elif mode == "lsgan":
            losses.append(0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean()))
        else:
            losses.append(F.softplus(-real).mean() + F.softplus(fake).mean())
    return torch.stack(losses).mean()
