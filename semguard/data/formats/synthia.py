"""SYNTHIA-RAND-CITYSCAPES: RGB/N.png + GT/LABELS/N.png (16-bit, class in the first channel).

The label PNG is 16-bit with several channels: the class id in the first (R) channel and
an instance id in the second (G). PIL cannot read 16-bit colour PNGs without losing bits,
so it is read with OpenCV (cv2.IMREAD_UNCHANGED), whose channel order is BGR: class =
[..., 2], instance = [..., 1]. Boxes: tight boxes of the instances of box-able classes.
"""

from __future__ import annotations

import numpy as np

from semguard.data.formats.base import Frame, FrameDataset, FrameIndex, files_by_stem, pair_frames, boxes_from_instances
from semguard.data.mapping import FrameProblem
from semguard.data.readers import read_bytes, read_rgb, require_same_size, bad_annotation
from semguard.data.mapping import UNREADABLE, IdMapping, IgnoreReport
from semguard.data.sample import Sample
from semguard.labels import SYNTHIA_TO_TRAIN

SYNTHIA_NAMES = {
    0: "void", 1: "sky", 2: "building", 3: "road", 4: "sidewalk", 5: "fence", 6: "vegetation", 7: "pole",
    8: "car", 9: "traffic sign", 10: "pedestrian", 11: "bicycle", 12: "motorcycle", 13: "parking-slot",
    14: "road-work", 15: "traffic light", 16: "terrain", 17: "rider", 18: "truck", 19: "bus", 20: "train",
    21: "wall", 22: "lanemarking",
}
SYNTHIA_IDS = IdMapping(SYNTHIA_TO_TRAIN, known_ids=SYNTHIA_NAMES, source="SYNTHIA class id", names=SYNTHIA_NAMES)
THING_CLASSES = (6, 7, 11, 12, 13, 14, 15, 16, 17, 18)


def read_unchanged(ref: str) -> np.ndarray:
    """A PNG decoded by OpenCV without conversion (16-bit multi-channel kept, BGR order)."""
    import cv2   # lazy: OpenCV costs seconds at import, only this step needs it

    array = cv2.imdecode(np.frombuffer(read_bytes(ref), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise FrameProblem(UNREADABLE, ref, f"{ref}: unreadable or truncated label PNG; restore the file or remove this frame")
    return array


class SynthiaFormat(FrameDataset):
    format_name = "synthia"
    id_names = SYNTHIA_NAMES

    def scan(self) -> FrameIndex:
        return pair_frames(files_by_stem(self.root / "RGB", (".png",)),
                           files_by_stem(self.root / "GT" / "LABELS", (".png",)))

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        if frame.label is None:
            return Sample(image=image, label=self.unlabelled(image), name=frame.name, source_path=frame.image)
        raw = read_unchanged(frame.label)
        if raw.ndim != 3 or raw.shape[2] < 3:
            raise bad_annotation(frame.label, f"SYNTHIA labels are multi-channel PNGs (class in the first channel), "
                                              f"got shape {raw.shape}; use GT/LABELS, not GT/COLOR")
        require_same_size(image, raw, frame.image, frame.label, "label")
        label = SYNTHIA_IDS.apply(raw[..., 2], frame.label, report, strict)
        instances, boxes = boxes_from_instances(raw[..., 1].astype(np.int64), label, classes=THING_CLASSES)
        return Sample(image=image, label=label, instances=instances, boxes=boxes, name=frame.name,
                      source_path=frame.image)
