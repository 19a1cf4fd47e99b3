"""Attribute consistency: a guide crop classifier must read each box's source attribute off the translation.

A traffic light at 64x128 is 3x6 pixels with a one-pixel lamp: below the stride of every
feature level of the box perceptual loss, so that loss averages the lamp away, and the
translation may turn a red light green while every label stays right. This term asks a
frozen crop classifier (semguard.models.crop_classifier, trained on target-domain crops by
`semguard segmenter train-crops`) to read the *source* attribute (light state, sign
pictogram) off each translated box, as the seg term asks a guide segmenter to read the
source labels:

    crops_k = RoIAlign of the translation at box k, grown by the classifier's margin
    L_attr  = (1 / N) * sum_{k, t} CE(classifier_t(crops_k), value_t(k))

over the N (box, task) pairs whose box class has a task t in the classifier and whose
source attribute holds one of that task's values (others are skipped). Gradients reach the
image through RoIAlign, never the classifier. The classifier is a guide, so keep it apart
from the crop classifier that `semguard eval` reports with (another seed, split or width).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from semguard.data.sample import Box
from semguard.models.crop_classifier import CropClassifier, extract_crops


class AttributeConsistencyLoss(nn.Module):
    """L_attr of translated float [B,3,H,W] in [-1,1] with boxes (B lists of Box); module doc.

    The classifier is held by reference (not a submodule: it is frozen and saved apart)
    and must be in eval mode with requires_grad False.
    """

    def __init__(self, classifier: CropClassifier) -> None:
        super().__init__()
        object.__setattr__(self, "classifier", classifier)
        self._value_index = [{value: i for i, value in enumerate(task["values"])} for task in classifier.tasks]

    def targets(self, boxes: Sequence[Sequence[Box]]) -> tuple[list[int], list[tuple[float, float, float, float]],
                                                               list[tuple[int, int, int]]]:
        """(image index per crop, crop boxes, (crop row, task, value index) per read) for the boxes
        whose class has a task and whose attribute has a known value."""
        image_index, xyxy, reads = [], [], []
        for b, image_boxes in enumerate(boxes):
            for box in image_boxes:
                if box.width <= 0 or box.height <= 0:
                    continue
                wanted = []
                for task_index in self.classifier.tasks_for_class(int(box.class_id)):
                    value = box.attributes.get(self.classifier.tasks[task_index]["attribute"])
                    if value is not None and str(value) in self._value_index[task_index]:
                        wanted.append((task_index, self._value_index[task_index][str(value)]))
                if wanted:
                    row = len(xyxy)
                    image_index.append(b)
                    xyxy.append(tuple(float(v) for v in box.xyxy))
                    reads += [(row, task_index, value) for task_index, value in wanted]
        return image_index, xyxy, reads

    def forward(self, translated: torch.Tensor, boxes: Sequence[Sequence[Box]]) -> torch.Tensor:
        if translated.ndim != 4 or translated.shape[1] != 3:
            raise ValueError(f"translated must be float [B,3,H,W], got {tuple(translated.shape)}")
        if len(boxes) != translated.shape[0]:
            raise ValueError(f"boxes must hold one list per image: {len(boxes)} lists for a batch of {translated.shape[0]}")
        image_index, xyxy, reads = self.targets(boxes)
        if not reads:
            return translated.sum() * 0.0
        device = translated.device
        rows = torch.tensor(image_index, device=device)
        crop_boxes = torch.tensor(xyxy, dtype=torch.float32, device=device)
        crops = torch.cat([extract_crops(translated[b:b + 1], crop_boxes[rows == b], self.classifier.crop_size,
                                         self.classifier.margin) for b in sorted(set(image_index))])
        # extract_crops per image keeps the image order; rows were appended image by image
        logits = self.classifier(crops.contiguous())
        total = translated.new_zeros((), dtype=torch.float32)
        for task_index in {t for _, t, _ in reads}:
            task_reads = [(row, value) for row, t, value in reads if t == task_index]
            crop_rows = torch.tensor([row for row, _ in task_reads], device=device)
            values = torch.tensor([value for _, value in task_reads], device=device)
            total = total + F.cross_entropy(logits[task_index][crop_rows].float(), values, reduction="sum")
        return total / len(reads)
