"""The conditioning tensor: what the simulator knows about a frame, as generator input.

A conditioned generator (SPADE) is told, per pixel, which class the simulator put
there, where the boxes of the small, safety-critical objects are, and where instances
meet. `ConditioningSpec` says which of these parts are on; `build_conditioning` turns a
batch's label map, instance map and boxes into one float tensor.

Channel layout (in this order; parts that are off take no channels):

- labels:     20 channels, one-hot train ids 0..18, then one channel for ignore (255).
- boxes:      per class c in `box_classes` (in that order) two channels:
              the filled box map (1 inside any box of class c) and the box edge map
              (1 on the one-pixel border of any box of class c).
- boundaries: 1 channel, 1 where a pixel's instance id differs from its right or lower
              neighbour (both pixels of the pair are marked), as in pix2pixHD.
- light_states (off unless asked): 3 channels, red, amber, green: the filled map of the
              traffic light boxes whose "state" attribute is that state ("yellow" reads as
              amber; a light without a state, or with another one, is in none of them). The
              simulator knows the state; at 64x128 the lamp is one pixel, below the
              generator's bottleneck, so the decoder is told it at full resolution.
- box_image (off unless asked): 3 channels, R, G, B: the source image scaled to [0,1]
              (uint8 / 255) inside the traffic light and traffic sign boxes (BOX_IMAGE_CLASSES),
              0 elsewhere. A sign's pictogram and a light's lamp are smaller than the
              generator's stride-4 bottleneck; these channels give the decoder their pixels at
              every resolution, and only theirs (the rest of the frame still passes the
              bottleneck, so the translator cannot copy the sim frame through).

Boxes are pixel xyxy, half-open (see semguard.data.sample): pixel column x is inside
when its centre x + 0.5 lies in [x1, x2), so the integer box x1=3, x2=6 covers columns
3, 4, 5. A box with positive size that covers no pixel centre (sub-pixel boxes after a
resize) still covers the one pixel holding its centre, so tiny objects never vanish.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch

from semguard.data.sample import Box, box_pixel_bounds
from semguard.labels import BOX_CLASSES, BOX_IMAGE_CLASSES, IGNORE_ID, LIGHT_STATES, NUM_CLASSES, TRAIN_ID_NAMES

LABEL_CHANNELS = NUM_CLASSES + 1  # 19 train ids + 1 ignore channel
BOX_IMAGE_CHANNELS = 3             # R, G, B


@dataclass(frozen=True)
class ConditioningSpec:
    """Which parts of the conditioning are on (all off = an unconditioned generator).

    labels: one-hot label map (20 channels); boxes: per box class filled + edge maps
    (2 * len(box_classes) channels); boundaries: instance boundary map (1 channel);
    light_states: traffic light boxes by state (3 channels); box_image: the source image
    inside traffic light and sign boxes (3 channels; build_conditioning then needs the image).
    """

    labels: bool = True
    boxes: bool = True
    boundaries: bool = True
    box_classes: tuple[int, ...] = BOX_CLASSES
    light_states: bool = False
    box_image: bool = False

    @classmethod
    def from_config(cls, conditioning_cfg) -> "ConditioningSpec":
        """The spec of a semguard.config.ConditioningConfig: every config field is a spec field of the same
        name (a new conditioning option is a field in both, nothing to copy by hand)."""
        return cls(**dataclasses.asdict(conditioning_cfg))

    def __post_init__(self) -> None:
        bad = [c for c in self.box_classes if not 0 <= int(c) < NUM_CLASSES]
        if bad:
            raise ValueError(f"ConditioningSpec.box_classes must be train ids 0..{NUM_CLASSES - 1}, got {bad}")
        object.__setattr__(self, "box_classes", tuple(int(c) for c in self.box_classes))

    @property
    def channels(self) -> int:
        """C of the conditioning tensor: 20*labels + 2*len(box_classes)*boxes + boundaries + 3*light_states
        + 3*box_image."""
        return (
            (LABEL_CHANNELS if self.labels else 0)
            + (2 * len(self.box_classes) if self.boxes else 0)
            + (1 if self.boundaries else 0)
            + (len(LIGHT_STATES) if self.light_states else 0)
            + (BOX_IMAGE_CHANNELS if self.box_image else 0)
        )

    def channel_names(self) -> list[str]:
        """One readable name per channel, in channel order (for debugging and figures)."""
        names: list[str] = []
        if self.labels:
            names += [f"label:{n}" for n in TRAIN_ID_NAMES] + ["label:ignore"]
        if self.boxes:
            for c in self.box_classes:
                names += [f"box:{TRAIN_ID_NAMES[c]}", f"box_edge:{TRAIN_ID_NAMES[c]}"]
        if self.boundaries:
            names.append("instance_boundary")
        if self.light_states:
            names += [f"light_state:{state}" for state in LIGHT_STATES]
        if self.box_image:
            names += [f"box_image:{channel}" for channel in "RGB"]
        return names


UNCONDITIONED = ConditioningSpec(labels=False, boxes=False, boundaries=False)


def _check_inputs(label: torch.Tensor, instances: torch.Tensor | None, boxes: list[list[Box]]) -> None:
    if label.ndim != 3:
        raise ValueError(f"label must be int64 [B,H,W], got shape {tuple(label.shape)}")
    if label.dtype in (torch.float16, torch.float32, torch.float64, torch.bfloat16):
        raise ValueError(f"label must be an integer tensor of train ids, got {label.dtype}")
    if instances is not None and instances.shape != label.shape:
        raise ValueError(f"instances {tuple(instances.shape)} and label {tuple(label.shape)} differ in shape")
    if len(boxes) != label.shape[0]:
        raise ValueError(f"boxes must hold one list per image: {len(boxes)} lists for a batch of {label.shape[0]}")


def label_one_hot(label: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """int [B,H,W] train ids (255 = ignore) -> float [B,20,H,W]; channel 19 is ignore.

    out: a float [B,20,H,W] tensor (a view is fine) to write into instead of a new one.
    """
    valid = (label >= 0) & (label < NUM_CLASSES)
    bad = ~valid & (label != IGNORE_ID)
    if bool(bad.any()):
        values = sorted(set(torch.unique(label[bad]).tolist()))[:10]
        raise ValueError(f"label holds ids outside 0..{NUM_CLASSES - 1} and {IGNORE_ID}: {values}")
    index = torch.where(valid, label, torch.full_like(label, NUM_CLASSES)).long().unsqueeze(1)
    if out is None:
        out = torch.empty(label.shape[0], LABEL_CHANNELS, *label.shape[1:], device=label.device)
    # scatter into the float map: no int64 one-hot (8 bytes a channel) is ever made
    return out.zero_().scatter_(1, index, 1.0)


def box_maps(boxes: list[list[Box]], box_classes: Sequence[int], height: int, width: int,
             device: torch.device | str = "cpu", out: torch.Tensor | None = None) -> torch.Tensor:
    """Filled and edge maps per box class: float [B, 2*len(box_classes), H, W] in {0,1}.

    Channel 2k is the union of the filled boxes of class box_classes[k], channel 2k+1 the
    union of their one-pixel borders. Boxes of other classes are ignored.
    out: a float tensor of that shape (a view is fine) to write into; `device` is then its own.
    """
    slot = {c: k for k, c in enumerate(box_classes)}
    maps = torch.zeros(len(boxes), 2 * len(box_classes), height, width) if out is None else out.zero_()
    for b, image_boxes in enumerate(boxes):
        for box in image_boxes:
            k = slot.get(int(box.class_id))
            if k is None:
                continue
            bounds = box_pixel_bounds(box.xyxy, height, width)
            if bounds is None:
                continue
            x0, y0, x1, y1 = bounds
            maps[b, 2 * k, y0:y1, x0:x1] = 1.0
            edge = maps[b, 2 * k + 1]
            edge[y0, x0:x1] = 1.0
            edge[y1 - 1, x0:x1] = 1.0
            edge[y0:y1, x0] = 1.0
            edge[y0:y1, x1 - 1] = 1.0
    return maps.to(device) if out is None else maps


def light_state_maps(boxes: list[list[Box]], height: int, width: int, out: torch.Tensor) -> torch.Tensor:
    """Fill `out` (float [B,3,H,W], a view is fine) with the traffic light boxes by state (LIGHT_STATES order)."""
    out.zero_()
    for b, image_boxes in enumerate(boxes):
        for box in image_boxes:
            slot = box.light_state
            bounds = None if slot is None else box_pixel_bounds(box.xyxy, height, width)
            if bounds is not None:
                x0, y0, x1, y1 = bounds
                out[b, slot, y0:y1, x0:x1] = 1.0
    return out


def box_image_maps(image: torch.Tensor, boxes: list[list[Box]], out: torch.Tensor) -> torch.Tensor:
    """Fill `out` (float [B,3,H,W], a view is fine) with `image` (float [B,3,H,W] in [-1,1], the
    generator's input) rescaled to [0,1] inside the boxes of BOX_IMAGE_CLASSES, 0 elsewhere."""
    height, width = image.shape[-2:]
    out.zero_()
    for b, image_boxes in enumerate(boxes):
        for box in image_boxes:
            bounds = box_pixel_bounds(box.xyxy, height, width) if int(box.class_id) in BOX_IMAGE_CLASSES else None
            if bounds is not None:
                x0, y0, x1, y1 = bounds
                out[b, :, y0:y1, x0:x1] = (image[b, :, y0:y1, x0:x1] + 1.0) * 0.5
    return out


def instance_boundaries(instances: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """int [B,H,W] instance ids -> float [B,1,H,W]: 1 where a 4-neighbour has another id.

    out: a float [B,1,H,W] tensor (a view is fine) to write into instead of a new one.
    """
    edge = torch.zeros(instances.shape, dtype=torch.bool, device=instances.device)
    horizontal = instances[:, :, 1:] != instances[:, :, :-1]
    vertical = instances[:, 1:, :] != instances[:, :-1, :]
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    if out is None:
        return edge.unsqueeze(1).float()
    return out.copy_(edge.unsqueeze(1))


def build_conditioning(label: torch.Tensor, instances: torch.Tensor | None, boxes: list[list[Box]],
                       spec: ConditioningSpec, image: torch.Tensor | None = None) -> torch.Tensor | None:
    """The conditioning tensor of a batch.

    label: int64 [B,H,W] train ids, 255 = ignore. instances: int64 [B,H,W] (0 = none) or
    None (no boundaries). boxes: B lists of `Box` (pixel xyxy, half-open). image: the
    generator's input, float [B,3,H,W] in [-1,1]; needed when spec.box_image, else unused.
    Returns float32 [B, spec.channels, H, W] with values in [0,1] ({0,1} but for the box
    image) on label's device, in the channel order of the module docstring; None when
    spec.channels == 0.
    """
    if spec.channels == 0:
        return None
    _check_inputs(label, instances, boxes)
    if spec.box_image and (image is None or tuple(image.shape) != (label.shape[0], 3, *label.shape[1:])):
        got = "none" if image is None else f"shape {tuple(image.shape)}"
        raise ValueError(f"this conditioning holds the box image (box_image): build_conditioning needs the source "
                         f"image float [B,3,H,W] of the label's size {tuple(label.shape)}, got {got}")
    batch, height, width = label.shape
    # every part is written into its slice of one tensor: no per-part copies, no concatenation
    # (measured at 960x528: the part-by-part build peaked at 2.2x the result, and the freed parts fragmented the heap)
    condition = torch.empty(batch, spec.channels, height, width, device=label.device)
    start = 0
    if spec.labels:
        label_one_hot(label, out=condition[:, start:start + LABEL_CHANNELS])
        start += LABEL_CHANNELS
    if spec.boxes:
        count = 2 * len(spec.box_classes)
        box_maps(boxes, spec.box_classes, height, width, out=condition[:, start:start + count])
        start += count
    if spec.boundaries:
        if instances is None:
            condition[:, start:start + 1].zero_()
        else:
            instance_boundaries(instances, out=condition[:, start:start + 1])
        start += 1
    if spec.light_states:
        light_state_maps(boxes, height, width, out=condition[:, start:start + len(LIGHT_STATES)])
        start += len(LIGHT_STATES)
    if spec.box_image:
        box_image_maps(image.to(condition.device, torch.float32), boxes,
                       out=condition[:, start:start + BOX_IMAGE_CHANNELS])
    return condition
