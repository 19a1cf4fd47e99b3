"""Random perturbations of the translated image before the guide reads it (expectation over transforms).

A frozen guide can be satisfied by pixel patterns it happens to read as the right class
(a generator finds them: the seg term falls while the judge sees flipped content). Such
patterns are fragile; content is not. Reading a randomly perturbed copy each step makes
the seg term reward what survives a change of brightness, contrast, noise and resolution,
and the gradient still flows to the translation (every operation is differentiable).

For strength s > 0, per image: contrast c ~ U(1 - s, 1 + s) about the image mean,
brightness b ~ U(-s/2, s/2), Gaussian noise of std 0.1 s, and with probability 1/2 a
down-up resampling (2x average pool, bilinear back) that removes the finest patterns;
the result is clamped to [-1, 1]. Random numbers come from torch's global generator (the
trainer checkpoints it), drawn on the image's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def perturb_for_guide(image: torch.Tensor, strength: float) -> torch.Tensor:
    """image float [B,3,H,W] in [-1,1] -> a perturbed copy (same shape); `strength` 0 returns `image`."""
    if strength <= 0:
        return image
    if image.ndim != 4:
        raise ValueError(f"perturb_for_guide: image must be float [B,3,H,W], got {tuple(image.shape)}")
    batch = image.shape[0]
    shape = (batch, 1, 1, 1)
    s = float(strength)
    draws = torch.rand((batch, 3), device=image.device, dtype=torch.float32)
    contrast = (1 - s + 2 * s * draws[:, 0]).view(shape).to(image.dtype)
    brightness = (s * (draws[:, 1] - 0.5)).view(shape).to(image.dtype)
    resample = (draws[:, 2] < 0.5).view(shape)
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    out = (image - mean) * contrast + mean + brightness
    out = out + 0.1 * s * torch.randn(image.shape, device=image.device, dtype=torch.float32).to(image.dtype)
    height, width = image.shape[-2:]
    if height >= 2 and width >= 2:
        coarse = F.interpolate(F.avg_pool2d(out, 2, ceil_mode=True), size=(height, width), mode="bilinear",
                               align_corners=False)
        out = torch.where(resample, coarse, out)
    return out.clamp(-1.0, 1.0)
