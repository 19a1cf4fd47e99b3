"""The one place named loss terms are weighted and summed.

Every trainer step builds a dict of named, unweighted terms ({"gan": ..., "nce": ...,
"seg": ..., "box": ...}); `weighted_sum` multiplies each by its config weight and sums:

    total = sum_k weights[k] * terms[k]

and returns, for logging, every unweighted term and the total as plain floats (one
device sync for all of them).
"""

from __future__ import annotations

import math
from typing import Mapping

import torch


def weighted_sum(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """total = sum_k weights[k] * terms[k]; returns (total, {name: float(term), ..., "total": float}).

    terms: name -> scalar tensor (unweighted). weights: name -> float; every term must have
    a weight (a missing one is a ValueError naming it; extra weights are fine: terms that
    were switched off are simply not computed). Terms whose weight is 0 are logged but
    not added, so a NaN in a switched-off term cannot poison the total.
    Logged floats are the unweighted terms; check them with `nonfinite_terms`.
    """
    if not terms:
        raise ValueError("weighted_sum needs at least one loss term")
    missing = [name for name in terms if name not in weights]
    if missing:
        raise ValueError(f"loss terms without a weight: {missing}; weights given for: {sorted(weights)}")
    total = None
    for name, value in terms.items():
        if value.ndim != 0:
            raise ValueError(f"loss term '{name}' must be a scalar tensor, got shape {tuple(value.shape)}")
        weight = float(weights[name])
        if weight == 0.0:
            continue
        contribution = value * weight
        total = contribution if total is None else total + contribution
    if total is None:
        total = next(iter(terms.values())) * 0.0
    names = list(terms) + ["total"]
    values = torch.stack([v.detach().float() for v in terms.values()] + [total.detach().float()]).cpu().tolist()
    return total, dict(zip(names, values))


def nonfinite_terms(logged: Mapping[str, float]) -> list[str]:
    """Names of logged terms that are NaN or infinite (the trainer stops on any)."""
    return [name for name, value in logged.items() if not math.isfinite(value)]
