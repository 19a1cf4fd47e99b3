"""semguard's own folder format (images/, labels/, instances/, boxes/): the generic loader.

Wraps `semguard.data.folder.FolderDataset` for the listing and the dataset.json metadata,
and reads frames through the shared readers so that out-of-range ids are reported (or,
with strict, refused) like in every other format.
"""

from __future__ import annotations

import json

import numpy as np

from semguard.data import folder as folder_format
from semguard.data.formats.base import (
    Frame, FrameDataset, FrameIndex, files_by_stem, pair_frames, read_bytes, read_ids, read_rgb,
    require_same_size, bad_annotation, clip_boxes, no_frames,
)
from semguard.data.mapping import BAD_ANNOTATION, FrameProblem, IdMapping, IgnoreReport
from semguard.data.sample import Sample
from semguard.errors import DataError
from semguard.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID_NAMES

TRAIN_IDS = IdMapping({i: i for i in range(NUM_CLASSES)}, known_ids=[*range(NUM_CLASSES), IGNORE_ID],
                      source="train id", names=dict(enumerate(TRAIN_ID_NAMES)), already_ignore=[IGNORE_ID])


class FolderFormat(FrameDataset):
    """ROOT/images/NAME.png, labels/NAME.png (train ids), instances/NAME.png, boxes/NAME.json."""

    format_name = "folder"
    options_help: dict[str, str] = {}
    id_names = dict(enumerate(TRAIN_ID_NAMES))

    def scan(self) -> FrameIndex:
        if not (self.root / folder_format.IMAGE_DIR).is_dir():
            raise no_frames(self.root, f"{self.root} is not a semguard folder data set: "
                                       f"{self.root / folder_format.IMAGE_DIR} is missing")
        try:
            self.folder: folder_format.FolderDataset | None = folder_format.FolderDataset(
                self.root, labels_required=self.labels_required)
        except DataError:
            self.folder = None  # an empty set: reported as such by the base class / check
        self.info = folder_format.read_dataset_info(self.root)
        images = files_by_stem(self.root / folder_format.IMAGE_DIR, (".png",))
        labels = files_by_stem(self.root / folder_format.LABEL_DIR, (".png",))
        return pair_frames(images, labels)

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        if frame.label is not None:
            raw = read_ids(frame.label)
            if raw.ndim != 2:
                raise bad_annotation(frame.label, f"label must be a single-channel PNG of train ids, got shape {raw.shape}")
            require_same_size(image, raw, frame.image, frame.label, "label")
            label = TRAIN_IDS.apply(raw, frame.label, report, strict)
        else:
            label = self.unlabelled(image)
        instance_path = self.root / folder_format.INSTANCE_DIR / f"{frame.name}.png"
        instances = None
        if instance_path.is_file():
            instances = read_ids(str(instance_path), "instance map").astype(np.int32)
            require_same_size(image, instances, frame.image, str(instance_path), "instance map")
        box_path = self.root / folder_format.BOX_DIR / f"{frame.name}.json"
        boxes = []
        if box_path.is_file():
            try:
                data = json.loads(read_bytes(str(box_path)).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise bad_annotation(str(box_path), f"corrupt JSON ({err}); regenerate the boxes file") from None
            try:
                boxes = folder_format.boxes_from_json(data, box_path)
                folder_format.check_box_size(data, image.shape[:2], box_path)
            except DataError as err:
                raise FrameProblem(BAD_ANNOTATION, str(box_path), str(err)) from None
            boxes = clip_boxes(boxes, image.shape[:2], where=str(box_path), report=report)
        return Sample(image=image, label=label, instances=instances, boxes=boxes, name=frame.name,
                      source_path=frame.image)
