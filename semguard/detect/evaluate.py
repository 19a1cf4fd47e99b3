"""Scoring a detector: COCO mAP through torchmetrics' MeanAveragePrecision, per class by name.

Why a module of its own: the benchmark's detection numbers (map, map_50, AP per class) must
come from one place, the same for every variant, and be checkable on hand-made cases (perfect
predictions score 1, none score 0). `DetectionScore` is update / compute / reset like any
torchmetrics metric; `detection_scores` is its one-off twin; `evaluate_detector` runs a
detector over a data set of Samples and returns the report.

Labels given to the metric are train ids (the detector's label k is class_ids[k]), so the
per-class results are named by semguard.labels.TRAIN_ID_NAMES. COCO's protocol: mAP is the
mean over IoU 0.50:0.05:0.95 and over the classes that have ground-truth boxes, at most 100
detections per image; a class without ground-truth boxes has AP None.
"""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from collections.abc import Callable, Sequence

import torch
from torchmetrics.detection import MeanAveragePrecision

from semguard.data.sample import Sample
from semguard.detect.targets import DETECTOR_CLASSES, DetectionFrames, class_names
from semguard.errors import SemguardError
from semguard.labels import TRAIN_ID_NAMES

IOU_THRESHOLDS = "0.50:0.05:0.95"
BACKENDS = ("pycocotools", "faster_coco_eval")


def map_backend() -> str:
    """The COCO evaluation library torchmetrics will use: the first of BACKENDS installed."""
    for name in BACKENDS:
        if importlib.util.find_spec(name) is not None:
            return name
    raise SemguardError("detection mAP needs pycocotools (or faster-coco-eval) for torchmetrics' "
                        "MeanAveragePrecision; install it: pip install pycocotools")


class DetectionScore:
    """mAP, mAP at IoU 0.5 and 0.75, and AP per class over the frames given to `update`.

    update(predictions, targets): lists of per-frame dicts in the detector's labels (0..K-1 =
    indices into class_ids): predictions {"boxes": float [N,4] xyxy px, "scores": float [N],
    "labels": int64 [N]}, targets {"boxes": float [M,4], "labels": int64 [M]}.
    compute() -> dict (see `evaluate_detector`); reset() forgets every frame.
    """

    def __init__(self, class_ids: Sequence[int] = DETECTOR_CLASSES):
        self.class_ids = tuple(int(c) for c in class_ids)
        self.to_train_id = torch.tensor(self.class_ids, dtype=torch.int64)
        self.backend = map_backend()
        self.metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True,
                                           extended_summary=True, backend=self.backend)
        self.reset()

    def reset(self) -> None:
        self.metric.reset()
        self.boxes = Counter()
        self.detections = Counter()
        self.images = 0

    def _train_ids(self, labels: torch.Tensor, what: str) -> torch.Tensor:
        labels = labels.detach().cpu().to(torch.int64)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.class_ids)):
            raise ValueError(f"{what} labels must be detector labels 0..{len(self.class_ids) - 1}, "
                             f"got {sorted(set(labels.tolist()))}")
        return self.to_train_id[labels]

    def update(self, predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> None:
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets; give one of each per frame")
        preds, truths = [], []
        for prediction, target in zip(predictions, targets):
            boxes = prediction["boxes"].detach().cpu().float().reshape(-1, 4)
            pred_labels = self._train_ids(prediction["labels"], "prediction")
            preds.append({"boxes": boxes, "scores": prediction["scores"].detach().cpu().float().reshape(-1),
                          "labels": pred_labels})
            truth_labels = self._train_ids(target["labels"], "target")
            truths.append({"boxes": target["boxes"].detach().cpu().float().reshape(-1, 4), "labels": truth_labels})
            self.boxes.update(TRAIN_ID_NAMES[c] for c in truth_labels.tolist())
            self.detections.update(TRAIN_ID_NAMES[c] for c in pred_labels.tolist())
        self.metric.update(preds, truths)
        self.images += len(targets)

    def compute(self) -> dict:
        names = class_names(self.class_ids)
        report = {"images": self.images, "map": None, "map_50": None, "map_75": None, "mar_100": None,
                  "ap_per_class": dict.fromkeys(names), "ap_50_per_class": dict.fromkeys(names),
                  "boxes_per_class": {name: int(self.boxes[name]) for name in names},
                  "detections_per_class": {name: int(self.detections[name]) for name in names},
                  "iou_thresholds": IOU_THRESHOLDS, "max_detections": 100, "backend": self.backend}
        if not sum(self.boxes.values()):
            return report  # COCO's mean over classes with boxes is empty: no score, not 0
        result = self.metric.compute()
        for key in ("map", "map_50", "map_75", "mar_100"):
            report[key] = _score(result[key])
        classes = result["classes"].reshape(-1).tolist()
        per_class = result["map_per_class"].reshape(-1).tolist()
        # precision [IoU thresholds, recall points, classes, area ranges, max detections]; IoU 0.5 is first,
        # area range 0 is "all", max detections -1 is 100
        precision = result["precision"][0, :, :, 0, -1]
        for column, (train_id, ap) in enumerate(zip(classes, per_class)):
            name = TRAIN_ID_NAMES[int(train_id)]
            if name not in report["ap_per_class"]:
                continue
            report["ap_per_class"][name] = _score(ap)
            curve = precision[:, column]
            report["ap_50_per_class"][name] = _score(curve.mean()) if bool((curve > -1).all()) else None
        return report


def _score(value) -> float | None:
    """A metric value as a float, None for COCO's -1 (no ground truth to score against)."""
    value = float(value)
    return None if value < 0 else round(value, 6)


def detection_scores(predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]],
                     class_ids: Sequence[int] = DETECTOR_CLASSES) -> dict:
    """DetectionScore over one list of frames (the functional twin)."""
    score = DetectionScore(class_ids)
    score.update(predictions, targets)
    return score.compute()


@torch.no_grad()
def evaluate_detector(model: torch.nn.Module, dataset: Sequence[Sample], class_ids: Sequence[int] = DETECTOR_CLASSES,
                      batch_size: int = 8, progress: Callable[[int, int], None] | None = None) -> dict:
    """Score `model` (a torchvision detector in its labels 0..K-1) on every frame of `dataset`.

    Returns {"images", "map", "map_50", "map_75", "mar_100" (floats in [0,1], None when the
    set holds no box of class_ids), "ap_per_class" / "ap_50_per_class" {class name: AP or None},
    "boxes_per_class" (ground truth) / "detections_per_class" {name: count},
    "dropped_boxes" {name: degenerate boxes left out}, "iou_thresholds", "max_detections",
    "backend", "seconds"}. progress: called as progress(done, total) after each batch.
    """
    start = time.perf_counter()
    frames = DetectionFrames(dataset, class_ids)
    score = DetectionScore(class_ids)
    device = next(model.parameters()).device
    model.eval()
    total = len(frames)
    for first in range(0, total, batch_size):
        items = [frames[i] for i in range(first, min(first + batch_size, total))]
        images = [image.to(device) for image, _ in items]
        score.update(model(images), [target for _, target in items])
        if progress is not None:
            progress(min(first + batch_size, total), total)
    report = score.compute()
    report["dropped_boxes"] = dict(frames.dropped)
    report["seconds"] = round(time.perf_counter() - start, 3)
    return report
