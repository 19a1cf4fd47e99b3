"""GTA5 ("Playing for Data"): images/NNNNN.png + labels/NNNNN.png (palette indices = label ids).

The label PNG is palette mode: its *indices* are Cityscapes label ids, so they are read
raw (np.asarray of a "P" image), never through the RGB colours. A few frames of the real
set differ in size between image and label; each frame is checked.
"""

from __future__ import annotations

from semguard.data.formats.base import Frame, FrameDataset, FrameIndex, files_by_stem, pair_frames
from semguard.data.readers import read_pil, read_rgb, require_same_size, bad_annotation
from semguard.data.formats.cityscapes import LABEL_IDS
from semguard.data.mapping import IgnoreReport
from semguard.data.sample import Sample
from semguard.labels import CITYSCAPES_LABEL_ID_NAMES

import numpy as np


class Gta5Format(FrameDataset):
    format_name = "gta5"
    id_names = CITYSCAPES_LABEL_ID_NAMES

    def scan(self) -> FrameIndex:
        images = files_by_stem(self.root / "images", (".png", ".jpg"))
        labels = files_by_stem(self.root / "labels", (".png",))
        return pair_frames(images, labels)

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        if frame.label is None:
            return Sample(image=image, label=self.unlabelled(image), name=frame.name, source_path=frame.image)
        label_image = read_pil(frame.label, "label")
        if label_image.mode not in ("P", "L"):
            raise bad_annotation(frame.label, f"GTA5 labels are palette PNGs whose indices are label ids, this one is "
                                              f"mode {label_image.mode}; use the original labels/ files")
        raw = np.asarray(label_image)
        require_same_size(image, raw, frame.image, frame.label, "label")
        label = LABEL_IDS.apply(raw, frame.label, report, strict)
        return Sample(image=image, label=label, name=frame.name, source_path=frame.image)
