"""The one in-memory form of a labelled frame, used by every loader, transform and writer.

Conventions (all of semguard):
- image: uint8 [H,W,3] RGB.
- label: uint8 [H,W] Cityscapes train ids 0..18, 255 = ignore.
- instances: int32 [H,W], 0 = no instance, k > 0 = the pixels of instance k; or None.
- boxes: xyxy in pixels, half-open: a box covers columns x1 <= x < x2 and rows
  y1 <= y < y2, so the tight box of pixels with columns 3..5 is x1=3, x2=6.
  (Formats with inclusive boxes, like BDD100K, add 1 at load time.)

The box rule (`fit_boxes`, applied by every loader to the boxes it reads): coordinates must
be finite, ordered (x1 < x2, y1 < y2), of a train id 0..18, and inside the W x H frame up to
`CLIP_TOLERANCE` (1 px) on each side; a box within the tolerance is clipped to the frame and
counted, a box narrower or shorter than 1 px after clipping is dropped and counted, anything
else is a `bad annotation` naming the file and the box. A loaded `Sample` therefore always
holds boxes inside its frame (`Sample.validate` checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from typing import Sequence

import numpy as np

from semguard.data.mapping import BAD_ANNOTATION, FrameProblem
from semguard.labels import IGNORE_ID, LIGHT_STATE_ALIASES, LIGHT_STATES, NUM_CLASSES, TRAFFIC_LIGHT, TRAIN_ID_NAMES

CLIP_TOLERANCE = 1.0  # pixels a box may reach past the frame edge and still be clipped (not refused)


@dataclass(frozen=True)
class Box:
    """One object box: pixel xyxy (half-open), train id, instance id (0 = none), attributes.

    attributes: small string -> string dict, e.g. {"state": "red"} for a traffic light or
    {"pictogram": "arrow_left"} for a sign.
    """

    xyxy: tuple[float, float, float, float]
    class_id: int
    instance_id: int = 0
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return self.xyxy[2] - self.xyxy[0]

    @property
    def height(self) -> float:
        return self.xyxy[3] - self.xyxy[1]

    def with_xyxy(self, xyxy: tuple[float, float, float, float]) -> "Box":
        return replace(self, xyxy=tuple(float(v) for v in xyxy))

    @property
    def light_state(self) -> int | None:
        """Index into semguard.labels.LIGHT_STATES of a traffic light's "state" attribute (case and
        LIGHT_STATE_ALIASES allowed); None for other boxes and for lights without a known state."""
        if int(self.class_id) != TRAFFIC_LIGHT:
            return None
        state = str(self.attributes.get("state", "")).strip().lower()
        state = LIGHT_STATE_ALIASES.get(state, state)
        return LIGHT_STATES.index(state) if state in LIGHT_STATES else None


@dataclass
class Sample:
    """A labelled frame. See the module docstring for shapes, dtypes and conventions."""

    image: np.ndarray
    label: np.ndarray
    instances: np.ndarray | None = None
    boxes: list[Box] = field(default_factory=list)
    name: str = ""
    source_path: str = ""

    def validate(self) -> "Sample":
        """Check shapes and dtypes; raise ValueError naming the frame and the tensor."""
        where = self.source_path or self.name or "sample"
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"{where}: image must be uint8 [H,W,3], got {self.image.dtype} {self.image.shape}")
        if self.label.shape != self.image.shape[:2]:
            raise ValueError(f"{where}: label {self.label.shape} and image {self.image.shape[:2]} differ in size")
        if self.label.dtype != np.uint8:
            raise ValueError(f"{where}: label must be uint8 train ids, got {self.label.dtype}")
        bad = (self.label >= NUM_CLASSES) & (self.label != IGNORE_ID)
        if bad.any():
            raise ValueError(f"{where}: label holds ids outside 0..18 and 255: {sorted(set(np.unique(self.label[bad]).tolist()))}")
        if self.instances is not None and self.instances.shape != self.image.shape[:2]:
            raise ValueError(f"{where}: instances {self.instances.shape} and image {self.image.shape[:2]} differ in size")
        for k, box in enumerate(self.boxes):
            problem = box_problem(box, self.size, tolerance=1e-6)  # inside the frame (up to float rounding)
            if problem:
                raise ValueError(f"{where}: box {k} {problem}")
        return self

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def box_problem(box: Box, size: tuple[int, int], tolerance: float = CLIP_TOLERANCE) -> str | None:
    """Why `box` breaks the box rule in a frame of size (H, W) with `tolerance` px, or None."""
    height, width = size
    try:
        x1, y1, x2, y2 = (float(v) for v in box.xyxy)
    except (TypeError, ValueError):
        return f"has xyxy {box.xyxy!r}; expected four numbers [x1, y1, x2, y2]"
    if not isinstance(box.class_id, (int, np.integer)) or not 0 <= int(box.class_id) < NUM_CLASSES:
        return f"has class_id {box.class_id!r}; valid train ids are 0..{NUM_CLASSES - 1}"
    name = f"({TRAIN_ID_NAMES[int(box.class_id)]}) [{x1:g}, {y1:g}, {x2:g}, {y2:g}]"
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return f"{name} has non-finite coordinates; fix or remove the box"
    if not (x1 < x2 and y1 < y2):
        return f"{name} is empty or inverted (need x1 < x2 and y1 < y2, half-open pixel xyxy); fix or remove the box"
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        slack = f" by more than {tolerance:g} px (the clipping tolerance)" if tolerance >= 0.01 else ""
        return f"{name} lies outside the {width}x{height} (WxH) frame{slack}; fix or remove the box"
    return None


def fit_boxes(boxes: list[Box], size: tuple[int, int], where: str, report=None, min_size: float = 1.0,
              tolerance: float = CLIP_TOLERANCE) -> list[Box]:
    """Apply the box rule (module docstring) to boxes read from `where` for a frame of size (H, W).

    Returns the boxes clipped to the frame; counts clipped and dropped boxes by class name in
    `report.clipped_boxes` / `report.tiny_boxes` (a semguard.data.mapping.IgnoreReport) when
    given. Raises FrameProblem (bad annotation) naming `where` and the box otherwise.
    """
    height, width = size
    out = []
    for k, box in enumerate(boxes):
        problem = box_problem(box, size, tolerance)
        if problem:
            raise FrameProblem(BAD_ANNOTATION, where, f"{where}: box {k} {problem}")
        x1, y1, x2, y2 = (float(v) for v in box.xyxy)
        clipped = (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
                   min(max(x2, 0.0), width), min(max(y2, 0.0), height))
        name = TRAIN_ID_NAMES[int(box.class_id)]
        if clipped[2] - clipped[0] < min_size or clipped[3] - clipped[1] < min_size:
            if report is not None:
                report.tiny_boxes[name] += 1
            continue
        if clipped != (x1, y1, x2, y2):
            if report is not None:
                report.clipped_boxes[name] += 1
            box = box.with_xyxy(clipped)
        out.append(box)
    return out


def box_pixel_bounds(xyxy: Sequence[float], height: int, width: int) -> tuple[int, int, int, int] | None:
    """Integer half-open pixel bounds (x0, y0, x1, y1) of a box, clipped to the frame.

    Pixel x is inside when x + 0.5 is in [x1, x2): x0 = ceil(x1 - 0.5), x1' = ceil(x2 - 0.5).
    A box of positive size covering no pixel centre covers the pixel holding its centre.
    Returns None when the box is empty or lies outside the frame.
    """
    bx1, by1, bx2, by2 = (float(v) for v in xyxy)
    if not (bx2 > bx1 and by2 > by1):
        return None

    def span(lo: float, hi: float, size: int) -> tuple[int, int] | None:
        start, stop = math.ceil(lo - 0.5), math.ceil(hi - 0.5)
        if stop <= start:  # sub-pixel box: the pixel holding its centre
            start = math.floor((lo + hi) / 2)
            stop = start + 1
        start, stop = max(start, 0), min(stop, size)
        return (start, stop) if stop > start else None

    xs, ys = span(bx1, bx2, width), span(by1, by2, height)
    if xs is None or ys is None:
        return None
    return xs[0], ys[0], xs[1], ys[1]
