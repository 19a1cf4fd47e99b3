"""Exponential moving average of the generator's weights (the generator that ships).

GAN generators oscillate; the EMA of their weights gives steadier, usually better
translations. After generator step n (n = 1, 2, ...):

    ema = d_n * ema + (1 - d_n) * current,   d_n = min(decay, (1 + n) / (10 + n))

for every floating-point parameter and buffer; integer buffers are copied. The warm-up
term (1 + n) / (10 + n) keeps the EMA from clinging to the random initial weights in
short runs (with decay 0.999 alone, the EMA after 100 steps is still 90% initial).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """Keeps `self.model`, a frozen copy of a module whose weights track the EMA of the original."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1], got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """d_n of the module docstring for update number `step` (1-based)."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """ema <- d * ema + (1 - d) * model with d = decay_at(step) (floating tensors); other tensors copied."""
        decay = self.decay_at(step)
        current = model.state_dict()
        for name, ema_value in self.model.state_dict().items():
            value = current[name].detach()
            if ema_value.dtype.is_floating_point:
                ema_value.lerp_(value.to(ema_value.dtype), 1.0 - decay)
            else:
                ema_value.copy_(value)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state, strict=True)
