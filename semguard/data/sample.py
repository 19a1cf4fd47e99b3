"""The one in-memory form of a labelled frame, used by every loader, transform and writer.

Conventions (all of semguard):
- image: uint8 [H,W,3] RGB.
- label: uint8 [H,W] Cityscapes train ids 0..18, 255 = ignore.
- instances: int32 [H,W], 0 = no instance, k > 0 = the pixels of instance k; or None.
- boxes: xyxy in pixels, half-open: a box covers columns x1 <= x < x2 and rows
  y1 <= y < y2, so the tight box of pixels with columns 3..5 is x1=3, x2=6.
  (Formats with inclusive boxes, like BDD100K, add 1 at load time.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from semguard.labels import IGNORE_ID, NUM_CLASSES


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
        return self

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.image.shape[0]), int(self.image.shape[1])
