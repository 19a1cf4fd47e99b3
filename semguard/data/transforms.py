"""Paired transforms: image, label map, instance map and boxes move together.

The randomness of one call is drawn once, from the `numpy.random.Generator` passed in
(so a data loader reproduces a stream from its seed whatever the number of workers), and
the geometry is applied by albumentations to every target at once:

- resize: semguard.data.resize (image bilinear, antialiased; label and instances nearest; boxes scaled).
- crop (H, W): frames smaller than the crop are padded at the bottom/right (image 0,
  label 255, instances 0). With probability `small_box_crop_prob` the crop window is
  placed around a random box of `small_box_classes` (traffic lights and signs: a few
  pixels wide, rarely seen by uniform crops); otherwise it is uniform.
- horizontal flip (p = 0.5): the left/right words of direction attributes ("pictogram":
  arrow_left <-> arrow_right, keep_left <-> keep_right) swap; if a box carries a value
  listed in `unflippable` the frame is not flipped (never a lie about a sign).
- colour jitter: the image only.

Boxes afterwards: a box with an instance id present in the instance map is recomputed as
the tight half-open box of that instance's remaining pixels (so it always bounds them);
other boxes are clipped to the frame. Boxes narrower or shorter than `min_box_size`
pixels, or whose instance left the crop, are dropped.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from semguard.data.resize import resize_sample
from semguard.data.sample import Box, Sample
from semguard.labels import IGNORE_ID

FLIP_ATTRIBUTE_KEYS = ("pictogram", "direction")
_LEFT_RIGHT = re.compile(r"(?<![a-z])(left|right)(?![a-z])")


def swap_left_right(value: str) -> str:
    """'arrow_left' -> 'arrow_right', 'keep_right' -> 'keep_left'; other values unchanged."""
    return _LEFT_RIGHT.sub(lambda m: "right" if m.group(1) == "left" else "left", value)


def flip_box_attributes(box: Box, keys: tuple[str, ...] = FLIP_ATTRIBUTE_KEYS) -> Box:
    if not any(key in box.attributes for key in keys):
        return box
    attributes = {k: swap_left_right(v) if k in keys else v for k, v in box.attributes.items()}
    return replace(box, attributes=attributes)


def pad_sample(sample: Sample, size: tuple[int, int]) -> Sample:
    """Pad at the bottom/right to at least size (H, W): image 0, label 255, instances 0."""
    height, width = sample.size
    pad_h, pad_w = max(0, size[0] - height), max(0, size[1] - width)
    if not pad_h and not pad_w:
        return sample
    image = np.pad(sample.image, ((0, pad_h), (0, pad_w), (0, 0)))
    label = np.pad(sample.label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_ID)
    instances = None if sample.instances is None else np.pad(sample.instances, ((0, pad_h), (0, pad_w)))
    return replace(sample, image=image, label=label, instances=instances)


def tight_instance_boxes(boxes: list[Box], instances: np.ndarray | None, size: tuple[int, int],
                         min_box_size: float) -> list[Box]:
    """Recompute instance boxes from the instance map, clip the others, drop tiny ones."""
    windows = {}
    if instances is not None and any(b.instance_id > 0 for b in boxes):
        from scipy import ndimage   # lazy: scipy costs seconds at import, only this step needs it

        wanted = sorted({b.instance_id for b in boxes if b.instance_id > 0})
        max_id = int(instances.max()) if instances.size else 0
        if max_id > 0:
            objects = ndimage.find_objects(np.where(np.isin(instances, wanted), instances, 0), max_label=max(wanted))
            for instance_id in wanted:
                if instance_id <= len(objects) and objects[instance_id - 1] is not None:
                    window = objects[instance_id - 1]
                    rows, cols = np.nonzero(instances[window] == instance_id)
                    y0, x0 = window[0].start, window[1].start
                    windows[instance_id] = (float(x0 + cols.min()), float(y0 + rows.min()),
                                            float(x0 + cols.max() + 1), float(y0 + rows.max() + 1))
    height, width = size
    out = []
    for box in boxes:
        if box.instance_id > 0 and instances is not None:
            xyxy = windows.get(box.instance_id)
            if xyxy is None:
                continue  # its instance left the frame
        else:
            x1, y1, x2, y2 = (round(float(v), 3) for v in box.xyxy)
            xyxy = (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
                    min(max(x2, 0.0), width), min(max(y2, 0.0), height))
        if xyxy[2] - xyxy[0] >= min_box_size and xyxy[3] - xyxy[1] >= min_box_size:
            out.append(box.with_xyxy(xyxy))
    return out


class PairedTransform:
    """Resize, crop, flip and colour-jitter a `Sample`, keeping labels and boxes true.

    crop: (H, W) or None (full frame); resize: (H, W) or None, applied first;
    hflip: flip with p = 0.5; small_box_crop_prob: share of crops placed around a box of
    small_box_classes (default traffic light 6, traffic sign 7); min_box_size: pixels;
    color_jitter: strength s of brightness/contrast/saturation in [1-s, 1+s] and hue
    in [-s/4, s/4] (0 = off); unflippable: attribute values that forbid a flip;
    flip_keys: attributes whose left/right words swap on a flip.
    Call: transform(sample, rng: np.random.Generator) -> new Sample.
    """

    def __init__(self, crop: tuple[int, int] | None = None, resize: tuple[int, int] | None = None,
                 hflip: bool = False, small_box_crop_prob: float = 0.0,
                 small_box_classes: tuple[int, ...] = (6, 7), min_box_size: float = 2.0,
                 color_jitter: float = 0.0, unflippable: tuple[str, ...] = (),
                 flip_keys: tuple[str, ...] = FLIP_ATTRIBUTE_KEYS):
        if crop is not None and (len(crop) != 2 or min(crop) < 1):
            raise ValueError(f"crop must be (H, W) with positive sizes, got {crop}")
        if resize is not None and (len(resize) != 2 or min(resize) < 1):
            raise ValueError(f"resize must be (H, W) with positive sizes, got {resize}")
        if not 0.0 <= small_box_crop_prob <= 1.0:
            raise ValueError(f"small_box_crop_prob must lie in [0, 1], got {small_box_crop_prob}")
        self.crop = tuple(crop) if crop is not None else None
        self.resize = tuple(resize) if resize is not None else None
        self.hflip = hflip
        self.small_box_crop_prob = small_box_crop_prob
        self.small_box_classes = tuple(small_box_classes)
        self.min_box_size = min_box_size
        self.color_jitter = color_jitter
        self.unflippable = frozenset(unflippable)
        self.flip_keys = tuple(flip_keys)

    # -- randomness, drawn once per call
    def choose_crop(self, sample: Sample, rng: np.random.Generator) -> tuple[int, int]:
        """Top-left (y0, x0) of the crop window in a frame at least as large as the crop."""
        height, width = sample.size
        crop_h, crop_w = self.crop
        small = [b for b in sample.boxes if b.class_id in self.small_box_classes and b.width > 0 and b.height > 0]
        if small and rng.random() < self.small_box_crop_prob:
            box = small[int(rng.integers(len(small)))]
            y0 = self._window_start(box.xyxy[1], box.xyxy[3], crop_h, height, rng)
            x0 = self._window_start(box.xyxy[0], box.xyxy[2], crop_w, width, rng)
            return y0, x0
        return int(rng.integers(height - crop_h + 1)), int(rng.integers(width - crop_w + 1))

    @staticmethod
    def _window_start(lo: float, hi: float, crop: int, size: int, rng: np.random.Generator) -> int:
        """A window start that keeps [lo, hi) inside the window (or its centre if too large)."""
        if hi - lo <= crop:
            first, last = int(np.ceil(hi)) - crop, int(np.floor(lo))
        else:
            centre = int((lo + hi) / 2)
            first, last = centre - crop + 1, centre
        first, last = max(0, first), min(size - crop, last)
        if first > last:
            first = last = min(max(0, first), size - crop)
        return int(rng.integers(first, last + 1))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        import albumentations as A   # lazy: albumentations pulls in cv2 and scipy, seconds at every CLI start

        if self.resize is not None and sample.size != self.resize:
            sample = resize_sample(sample, self.resize)
        steps = []
        if self.crop is not None:
            sample = pad_sample(sample, self.crop)
            y0, x0 = self.choose_crop(sample, rng)
            if (y0, x0, *self.crop) != (0, 0, *sample.size):
                steps.append(A.Crop(x_min=x0, y_min=y0, x_max=x0 + self.crop[1], y_max=y0 + self.crop[0]))
        flip = bool(self.hflip and rng.random() < 0.5)
        if flip and any(v in self.unflippable for b in sample.boxes for v in b.attributes.values()):
            flip = False
        if flip:
            steps.append(A.HorizontalFlip(p=1.0))
        seed = int(rng.integers(2**31 - 1))
        if steps:
            sample = self._apply(sample, steps, seed)
        if flip:
            sample = replace(sample, boxes=[flip_box_attributes(b, self.flip_keys) for b in sample.boxes])
        if self.color_jitter > 0:  # the image only: labels and boxes never see colour transforms
            s = float(self.color_jitter)
            jitter = A.Compose([A.ColorJitter(brightness=(max(0.0, 1 - s), 1 + s), contrast=(max(0.0, 1 - s), 1 + s),
                                              saturation=(max(0.0, 1 - s), 1 + s), hue=(-s / 4, s / 4), p=1.0)],
                               seed=seed + 1)
            sample = replace(sample, image=np.ascontiguousarray(jitter(image=sample.image)["image"]))
        return sample

    def _apply(self, sample: Sample, steps: list, seed: int) -> Sample:
        import albumentations as A   # lazy: albumentations pulls in cv2 and scipy, seconds at every CLI start

        pipeline = A.Compose(steps, bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_index"], clip=True,
                                                             filter_invalid_bboxes=True), seed=seed)
        masks = [sample.label] + ([sample.instances] if sample.instances is not None else [])
        height, width = sample.size
        boxes = [b for b in sample.boxes
                 if 0 <= b.xyxy[0] < b.xyxy[2] <= width and 0 <= b.xyxy[1] < b.xyxy[3] <= height]
        bbox_array = (np.array([b.xyxy for b in boxes], dtype=np.float64) if boxes
                      else np.zeros((0, 4), dtype=np.float64))
        out = pipeline(image=sample.image, masks=masks, bboxes=bbox_array, box_index=list(range(len(boxes))))
        label = np.ascontiguousarray(out["masks"][0]).astype(np.uint8)
        instances = np.ascontiguousarray(out["masks"][1]).astype(np.int32) if sample.instances is not None else None
        moved = [boxes[int(i)].with_xyxy(tuple(float(v) for v in xyxy))
                 for xyxy, i in zip(out["bboxes"], out["box_index"])]
        size = label.shape[:2]
        return replace(sample, image=np.ascontiguousarray(out["image"]), label=label, instances=instances,
                       boxes=tight_instance_boxes(moved, instances, size, self.min_box_size))
