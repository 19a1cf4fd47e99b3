"""Segmentation consistency: the guide segmenter must read the source labels off the translation.

If translation paints trees where the simulator put sky, a segmenter applied to the
translated image disagrees with the source label map; penalising that disagreement is
the direct cure for semantic flipping (CyCADA's semantic loss). The loss is pixel-wise
cross-entropy against the *source* labels, ignoring 255:

    L_seg = sum_p w[y_p] * CE(logits_p, y_p) / sum_p w[y_p]     over pixels p with y_p != 255

(PyTorch's weighted mean). With no weights w = 1 and this is the plain mean CE.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from semguard.labels import IGNORE_ID
from semguard.losses.class_weights import class_weight_vector


def seg_consistency_pixels(logits: torch.Tensor, label: torch.Tensor,
                           class_weights: torch.Tensor | Mapping[str | int, float] | None = None,
                           ignore_index: int = IGNORE_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel cross-entropy and per-pixel weight (0 where ignored): float [B,H,W] each.

    Arguments as seg_consistency_loss, which is (ce * weight).sum() / weight.sum().
    """
    if logits.ndim != 4 or label.ndim != 3 or logits.shape[0] != label.shape[0]:
        raise ValueError(f"logits must be [B,K,h,w] and label [B,H,W] with the same B, got "
                         f"{tuple(logits.shape)} and {tuple(label.shape)}")
    if logits.shape[-2:] != label.shape[-2:]:
        logits = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
    weight = None
    if class_weights is not None:
        if isinstance(class_weights, torch.Tensor):
            weight = class_weights
        else:
            weight = class_weight_vector(class_weights, logits.shape[1], where="loss.seg_class_weights")
        if weight.shape != (logits.shape[1],):
            raise ValueError(f"class_weights must have shape [{logits.shape[1]}], got {tuple(weight.shape)}")
        weight = weight.to(device=logits.device, dtype=torch.float32)
    valid = label != ignore_index
    target = torch.where(valid, label, torch.zeros_like(label)).long()
    per_pixel = F.cross_entropy(logits, target, reduction="none")  # [B,H,W]
    pixel_weight = valid.to(per_pixel.dtype)
    if weight is not None:
        pixel_weight = pixel_weight * weight[target]
    return per_pixel, pixel_weight


def weighted_pixel_mean(per_pixel: torch.Tensor, pixel_weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean as in F.cross_entropy, without a device sync; 0 (attached) when nothing counts."""
    return (per_pixel * pixel_weight).sum() / pixel_weight.sum().clamp_min(1e-12)


def seg_consistency_loss(logits: torch.Tensor, label: torch.Tensor,
                         class_weights: torch.Tensor | Mapping[str | int, float] | None = None,
                         ignore_index: int = IGNORE_ID) -> torch.Tensor:
    """Cross-entropy of the guide's logits on the translated image against the source labels.

    logits: float [B,K,h,w] (the guide segmenter's output; resized bilinearly to H,W when
    h,w differ). label: int64 [B,H,W] source train ids, `ignore_index` = ignore.
    class_weights: float [K], or {class name or id: weight} (others 1), or None.
    Returns a scalar; 0 (still attached to the graph) when every pixel is ignored or has
    weight 0.
    """
    return weighted_pixel_mean(*seg_consistency_pixels(logits, label, class_weights, ignore_index))
