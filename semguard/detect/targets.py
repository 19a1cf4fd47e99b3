"""From semguard Samples to torchvision detection inputs, and whether a data set has boxes at all.

Why a module of its own: every data set semguard reads (the toy world, BDD100K, SHIFT,
Cityscapes from instances, COCO) arrives as `Sample`s with pixel boxes in train ids; the
detector wants float images and {"boxes", "labels"} targets over its own few classes. One
adapter serves them all, and `has_boxes` tells a caller (the benchmark) in one line why a
set cannot train or score a detector.

Conventions: `DETECTOR_CLASSES` are train ids (semguard.labels.BOX_CLASSES: traffic light,
traffic sign, person, car); the detector's label k is DETECTOR_CLASSES[k]. Boxes stay in
half-open pixel xyxy, which is torchvision's continuous xyxy (a box over columns 3..5 is
x1=3, x2=6).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from semguard.data.formats import open_dataset
from semguard.data.sample import Sample
from semguard.labels import BOX_CLASSES, TRAIN_ID_NAMES

DETECTOR_CLASSES: tuple[int, ...] = tuple(BOX_CLASSES)
# a box narrower or shorter than this (after clipping to the frame) carries no learnable object
MIN_BOX_SIDE = 1.0
# frames `has_boxes` reads before it calls a set box-less (a set with boxes has them in its first frames)
HAS_BOXES_FRAMES = 64


def class_names(class_ids: Sequence[int] = DETECTOR_CLASSES) -> list[str]:
    return [TRAIN_ID_NAMES[int(c)] for c in class_ids]


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H,W,3] -> float32 [3,H,W] in [0,1] (what torchvision detectors read)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H,W,3], got {image.dtype} {image.shape}")
    # a copy: loaders may hand read-only arrays
    return torch.from_numpy(image.copy()).permute(2, 0, 1).float().div_(255.0)


def detection_target(sample: Sample, class_ids: Sequence[int] = DETECTOR_CLASSES,
                     dropped: Counter | None = None) -> dict[str, torch.Tensor]:
    """The detector's target of one frame: {"boxes": float32 [N,4] xyxy px, "labels": int64 [N]}.

    Keeps the boxes whose train id is in `class_ids` (label = its index there); clips them to
    the frame; drops boxes that are non-finite, or narrower or shorter than MIN_BOX_SIDE after
    clipping (empty and inverted ones included), counting them by class name in `dropped`.
    Boxes of other classes are left out without a count (they are not the detector's).
    """
    height, width = sample.size
    index = {int(c): k for k, c in enumerate(class_ids)}
    boxes, labels = [], []
    for box in sample.boxes:
        label = index.get(int(box.class_id))
        if label is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in box.xyxy)
        if all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
            y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
            if x2 - x1 >= MIN_BOX_SIDE and y2 - y1 >= MIN_BOX_SIDE:
                boxes.append((x1, y1, x2, y2))
                labels.append(label)
                continue
        if dropped is not None:
            dropped[TRAIN_ID_NAMES[int(box.class_id)]] += 1
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def hflip_target(target: dict[str, torch.Tensor], width: int) -> dict[str, torch.Tensor]:
    """The target of the mirrored frame (x -> width - x)."""
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return {"boxes": boxes, "labels": target["labels"]}


class DetectionFrames(torch.utils.data.Dataset):
    """A data set of Samples seen as (image float32 [3,H,W] in [0,1], target) pairs.

    dataset: any sequence of Samples (a semguard format loader). `dropped` counts, by class
    name, the degenerate boxes left out of the frames read so far (detection_target).
    """

    def __init__(self, dataset: Sequence[Sample], class_ids: Sequence[int] = DETECTOR_CLASSES):
        self.dataset = dataset
        self.class_ids = tuple(int(c) for c in class_ids)
        self.dropped: Counter = Counter()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sample = self.dataset[index]
        return image_tensor(sample.image), detection_target(sample, self.class_ids, self.dropped)


def has_boxes(dataset: Sequence[Sample], class_ids: Sequence[int] = DETECTOR_CLASSES, what: str | None = None,
              frames: int = HAS_BOXES_FRAMES) -> tuple[bool, str]:
    """(True, "") when one of the first `frames` frames holds a usable box of `class_ids`, else
    (False, one-line reason). what: how to name the set in the reason (default its root)."""
    name = what or str(getattr(dataset, "root", None) or "the data set")
    count = len(dataset)
    if count == 0:
        return False, f"{name} has no frames, so no boxes to train or score a detector"
    read = min(count, int(frames))
    other = Counter()
    for index in range(read):
        sample = dataset[index]
        if len(detection_target(sample, class_ids)["labels"]):
            return True, ""
        other.update(TRAIN_ID_NAMES[int(b.class_id)] for b in sample.boxes)
    wanted = ", ".join(class_names(class_ids))
    scope = f"its {count} frames" if read == count else f"the first {read} of its {count} frames"
    held = f" (only boxes of {', '.join(sorted(other))})" if other else ""
    return False, (f"{name} has no boxes of {wanted} in {scope}{held}; the detector needs a format that reads "
                   "boxes (the toy world's folders, bdd100k, shift, coco, cityscapes instances)")


def dataset_has_boxes(root, fmt: str = "folder", what: str | None = None, **options) -> tuple[bool, str]:
    """has_boxes of the data set at `root` in format `fmt` (semguard.data.formats.open_dataset
    with format `options`). A set that cannot be opened raises the loader's DataError."""
    return has_boxes(open_dataset(root, fmt, **options), what=what or str(root))
