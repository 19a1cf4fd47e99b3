"""Synscapes: img/rgb, img/class (Cityscapes label ids), img/instance, meta/N.json boxes.

    ROOT/img/rgb/N.png   ROOT/img/class/N.png   ROOT/img/instance/N.png   ROOT/meta/N.json

meta/N.json: {"instance": {"bbox2d": {"<instance id>": {"xmin", "ymin", "xmax", "ymax"}},
"class": {"<instance id>": <Cityscapes label id>}, ...}} with box coordinates normalised
to 0..1 (key names to be checked on a real file: a file without them is a clear error).
Boxes: x1 = floor(xmin * W), x2 = ceil(xmax * W), clipped; instance ids kept.
"""

from __future__ import annotations

import math

import numpy as np

from semguard.data.formats.base import Frame, FrameDataset, FrameIndex, files_by_stem, pair_frames, clip_boxes
from semguard.data.readers import bad_annotation, read_ids, read_label, read_rgb, require_same_size
from semguard.data.formats.cityscapes import LABEL_IDS
from semguard.data.formats.scalabel import read_json
from semguard.data.mapping import IgnoreReport
from semguard.data.sample import Box, Sample
from semguard.labels import CITYSCAPES_LABEL_ID_NAMES, CITYSCAPES_LABEL_TO_TRAIN


def meta_boxes(ref: str, size: tuple[int, int], report: IgnoreReport) -> list[Box]:
    data = read_json(ref)
    try:
        instance = data["instance"]
        bbox2d, classes = instance["bbox2d"], instance["class"]
    except (KeyError, TypeError):
        raise bad_annotation(ref, "expected {'instance': {'bbox2d': {...}, 'class': {...}}} (Synscapes meta)") from None
    height, width = size
    boxes = []
    for key, box in bbox2d.items():
        try:
            label_id = int(classes[key])
            xmin, ymin, xmax, ymax = (float(box[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (KeyError, TypeError, ValueError):
            raise bad_annotation(ref, f"instance {key}: needs class and bbox2d xmin/ymin/xmax/ymax") from None
        train_id = CITYSCAPES_LABEL_TO_TRAIN.get(label_id)
        if train_id is None:
            report.dropped_boxes[CITYSCAPES_LABEL_ID_NAMES.get(label_id, str(label_id))] += 1
            continue
        boxes.append(Box(xyxy=(float(math.floor(xmin * width)), float(math.floor(ymin * height)),
                               float(math.ceil(xmax * width)), float(math.ceil(ymax * height))),
                         class_id=train_id, instance_id=int(key) if str(key).isdigit() else 0))
    return boxes


class SynscapesFormat(FrameDataset):
    format_name = "synscapes"
    id_names = CITYSCAPES_LABEL_ID_NAMES

    def scan(self) -> FrameIndex:
        return pair_frames(files_by_stem(self.root / "img" / "rgb", (".png", ".jpg")),
                           files_by_stem(self.root / "img" / "class", (".png",)))

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        label = read_label(image, frame.image, frame.label, LABEL_IDS, report, strict, what="class map",
                           not_single="class map must be single-channel label ids, got shape {shape}")
        instances = None
        instance_ref = self.root / "img" / "instance" / f"{frame.name}.png"
        if instance_ref.is_file():
            raw_instances = read_ids(str(instance_ref), "instance map")
            if raw_instances.ndim != 2:
                raise bad_annotation(str(instance_ref), f"instance map must be single-channel ids, got shape {raw_instances.shape}")
            require_same_size(image, raw_instances, frame.image, str(instance_ref), "instance map")
            instances = raw_instances.astype(np.int32)
        boxes = []
        meta = self.root / "meta" / f"{frame.name}.json"
        if meta.is_file():
            boxes = clip_boxes(meta_boxes(str(meta), image.shape[:2], report), image.shape[:2], where=str(meta), report=report)
            if instances is not None:
                present = set(np.unique(instances).tolist())
                boxes = [b if b.instance_id in present else Box(b.xyxy, b.class_id, 0, b.attributes) for b in boxes]
            else:
                boxes = [Box(b.xyxy, b.class_id, 0, b.attributes) for b in boxes]
        return Sample(image=image, label=label, instances=instances, boxes=boxes, name=frame.name,
                      source_path=frame.image)
