"""What every format loader shares: frame listing, file reading, the data set protocol.

A format is a `FrameDataset` subclass. `scan()` lists the frames on disk (pairing
images with labels by name) and reports orphans; `load_frame()` reads one frame into a
`Sample` in train ids, recording what it sent to ignore. The base class turns the scan
into the map-style data set (`len`, `getitem`, `.names`) and refuses broken sets with one
message; `semguard data check` uses the same two methods but collects every problem.

File references are plain paths, or `ARCHIVE.zip::MEMBER` for files inside zip archives
(SHIFT ships its frames zipped); `read_bytes` opens either, one ZipFile per process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from semguard.data.mapping import (
    EMPTY_SET, IMAGE_WITHOUT_LABEL, LABEL_WITHOUT_IMAGE, BAD_ANNOTATION,
    FrameProblem, IgnoreReport,
)
from semguard.data.sample import Box, Sample, fit_boxes
from semguard.errors import ConfigError
from semguard.labels import IGNORE_ID

@dataclass
class Frame:
    """One frame on disk: name (relative stem), image ref, label ref (None = unlabelled), extras."""

    name: str
    image: str
    label: str | None
    extra: dict = field(default_factory=dict)


@dataclass
class FrameIndex:
    frames: list[Frame]
    orphan_images: list[str] = field(default_factory=list)
    orphan_labels: list[str] = field(default_factory=list)
    unlabelled: list[Frame] = field(default_factory=list)   # the orphan images as label-less frames


def pair_frames(images: Mapping[str, str], labels: Mapping[str, str],
                extras: Mapping[str, dict] | None = None) -> FrameIndex:
    """Pair image and label refs by name; unmatched ones become orphans (sorted by name)."""
    extras = extras or {}
    frames = [Frame(name, images[name], labels[name], dict(extras.get(name, {})))
              for name in sorted(images) if name in labels]
    return FrameIndex(
        frames=frames,
        orphan_images=[images[n] for n in sorted(images) if n not in labels],
        orphan_labels=[labels[n] for n in sorted(labels) if n not in images],
        unlabelled=[Frame(n, images[n], None, dict(extras.get(n, {}))) for n in sorted(images) if n not in labels],
    )


def files_by_stem(folder: Path, suffixes: tuple[str, ...], strip: str = "") -> dict[str, str]:
    """name -> path of files under `folder` (recursive) with one of `suffixes`.

    name: path relative to `folder` without the suffix and without the trailing `strip`
    (e.g. '_leftImg8bit'), '/'-separated.
    """
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for path in folder.rglob("*"):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        name = path.relative_to(folder).with_suffix("").as_posix()
        if strip:
            if not name.endswith(strip):
                continue
            name = name[: -len(strip)]
        out[name] = str(path)
    return out


def boxes_from_instances(instances: np.ndarray, label: np.ndarray,
                         classes: tuple[int, ...] | None = None) -> tuple[np.ndarray, list[Box]]:
    """Tight half-open boxes of each instance; instance ids made compact (1..N).

    instances: integer [H,W], 0 = none, any other value = one instance; label: uint8 train
    ids [H,W]. The class of an instance is the most common train id among its pixels
    (ignore excluded); instances that are all ignore, or whose class is not in `classes`
    (when given), are removed. Returns (int32 [H,W] compact instance map, boxes).
    """
    from scipy import ndimage   # lazy: scipy costs seconds at import, only this step needs it

    values, compact = np.unique(instances, return_inverse=True)
    compact = compact.reshape(instances.shape).astype(np.int32)
    if not (values.size and values[0] == 0):
        compact += 1  # no background value present: every id is an instance
    out = np.zeros(instances.shape, dtype=np.int32)
    boxes: list[Box] = []
    next_id = 1
    for index, window in enumerate(ndimage.find_objects(compact), start=1):
        if window is None:
            continue
        mask = compact[window] == index
        classes_here = label[window][mask]
        classes_here = classes_here[classes_here != IGNORE_ID]
        if classes_here.size == 0:
            continue
        class_id = int(np.bincount(classes_here).argmax())
        if classes is not None and class_id not in classes:
            continue
        out[window][mask] = next_id
        rows, cols = np.nonzero(mask)
        y0, x0 = window[0].start, window[1].start
        boxes.append(Box(
            xyxy=(float(x0 + cols.min()), float(y0 + rows.min()), float(x0 + cols.max() + 1), float(y0 + rows.max() + 1)),
            class_id=class_id, instance_id=next_id,
        ))
        next_id += 1
    return out, boxes


# ---------------------------------------------------------------------------- the data set


class FrameDataset:
    """Base of every format: a map-style data set of `Sample`s (picklable for workers).

    root: the data set folder; strict: an unexpected source id is a DataError (else it goes
    to ignore and is counted in `ignore_report`); labels_required: images without a label
    are an error (True) or load with an all-ignore label (False, unlabelled target sets);
    check_pairs: refuse orphans at construction (False only for `semguard data check`).

    `ignore_report` sums what the frames read *in this process* sent to ignore (frames read
    in DataLoader workers count in the workers); `check_dataset` gives the full report.
    """

    format_name = ""
    # option name -> one-line description (validated by open_dataset)
    options_help: dict[str, str] = {}
    # source id -> name, for ignore-report lines
    id_names: Mapping = {}

    def __init__(self, root: str | Path, *, strict: bool = False, labels_required: bool = True,
                 check_pairs: bool = True):
        self.root = Path(root)
        if not self.root.exists():
            raise FrameProblem(EMPTY_SET, str(self.root),
                               f"data set {self.root} does not exist; check the path given for the {self.format_name} data")
        self.strict = as_bool(strict, "strict")
        self.labels_required = as_bool(labels_required, "labels_required")
        self.ignore_report = IgnoreReport()
        self.index = self.scan()
        frames = list(self.index.frames)
        if not self.labels_required:
            frames += self.index.unlabelled
            frames.sort(key=lambda f: f.name)
        self.frames = frames
        self.names = [frame.name for frame in frames]
        if check_pairs:
            self.refuse_problems()

    # -- for subclasses
    def scan(self) -> FrameIndex:
        raise NotImplementedError

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        raise NotImplementedError

    # -- the data set protocol
    def refuse_problems(self) -> None:
        index = self.index
        if not self.frames:
            raise FrameProblem(EMPTY_SET, str(self.root), f"data set {self.root} ({self.format_name}) is empty: no frames found; "
                            f"check the path and the {self.format_name} folder layout (see FORMATS in the README)")
        if self.labels_required and index.orphan_images:
            raise FrameProblem(IMAGE_WITHOUT_LABEL, index.orphan_images[0],
                               f"{index.orphan_images[0]}: image without a label file ({len(index.orphan_images)} "
                               f"such images in {self.root}); add the labels, or load it as an unlabelled set")
        if index.orphan_labels:
            raise FrameProblem(LABEL_WITHOUT_IMAGE, index.orphan_labels[0],
                               f"{index.orphan_labels[0]}: label without an image ({len(index.orphan_labels)} such "
                               f"labels in {self.root}); restore the images or remove the stray labels")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self.frames) <= index < len(self.frames):
            raise IndexError(index)
        return self.read(self.frames[index], self.ignore_report, self.strict)

    def read(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        sample = self.load_frame(frame, report, strict)
        try:
            return sample.validate()
        except ValueError as err:
            raise FrameProblem(BAD_ANNOTATION, frame.image, str(err)) from None

    def unlabelled(self, image: np.ndarray) -> np.ndarray:
        return np.full(image.shape[:2], IGNORE_ID, dtype=np.uint8)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, frames={len(self.frames)})"


def as_bool(value, name: str) -> bool:
    """A boolean option that may arrive as a string from the command line."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"option '{name}' must be true or false, got {value!r}")


def require_option(value, name: str, fmt: str, choices: tuple[str, ...] | None = None):
    """An option the user must give (never guessed); a wrong value lists the valid ones."""
    if value is None:
        hint = f" (one of: {', '.join(choices)})" if choices else ""
        raise ConfigError(f"the {fmt} format needs the option '{name}'{hint}; "
                          f"pass it as --option {name}=VALUE or open_dataset(..., {name}=...)")
    if choices is not None and str(value) not in choices:
        raise ConfigError(f"the {fmt} option '{name}' is {value!r}; valid values: {', '.join(choices)}")
    return str(value)


def clip_boxes(boxes: list[Box], size: tuple[int, int], min_size: float = 1.0, where: str = "boxes",
               report: IgnoreReport | None = None) -> list[Box]:
    """The box rule of semguard.data.sample.fit_boxes for boxes read from `where`: refuse
    non-finite, inverted, unknown-class or out-of-frame boxes (FrameProblem naming `where`),
    clip the ones within the 1 px tolerance and drop those under `min_size`, counting both
    in `report`."""
    return fit_boxes(boxes, size, where, report=report, min_size=min_size)


def no_frames(path: str | Path, message: str) -> FrameProblem:
    """The layout holds no frames at all (wrong path or wrong format)."""
    return FrameProblem(EMPTY_SET, str(path), message)
