"""Box preservation: do the small, safety-critical objects survive translation?

Two measures, both over summable counts (exact under any batch size):

- Per-box flip rate (signs, lights, persons, cars: BOX_CLASSES). For a box of class c,
  among the pixels inside the box whose *source label* is c, the share the judge reads as
  another class. Per class we report the number of measured boxes, the mean per-box flip
  rate, the pixel-weighted flip rate and the share of "lost" boxes (flip rate > 0.5).
  Boxes with no pixel of their own class inside (fully occluded) are counted as skipped.
- Attribute preservation (data with box attributes, e.g. the toy world's light "state"
  and sign "pictogram"): the share of boxes whose attribute a crop classifier (trained on
  labelled target-domain crops) reads correctly on an image; measured on the translated
  image, the untranslated source and the paired truth.

`BoxPreservation` is a torchmetrics.Metric over the per-box counts (torchmetrics sums them
across processes on compute); `box_preservation` its one-shot twin. `AttributePreservation`
stays a plain per-process accumulator: its attribute keys are open-ended strings.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torchmetrics import Metric

from semguard.data.sample import Box, box_pixel_bounds
from semguard.labels import BOX_CLASSES, TRAIN_ID_NAMES

LOST_BOX_THRESHOLD = 0.5

# which attribute a class's boxes carry (toy world; BDD100K lights carry trafficLightColor)
BOX_ATTRIBUTES: dict[int, str] = {6: "state", 7: "pictogram"}


def box_pixel_counts(source_label: torch.Tensor, judge_prediction: torch.Tensor, box: Box) -> tuple[int, int]:
    """(pixels of the box's class inside the box, of which the judge reads another class).

    source_label, judge_prediction: integer [H,W]. The box covers the pixels whose centres it
    holds (semguard.data.sample.box_pixel_bounds, the rule the conditioning maps use too).
    """
    height, width = source_label.shape[-2:]
    bounds = box_pixel_bounds(box.xyxy, height, width)
    if bounds is None:
        return 0, 0
    left, top, right, bottom = bounds
    region = source_label[top:bottom, left:right] == box.class_id
    pixels = int(region.sum())
    flipped = int((region & (judge_prediction[top:bottom, left:right] != box.class_id)).sum())
    return pixels, flipped


def _check_box_inputs(source_label: torch.Tensor, judge_prediction: torch.Tensor,
                      boxes: Sequence[Sequence[Box]]) -> None:
    if source_label.shape != judge_prediction.shape or source_label.ndim != 3:
        raise ValueError(
            f"source_label {tuple(source_label.shape)} and judge_prediction {tuple(judge_prediction.shape)} "
            "must both be [B,H,W]"
        )
    if len(boxes) != source_label.shape[0]:
        raise ValueError(f"got {len(boxes)} box lists for a batch of {source_label.shape[0]}")


def _box_counts(source_label: torch.Tensor, judge_prediction: torch.Tensor, boxes: Sequence[Sequence[Box]],
                classes: tuple[int, ...], lost_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class in `classes`: int64 [C,5] (boxes measured, boxes skipped, lost boxes, class pixels,
    flipped pixels) and float64 [C] (sum of the measured boxes' flip rates), on the CPU."""
    _check_box_inputs(source_label, judge_prediction, boxes)
    source_label, judge_prediction = source_label.detach().cpu(), judge_prediction.detach().cpu()
    counts = [[0] * 5 for _ in classes]
    rate_sums = [0.0] * len(classes)
    for index, image_boxes in enumerate(boxes):
        for box in image_boxes:
            if box.class_id not in classes:
                continue
            row = classes.index(box.class_id)
            pixels, flipped = box_pixel_counts(source_label[index], judge_prediction[index], box)
            if pixels == 0:
                counts[row][1] += 1
                continue
            rate = flipped / pixels
            counts[row][0] += 1
            counts[row][2] += int(rate > lost_threshold)
            counts[row][3] += pixels
            counts[row][4] += flipped
            rate_sums[row] += rate
    return (torch.tensor(counts, dtype=torch.int64).reshape(len(classes), 5),
            torch.tensor(rate_sums, dtype=torch.float64))


def _box_result(classes: tuple[int, ...], counts: torch.Tensor, rate_sums: torch.Tensor) -> dict[str, dict]:
    result = {}
    for row, class_id in enumerate(classes):
        measured, skipped, lost, pixels, flipped = (int(v) for v in counts[row])
        result[TRAIN_ID_NAMES[class_id]] = {
            "boxes": measured,
            "skipped": skipped,
            "mean_flip_rate": float(rate_sums[row]) / measured if measured else None,
            "pixel_flip_rate": flipped / pixels if pixels else None,
            "lost_share": lost / measured if measured else None,
        }
    return result


class BoxPreservation(Metric):
    """Per-box flip rates by box class.

    update(source_label int64 [B,H,W], judge_prediction int64 [B,H,W], boxes: B lists of Box);
    compute() -> {class name: {"boxes", "skipped", "mean_flip_rate", "pixel_flip_rate", "lost_share"}}
    for each class in `classes` (rates None when no box was measured).

    A torchmetrics Metric whose two states (`counts` int64 [C,5]: boxes measured, boxes skipped,
    lost boxes, class pixels, flipped pixels; `rate_sums` float64 [C]) are reduced by sum:
    compute() under an initialised process group syncs them on the states' device (NCCL: move
    the metric to the GPU with `.to(device)`; gloo: CPU). Boxes are counted on the CPU.
    `kwargs` are torchmetrics.Metric options (process_group, sync_on_compute, ...).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, classes: Sequence[int] = BOX_CLASSES, lost_threshold: float = LOST_BOX_THRESHOLD,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.classes = tuple(int(c) for c in classes)
        self.lost_threshold = lost_threshold
        self.add_state("counts", default=torch.zeros(len(self.classes), 5, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("rate_sums", default=torch.zeros(len(self.classes), dtype=torch.float64), dist_reduce_fx="sum")

    @torch.no_grad()
    def update(self, source_label: torch.Tensor, judge_prediction: torch.Tensor, boxes: Sequence[Sequence[Box]]) -> None:
        counts, rate_sums = _box_counts(source_label, judge_prediction, boxes, self.classes, self.lost_threshold)
        self.counts += counts.to(self.device)
        self.rate_sums += rate_sums.to(self.device)

    def compute(self) -> dict[str, dict]:
        """The per-class figures from the counts of every rank (synced by torchmetrics when torch.distributed is initialised)."""
        return _box_result(self.classes, self.counts.cpu(), self.rate_sums.cpu())


def box_preservation(source_label: torch.Tensor, judge_prediction: torch.Tensor, boxes: Sequence[Sequence[Box]],
                     classes: Sequence[int] = BOX_CLASSES, lost_threshold: float = LOST_BOX_THRESHOLD) -> dict[str, dict]:
    """One-shot `BoxPreservation` (this process's data only, no sync): same inputs as its update, same result as its compute."""
    classes = tuple(int(c) for c in classes)
    return _box_result(classes, *_box_counts(source_label, judge_prediction, boxes, classes, lost_threshold))


class AttributePreservation:
    """Share of boxes whose attribute (light state, sign pictogram) a classifier reads correctly.

    Single-process: a plain accumulator, not a torchmetrics Metric (its state is not summed across
    processes); `semguard eval` runs in one process, so every figure sees every frame.

    update(boxes: list of Box with true attributes, predicted: one dict (attribute -> value) per box);
    compute() -> {attribute: {"correct", "total", "accuracy"}} for attributes that occurred.
    Counts are per process (the attribute keys are open-ended; eval runs in one process).
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.correct: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def update(self, boxes: Sequence[Box], predicted: Sequence[dict[str, str]]) -> None:
        if len(boxes) != len(predicted):
            raise ValueError(f"got {len(predicted)} predictions for {len(boxes)} boxes")
        for box, guess in zip(boxes, predicted):
            for key, truth in box.attributes.items():
                if key not in guess:
                    continue
                self.total[key] = self.total.get(key, 0) + 1
                self.correct[key] = self.correct.get(key, 0) + int(str(guess[key]) == str(truth))

    def compute(self) -> dict[str, dict]:
        return {
            key: {"correct": self.correct[key], "total": self.total[key],
                  "accuracy": self.correct[key] / self.total[key] if self.total[key] else None}
            for key in sorted(self.total)
        }


def attribute_boxes(boxes: Sequence[Box]) -> list[Box]:
    """The boxes that carry an attribute a crop classifier reads (lights' state, signs' pictogram)."""
    return [box for box in boxes if box.class_id in BOX_ATTRIBUTES and BOX_ATTRIBUTES[box.class_id] in box.attributes]


def normalise_predictions(boxes: Sequence[Box], predicted) -> list[dict[str, str]]:
    """Bring a classifier's per-box output to one {attribute: value} dict per box.

    Accepts dicts (used as they are) or plain strings (the value of the box class's
    attribute, BOX_ATTRIBUTES).
    """
    predicted = list(predicted)
    if len(predicted) != len(boxes):
        raise ValueError(f"crop classifier returned {len(predicted)} results for {len(boxes)} boxes")
    result = []
    for box, guess in zip(boxes, predicted):
        if isinstance(guess, dict):
            result.append({str(k): str(v) for k, v in guess.items()})
        elif guess is None:
            result.append({})
        else:
            result.append({BOX_ATTRIBUTES.get(box.class_id, "attribute"): str(guess)})
    return result


def read_attributes(classify: Callable, image: torch.Tensor, boxes: Sequence[Box]) -> list[dict[str, str]]:
    """Run `classify(image [3,H,W] in [-1,1], boxes)` on the attribute-carrying boxes of one image."""
    chosen = attribute_boxes(boxes)
    if not chosen:
        return []
    return normalise_predictions(chosen, classify(image, chosen))
