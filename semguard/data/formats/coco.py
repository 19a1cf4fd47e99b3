"""Box files: COCO (and Scalabel, for the simulators that write it), and a COCO box data set.

COCO: `{images: [{id, file_name, width, height}], annotations: [{image_id, category_id,
bbox: [x, y, w, h]}], categories: [{id, name}]}`; bbox is continuous pixel x, y, w, h,
so the half-open box is (x, y, x + w, y + h). Category names map to train ids
(person, car, traffic light, stop sign -> traffic sign, ...); others are dropped and
counted (strict: an error).

The "coco" format is a box-only set: ROOT/images/NAME.* + ROOT/annotations.json; its
label maps are all ignore (no semantic labels exist), unless ROOT/labels/NAME.png holds
train-id maps.
"""

from __future__ import annotations

from pathlib import Path

from semguard.data.formats.base import Frame, FrameDataset, FrameIndex, clip_boxes, files_by_stem
from semguard.data.readers import bad_annotation, read_label, read_rgb
from semguard.data.folder import TRAIN_IDS
from semguard.data.formats.scalabel import KNOWN_UNMAPPED, frame_stem, read_json, read_scalabel_frames, scalabel_boxes
from semguard.data.mapping import IgnoreReport
from semguard.data.sample import Box, Sample
from semguard.errors import DataError
from semguard.labels import NAME_TO_TRAIN_ID, SCALABEL_CATEGORY_TO_TRAIN

COCO_CATEGORY_TO_TRAIN = {**NAME_TO_TRAIN_ID, **SCALABEL_CATEGORY_TO_TRAIN, "stop sign": 7, "motorbike": 17}


def read_coco_boxes(ref: str) -> dict[str, list[dict]]:
    """frame stem (file_name without extension) -> list of {'category', 'bbox', 'attributes'}."""
    data = read_json(ref)
    try:
        names = {int(image["id"]): frame_stem(image["file_name"]) for image in data["images"]}
        categories = {int(c["id"]): str(c["name"]).strip().lower() for c in data["categories"]}
        out: dict[str, list[dict]] = {name: [] for name in names.values()}
        for index, ann in enumerate(data["annotations"]):
            image_id, category_id = int(ann["image_id"]), int(ann["category_id"])
            if image_id not in names:
                raise bad_annotation(ref, f"annotation {index} names image_id {image_id}, which 'images' does not list")
            if category_id not in categories:
                raise bad_annotation(ref, f"annotation {index} names category_id {category_id}, which 'categories' does not list")
            out[names[image_id]].append({"category": categories[category_id], "bbox": ann["bbox"],
                                         "attributes": ann.get("attributes") or {}, "index": index})
    except (KeyError, TypeError, ValueError) as err:
        raise bad_annotation(ref, f"not a COCO box file ({err!r}); expected images, annotations and categories") from None
    return out


def coco_boxes(entries: list[dict] | None, ref: str, report: IgnoreReport, strict: bool) -> list[Box]:
    boxes = []
    for entry in entries or []:
        category = entry["category"]
        train_id = COCO_CATEGORY_TO_TRAIN.get(category)
        if train_id is None:
            if strict and category not in KNOWN_UNMAPPED:
                raise bad_annotation(ref, f"annotation {entry['index']} has category '{category}' without a train id; "
                                          "load without strict to drop it")
            report.dropped_boxes[category] += 1
            continue
        try:
            x, y, w, h = (float(v) for v in entry["bbox"])
        except (TypeError, ValueError):
            raise bad_annotation(ref, f"annotation {entry['index']}: bbox must be [x, y, w, h], got {entry['bbox']!r}") from None
        if w <= 0 or h <= 0:
            raise bad_annotation(ref, f"annotation {entry['index']}: bbox {entry['bbox']!r} has no area; fix or remove it")
        attributes = {str(k): str(v) for k, v in entry["attributes"].items() if isinstance(v, (str, int, float, bool))}
        boxes.append(Box(xyxy=(x, y, x + w, y + h), class_id=train_id, attributes=attributes))
    return boxes


class BoxFile:
    """A COCO or Scalabel box file, keyed by frame stem (told apart by their structure)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        data = read_json(self.path)
        self.kind = "coco" if isinstance(data, dict) and "annotations" in data else "scalabel"
        if self.kind == "coco":
            self.entries = read_coco_boxes(self.path)
        else:
            self.entries = {}
            for frame in read_scalabel_frames(self.path):
                name = frame_stem(frame["name"])
                if frame.get("videoName"):
                    name = f"{frame['videoName']}/{name}"
                self.entries[name] = frame.get("labels") or []

    @classmethod
    def find(cls, root: Path, option: str | None, default: str = "boxes.json") -> "BoxFile | None":
        if option:
            path = Path(option) if Path(option).is_absolute() else root / option
            if not path.is_file():
                raise DataError(f"box file {path} does not exist; fix the 'boxes' option")
            return cls(path)
        return cls(root / default) if (root / default).is_file() else None

    def boxes(self, name: str, report: IgnoreReport, strict: bool) -> list[Box]:
        entries = self.entries.get(name)
        if entries is None:
            entries = self.entries.get(Path(name).name)
        if self.kind == "coco":
            return coco_boxes(entries, self.path, report, strict)
        return scalabel_boxes(entries, self.path, report, strict, inclusive=True)


class CocoFormat(FrameDataset):
    format_name = "coco"
    options_help = {"annotations": "COCO box file (default ROOT/annotations.json)",
                    "image_dir": "image folder under ROOT (default images)"}

    def __init__(self, root, *, annotations: str = "annotations.json", image_dir: str = "images", **kwargs):
        self.annotations, self.image_dir = annotations, image_dir
        super().__init__(root, **kwargs)

    def scan(self) -> FrameIndex:
        self.box_file = BoxFile.find(self.root, self.annotations)
        images = files_by_stem(self.root / self.image_dir, (".png", ".jpg", ".jpeg"))
        labels = files_by_stem(self.root / "labels", (".png",))
        frames = [Frame(name, ref, labels.get(name)) for name, ref in sorted(images.items())]
        return FrameIndex(frames=frames, orphan_labels=[labels[n] for n in sorted(labels) if n not in images])

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        label = self.unlabelled(image)
        if frame.label is not None:
            label = read_label(image, frame.image, frame.label, TRAIN_IDS, report, strict, channel="any")
        boxes = (clip_boxes(self.box_file.boxes(frame.name, report, strict), image.shape[:2],
                            where=f"{self.box_file.path} ({frame.name})", report=report) if self.box_file else [])
        return Sample(image=image, label=label, boxes=boxes, name=frame.name, source_path=frame.image)
