"""Learning-rate schedules: constant, or constant then linear decay to zero (CUT/CycleGAN).

linear_decay: factor(step) = 1 for step < decay_start * steps, then falls linearly to 0
at step == steps.
"""

from __future__ import annotations

from typing import Callable


def lr_factor(schedule: str, steps: int, decay_start: float) -> Callable[[int], float]:
    """The multiplicative factor of the base learning rate after `step` optimiser steps."""
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "linear_decay":
        start = int(round(decay_start * steps))
        span = max(1, steps - start)

        def factor(step: int) -> float:
            if step < start:
                return 1.0
            return max(0.0, 1.0 - (step - start) / span)

        return factor
    raise ValueError(f"unknown learning-rate schedule '{schedule}'; valid: constant, linear_decay")
