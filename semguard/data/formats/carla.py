"""CARLA semantic camera output (class tag in the red channel), version told, never guessed.

    ROOT/images/NAME.{png,jpg}   RGB camera
    ROOT/labels/NAME.png         semantic camera saved raw: tag in the red channel
    ROOT/boxes.json              optional COCO or Scalabel box file (option boxes=PATH)

CARLA renumbered its tags in 0.9.14, so the option `version` is required:
"legacy" (<= 0.9.13, the SHIFT list of 23 tags) or "0.9.14" (tags 1..19 follow the
Cityscapes train order, 24 road line -> road; 29 tags 0..28).
"""

from __future__ import annotations

from semguard.data.formats.base import Frame, require_option
from semguard.data.formats.label_folders import FOLDER_OPTIONS, LabelFolderFormat
from semguard.data.readers import read_label
from semguard.data.mapping import IdMapping, IgnoreReport
from semguard.labels import CARLA_0914_TO_TRAIN, CARLA_LEGACY_NAMES, CARLA_LEGACY_TO_TRAIN

CARLA_0914_NAMES = {
    0: "unlabeled", 1: "road", 2: "sidewalk", 3: "building", 4: "wall", 5: "fence", 6: "pole",
    7: "traffic light", 8: "traffic sign", 9: "vegetation", 10: "terrain", 11: "sky", 12: "pedestrian",
    13: "rider", 14: "car", 15: "truck", 16: "bus", 17: "train", 18: "motorcycle", 19: "bicycle",
    20: "static", 21: "dynamic", 22: "other", 23: "water", 24: "road line", 25: "ground", 26: "bridge",
    27: "rail track", 28: "guard rail",
}
VERSIONS = {
    "legacy": IdMapping(CARLA_LEGACY_TO_TRAIN, known_ids=CARLA_LEGACY_NAMES, source="CARLA (legacy) tag",
                        names=CARLA_LEGACY_NAMES),
    "0.9.14": IdMapping(CARLA_0914_TO_TRAIN, known_ids=CARLA_0914_NAMES, source="CARLA 0.9.14 tag",
                        names=CARLA_0914_NAMES),
}


class CarlaFormat(LabelFolderFormat):
    format_name = "carla"
    options_help = {"version": "REQUIRED: legacy (CARLA <= 0.9.13) | 0.9.14 (tag table changed in 0.9.14)",
                    **FOLDER_OPTIONS, "label_dir": "semantic folder under ROOT (default labels)"}

    def __init__(self, root, *, version: str | None = None, **kwargs):
        self.version = require_option(version, "version", "carla", tuple(VERSIONS))
        self.mapping = VERSIONS[self.version]
        self.id_names = self.mapping.names
        super().__init__(root, **kwargs)

    def read_label_file(self, image, frame: Frame, report: IgnoreReport, strict: bool):
        return read_label(image, frame.image, frame.label, self.mapping, report, strict, what="semantic label",
                          channel="red")
