"""Layout agreement of two label maps, for layout-matched source/target pairs (FeaMGAN's segSim crops).

An adversary shown a target crop whose layout differs from the source crop's (sky above a
wide road vs facades above a narrow one) rewards the generator for painting the target
layout. Pairing each source crop with the target crop whose labels agree best removes
that reward at its root. Agreement is measured on a coarse grid, cheaply:

    coarse(label)[i, j] = label[floor((i + 0.5) H / G), floor((j + 0.5) W / G)]    (nearest, G x G)
    agreement(a, b) = #{cells: a = b, both labelled} / #{cells: both labelled}      (0 if none)

Label maps are train ids, uint8 or int [H,W], 255 = ignore; the two maps may differ in size.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from semguard.labels import IGNORE_ID


def coarse_layout(label: np.ndarray, grid: int) -> np.ndarray:
    """label [H,W] -> [grid, grid], nearest sample at each cell centre."""
    if label.ndim != 2:
        raise ValueError(f"coarse_layout: label must be [H,W], got shape {label.shape}")
    if grid < 1:
        raise ValueError(f"coarse_layout: grid must be >= 1, got {grid}")
    height, width = label.shape
    rows = ((np.arange(grid) + 0.5) * height / grid).astype(np.int64)
    cols = ((np.arange(grid) + 0.5) * width / grid).astype(np.int64)
    return label[np.minimum(rows, height - 1)][:, np.minimum(cols, width - 1)]


def layout_agreement(a: np.ndarray, b: np.ndarray, grid: int, ignore_index: int = IGNORE_ID) -> float:
    """Share of the grid cells labelled in both maps where the two labels are equal (0 if none)."""
    ca, cb = coarse_layout(a, grid), coarse_layout(b, grid)
    both = (ca != ignore_index) & (cb != ignore_index)
    count = int(both.sum())
    return float(((ca == cb) & both).sum()) / count if count else 0.0


def best_layout_match(source_label: np.ndarray, candidate_labels: Sequence[np.ndarray],
                      grid: int) -> tuple[int, float]:
    """(index, agreement) of the candidate agreeing best with `source_label` (the first one on ties)."""
    if not candidate_labels:
        raise ValueError("best_layout_match needs at least one candidate")
    scores = [layout_agreement(source_label, label, grid) for label in candidate_labels]
    best = int(np.argmax(scores))
    return best, scores[best]
