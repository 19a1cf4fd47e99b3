"""Cityscapes: leftImg8bit + gtFine labelIds (-> train ids), boxes from gtFine instanceIds.

    ROOT/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png
    ROOT/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png     8-bit label ids 0..33
    ROOT/gtFine/{split}/{city}/{stem}_gtFine_instanceIds.png  16-bit: id*1000+k per instance,
                                                              plain id for stuff and crowds
Frame names are '{city}/{stem}'. Boxes: the tight half-open box of each instance
(pixel value >= 1000) whose class has a train id; instance ids are made compact (1..N).
"""

from __future__ import annotations

import numpy as np

from semguard.data.formats.base import as_bool, Frame, FrameDataset, FrameIndex, files_by_stem, pair_frames, boxes_from_instances
from semguard.data.readers import bad_annotation, read_ids, read_label, read_rgb, require_same_size
from semguard.data.mapping import IdMapping, IgnoreReport
from semguard.data.sample import Sample
from semguard.labels import CITYSCAPES_LABEL_ID_NAMES, CITYSCAPES_LABEL_TO_TRAIN
from pathlib import Path

LABEL_IDS = IdMapping(CITYSCAPES_LABEL_TO_TRAIN, known_ids=CITYSCAPES_LABEL_ID_NAMES, source="Cityscapes label id",
                      names=CITYSCAPES_LABEL_ID_NAMES)


def instance_boxes(instance_ids: np.ndarray, label: np.ndarray):
    """Compact instances and tight boxes from a Cityscapes-style id*1000+k instance map."""
    things = np.where(instance_ids >= 1000, instance_ids, 0)
    return boxes_from_instances(things, label)


class CityscapesFormat(FrameDataset):
    format_name = "cityscapes"
    options_help = {"split": "train | val | test (default train)",
                    "instances": "read gtFine instanceIds for instances and boxes (default true)"}
    id_names = CITYSCAPES_LABEL_ID_NAMES

    def __init__(self, root, *, split: str = "train", instances: bool | str = True, **kwargs):
        self.split = str(split)
        self.read_instances = as_bool(instances, "instances")
        super().__init__(root, **kwargs)

    def scan(self) -> FrameIndex:
        images = files_by_stem(self.root / "leftImg8bit" / self.split, (".png",), strip="_leftImg8bit")
        labels = files_by_stem(self.root / "gtFine" / self.split, (".png",), strip="_gtFine_labelIds")
        return pair_frames(images, labels)


    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        instances, boxes = None, []
        if frame.label is None:
            return Sample(image=image, label=self.unlabelled(image), name=frame.name, source_path=frame.image)
        label = read_label(image, frame.image, frame.label, LABEL_IDS, report, strict,
                           not_single="labelIds must be single-channel label ids, got shape {shape}; "
                                      "use the *_gtFine_labelIds.png files, not the colour ones")
        instance_ref = frame.label[: -len("labelIds.png")] + "instanceIds.png"
        if self.read_instances:
            if Path(instance_ref).is_file():
                instance_ids = read_ids(instance_ref, "instance map")
                if instance_ids.ndim != 2:
                    raise bad_annotation(instance_ref, f"instanceIds must be 16-bit single-channel, got shape {instance_ids.shape}")
                require_same_size(image, instance_ids, frame.image, instance_ref, "instance map")
                instances, boxes = instance_boxes(instance_ids.astype(np.int64), label)
        return Sample(image=image, label=label, instances=instances, boxes=boxes, name=frame.name,
                      source_path=frame.image)
