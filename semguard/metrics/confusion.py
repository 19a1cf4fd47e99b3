"""Confusion counts between a reference label map and a predicted one.

The one summable statistic behind mIoU (reference = ground truth) and flip rates
(reference = source label, prediction = what the judge reads on the translated image).
"""

from __future__ import annotations

import torch

from semguard.labels import IGNORE_ID, NUM_CLASSES


def confusion_matrix(reference: torch.Tensor, prediction: torch.Tensor,
                     num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_ID) -> torch.Tensor:
    """int64 [K,K] counts; entry [c, c'] = pixels with reference c predicted as c'.

    reference, prediction: integer tensors of one shape; reference pixels equal to
    `ignore_index` (or outside 0..K-1) are excluded; predictions outside 0..K-1 are errors.
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and prediction {tuple(prediction.shape)} differ in shape")
    reference = reference.reshape(-1).long()
    prediction = prediction.reshape(-1).long()
    keep = (reference != ignore_index) & (reference >= 0) & (reference < num_classes)
    reference, prediction = reference[keep], prediction[keep]
    if prediction.numel() and (int(prediction.min()) < 0 or int(prediction.max()) >= num_classes):
        raise ValueError(f"predictions must lie in 0..{num_classes - 1}")
    counts = torch.bincount(reference * num_classes + prediction, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_from_confusion(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class IoU (float64 [K], NaN for classes absent from reference and prediction)
    and the mask of classes present in the reference."""
    confusion = confusion.double()
    true_positive = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))
    return iou, confusion.sum(1) > 0


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean IoU over classes present in the reference."""
    iou, present = iou_from_confusion(confusion)
    return float(iou[present].mean()) if present.any() else float("nan")
