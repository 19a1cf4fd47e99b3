"""BDD100K: sem_seg masks (already train ids) and det_20 boxes (inclusive -> half-open).

    ROOT/images/10k/{split}/<id>.jpg
    ROOT/labels/sem_seg/masks/{split}/<id>.png     train ids, 255 ignore
    ROOT/labels/det_20/det_{split}.json            list of Scalabel frames (optional)

Box x2, y2 are inclusive in BDD100K (w = x2 - x1 + 1): 1 is added to make them half-open.
trafficLightColor becomes {"state": "red"|"amber"|"green"}.
"""

from __future__ import annotations

from semguard.data.formats.base import Frame, FrameDataset, FrameIndex, files_by_stem, pair_frames, clip_boxes
from semguard.data.readers import read_label, read_rgb
from semguard.data.folder import TRAIN_IDS
from semguard.data.formats.scalabel import frame_stem, read_scalabel_frames, scalabel_boxes
from semguard.data.mapping import IgnoreReport
from semguard.data.sample import Sample
from semguard.labels import TRAIN_ID_NAMES


class Bdd100kFormat(FrameDataset):
    format_name = "bdd100k"
    options_help = {"split": "train | val | test (default train)",
                    "images": "image folder under ROOT (default images/10k)"}
    id_names = dict(enumerate(TRAIN_ID_NAMES))

    def __init__(self, root, *, split: str = "train", images: str = "images/10k", **kwargs):
        self.split, self.image_root = str(split), str(images)
        super().__init__(root, **kwargs)

    def scan(self) -> FrameIndex:
        images = files_by_stem(self.root / self.image_root / self.split, (".jpg", ".png"))
        labels = files_by_stem(self.root / "labels" / "sem_seg" / "masks" / self.split, (".png",))
        box_path = self.root / "labels" / "det_20" / f"det_{self.split}.json"
        self.box_file = str(box_path) if box_path.is_file() else None
        self._labels_by_name = {}
        if self.box_file:
            self._labels_by_name = {frame_stem(f["name"]): f.get("labels") or []
                                    for f in read_scalabel_frames(self.box_file)}
        return pair_frames(images, labels)

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        label = read_label(image, frame.image, frame.label, TRAIN_IDS, report, strict, what="mask",
                           not_single="BDD100K masks are single-channel train ids, got shape {shape}; "
                                      "use labels/sem_seg/masks, not colormaps")
        boxes = []
        if self.box_file:
            boxes = clip_boxes(scalabel_boxes(self._labels_by_name.get(frame.name), self.box_file, report, strict,
                                              inclusive=True), image.shape[:2],
                               where=f"{self.box_file} ({frame.name})", report=report)
        return Sample(image=image, label=label, boxes=boxes, name=frame.name, source_path=frame.image)
