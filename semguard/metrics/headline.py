"""The flip report's headline: pixel flip, its excess over the judge's floor, and a mean over
the classes the judge reads reliably, each with a bootstrap interval over frames.

A flip rate measures the judge as much as the translator. The paired truth (the source
layouts rendered in the target style: a perfect translation) gives the judge's own error on
exactly these layouts, its *floor*; what a translator adds on top of it is the *excess*:

    pixel_flip(v)            = sum_c flipped_c(v) / sum_c pixels_c            (pixels with a source label)
    excess_pixel_flip(v)     = pixel_flip(v) - pixel_flip(paired truth)
    reliable                 = {c : floor_c <= floor_max and judge IoU_c >= iou_min}
    reliable_mean_flip(v)    = mean_{c in reliable} flip_c(v)
    excess_reliable_mean(v)  = reliable_mean_flip(v) - reliable_mean_flip(paired truth)

Classes outside `reliable` are listed with the reason (floor too high, judge IoU too low,
absent from the target validation set), never averaged in silently. Without a paired set
the floor is unknown: only the IoU rule selects, no excess is given, and the report says so.

Intervals: the frames are resampled with replacement (`resamples` times, one seeded numpy
Generator); a variant and its floor are resampled with the same frame indices, so the
interval of an excess is that of a paired difference. The interval is the central
`level` share of the resampled values (percentile bootstrap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from semguard.labels import TRAIN_ID_NAMES

RELIABLE_FLOOR_MAX = 0.15
"""A class is read reliably when the judge flips at most this share of it on the paired truth..."""
RELIABLE_IOU_MIN = 0.5
"""...and reaches at least this IoU on the target validation set."""
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95


@dataclass(frozen=True)
class Reliability:
    """Which classes the headline mean averages over, and why the others are left out.

    reliable: class ids; unreliable: class id -> reason; floor_known: whether a floor selected.
    """

    reliable: tuple[int, ...]
    unreliable: dict[int, str] = field(default_factory=dict)
    floor_max: float = RELIABLE_FLOOR_MAX
    iou_min: float = RELIABLE_IOU_MIN
    floor_known: bool = True

    def to_dict(self) -> dict:
        return {
            "floor_max": self.floor_max,
            "iou_min": self.iou_min,
            "floor_known": self.floor_known,
            "reliable": [TRAIN_ID_NAMES[c] for c in self.reliable],
            "unreliable": {TRAIN_ID_NAMES[c]: reason for c, reason in sorted(self.unreliable.items())},
        }


def select_reliable(present: torch.Tensor, judge_iou: torch.Tensor, floor_rates: torch.Tensor | None,
                    floor_max: float = RELIABLE_FLOOR_MAX, iou_min: float = RELIABLE_IOU_MIN) -> Reliability:
    """Classes the judge reads reliably, among those present in the source labels.

    present: bool [K]; judge_iou: float [K], NaN where the class is absent from the target
    validation set; floor_rates: float [K] per-class flip rates of the paired truth (NaN where
    absent) or None when no paired set exists.
    """
    if present.ndim != 1 or judge_iou.shape != present.shape:
        raise ValueError(f"present {tuple(present.shape)} and judge_iou {tuple(judge_iou.shape)} must both be [K]")
    if floor_rates is not None and floor_rates.shape != present.shape:
        raise ValueError(f"floor_rates {tuple(floor_rates.shape)} must be [K] like present {tuple(present.shape)}")
    reliable, unreliable = [], {}
    for c in range(int(present.shape[0])):
        if not bool(present[c]):
            continue
        iou = float(judge_iou[c])
        reasons = []
        if math.isnan(iou):
            reasons.append("absent from the target validation set (judge IoU unknown)")
        elif iou < iou_min:
            reasons.append(f"judge IoU {iou:.2f} < {iou_min:.2f} on target val")
        if floor_rates is not None:
            floor = float(floor_rates[c])
            if math.isnan(floor):
                reasons.append("absent from the paired truth")
            elif floor > floor_max:
                reasons.append(f"floor {floor:.2f} > {floor_max:.2f} (judge misreads the paired truth)")
        if reasons:
            unreliable[c] = "; ".join(reasons)
        else:
            reliable.append(c)
    return Reliability(tuple(reliable), unreliable, floor_max, iou_min, floor_known=floor_rates is not None)


def _pixel_flip(counts: np.ndarray) -> np.ndarray:
    """counts [..., K, 2] (pixels, flipped) -> pixel flip rate [...]."""
    pixels = counts[..., 0].sum(-1)
    return np.where(pixels > 0, counts[..., 1].sum(-1) / np.maximum(pixels, 1), np.nan)


def _class_mean_flip(counts: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Mean of per-class flip rates over `classes` (classes without pixels skipped) -> [...]."""
    if not classes:
        return np.full(counts.shape[:-2], np.nan)
    chosen = counts[..., list(classes), :]
    pixels = chosen[..., 0]
    rates = np.where(pixels > 0, chosen[..., 1] / np.maximum(pixels, 1), np.nan)
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(rates)
        total = np.where(valid, rates, 0.0).sum(-1)
        count = valid.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _figure(value: float, samples: np.ndarray, level: float) -> dict:
    samples = samples[~np.isnan(samples)]
    if math.isnan(value):
        return {"value": None, "ci": None}
    if samples.size == 0:
        return {"value": float(value), "ci": None}
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return {"value": float(value), "ci": [float(low), float(high)]}


def headline_figures(counts: np.ndarray, reliability: Reliability, floor_counts: np.ndarray | None = None,
                     resamples: int = BOOTSTRAP_RESAMPLES, level: float = BOOTSTRAP_LEVEL, seed: int = 0) -> dict:
    """The headline figures of one variant, with percentile-bootstrap intervals over frames.

    counts: int [N,K,2], per frame and class the (pixels with that source label, pixels the
    judge read as another class); floor_counts: the same for the paired truth on the same N
    frames in the same order, or None. Returns {"pixel_flip_rate", "reliable_mean_flip_rate",
    "excess_pixel_flip_rate", "excess_reliable_mean_flip_rate"} each {"value", "ci": [lo, hi] | None}
    (excess entries None without a floor), plus "image_count" and "bootstrap" settings.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 3 or counts.shape[2] != 2:
        raise ValueError(f"counts must be [N,K,2] (pixels, flipped), got {counts.shape}")
    if floor_counts is not None:
        floor_counts = np.asarray(floor_counts, dtype=np.float64)
        if floor_counts.shape != counts.shape:
            raise ValueError(f"floor_counts {floor_counts.shape} must match counts {counts.shape} (same frames)")
    frames = counts.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(frames, np.full(frames, 1.0 / frames), size=resamples).astype(np.float64) \
        if frames > 0 and resamples > 0 else np.zeros((0, frames))
    boot = np.einsum("bn,nkj->bkj", weights, counts)
    total = counts.sum(0)
    classes = reliability.reliable
    out = {
        "pixel_flip_rate": _figure(float(_pixel_flip(total)), _pixel_flip(boot), level),
        "reliable_mean_flip_rate": _figure(float(_class_mean_flip(total, classes)), _class_mean_flip(boot, classes), level),
        "excess_pixel_flip_rate": None,
        "excess_reliable_mean_flip_rate": None,
    }
    if floor_counts is not None:
        floor_total = floor_counts.sum(0)
        floor_boot = np.einsum("bn,nkj->bkj", weights, floor_counts)
        out["excess_pixel_flip_rate"] = _figure(
            float(_pixel_flip(total) - _pixel_flip(floor_total)), _pixel_flip(boot) - _pixel_flip(floor_boot), level)
        out["excess_reliable_mean_flip_rate"] = _figure(
            float(_class_mean_flip(total, classes) - _class_mean_flip(floor_total, classes)),
            _class_mean_flip(boot, classes) - _class_mean_flip(floor_boot, classes), level)
    out["image_count"] = int(frames)
    out["bootstrap"] = {"resamples": int(resamples), "level": float(level), "seed": int(seed), "unit": "frame"}
    return out
