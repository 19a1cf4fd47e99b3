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

from semguard.data.sample import Box, Sample
from semguard.errors import DataError
from semguard.labels import class_name

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


def write_png(path: Path, array: np.ndarray) -> None:
    """Write an image array as PNG atomically (uint8 RGB/grey or uint16 grey)."""
    if array.dtype == np.uint16 or array.dtype == np.int32:
        if array.size and (int(array.max()) > 65535 or int(array.min()) < 0):
            raise DataError(f"{path}: instance ids must lie in 0..65535")
        image = Image.fromarray(array.astype(np.uint16))
    else:
        image = Image.fromarray(array)
    _atomic_write_bytes(path, lambda handle: image.save(handle, format="PNG"))


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
    try:
        return [
            Box(
                xyxy=tuple(float(v) for v in entry["xyxy"]),
                class_id=int(entry["class_id"]),
                instance_id=int(entry.get("instance_id", 0)),
                attributes={str(k): str(v) for k, v in entry.get("attributes", {}).items()},
            )
            for entry in data["boxes"]
        ]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: malformed boxes file ({err!r}); expected {{'boxes': [{{'xyxy', 'class_id', ...}}]}}") from None


def write_dataset_info(root: str | Path, **metadata) -> None:
    """Write ROOT/dataset.json (format name, version and free metadata such as domain)."""
    write_json(Path(root) / "dataset.json", {"format": FORMAT_NAME, "version": FORMAT_VERSION, **metadata})


def read_dataset_info(root: str | Path) -> dict:
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: corrupt JSON ({err.msg} at line {err.lineno}); rewrite or delete the file") from None


def write_sample(root: str | Path, sample: Sample) -> None:
    """Write one sample under ROOT (image, label, instances if any, boxes)."""
    root = Path(root)
    name = _safe_name(root, sample.name)
    sample.validate()
    write_png(root / IMAGE_DIR / f"{name}.png", sample.image)
    write_png(root / LABEL_DIR / f"{name}.png", sample.label)
    if sample.instances is not None:
        write_png(root / INSTANCE_DIR / f"{name}.png", sample.instances)
    write_json(root / BOX_DIR / f"{name}.json", boxes_to_json(sample.boxes, sample.size))


def list_names(root: str | Path) -> list[str]:
    """Sorted sample names of a folder data set (from images/)."""
    root = Path(root)
    image_dir = root / IMAGE_DIR
    if not image_dir.is_dir():
        raise DataError(f"{root} is not a semguard folder data set: {image_dir} is missing")
    return sorted(str(p.relative_to(image_dir).with_suffix("")) for p in image_dir.rglob("*.png"))


def _read_png(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: {what} file is missing")
    try:
        with Image.open(path) as image:
            image.load()
            return np.array(image)
    except OSError as err:
        raise DataError(f"{path}: unreadable or truncated {what} ({err}); regenerate or remove this frame") from None


def read_sample(root: str | Path, name: str, with_label: bool = True) -> Sample:
    """Read one sample; a missing label is an error unless `with_label` is False."""
    root = Path(root)
    image_path = root / IMAGE_DIR / f"{name}.png"
    image = _read_png(image_path, "image")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3]).astype(np.uint8, copy=False)
    label_path = root / LABEL_DIR / f"{name}.png"
    if with_label or label_path.is_file():
        label = _read_png(label_path, "label")
        if label.ndim != 2:
            raise DataError(f"{label_path}: label must be a single-channel PNG of train ids, got shape {label.shape}")
        label = label.astype(np.uint8, copy=False)
    else:
        label = np.full(image.shape[:2], 255, dtype=np.uint8)
    instance_path = root / INSTANCE_DIR / f"{name}.png"
    instances = _read_png(instance_path, "instance").astype(np.int32) if instance_path.is_file() else None
    box_path = root / BOX_DIR / f"{name}.json"
    boxes: list[Box] = []
    if box_path.is_file():
        try:
            data = json.loads(box_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{box_path}: corrupt JSON ({err.msg} at line {err.lineno})") from None
        boxes = boxes_from_json(data, box_path)
    sample = Sample(image=image, label=label, instances=instances, boxes=boxes, name=name, source_path=str(image_path))
    try:
        return sample.validate()
    except ValueError as err:
        raise DataError(str(err)) from None


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

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        return read_sample(self.root, self.names[index], with_label=self.labels_required)
