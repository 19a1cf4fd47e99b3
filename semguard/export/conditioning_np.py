"""semguard's conditioning tensor built with numpy only, for a simulator plugin.

An exported semguard translator (`semguard export`, ONNX) takes the source image and the
conditioning tensor the generator was trained with. This file builds that tensor from what
a simulator's cameras give: the train-id map, the instance map and the boxes (or boxes
derived from the instances). It needs numpy and nothing else (no torch, no semguard), so it
can be copied next to a plugin or loaded by file path:

    import importlib.util
    spec = importlib.util.spec_from_file_location("conditioning_np", "conditioning_np.py")
    conditioning_np = importlib.util.module_from_spec(spec); spec.loader.exec_module(conditioning_np)

It is the twin of semguard.models.conditioning (tested to give identical tensors, and
checked again by every `semguard export` run). Channel layout, in this order; parts that
are off take no channels:

- labels:     20 channels, one-hot train ids 0..18, then one channel for ignore (255).
- boxes:      per class c in `box_classes` (in that order) two channels: the filled box
              map (1 inside any box of class c) and the box edge map (1 on the one-pixel
              border of any box of class c).
- boundaries: 1 channel, 1 where a pixel's instance id differs from its right or lower
              neighbour (both pixels of the pair are marked).
- light_states (only for models trained with it): 3 channels, red, amber, green: the filled
              map of the traffic light boxes whose "state" attribute is that state ("yellow"
              reads as amber; a light without a known state is in none of them).
- box_image (only for models trained with it): 3 channels, R, G, B: the source image
              (uint8 / 255, computed as (uint8 / 127.5 - 1 + 1) * 0.5 in float32, as semguard
              does) inside the traffic light and traffic sign boxes, 0 elsewhere.

Boxes are pixel xyxy, half-open: pixel column x is inside when its centre x + 0.5 lies in
[x1, x2), so the integer box x1=3, x2=6 covers columns 3, 4, 5. A box with positive size
that covers no pixel centre (sub-pixel boxes after a resize) still covers the one pixel
holding its centre, so tiny objects never vanish. Boxes are clipped to the frame.

Which parts are on, and the box classes, are in the exported model's sidecar JSON
(`model.onnx.json`, key "conditioning"); `build_conditioning_for(contract, ...)` reads them
from there and checks the channel names against the sidecar's. `graph_inputs(contract, ...)`
gives a frame's whole feed (image scaled to [-1,1], conditioning, both padded to the size
multiple as semguard pads) and `to_uint8` turns the graph's output back into a frame:

    feed = graph_inputs(contract, image, label, instances, boxes)
    real_looking = to_uint8(session.run(["translated"], feed)[0], label.shape)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

NUM_CLASSES = 19
IGNORE_ID = 255
LABEL_CHANNELS = NUM_CLASSES + 1
BOX_CLASSES: tuple[int, ...] = (6, 7, 11, 13)  # traffic light, traffic sign, person, car
TRAFFIC_LIGHT = 6
LIGHT_STATES: tuple[str, ...] = ("red", "amber", "green")
LIGHT_STATE_ALIASES = {"yellow": "amber"}
TRAFFIC_SIGN = 7
BOX_IMAGE_CLASSES: tuple[int, ...] = (TRAFFIC_LIGHT, TRAFFIC_SIGN)
TRAIN_ID_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)


def channel_names(labels: bool = True, boxes: bool = True, boundaries: bool = True,
                  box_classes: Sequence[int] = BOX_CLASSES, light_states: bool = False,
                  box_image: bool = False) -> list[str]:
    """One name per conditioning channel, in channel order (as in the sidecar JSON)."""
    names: list[str] = []
    if labels:
        names += [f"label:{n}" for n in TRAIN_ID_NAMES] + ["label:ignore"]
    if boxes:
        for c in box_classes:
            names += [f"box:{TRAIN_ID_NAMES[c]}", f"box_edge:{TRAIN_ID_NAMES[c]}"]
    if boundaries:
        names.append("instance_boundary")
    if light_states:
        names += [f"light_state:{state}" for state in LIGHT_STATES]
    if box_image:
        names += [f"box_image:{channel}" for channel in "RGB"]
    return names


def box_pixel_bounds(xyxy: Sequence[float], height: int, width: int) -> tuple[int, int, int, int] | None:
    """Integer half-open pixel bounds (x0, y0, x1, y1) of a box, clipped to the frame.

    x0 = ceil(x1 - 0.5), x1' = ceil(x2 - 0.5); a box of positive size covering no pixel
    centre covers the pixel floor((x1 + x2) / 2). None when empty or outside the frame.
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


def _box_fields(box: Any) -> tuple[tuple[float, float, float, float], int]:
    """(xyxy, class_id) of a box given as [x1, y1, x2, y2, class_id], a dict with "xyxy" and
    "class_id" (semguard's folder-format box JSON) or an object with those attributes."""
    if isinstance(box, Mapping):
        xyxy, class_id = box["xyxy"], box["class_id"]
    elif hasattr(box, "xyxy") and hasattr(box, "class_id"):
        xyxy, class_id = box.xyxy, box.class_id
    else:
        values = list(box)
        if len(values) != 5:
            raise ValueError(f"a box must be [x1, y1, x2, y2, class_id] or a dict with 'xyxy' and 'class_id', got {box!r}")
        xyxy, class_id = values[:4], values[4]
    if len(xyxy) != 4:
        raise ValueError(f"box xyxy must hold 4 numbers, got {xyxy!r}")
    return tuple(float(v) for v in xyxy), int(class_id)


def _light_state_slot(box: Any, class_id: int) -> int | None:
    """Index into LIGHT_STATES of a traffic light box's "state" attribute (dict boxes: "attributes";
    objects: .attributes; list boxes carry none), or None."""
    if class_id != TRAFFIC_LIGHT:
        return None
    attributes = box.get("attributes") if isinstance(box, Mapping) else getattr(box, "attributes", None)
    state = str((attributes or {}).get("state", "")).strip().lower()
    state = LIGHT_STATE_ALIASES.get(state, state)
    return LIGHT_STATES.index(state) if state in LIGHT_STATES else None


def light_state_maps(boxes: Iterable[Any], height: int, width: int) -> np.ndarray:
    """Traffic light boxes by state: float32 [3, H, W] in {0,1}, channels in LIGHT_STATES order."""
    maps = np.zeros((len(LIGHT_STATES), height, width), np.float32)
    for box in boxes:
        xyxy, class_id = _box_fields(box)
        slot = _light_state_slot(box, class_id)
        bounds = None if slot is None else box_pixel_bounds(xyxy, height, width)
        if bounds is not None:
            x0, y0, x1, y1 = bounds
            maps[slot, y0:y1, x0:x1] = 1.0
    return maps


def box_image_maps(image: np.ndarray, boxes: Iterable[Any]) -> np.ndarray:
    """The source image inside traffic light and sign boxes: float32 [3, H, W] in [0,1].

    image: uint8 [H,W,3] RGB (the frame the graph translates).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H,W,3] RGB, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    maps = np.zeros((3, height, width), np.float32)
    for box in boxes:
        xyxy, class_id = _box_fields(box)
        bounds = box_pixel_bounds(xyxy, height, width) if class_id in BOX_IMAGE_CLASSES else None
        if bounds is not None:
            x0, y0, x1, y1 = bounds
            pixels = image[y0:y1, x0:x1].transpose(2, 0, 1).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
            maps[:, y0:y1, x0:x1] = (pixels + np.float32(1.0)) * np.float32(0.5)   # as semguard's torch builder
    return maps


def label_one_hot(label: np.ndarray) -> np.ndarray:
    """int [H,W] train ids (255 = ignore) -> float32 [20,H,W]; channel 19 is ignore."""
    valid = label < NUM_CLASSES
    bad = ~valid & (label != IGNORE_ID)
    if bad.any() or (label < 0).any():
        values = sorted(set(np.unique(label[bad | (label < 0)]).tolist()))[:10]
        raise ValueError(f"label holds ids outside 0..{NUM_CLASSES - 1} and {IGNORE_ID}: {values}")
    index = np.where(valid, label, NUM_CLASSES)
    return (index[None] == np.arange(LABEL_CHANNELS).reshape(-1, 1, 1)).astype(np.float32)


def box_maps(boxes: Iterable[Any], box_classes: Sequence[int], height: int, width: int) -> np.ndarray:
    """Filled and edge maps per box class: float32 [2*len(box_classes), H, W] in {0,1}.

    Channel 2k is the union of the filled boxes of class box_classes[k], channel 2k+1 the
    union of their one-pixel borders. Boxes of other classes are ignored.
    """
    slot = {int(c): k for k, c in enumerate(box_classes)}
    maps = np.zeros((2 * len(box_classes), height, width), np.float32)
    for box in boxes:
        xyxy, class_id = _box_fields(box)
        k = slot.get(class_id)
        if k is None:
            continue
        bounds = box_pixel_bounds(xyxy, height, width)
        if bounds is None:
            continue
        x0, y0, x1, y1 = bounds
        maps[2 * k, y0:y1, x0:x1] = 1.0
        edge = maps[2 * k + 1]
        edge[y0, x0:x1] = 1.0
        edge[y1 - 1, x0:x1] = 1.0
        edge[y0:y1, x0] = 1.0
        edge[y0:y1, x1 - 1] = 1.0
    return maps


def instance_boundaries(instances: np.ndarray) -> np.ndarray:
    """int [H,W] instance ids -> float32 [1,H,W]: 1 where a 4-neighbour has another id."""
    edge = np.zeros(instances.shape, bool)
    horizontal = instances[:, 1:] != instances[:, :-1]
    vertical = instances[1:, :] != instances[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    return edge[None].astype(np.float32)


def build_conditioning(label: np.ndarray, instances: np.ndarray | None = None, boxes: Iterable[Any] = (), *,
                       labels: bool = True, box_channels: bool = True, boundaries: bool = True,
                       box_classes: Sequence[int] = BOX_CLASSES, light_states: bool = False,
                       box_image: bool = False, image: np.ndarray | None = None) -> np.ndarray | None:
    """The conditioning tensor of one frame.

    label: integer [H,W] train ids 0..18, 255 = ignore. instances: integer [H,W] (0 = none)
    or None (an all-zero boundary channel). boxes: pixel xyxy half-open, each
    [x1, y1, x2, y2, class_id], a dict {"xyxy": [...], "class_id": c} or an object with
    .xyxy and .class_id (and "attributes" / .attributes for light_states). labels,
    box_channels, boundaries, light_states, box_image: which parts are on. image: uint8
    [H,W,3] RGB, the frame itself (needed for box_image, else unused).
    Returns float32 [C,H,W] in [0,1] ({0,1} but for the box image; add a batch axis with
    [None]); None when C == 0.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be an integer array [H,W], got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label must hold integer train ids, got {label.dtype}")
    if instances is not None:
        instances = np.asarray(instances)
        if instances.shape != label.shape:
            raise ValueError(f"instances {instances.shape} and label {label.shape} differ in shape")
    bad = [c for c in box_classes if not 0 <= int(c) < NUM_CLASSES]
    if bad:
        raise ValueError(f"box_classes must be train ids 0..{NUM_CLASSES - 1}, got {bad}")
    height, width = label.shape
    parts: list[np.ndarray] = []
    if labels:
        parts.append(label_one_hot(label))
    if box_channels:
        parts.append(box_maps(boxes, box_classes, height, width))
    if boundaries:
        parts.append(np.zeros((1, height, width), np.float32) if instances is None
                     else instance_boundaries(instances))
    if light_states:
        parts.append(light_state_maps(boxes, height, width))
    if box_image:
        if image is None or np.shape(image)[:2] != (height, width):
            raise ValueError(f"this model's conditioning holds the box image (box_image): pass the frame, uint8 "
                             f"[H,W,3] of the label's size {label.shape}, as image= (got "
                             f"{'none' if image is None else np.shape(image)})")
        parts.append(box_image_maps(image, boxes))
    return np.concatenate(parts, axis=0) if parts else None


def build_conditioning_for(contract: Mapping[str, Any], label: np.ndarray, instances: np.ndarray | None = None,
                           boxes: Iterable[Any] = (), image: np.ndarray | None = None) -> np.ndarray | None:
    """build_conditioning with the parts an exported model's sidecar JSON names.

    contract: the parsed `model.onnx.json`; image: uint8 [H,W,3] RGB, the frame (used when the
    contract's conditioning holds the box image). Returns float32 [C,H,W], or None for an
    unconditioned model (its graph takes the image only). Raises ValueError when the
    sidecar's channel names differ from this file's (a builder from another version).
    """
    parts = contract["conditioning"]
    if not parts["channels"]:
        return None
    options = {"labels": bool(parts["labels"]), "box_channels": bool(parts["boxes"]),
               "boundaries": bool(parts["boundaries"]), "box_classes": tuple(parts["box_classes"]),
               "light_states": bool(parts.get("light_states", False)),
               "box_image": bool(parts.get("box_image", False))}
    expected = list(parts["channel_names"])
    if channel_names(options["labels"], options["box_channels"], options["boundaries"],
                     options["box_classes"], options["light_states"], options["box_image"]) != expected:
        raise ValueError("the sidecar's conditioning channel names differ from this builder's; "
                         "use the conditioning_np.py of the semguard version that exported the model")
    return build_conditioning(label, instances, boxes, **options, image=image)


def boxes_from_instances(instances: np.ndarray, label: np.ndarray,
                         classes: Sequence[int] | None = None) -> tuple[np.ndarray, list[dict]]:
    """Tight half-open boxes of each instance; instance ids made compact (1..N).

    instances: integer [H,W], 0 = none, any other value = one instance; label: integer
    train ids [H,W]. The class of an instance is the most common train id among its pixels
    (ignore excluded, ties to the lower id); instances that are all ignore, or whose class
    is not in `classes` (when given), are removed. Returns (int32 [H,W] compact instance
    map, boxes as {"xyxy", "class_id", "instance_id"} in order of the original ids).
    Build the boundaries from the returned map (it is what semguard's loaders hand on).
    """
    instances, label = np.asarray(instances), np.asarray(label)
    if instances.shape != label.shape or instances.ndim != 2:
        raise ValueError(f"instances {instances.shape} and label {label.shape} must be [H,W] of one size")
    values, compact = np.unique(instances, return_inverse=True)
    compact = compact.reshape(instances.shape).astype(np.int32)
    if not (values.size and values[0] == 0):
        compact += 1  # no background value present: every id is an instance
    out = np.zeros(instances.shape, np.int32)
    boxes: list[dict] = []
    flat = compact.ravel()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(1, int(flat.max(initial=0)) + 2))
    width = instances.shape[1]
    next_id = 1
    for index in range(1, int(flat.max(initial=0)) + 1):
        pixels = order[starts[index - 1]:starts[index]]
        if pixels.size == 0:
            continue
        classes_here = label.ravel()[pixels]
        classes_here = classes_here[classes_here != IGNORE_ID]
        if classes_here.size == 0:
            continue
        class_id = int(np.bincount(classes_here.astype(np.int64)).argmax())
        if classes is not None and class_id not in classes:
            continue
        rows, cols = np.divmod(pixels, width)
        out.ravel()[pixels] = next_id
        boxes.append({"xyxy": [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)],
                      "class_id": class_id, "instance_id": next_id})
        next_id += 1
    return out, boxes


def graph_inputs(contract: Mapping[str, Any], image: np.ndarray, label: np.ndarray,
                 instances: np.ndarray | None = None, boxes: Iterable[Any] = ()) -> dict[str, np.ndarray]:
    """The inputs of an exported graph for one frame, as its sidecar JSON states them.

    image: uint8 [H,W,3] RGB; label, instances, boxes: as for build_conditioning.
    Returns {"image": float32 [1,3,H',W'] in [-1,1]} plus {"condition": float32
    [1,C,H',W']} when the model is conditioned, padded at the bottom/right to the size
    multiple (H', W'); crop the output with `to_uint8(output, (H, W))`.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H,W,3] RGB, got {image.dtype} {image.shape}")
    if np.shape(label) != image.shape[:2]:
        raise ValueError(f"label {np.shape(label)} and image {image.shape[:2]} differ in size")
    size = contract["size"]
    multiple = int(size["size_multiple"])
    padded = (-(-image.shape[0] // multiple) * multiple, -(-image.shape[1] // multiple) * multiple)
    if not size["dynamic"] and padded != (size["height"], size["width"]):
        raise ValueError(f"this graph takes {size['height']}x{size['width']} frames (HxW), got {image.shape[0]}x"
                         f"{image.shape[1]} (padded {padded[0]}x{padded[1]}); export it with --dynamic or this size")
    pixels = image.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    feed = {"image": pad_to_multiple(pixels, multiple)}
    condition = build_conditioning_for(contract, label, instances, boxes, image)
    if condition is not None:
        feed["condition"] = pad_to_multiple(condition[None], multiple)
    return feed


def to_uint8(translated: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The graph's output float [1,3,H',W'] in [-1,1] -> uint8 [H,W,3] RGB, padding cropped
    (rounded and clipped as semguard writes its PNGs)."""
    height, width = size
    frame = np.asarray(translated)[0, :, :height, :width]
    return np.clip(np.round((frame.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def pad_to_multiple(array: np.ndarray, multiple: int) -> np.ndarray:
    """Pad [..., H, W] at the bottom and right up to multiples of `multiple`, as semguard's
    Translator does: reflection, or edge replication where the pad is not smaller than the
    size. Crop the model's output back with [..., :H, :W]."""
    height, width = array.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return array
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    return np.pad(array, [(0, 0)] * (array.ndim - 2) + [(0, pad_h), (0, pad_w)], mode=mode)
