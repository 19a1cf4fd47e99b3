"""The label space semguard speaks inside, and the tables that map data sets into it.

Everything inside semguard uses Cityscapes' 19 *train ids* (0 road ... 18 bicycle) with
255 = ignore. Each format loader maps its own ids into this space at load time with one
of the tables below (facts from docs/FORMATS.md and cityscapesScripts' labels.py)
and reports what it sent to ignore.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import numpy as np

IGNORE_ID = 255
NUM_CLASSES = 19

TRAIN_ID_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)

TRAIN_ID_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
IGNORE_COLOR = (0, 0, 0)

NAME_TO_TRAIN_ID: Mapping[str, int] = MappingProxyType(
    {name: train_id for train_id, name in enumerate(TRAIN_ID_NAMES)}
)

# Cityscapes label ids (0..33) as cityscapesScripts names them; -1 (license plate) is
# read as ignore. GTA5 and Synscapes use the same id space.
CITYSCAPES_LABEL_ID_NAMES: Mapping[int, str] = MappingProxyType({
    0: "unlabeled", 1: "ego vehicle", 2: "rectification border", 3: "out of roi",
    4: "static", 5: "dynamic", 6: "ground", 7: "road", 8: "sidewalk", 9: "parking",
    10: "rail track", 11: "building", 12: "wall", 13: "fence", 14: "guard rail",
    15: "bridge", 16: "tunnel", 17: "pole", 18: "polegroup", 19: "traffic light",
    20: "traffic sign", 21: "vegetation", 22: "terrain", 23: "sky", 24: "person",
    25: "rider", 26: "car", 27: "truck", 28: "bus", 29: "caravan", 30: "trailer",
    31: "train", 32: "motorcycle", 33: "bicycle",
})

CITYSCAPES_LABEL_TO_TRAIN: Mapping[int, int] = MappingProxyType({
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
})

# SHIFT and CARLA <= 0.9.13: 23 classes.
CARLA_LEGACY_NAMES: Mapping[int, str] = MappingProxyType({
    0: "unlabeled", 1: "building", 2: "fence", 3: "other", 4: "pedestrian", 5: "pole",
    6: "road line", 7: "road", 8: "sidewalk", 9: "vegetation", 10: "vehicle", 11: "wall",
    12: "traffic sign", 13: "sky", 14: "ground", 15: "bridge", 16: "rail track",
    17: "guard rail", 18: "traffic light", 19: "static", 20: "dynamic", 21: "water",
    22: "terrain",
})
CARLA_LEGACY_TO_TRAIN: Mapping[int, int] = MappingProxyType({
    1: 2, 2: 4, 4: 11, 5: 5, 6: 0, 7: 0, 8: 1, 9: 8, 10: 13, 11: 3, 12: 7, 13: 10,
    18: 6, 22: 9,
})
SHIFT_TO_TRAIN = CARLA_LEGACY_TO_TRAIN

# CARLA >= 0.9.14: tags 1..19 follow the Cityscapes train order; 24 road lines -> road.
CARLA_0914_TO_TRAIN: Mapping[int, int] = MappingProxyType(
    {**{tag: tag - 1 for tag in range(1, 20)}, 24: 0}
)

# SYNTHIA-RAND-CITYSCAPES class ids (first channel of GT/LABELS).
SYNTHIA_TO_TRAIN: Mapping[int, int] = MappingProxyType({
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11,
    17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18,
})

# Box categories used by Scalabel files (SHIFT, BDD100K) -> train ids.
SCALABEL_CATEGORY_TO_TRAIN: Mapping[str, int] = MappingProxyType({
    "pedestrian": 11, "person": 11, "rider": 12, "car": 13, "truck": 14, "bus": 15,
    "train": 16, "motorcycle": 17, "motor": 17, "bicycle": 18, "bike": 18,
    "traffic light": 6, "traffic sign": 7,
})

# Classes whose boxes semguard conditions on and measures (small safety-critical detail
# and the road users).
BOX_CLASSES: tuple[int, ...] = (6, 7, 11, 13)
TRAFFIC_LIGHT = 6
TRAFFIC_SIGN = 7
# The classes whose source pixels `model.conditioning.box_image` hands the decoder: the detail
# (a lamp, a pictogram) is smaller than the generator's bottleneck.
BOX_IMAGE_CLASSES: tuple[int, ...] = (TRAFFIC_LIGHT, TRAFFIC_SIGN)
# A traffic light box's "state" attribute: the values semguard knows (the toy world and the
# BDD100K / Scalabel loaders write these), and other spellings read as one of them.
LIGHT_STATES: tuple[str, ...] = ("red", "amber", "green")
LIGHT_STATE_ALIASES: Mapping[str, str] = MappingProxyType({"yellow": "amber"})


def lookup_table(mapping: Mapping[int, int], size: int = 256) -> np.ndarray:
    """A uint8 lookup table of `size` entries: source id -> train id, 255 elsewhere."""
    table = np.full(size, IGNORE_ID, dtype=np.uint8)
    for source_id, train_id in mapping.items():
        if not 0 <= source_id < size:
            raise ValueError(f"source id {source_id} outside the table size {size}")
        table[source_id] = train_id
    return table


def map_ids(ids: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """Map an integer id map through `mapping` into train ids (uint8; unmapped -> 255).

    ids: integer [H,W] (any non-negative range); returns uint8 [H,W].
    """
    if ids.size and int(ids.min()) < 0:
        raise ValueError("id map holds negative ids")
    size = max(256, int(ids.max()) + 1 if ids.size else 0)
    return lookup_table(mapping, size)[ids]


def palette() -> np.ndarray:
    """uint8 [256,3]: the colour of each train id; ignore and unused ids are black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:NUM_CLASSES] = np.asarray(TRAIN_ID_COLORS, dtype=np.uint8)
    table[IGNORE_ID] = IGNORE_COLOR
    return table


def colorize(label_map: np.ndarray) -> np.ndarray:
    """Colour a train-id map. label_map: integer [H,W] in 0..18 or 255 -> uint8 [H,W,3]."""
    return palette()[np.asarray(label_map, dtype=np.int64).clip(0, 255)]


def decolorize(color_map: np.ndarray) -> np.ndarray:
    """Invert `colorize`: uint8 [H,W,3] Cityscapes colours -> uint8 [H,W] train ids.

    Pixels whose colour is not a train-id colour become 255 (ignore).
    """
    color_map = np.asarray(color_map, dtype=np.uint8)
    key = (color_map[..., 0].astype(np.int64) << 16) | (color_map[..., 1].astype(np.int64) << 8) | color_map[..., 2]
    out = np.full(color_map.shape[:2], IGNORE_ID, dtype=np.uint8)
    for train_id, (r, g, b) in enumerate(TRAIN_ID_COLORS):
        out[key == ((r << 16) | (g << 8) | b)] = train_id
    return out


def class_name(train_id: int) -> str:
    """The name of a train id ('ignore' for 255)."""
    if train_id == IGNORE_ID:
        return "ignore"
    return TRAIN_ID_NAMES[train_id]
