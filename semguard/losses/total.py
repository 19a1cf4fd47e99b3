"""The one place named loss terms are weighted and summed.

Every trainer step builds a dict of named, unweighted terms ({"gan": ..., "nce": ...,
"seg": ..., "box": ...}); `weighted_sum` multiplies each by its config weight and sums:

    total = sum_k weights[k] * terms[k]

for the generator's, the discriminator's and a training guide's step alike.
"""

from __future__ import annotations

from typing import Mapping

import torch


def weighted_sum(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """total = sum_k weights[k] * terms[k], a scalar tensor in the terms' graph.

    terms: name -> scalar tensor (unweighted). weights: name -> float; every term must have
    a weight (a missing one is a ValueError naming it; extra weights are fine: terms that
    were switched off are simply not computed). Terms whose weight is 0 are not added, so a
    NaN in a switched-off term cannot poison the total. No device sync: the trainer logs the
    unweighted terms itself (one reduction over ranks for all of them).
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
    return next(iter(terms.values())) * 0.0 if total is None else total
