"""Virtual KITTI 2: RGB colour class maps (colors.txt per scene), boxes from bbox.txt + info.txt.

    ROOT/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg
    ROOT/Scene01/clone/frames/classSegmentation/Camera_0/classgt_00000.png   RGB, colours per colors.txt
    ROOT/Scene01/clone/colors.txt   "Category r g b" then one class per line
    ROOT/Scene01/clone/bbox.txt     frame cameraID trackID left right top bottom number_pixels ...
    ROOT/Scene01/clone/info.txt     trackID label model color   (label: Car | Van | Truck)

Frame names are 'Scene01/clone/Camera_0/00000'. Class colours are mapped through the names
in colors.txt (VKITTI2 has no sidewalk, person or rider). bbox.txt boxes are taken as
inclusive pixel bounds (right/bottom + 1 -> half-open).
"""

from __future__ import annotations

from pathlib import Path

from semguard.data.formats.base import Frame, FrameDataset, FrameIndex, as_bool, clip_boxes, pair_frames
from semguard.data.readers import bad_annotation, read_bytes, read_ids, read_rgb, require_same_size
from semguard.data.mapping import ColorMapping, IgnoreReport
from semguard.data.sample import Box, Sample
from semguard.labels import IGNORE_ID

VKITTI2_NAME_TO_TRAIN = {
    "terrain": 9, "sky": 10, "tree": 8, "vegetation": 8, "building": 2, "road": 0, "guardrail": IGNORE_ID,
    "trafficsign": 7, "trafficlight": 6, "pole": 5, "misc": IGNORE_ID, "truck": 14, "car": 13, "van": 13,
    "undefined": IGNORE_ID,
}
TRACK_LABEL_TO_TRAIN = {"car": 13, "van": 13, "truck": 14}


def read_text(ref: str) -> list[list[str]]:
    try:
        return [line.split() for line in read_bytes(ref).decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise bad_annotation(ref, f"not a text file ({err})") from None


def read_colors(ref: str) -> ColorMapping:
    entries = []
    for number, row in enumerate(read_text(ref)):
        if number == 0 and row[0].lower() == "category":
            continue
        try:
            name, r, g, b = row[0], int(row[1]), int(row[2]), int(row[3])
        except (IndexError, ValueError):
            raise bad_annotation(ref, f"line {number + 1} is not 'Category r g b': {' '.join(row)!r}") from None
        train_id = VKITTI2_NAME_TO_TRAIN.get(name.lower())
        if train_id is None:
            raise bad_annotation(ref, f"unknown VKITTI2 class '{name}' (known: {', '.join(sorted(VKITTI2_NAME_TO_TRAIN))})")
        entries.append((name, (r, g, b), train_id))
    return ColorMapping(entries, source=f"VKITTI2 ({ref})")


def read_track_boxes(bbox_ref: str, info_ref: str) -> dict[tuple[int, int], list[Box]]:
    """(camera, frame) -> boxes (class from info.txt, instance_id 0, attribute 'track_id')."""
    classes: dict[int, int] = {}
    for number, row in enumerate(read_text(info_ref)):
        if number == 0 and row[0] == "trackID":
            continue
        try:
            label = TRACK_LABEL_TO_TRAIN[row[1].lower()]
            classes[int(row[0])] = label
        except (IndexError, ValueError, KeyError):
            raise bad_annotation(info_ref, f"line {number + 1} is not 'trackID label ...' with label Car/Van/Truck: {' '.join(row)!r}") from None
    boxes: dict[tuple[int, int], list[Box]] = {}
    for number, row in enumerate(read_text(bbox_ref)):
        if number == 0 and row[0] == "frame":
            continue
        try:
            frame, camera, track = int(row[0]), int(row[1]), int(row[2])
            left, right, top, bottom = (float(v) for v in row[3:7])
        except (IndexError, ValueError):
            raise bad_annotation(bbox_ref, f"line {number + 1} is not 'frame cameraID trackID left right top bottom ...'") from None
        if track not in classes:
            raise bad_annotation(bbox_ref, f"line {number + 1}: track {track} is not listed in {info_ref}")
        boxes.setdefault((camera, frame), []).append(
            Box(xyxy=(left, top, right + 1.0, bottom + 1.0), class_id=classes[track], attributes={"track_id": str(track)}))
    return boxes


class Vkitti2Format(FrameDataset):
    format_name = "vkitti2"
    options_help = {"boxes": "read bbox.txt/info.txt boxes (default true)"}

    def __init__(self, root, *, boxes: bool | str = True, **kwargs):
        self.read_boxes = as_bool(boxes, "boxes")
        self._colors: dict[str, ColorMapping] = {}
        self._boxes: dict[str, dict] = {}
        super().__init__(root, **kwargs)

    def scan(self) -> FrameIndex:
        images, labels = {}, {}
        for path in sorted(self.root.glob("Scene*/*/frames/rgb/Camera_*/rgb_*.jpg")):
            scene_dir = path.parents[3]
            name = f"{scene_dir.relative_to(self.root).as_posix()}/{path.parent.name}/{path.stem[len('rgb_'):]}"
            images[name] = str(path)
        for path in sorted(self.root.glob("Scene*/*/frames/classSegmentation/Camera_*/classgt_*.png")):
            scene_dir = path.parents[3]
            name = f"{scene_dir.relative_to(self.root).as_posix()}/{path.parent.name}/{path.stem[len('classgt_'):]}"
            labels[name] = str(path)
        index = pair_frames(images, labels)
        return index


    def _scene(self, name: str) -> Path:
        return self.root / Path(name).parent.parent

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        scene = self._scene(frame.name)
        if frame.label is None:
            label = self.unlabelled(image)
        else:
            key = str(scene)
            if key not in self._colors:
                colors = scene / "colors.txt"
                if not colors.is_file():
                    raise bad_annotation(str(colors), "colors.txt is missing; extract vkitti_2.0.3_textgt next to the frames")
                self._colors[key] = read_colors(str(colors))
            rgb = read_ids(frame.label)
            require_same_size(image, rgb, frame.image, frame.label, "class map")
            label = self._colors[key].apply(rgb, frame.label, report, strict)
        boxes: list[Box] = []
        if self.read_boxes and (scene / "bbox.txt").is_file():
            key = str(scene)
            if key not in self._boxes:
                info = scene / "info.txt"
                if not info.is_file():
                    raise bad_annotation(str(info), "info.txt is missing (it gives the class of each bbox.txt track)")
                self._boxes[key] = read_track_boxes(str(scene / "bbox.txt"), str(info))
            camera = int(Path(frame.name).parent.name.split("_")[-1])
            boxes = clip_boxes(self._boxes[key].get((camera, int(Path(frame.name).name)), []), image.shape[:2],
                               where=f"{scene / 'bbox.txt'} ({frame.name})", report=report)
        return Sample(image=image, label=label, boxes=boxes, name=frame.name, source_path=frame.image)
