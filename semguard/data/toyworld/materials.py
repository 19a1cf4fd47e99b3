"""Materials: what a toy-world pixel is made of, its class and its colour in each style.

The rasteriser writes a material id per pixel next to the train-id label. A material
belongs to exactly one class (so the label map follows from the material map), and each
style gives it a base colour: the *sim* palette is flat and saturated like a low-budget
game, the *real* palette muted and shifted like a camera's. Detail that is part of the
scene and must survive translation (lit lamps, sign pictograms, lane markings, car
windows) is a material, so both styles show it; surface texture that only a camera shows
(asphalt grain, facade windows, foliage) is added by the real style, not here.
"""

from __future__ import annotations

import numpy as np

from semguard.labels import NAME_TO_TRAIN_ID

ROAD, SIDEWALK, BUILDING, POLE = (NAME_TO_TRAIN_ID[n] for n in ("road", "sidewalk", "building", "pole"))
LIGHT, SIGN = NAME_TO_TRAIN_ID["traffic light"], NAME_TO_TRAIN_ID["traffic sign"]
VEGETATION, TERRAIN = NAME_TO_TRAIN_ID["vegetation"], NAME_TO_TRAIN_ID["terrain"]
SKY, PERSON, CAR = (NAME_TO_TRAIN_ID[n] for n in ("sky", "person", "car"))

# (name, train id, sim RGB, real RGB)
_TABLE: list[tuple[str, int, tuple[int, int, int], tuple[int, int, int]]] = [
    ("sky", SKY, (40, 150, 255), (178, 196, 214)),
    ("road", ROAD, (62, 62, 78), (88, 87, 86)),
    ("lane_marking", ROAD, (255, 255, 255), (190, 188, 178)),
    ("sidewalk", SIDEWALK, (230, 170, 200), (150, 146, 140)),
    ("curb", SIDEWALK, (250, 250, 250), (175, 172, 166)),
    ("terrain", TERRAIN, (120, 220, 60), (112, 118, 72)),
    ("trunk", VEGETATION, (150, 80, 20), (62, 50, 40)),
    ("foliage", VEGETATION, (20, 190, 40), (58, 82, 42)),
    ("foliage_dark", VEGETATION, (10, 150, 30), (44, 64, 34)),
    ("pole", POLE, (200, 200, 210), (105, 108, 110)),
    ("light_housing", LIGHT, (40, 40, 40), (36, 38, 36)),
    ("lamp_off", LIGHT, (90, 90, 90), (58, 60, 58)),
    ("lamp_red", LIGHT, (255, 30, 30), (255, 48, 40)),
    ("lamp_amber", LIGHT, (255, 180, 0), (255, 170, 30)),
    ("lamp_green", LIGHT, (0, 255, 90), (60, 240, 130)),
    ("sign_back", SIGN, (170, 170, 170), (120, 122, 124)),
    ("sign_white", SIGN, (255, 255, 255), (225, 225, 220)),
    ("sign_red", SIGN, (235, 0, 0), (190, 30, 35)),
    ("sign_blue", SIGN, (0, 80, 255), (30, 75, 160)),
    ("sign_black", SIGN, (0, 0, 0), (25, 25, 28)),
    ("skin", PERSON, (255, 200, 150), (190, 150, 125)),
    ("hair", PERSON, (60, 30, 10), (45, 35, 30)),
    ("car_glass", CAR, (120, 220, 255), (45, 55, 62)),
    ("car_tyre", CAR, (20, 20, 20), (28, 28, 28)),
    ("car_taillight", CAR, (255, 0, 40), (150, 30, 30)),
    ("car_plate", CAR, (255, 255, 200), (200, 200, 190)),
]
# colour variants: one material per variant so an object keeps its colour in both styles
_FACADES_SIM = [(240, 120, 80), (250, 210, 100), (150, 150, 240), (230, 230, 230), (200, 110, 200), (110, 200, 200)]
_FACADES_REAL = [(128, 84, 70), (160, 154, 144), (188, 172, 148), (108, 108, 114), (142, 120, 100), (170, 165, 160)]
_CARS_SIM = [(230, 20, 20), (20, 60, 240), (250, 220, 0), (245, 245, 245), (30, 30, 30), (20, 200, 80),
             (255, 120, 0), (160, 40, 220)]
_CARS_REAL = [(120, 30, 30), (40, 52, 82), (170, 160, 120), (200, 200, 198), (34, 35, 38), (70, 90, 75),
              (130, 132, 136), (80, 70, 90)]
_SHIRTS_SIM = [(255, 0, 120), (0, 200, 255), (255, 230, 0), (120, 255, 0), (255, 100, 0), (150, 0, 255)]
_SHIRTS_REAL = [(90, 40, 45), (50, 70, 100), (160, 150, 130), (60, 70, 55), (35, 35, 38), (130, 110, 90)]
_PANTS_SIM = [(0, 0, 200), (40, 40, 40), (120, 60, 0), (0, 140, 140)]
_PANTS_REAL = [(40, 48, 70), (30, 30, 32), (80, 70, 60), (70, 72, 76)]
for _i, (_s, _r) in enumerate(zip(_FACADES_SIM, _FACADES_REAL)):
    _TABLE.append((f"facade_{_i}", BUILDING, _s, _r))
for _i, (_s, _r) in enumerate(zip(_CARS_SIM, _CARS_REAL)):
    _TABLE.append((f"car_body_{_i}", CAR, _s, _r))
for _i, (_s, _r) in enumerate(zip(_SHIRTS_SIM, _SHIRTS_REAL)):
    _TABLE.append((f"shirt_{_i}", PERSON, _s, _r))
for _i, (_s, _r) in enumerate(zip(_PANTS_SIM, _PANTS_REAL)):
    _TABLE.append((f"pants_{_i}", PERSON, _s, _r))

MATERIAL_NAMES: tuple[str, ...] = tuple(row[0] for row in _TABLE)
M: dict[str, int] = {name: i for i, name in enumerate(MATERIAL_NAMES)}
"""Material name -> id."""
NUM_MATERIALS = len(MATERIAL_NAMES)
N_FACADES, N_CARS, N_SHIRTS, N_PANTS = len(_FACADES_SIM), len(_CARS_SIM), len(_SHIRTS_SIM), len(_PANTS_SIM)

MATERIAL_CLASS: np.ndarray = np.array([row[1] for row in _TABLE], dtype=np.uint8)
"""uint8 [NUM_MATERIALS]: train id of each material."""
SIM_PALETTE: np.ndarray = np.array([row[2] for row in _TABLE], dtype=np.uint8)
"""uint8 [NUM_MATERIALS,3]: flat sim-style colour of each material."""
REAL_PALETTE: np.ndarray = np.array([row[3] for row in _TABLE], dtype=np.float32)
"""float32 [NUM_MATERIALS,3]: real-style base colour (0..255) before texture and light."""

LAMP_MATERIAL = {"red": M["lamp_red"], "amber": M["lamp_amber"], "green": M["lamp_green"]}
"""Lit-lamp material of each traffic-light state."""
EMISSIVE: np.ndarray = np.zeros(NUM_MATERIALS, dtype=bool)
"""bool [NUM_MATERIALS]: materials that emit light (lit lamps keep their colour in any light)."""
EMISSIVE[list(LAMP_MATERIAL.values())] = True

LAMP_ORDER = {"red": 0, "amber": 1, "green": 2}
"""Lamp position from the top of the housing."""
