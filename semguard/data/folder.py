"""semguard's own folder format: what `data make-toy` and `translate` write.

One data set (one domain, one split) is a folder:

    ROOT/dataset.json            {"format": "semguard-folder", "version": 1, ...free metadata}
    ROOT/images/NAME.png         RGB uint8
    ROOT/labels/NAME.png         8-bit grey, Cityscapes train ids, 255 = ignore
    ROOT/instances/NAME.png      16-bit grey, 0 = no instance, k = instance k   (optional)
    ROOT/boxes/NAME.json         {"size": [H, W], "boxes": [{"class": "traffic light",
                                   "class_id": 6, "instance_id": 3, "xyxy": [x1, y1, x2, y2],
                                   "attributes": {"state": "red"}}, ...]}        (optional)

Boxes are pixel xyxy, half-open (x2 = last column + 1). NAME may contain '/' (sub-folders)
so that original names survive translation. Every file is written atomically (temporary
file + rename), so a killed writer never leaves a half-written frame.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from semguard.data.mapping import BAD_ANNOTATION, IMAGE_WITHOUT_LABEL, UNREADABLE, FrameProblem, IdMapping, IgnoreReport
from semguard.data.readers import bad_annotation, read_bytes, read_ids, read_label, read_rgb, require_same_size
from semguard.data.sample import Box, Sample, fit_boxes
from semguard.errors import DataError
from semguard.files import JSON_FILE_LIMIT, file_kind, read_regular_file
from semguard.labels import IGNORE_ID, NAME_TO_TRAIN_ID, NUM_CLASSES, TRAIN_ID_NAMES, class_name
from semguard.validate import require_inside

# the folder format stores train ids: 0-18 and 255 are known, anything else goes to ignore (counted)
TRAIN_IDS = IdMapping({i: i for i in range(NUM_CLASSES)}, known_ids=[*range(NUM_CLASSES), IGNORE_ID],
                      source="train id", names=dict(enumerate(TRAIN_ID_NAMES)), already_ignore=[IGNORE_ID])

FORMAT_NAME = "semguard-folder"
FORMAT_VERSION = 1
IMAGE_DIR, LABEL_DIR, INSTANCE_DIR, BOX_DIR = "images", "labels", "instances", "boxes"


def _default_mode() -> int:
    """The permission bits an ordinary open() would give a new file (0666 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600 files; outputs are meant to be shared
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _safe_name(root: Path, name: str) -> str:
    """Refuse names that would escape the output folder."""
    pure = Path(name)
    if pure.is_absolute() or ".." in pure.parts or not name:
        raise DataError(f"sample name '{name}' would write outside {root}; names must be relative, without '..'")
    return name


# zlib level of the PNGs semguard writes. Measured on 2048x1024 RGB frames (benchmarks/bench_png.py,
# results/png.md): a real-style toy world frame takes 0.33 s at level 1 against 0.72 s at Pillow's default 6,
# for a file 14% larger; a smooth gradient 0.29 s against 1.13 s (18% larger). Encoding runs beside the model
# on the same cores, so the fast level is the default (translate --png-level chooses another).
PNG_COMPRESS_LEVEL = 1


def write_png(path: Path, array: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> None:
    """Write an image array as PNG atomically (uint8 RGB/grey or uint16 grey); `compress_level`
    0 (none, fastest) .. 9 (smallest); the pixels are the same at every level."""
    if array.dtype == np.uint16 or array.dtype == np.int32:
        if array.size and (int(array.max()) > 65535 or int(array.min()) < 0):
            raise DataError(f"{path}: instance ids must lie in 0..65535")
        image = Image.fromarray(array.astype(np.uint16))
    else:
        image = Image.fromarray(array)
    _atomic_write_bytes(path, lambda handle: image.save(handle, format="PNG", compress_level=compress_level))


def write_json(path: Path, data) -> None:
    payload = json.dumps(data, indent=1).encode("utf-8")
    _atomic_write_bytes(path, lambda handle: handle.write(payload))


def boxes_to_json(boxes: list[Box], size: tuple[int, int]) -> dict:
    return {
        "size": [int(size[0]), int(size[1])],
        "boxes": [
            {
                "class": class_name(box.class_id),
                "class_id": int(box.class_id),
                "instance_id": int(box.instance_id),
                "xyxy": [float(v) for v in box.xyxy],
                "attributes": dict(box.attributes),
            }
            for box in boxes
        ],
    }


def boxes_from_json(data: dict, path: Path) -> list[Box]:
    """The boxes of a NAME.json file; each entry must have xyxy (four numbers), an integer
    class_id in 0..18 and, when given, a "class" equal to that id's name (a disagreement is
    an error: which one is right cannot be guessed)."""
    if not isinstance(data, dict) or not isinstance(data.get("boxes"), list):
        raise DataError(f"{path}: malformed boxes file; expected {{'size': [H, W], 'boxes': [{{'xyxy', 'class_id', ...}}]}}")
    boxes = []
    for k, entry in enumerate(data["boxes"]):
        where = f"{path}: box {k}"
        if not isinstance(entry, dict):
            raise DataError(f"{where} is {entry!r}, expected an object with xyxy and class_id")
        xyxy, class_id = entry.get("xyxy"), entry.get("class_id")
        if (not isinstance(xyxy, (list, tuple)) or len(xyxy) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xyxy)):
            raise DataError(f"{where} has xyxy {xyxy!r}; expected four numbers [x1, y1, x2, y2] (half-open pixels)")
        if isinstance(class_id, bool) or not isinstance(class_id, int) or not 0 <= class_id < NUM_CLASSES:
            raise DataError(f"{where} has class_id {class_id!r}; expected a train id 0..{NUM_CLASSES - 1} "
                            "(see semguard.labels.TRAIN_ID_NAMES)")
        name = entry.get("class")
        if name is not None:
            if name not in NAME_TO_TRAIN_ID:
                raise DataError(f"{where} has unknown class {name!r}; valid classes: {', '.join(NAME_TO_TRAIN_ID)}")
            if NAME_TO_TRAIN_ID[name] != class_id:
                raise DataError(f"{where} says class {name!r} (train id {NAME_TO_TRAIN_ID[name]}) but class_id "
                                f"{class_id} ({class_name(class_id)}); make the two agree")
        instance_id = entry.get("instance_id", 0)
        if isinstance(instance_id, bool) or not isinstance(instance_id, int) or not 0 <= instance_id <= 65535:
            raise DataError(f"{where} has instance_id {instance_id!r}; expected an integer 0..65535 (0 = none)")
        attributes = entry.get("attributes", {})
        if not isinstance(attributes, dict):
            raise DataError(f"{where} has attributes {attributes!r}; expected an object of strings")
        boxes.append(Box(xyxy=tuple(float(v) for v in xyxy), class_id=class_id, instance_id=instance_id,
                         attributes={str(k): str(v) for k, v in attributes.items()}))
    return boxes


def check_box_size(data: dict, size: tuple[int, int], path: Path) -> None:
    """A boxes file's "size" (when given) must be the frame's [H, W]."""
    stated = data.get("size") if isinstance(data, dict) else None
    if stated is not None and (not isinstance(stated, list) or stated != [int(size[0]), int(size[1])]):
        raise DataError(f"{path}: says size {stated} but its image is [{size[0]}, {size[1]}] ([H, W]); "
                        "the boxes belong to another frame or resolution: regenerate the file")


def write_dataset_info(root: str | Path, **metadata) -> None:
    """Write ROOT/dataset.json (format name, version and free metadata such as domain)."""
    write_json(Path(root) / "dataset.json", {"format": FORMAT_NAME, "version": FORMAT_VERSION, **metadata})


def read_dataset_info(root: str | Path) -> dict:
    """ROOT/dataset.json ({} when absent); refuses another format or a version newer than FORMAT_VERSION."""
    path = Path(root) / "dataset.json"
    if not os.path.lexists(path):
        return {}
    try:
        info = json.loads(read_regular_file(path, "dataset file", JSON_FILE_LIMIT, error=DataError).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise DataError(f"{path}: corrupt JSON ({err}); rewrite or delete the file") from None
    if not isinstance(info, dict):
        raise DataError(f"{path}: holds a {type(info).__name__}, expected an object "
                        f'{{"format": "{FORMAT_NAME}", "version": {FORMAT_VERSION}, ...}}')
    if info.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise DataError(f"{path}: format {info.get('format')!r} is not {FORMAT_NAME!r}; this is not a semguard "
                        "folder data set (pick its --format) or the file is wrong")
    version = info.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise DataError(f"{path}: version {version!r} is not supported (this semguard reads version 1..{FORMAT_VERSION}); "
                        "upgrade semguard or rewrite the data set")
    return info


def write_sample(root: str | Path, sample: Sample, compress_level: int = PNG_COMPRESS_LEVEL) -> None:
    """Write one sample under ROOT (image, label, instances if any, boxes); `compress_level`: the
    PNGs' zlib level (write_png)."""
    root = Path(root)
    name = _safe_name(root, sample.name)
    sample.validate()
    targets = [root / IMAGE_DIR / f"{name}.png", root / LABEL_DIR / f"{name}.png", root / BOX_DIR / f"{name}.json"]
    if sample.instances is not None:
        targets.append(root / INSTANCE_DIR / f"{name}.png")
    for target in targets:  # no symlink under ROOT may lead a write out of it
        require_inside(root, target)
    write_png(targets[0], sample.image, compress_level)
    write_png(targets[1], sample.label, compress_level)
    if sample.instances is not None:
        write_png(targets[3], sample.instances, compress_level)
    write_json(targets[2], boxes_to_json(sample.boxes, sample.size))


def list_names(root: str | Path) -> list[str]:
    """Sorted sample names of a folder data set (from images/)."""
    root = Path(root)
    image_dir = root / IMAGE_DIR
    if not image_dir.is_dir():
        raise DataError(f"{root} is not a semguard folder data set: {image_dir} is missing")
    return sorted(str(p.relative_to(image_dir).with_suffix("")) for p in image_dir.rglob("*.png"))


def skipped_files(root: str | Path) -> list[Path]:
    """Entries under ROOT/images and ROOT/labels that are not frames: files of another extension
    (e.g. images/f5.jpg) and .png entries that are not regular files (a FIFO, a folder named x.png).
    Loading skips them; `data check` and `translate` count and print them."""
    root = Path(root)
    skipped = []
    for folder in (root / IMAGE_DIR, root / LABEL_DIR):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix == ".png":
                if not path.is_file():
                    skipped.append(path)
            elif not path.is_dir() or path.is_symlink():
                skipped.append(path)
    return skipped


def read_sample(root: str | Path, name: str, with_label: bool = True, report: IgnoreReport | None = None,
                strict: bool = False) -> Sample:
    """Read one frame of a folder data set: the one reader of the format (FolderDataset and the
    `folder` loader of semguard.data.formats both use it).

    A missing label is an error unless `with_label` is False (then an all-ignore map). Label
    ids outside the 19 train ids and 255 go to ignore and are counted in `report` (refused
    with `strict`); boxes follow the box rule of semguard.data.sample.fit_boxes, what it
    clipped or dropped counted in `report`. Problems are FrameProblems naming the file.
    """
    root = Path(root)
    image_path = root / IMAGE_DIR / f"{name}.png"
    if not image_path.is_file():
        raise FrameProblem(UNREADABLE, str(image_path), f"{image_path}: image file is missing")
    image = read_rgb(str(image_path))
    label_path = root / LABEL_DIR / f"{name}.png"
    if with_label or label_path.is_file():
        if not label_path.is_file():
            raise FrameProblem(IMAGE_WITHOUT_LABEL, str(label_path), f"{label_path}: label file is missing")
        label = read_label(image, str(image_path), str(label_path), TRAIN_IDS, report, strict,
                           not_single="label must be a single-channel PNG of train ids, got shape {shape}")
    else:
        label = np.full(image.shape[:2], IGNORE_ID, dtype=np.uint8)
    instance_path = root / INSTANCE_DIR / f"{name}.png"
    instances = None
    if instance_path.is_file():
        instances = read_ids(str(instance_path), "instance map").astype(np.int32)
        require_same_size(image, instances, str(image_path), str(instance_path), "instance map")
    box_path = root / BOX_DIR / f"{name}.json"
    boxes: list[Box] = []
    if os.path.lexists(box_path) and not box_path.is_file():
        # a folder, a FIFO or a broken link where the boxes belong: never "no boxes" without a word
        raise FrameProblem(BAD_ANNOTATION, str(box_path), f"{box_path}: is a {file_kind(box_path)}, not a boxes file; "
                           "replace it with the frame's boxes JSON (or remove it: the frame then has no boxes)")
    if box_path.is_file():
        try:
            data = json.loads(read_bytes(str(box_path)).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise bad_annotation(str(box_path), f"corrupt JSON ({err}); regenerate the boxes file") from None
        try:
            boxes = boxes_from_json(data, box_path)
            check_box_size(data, image.shape[:2], box_path)
        except FrameProblem:
            raise
        except DataError as err:
            raise FrameProblem(BAD_ANNOTATION, str(box_path), str(err)) from None
        boxes = fit_boxes(boxes, image.shape[:2], str(box_path), report=report)
    sample = Sample(image=image, label=label, instances=instances, boxes=boxes, name=name, source_path=str(image_path))
    try:
        return sample.validate()
    except ValueError as err:
        raise FrameProblem(BAD_ANNOTATION, str(image_path), f"{image_path}: {err}") from None


class FolderDataset:
    """A semguard folder data set as a sequence of `Sample`s (map-style, picklable).

    root: the folder holding images/, labels/, ...; labels_required: a missing label file
    is an error (True) or an all-ignore label map (False, for unlabelled target images).
    """

    def __init__(self, root: str | Path, labels_required: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"data set folder {self.root} does not exist")
        self.names = list_names(self.root)
        if not self.names:
            raise DataError(f"data set {self.root} is empty: no PNG files under {self.root / IMAGE_DIR}")
        self.labels_required = labels_required
        self.info = read_dataset_info(self.root)

        self.ignore_report = IgnoreReport()  # boxes clipped/dropped by the frames read in this process

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        return read_sample(self.root, self.names[index], with_label=self.labels_required, report=self.ignore_report)
