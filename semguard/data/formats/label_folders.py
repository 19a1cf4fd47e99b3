"""The layout CARLA and palette exports share: ROOT/IMAGE_DIR/*.png|jpg, ROOT/LABEL_DIR/*.png
paired by stem, and optionally one COCO or Scalabel box file for the whole set."""

from __future__ import annotations

import numpy as np

from semguard.data.formats.base import Frame, FrameDataset, FrameIndex, clip_boxes, files_by_stem, pair_frames
from semguard.data.formats.coco import BoxFile
from semguard.data.mapping import IgnoreReport
from semguard.data.readers import read_rgb
from semguard.data.sample import Sample

FOLDER_OPTIONS = {"image_dir": "image folder under ROOT (default images)",
                  "label_dir": "label folder under ROOT (default labels)",
                  "boxes": "COCO or Scalabel box file (default ROOT/boxes.json when present)"}


class LabelFolderFormat(FrameDataset):
    """Image and label folders under ROOT plus an optional box file; subclasses say how a
    label file becomes train ids (`read_label_file`)."""

    def __init__(self, root, *, image_dir: str = "images", label_dir: str = "labels", boxes: str | None = None,
                 **kwargs):
        self.image_dir, self.label_dir, self.boxes_option = image_dir, label_dir, boxes
        super().__init__(root, **kwargs)

    def scan(self) -> FrameIndex:
        self.box_file = BoxFile.find(self.root, self.boxes_option)
        return pair_frames(files_by_stem(self.root / self.image_dir, (".png", ".jpg", ".jpeg")),
                           files_by_stem(self.root / self.label_dir, (".png",)))

    def read_label_file(self, image: np.ndarray, frame: Frame, report: IgnoreReport, strict: bool) -> np.ndarray:
        raise NotImplementedError

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        label = self.unlabelled(image) if frame.label is None else self.read_label_file(image, frame, report, strict)
        boxes = (clip_boxes(self.box_file.boxes(frame.name, report, strict), image.shape[:2],
                            where=f"{self.box_file.path} ({frame.name})", report=report) if self.box_file else [])
        return Sample(image=image, label=label, boxes=boxes, name=frame.name, source_path=frame.image)
