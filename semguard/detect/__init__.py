"""The downstream detector: does a detector trained on translated frames find the real boxes?

A torchvision FCOS on a small backbone, trained from random weights (nothing downloaded) on
the boxes of traffic lights, traffic signs, persons and cars (semguard.labels.BOX_CLASSES)
of any data set semguard reads, and scored with torchmetrics' MeanAveragePrecision.

    from semguard.detect import has_boxes, train_detector, load_detector, evaluate_detector
    usable, reason = has_boxes(dataset)          # (False, one-line reason) for a set without boxes
    usable, reason = dataset_has_boxes("toy/sim/train", "folder")   # the same, from a root and format
    model, metrics = train_detector(dataset, steps=1200, seed=0, out_path="detector.pt")
    model, metadata = load_detector("detector.pt")
    report = evaluate_detector(model, val_set)   # map, map_50, ap_per_class, boxes_per_class, ...

Modules: targets (Samples -> torchvision targets, has_boxes), model (build_detector),
checkpoint (save/load), train (train_detector), evaluate (DetectionScore, evaluate_detector),
commands (`semguard detector train|eval`).
"""

from semguard.detect.checkpoint import DETECTOR, load_detector, save_detector
from semguard.detect.evaluate import DetectionScore, detection_scores, evaluate_detector
from semguard.detect.model import BACKBONES, DEFAULT_BUILD, build_detector
from semguard.detect.targets import (
    DETECTOR_CLASSES, DetectionFrames, dataset_has_boxes, detection_target, has_boxes,
)
from semguard.detect.train import DEFAULT_STEPS, train_detector

__all__ = [
    "BACKBONES", "DEFAULT_BUILD", "DEFAULT_STEPS", "DETECTOR", "DETECTOR_CLASSES", "DetectionFrames", "DetectionScore",
    "build_detector", "dataset_has_boxes", "detection_scores", "detection_target", "evaluate_detector", "has_boxes",
    "load_detector", "save_detector", "train_detector",
]
