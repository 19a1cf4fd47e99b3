"""A loss term as a constraint: a Lagrange multiplier that rises while the term is above its target.

A fixed weight on the seg-consistency term loses to an adversary that keeps getting
stronger: the generator trades a little guide cross-entropy for a lot of adversarial
gain, step after step (issue 28: the seg term rose 0.40 -> 0.82 over 1,200 steps while
the judge's pixel flip rose 11% -> 29%). GECO (Rezende & Viola, 2018) turns such a term
into a constraint C = term - target <= 0 with a multiplier lambda updated multiplicatively
from a running mean of C:

    average_t = s * average_{t-1} + (1 - s) * term_t          (average_1 = term_1)
    lambda_t  = clamp(lambda_{t-1} * exp(rate * (average_t - target)), low, high)

so lambda grows while the guide reads the translation worse than `target` and shrinks
once it reads it better; the generator step then weights the term by lambda. The update
uses the term's value averaged over ranks, so every rank holds the same lambda; its state
(lambda, the running mean) is part of the checkpoint, so a resumed run continues exactly.
"""

from __future__ import annotations

import math


class ConstraintMultiplier:
    """lambda for one constrained term; `update(term)` after each step returns the new lambda.

    initial: lambda at step 0 (loss.seg); target: the term's target value (loss.seg_target);
    rate: the update's step size (loss.seg_target_rate); smoothing: the running mean's
    factor s in [0, 1) (loss.seg_target_smoothing); low, high: lambda's bounds.
    """

    def __init__(self, initial: float, target: float, rate: float = 0.05, smoothing: float = 0.9,
                 low: float = 0.1, high: float = 100.0) -> None:
        if not low <= initial <= high:
            raise ValueError(f"initial multiplier {initial} outside [{low}, {high}]")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must lie in [0, 1), got {smoothing}")
        self.value = float(initial)
        self.target = float(target)
        self.rate = float(rate)
        self.smoothing = float(smoothing)
        self.low, self.high = float(low), float(high)
        self.average: float | None = None

    def update(self, term: float) -> float:
        """Fold one step's term value into the running mean and move lambda; returns the new lambda."""
        if not math.isfinite(term):
            raise ValueError(f"constrained term is {term}")
        if self.average is None:
            self.average = float(term)
        else:
            self.average = self.smoothing * self.average + (1.0 - self.smoothing) * float(term)
        step = self.rate * (self.average - self.target)
        self.value = min(self.high, max(self.low, self.value * math.exp(step)))
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
        self.average = None if state.get("average") is None else float(state["average"])
