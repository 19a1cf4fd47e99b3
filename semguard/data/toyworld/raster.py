"""Rasterise a street layout into label, instance and material maps (painter's algorithm).

What is visible is decided here, once, for both styles: the ground plane and the sky are
computed per pixel in closed form, facades per column, and the objects (trees, poles,
lights, signs, cars, persons) are stamped far to near, each overwriting what lies behind
it. The label map and the instance map therefore show only visible pixels, and boxes are
the tight boxes of what is left of each instance.

Traffic lights and signs are the detail whose survival semguard measures, so they are
kept readable: their pixel size has a floor (a light is at least ~9% of the frame height
tall, a sign ~7.5% and 7 px; enlarged ones grow upward, away from the traffic), they are snapped
to the pixel grid so every lamp covers whole pixels, and a light or sign that would be
cut by the frame edge or covered by a nearer car, person or pole is left out of the scene
(its pole stays); a nearer tree that would cover one is left out instead. So every
light's lit lamp and every sign's pictogram is fully visible, which a flip metric on them
needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from semguard.data.sample import Box
from semguard.data.toyworld.layout import Car, Layout, Person, Pole, Tree
from semguard.data.toyworld.materials import CAR, LAMP_MATERIAL, LAMP_ORDER, LIGHT, MATERIAL_CLASS, PERSON, SIGN, M

SKY_DEPTH = 1.0e4
"""Depth (m) written for sky pixels."""


@dataclass
class Raster:
    """What the camera sees, before any colour.

    label: uint8 [H,W] train ids; instances: int32 [H,W] (0 = none); material: uint8 [H,W]
    ids into materials.MATERIAL_NAMES; depth: float32 [H,W] metres (SKY_DEPTH for sky);
    surface_s, surface_t: float32 [H,W] metric surface coordinates on the ground (depth,
    lateral X) and on facades (depth, height), undefined elsewhere; boxes: tight boxes of
    the visible pixels of cars, persons, lights and signs.
    """

    label: np.ndarray
    instances: np.ndarray
    material: np.ndarray
    depth: np.ndarray
    surface_s: np.ndarray
    surface_t: np.ndarray
    boxes: list[Box] = field(default_factory=list)


@dataclass
class _Part:
    """One stamp of the painter: a pixel window, a depth, and how to fill it."""

    z: float
    window: tuple[int, int, int, int]       # x0, y0, x1, y1 (ints, may exceed the frame)
    draw: object                             # callable(xs [1,w], ys [h,1]) -> int16 material [h,w], -1 = empty
    group: int                               # parts of one pole share a group (they never hide each other)
    instance: int = 0
    class_id: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    detail: bool = False                     # a light or sign: must stay fully visible
    is_tree: bool = False


def _window(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    return int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))


def _covers(part: _Part, window: tuple[int, int, int, int]) -> bool:
    """Whether `part` draws any pixel inside `window` (evaluated exactly on that window)."""
    x0, y0 = max(part.window[0], window[0]), max(part.window[1], window[1])
    x1, y1 = min(part.window[2], window[2]), min(part.window[3], window[3])
    if x0 >= x1 or y0 >= y1:
        return False
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5)[None, :]
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5)[:, None]
    return bool((part.draw(xs, ys) >= 0).any())


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# ----------------------------------------------------------------------------- background

def _ground_and_sky(layout: Layout, raster: Raster) -> None:
    cam = layout.camera
    height, width = cam.height, cam.width
    rows = np.arange(height, dtype=np.float32) + 0.5
    cols = np.arange(width, dtype=np.float32) + 0.5
    below = rows - cam.horizon
    ground_rows = below > 0.35
    dy = np.where(ground_rows, below, 1.0)[:, None]
    depth = cam.focal * cam.cam_height / dy                               # [H,1]
    lateral = (cols[None, :] - cam.vanish_x) * cam.cam_height / dy        # [H,W] metres
    rel = np.abs(lateral - layout.road_center)
    half, walk = layout.road_half, layout.sidewalk
    period = np.mod(depth + layout.odometer, 9.0)
    material = np.select(
        [
            (rel < 0.12) & (period < 4.0),
            (rel > half - 0.38) & (rel < half - 0.22),
            rel < half,
            rel < half + 0.22,
            rel < half + walk,
        ],
        [M["lane_marking"], M["lane_marking"], M["road"], M["curb"], M["sidewalk"]],
        default=M["terrain"],
    ).astype(np.uint8)
    sky = ~ground_rows[:, None]
    raster.material[...] = np.where(sky, np.uint8(M["sky"]), material)
    raster.depth[...] = np.where(sky, np.float32(SKY_DEPTH), depth.astype(np.float32))
    raster.surface_s[...] = depth + layout.odometer
    raster.surface_t[...] = lateral


def _facades(layout: Layout, raster: Raster) -> None:
    cam = layout.camera
    rows = (np.arange(cam.height, dtype=np.float32) + 0.5)[:, None]
    cols = np.arange(cam.width, dtype=np.float32) + 0.5
    for side, (facade_x, blocks) in zip((-1, 1), zip(layout.facade_x, layout.blocks)):
        offset = np.maximum(side * (cols - cam.vanish_x), 1e-3)          # px from the vanishing column
        depth = cam.focal * facade_x / offset                              # [W] metres
        block = np.searchsorted(blocks.edges, depth, side="right") - 1
        inside = (block >= 0) & (block < len(blocks.present))
        block = np.clip(block, 0, len(blocks.present) - 1)
        built = inside & blocks.present[block] & (side * (cols - cam.vanish_x) > 0)
        top = cam.horizon - (blocks.heights[block] - cam.cam_height) * offset / facade_x
        bottom = cam.horizon + cam.cam_height * offset / facade_x
        mask = built[None, :] & (rows >= top[None, :]) & (rows < bottom[None, :])
        if not mask.any():
            continue
        material = (M["facade_0"] + blocks.variants[block]).astype(np.uint8)
        raster.material[...] = np.where(mask, material[None, :], raster.material)
        raster.depth[...] = np.where(mask, depth[None, :].astype(np.float32), raster.depth)
        raster.surface_s[...] = np.where(mask, depth[None, :] + layout.odometer, raster.surface_s)
        height = cam.cam_height + (cam.horizon - rows) * depth[None, :] / cam.focal
        raster.surface_t[...] = np.where(mask, height, raster.surface_t)


# ----------------------------------------------------------------------------- object shapes

def _tree_parts(layout: Layout, tree: Tree, group: int) -> list[_Part]:
    cam = layout.camera
    scale = cam.focal / tree.z
    crown_h = tree.trunk_height + tree.radius * (0.9 if not tree.bush else 0.8)
    cx, cy = cam.project(tree.x, tree.z, crown_h)
    base_y = cam.project(tree.x, tree.z, 0.0)[1]
    rx = tree.radius * scale
    ry = rx * (1.05 if not tree.bush else 0.8)
    amp, phase = tree.bumps[0] * 0.1, tree.bumps[1] * 2 * np.pi
    crown_material = M["foliage_dark"] if tree.bush else M["foliage"]
    trunk_half = max(0.16 * scale, 0.5)

    def draw(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        du, dv = (xs - cx) / rx, (ys - cy) / ry
        angle = np.arctan2(dv, du)
        outline = 0.85 + amp[0] * np.sin(3 * angle + phase[0]) + amp[1] * np.sin(5 * angle + phase[1]) \
            + amp[2] * np.sin(8 * angle + phase[2])
        out = np.where(du * du + dv * dv < outline * outline, np.int16(crown_material), np.int16(-1))
        if not tree.bush:
            trunk = (np.abs(xs - cx) < trunk_half) & (ys >= cy) & (ys < base_y)
            out = np.where(trunk & (out < 0), np.int16(M["trunk"]), out)
        return out

    window = _window(cx - 1.2 * rx, cy - 1.2 * ry, cx + 1.2 * rx, max(base_y, cy + 1.2 * ry))
    return [_Part(z=tree.z, window=window, draw=draw, group=group, is_tree=True)]


def _car_part(layout: Layout, car: Car, group: int) -> _Part:
    cam = layout.camera
    cx, bottom = cam.project(car.x, car.z, 0.0)
    w, h = cam.focal * car.width / car.z, cam.focal * car.height / car.z
    body = M["car_body_0"] + car.variant

    def draw(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = (xs - cx) / w, (bottom - ys) / h
        au = np.abs(u)
        half = 0.47 - 0.14 * (v - 0.56) / 0.44
        return np.select(
            [
                (au > 0.28) & (au < 0.47) & (v >= 0) & (v < 0.16),
                (au < 0.13) & (v >= 0.18) & (v < 0.28),
                (au > 0.35) & (au < 0.48) & (v >= 0.38) & (v < 0.49),
                (au < 0.5) & (v >= 0.1) & (v < 0.56),
                (au < half - 0.05) & (v >= 0.6) & (v < 0.93),
                (au < half) & (v >= 0.56) & (v < 1.0),
            ],
            [M["car_tyre"], M["car_plate"], M["car_taillight"], body, M["car_glass"], body],
            default=-1,
        ).astype(np.int16)

    return _Part(z=car.z, window=_window(cx - 0.5 * w, bottom - h, cx + 0.5 * w, bottom), draw=draw, group=group,
                 class_id=int(MATERIAL_CLASS[body]))


def _person_part(layout: Layout, person: Person, group: int) -> _Part:
    cam = layout.camera
    cx, bottom = cam.project(person.x, person.z, 0.0)
    h = cam.focal * person.height / person.z
    shirt, pants = M["shirt_0"] + person.shirt, M["pants_0"] + person.pants

    def draw(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = (xs - cx) / h, (bottom - ys) / h
        au = np.abs(u)
        head = (u / 0.07) ** 2 + ((v - 0.92) / 0.08) ** 2 < 1.0
        spread = person.stride * (0.5 - v) * 0.4
        legs = (v >= 0) & (v < 0.5) & ((np.abs(u - 0.055 - spread) < 0.05) | (np.abs(u + 0.055 + spread) < 0.05))
        return np.select(
            [
                head & (v > 0.95),
                head | ((au < 0.03) & (v >= 0.82) & (v < 0.86)),
                (au < 0.13) & (v >= 0.48) & (v < 0.83),
                (au >= 0.13) & (au < 0.175) & (v >= 0.57) & (v < 0.82),
                (au >= 0.13) & (au < 0.175) & (v >= 0.51) & (v < 0.57),
                legs,
            ],
            [M["hair"], M["skin"], shirt, shirt, M["skin"], pants],
            default=-1,
        ).astype(np.int16)

    return _Part(z=person.z, window=_window(cx - 0.2 * h, bottom - h, cx + 0.2 * h, bottom), draw=draw,
                 group=group, class_id=int(MATERIAL_CLASS[shirt]))


def _sign_material(pictogram: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Material of a sign face at normalised coordinates u (right), v (down) in [-1,1]."""
    au, av = np.abs(u), np.abs(v)
    if pictogram in ("arrow_left", "arrow_right"):
        s = -u if pictogram == "arrow_left" else u                      # s grows toward the arrow tip
        head = (s >= 0.0) & (s < 0.75) & (av < 0.65 * (0.75 - s) / 0.75 + 0.02)
        shaft = (s > -0.7) & (s < 0.05) & (av < 0.2)
        circle = u * u + v * v < 1.0
        return np.select([circle & (head | shaft), circle], [M["sign_white"], M["sign_blue"]], default=-1)
    if pictogram == "stop":
        octagon = (au < 0.95) & (av < 0.95) & (au + av < 1.35)
        bar = (au < 0.62) & (av < 0.2)
        return np.select([octagon & bar, octagon], [M["sign_white"], M["sign_red"]], default=-1)
    if pictogram in ("warning", "yield"):
        t = v if pictogram == "warning" else -v                          # t: from apex (-1) to base (+1)
        tri = (t < 0.92) & (au < (t + 1.0) * 0.55)
        inner = (t < 0.55) & (au < (t + 1.0) * 0.55 - 0.38)
        mark = (au < 0.2) & (t > -0.2) & (t < 0.45) & ~((t > 0.1) & (t < 0.22))
        if pictogram == "warning":
            return np.select([inner & mark, inner, tri], [M["sign_black"], M["sign_white"], M["sign_red"]], default=-1)
        return np.select([inner, tri], [M["sign_white"], M["sign_red"]], default=-1)
    raise ValueError(f"unknown pictogram {pictogram!r}")


def _pole_parts(layout: Layout, pole: Pole, group: int, light_px: tuple[int, int], sign_px: int) -> list[_Part]:
    """A pole with its optional sign (bottom edge 2.2 m up) and light (bottom edge 1 m below
    the pole top). Enlarged lights and signs grow upward, never down toward the traffic
    that would hide them; the light moves up when the sign needs its place."""
    cam = layout.camera
    cx, base = cam.project(pole.x, pole.z, 0.0)
    scale = cam.focal / pole.z
    parts: list[_Part] = []
    top = cam.project(pole.x, pole.z, pole.height)[1]
    free_bottom = base - 1.0                                   # rows above this are free for the next plate
    if pole.pictogram is not None:
        size = max(int(round(0.75 * scale)), sign_px)
        sign_y1 = int(round(cam.project(pole.x, pole.z, 2.2)[1]))
        sign_y0, sign_x0 = sign_y1 - size, int(round(cx - size / 2))
        pictogram = pole.pictogram

        def draw_sign(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u = (xs - sign_x0) / size * 2.0 - 1.0
            v = (ys - sign_y0) / size * 2.0 - 1.0
            return _sign_material(pictogram, u, v).astype(np.int16)

        parts.append(_Part(z=pole.z - 0.01, window=(sign_x0, sign_y0, sign_x0 + size, sign_y1), draw=draw_sign,
                           group=group, class_id=SIGN, attributes={"pictogram": pictogram}, detail=True))
        free_bottom = sign_y0 - 1
        top = min(top, sign_y0 - 1)
    if pole.light_state is not None:
        lh, lw = max(int(round(1.0 * scale)), light_px[0]), max(int(round(0.42 * scale)), light_px[1])
        light_y1 = int(round(min(cam.project(pole.x, pole.z, pole.height - 1.0)[1], free_bottom)))
        light_y0, light_x0 = light_y1 - lh, int(round(cx - lw / 2))
        lit = LAMP_MATERIAL[pole.light_state]
        order = LAMP_ORDER[pole.light_state]
        segment = (lh - 2) / 3.0
        margin = 1 if segment >= 4 else 0
        lamp_rows = [(1 + int(round(k * segment)) + margin, 1 + int(round((k + 1) * segment)) - margin)
                     for k in range(3)]
        lamp_cols = (1, lw - 1) if lw >= 3 else (0, lw)

        def draw_light(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            cols = np.floor(xs - light_x0).astype(np.int32)
            rows = np.floor(ys - light_y0).astype(np.int32)
            out = np.full(np.broadcast(cols, rows).shape, M["light_housing"], dtype=np.int16)
            in_cols = (cols >= lamp_cols[0]) & (cols < lamp_cols[1])
            for k, (r0, r1) in enumerate(lamp_rows):
                lamp = in_cols & (rows >= r0) & (rows < r1)
                out[lamp] = lit if k == order else M["lamp_off"]
            return out

        parts.append(_Part(z=pole.z - 0.02, window=(light_x0, light_y0, light_x0 + lw, light_y1), draw=draw_light,
                           group=group,
                           class_id=LIGHT, attributes={"state": pole.light_state}, detail=True))
        top = min(top, light_y0)
    half = max(0.07 * scale, 0.5)

    def draw_pole(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        inside = (xs - cx >= -half) & (xs - cx < half) & (ys >= top) & (ys < base)
        return np.where(inside, np.int16(M["pole"]), np.int16(-1))

    window = _window(cx - half - 1, top, cx + half + 1, base)
    parts.insert(0, _Part(z=pole.z, window=window, draw=draw_pole, group=group))
    return parts


# ----------------------------------------------------------------------------- the painter

def rasterize(layout: Layout) -> Raster:
    """Turn `layout` into visible label, instance and material maps and tight boxes."""
    cam = layout.camera
    height, width = cam.height, cam.width
    raster = Raster(
        label=np.zeros((height, width), np.uint8), instances=np.zeros((height, width), np.int32),
        material=np.zeros((height, width), np.uint8), depth=np.zeros((height, width), np.float32),
        surface_s=np.zeros((height, width), np.float32), surface_t=np.zeros((height, width), np.float32),
    )
    _ground_and_sky(layout, raster)
    _facades(layout, raster)

    light_px = (max(6, int(round(0.09 * height))), 0)
    light_px = (light_px[0], max(3, int(round(0.42 * light_px[0]))))
    sign_px = max(7, int(round(0.075 * height)))
    parts: list[_Part] = []
    group = 0
    for tree in layout.trees:
        group += 1
        parts.extend(_tree_parts(layout, tree, group))
    for pole in layout.poles:
        group += 1
        parts.extend(_pole_parts(layout, pole, group, light_px, sign_px))
    for car in layout.cars:
        group += 1
        parts.append(_car_part(layout, car, group))
    for person in layout.persons:
        group += 1
        parts.append(_person_part(layout, person, group))

    # lights and signs stay whole: cut by the frame or hidden by a nearer car, person or
    # pole -> left out; hidden by a nearer tree -> the tree is left out (streets have many)
    frame = (0, 0, width, height)
    dropped: set[int] = set()
    for part in parts:
        if not part.detail:
            continue
        x0, y0, x1, y1 = part.window
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            dropped.add(id(part))
            continue
        for other in parts:
            if other.group == part.group or other.z >= part.z or id(other) in dropped:
                continue
            if _overlap(other.window, part.window) and _covers(other, part.window):
                if other.is_tree:
                    dropped.add(id(other))
                else:
                    dropped.add(id(part))
                    break
    kept = [p for p in parts if id(p) not in dropped and _overlap(p.window, frame)]

    # instance ids in a fixed order (cars, persons, lights, signs), so ids are stable
    class_order = {CAR: 0, PERSON: 1, LIGHT: 2, SIGN: 3}
    boxed = [p for p in kept if p.detail or p.class_id in (CAR, PERSON)]
    for instance, part in enumerate(sorted(boxed, key=lambda p: (class_order[p.class_id], p.group)), start=1):
        part.instance = instance

    for part in sorted(kept, key=lambda p: -p.z):
        x0, y0, x1, y1 = part.window
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx0 >= cx1 or cy0 >= cy1:
            continue
        xs = (np.arange(cx0, cx1, dtype=np.float32) + 0.5)[None, :]
        ys = (np.arange(cy0, cy1, dtype=np.float32) + 0.5)[:, None]
        material = part.draw(xs, ys)
        drawn = material >= 0
        if not drawn.any():
            continue
        region = (slice(cy0, cy1), slice(cx0, cx1))
        raster.material[region] = np.where(drawn, material, raster.material[region]).astype(np.uint8)
        raster.depth[region] = np.where(drawn, np.float32(part.z), raster.depth[region])
        raster.instances[region] = np.where(drawn, np.int32(part.instance), raster.instances[region])

    raster.label[...] = MATERIAL_CLASS[raster.material]
    boxes = []
    for part in sorted((p for p in kept if p.instance), key=lambda p: p.instance):
        x0, y0, x1, y1 = part.window
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx0 >= cx1 or cy0 >= cy1:
            continue
        mine = raster.instances[cy0:cy1, cx0:cx1] == part.instance
        rows, cols = np.flatnonzero(mine.any(axis=1)), np.flatnonzero(mine.any(axis=0))
        if rows.size == 0:
            continue                                                    # fully occluded: no box
        boxes.append(Box(
            xyxy=(float(cx0 + cols[0]), float(cy0 + rows[0]), float(cx0 + cols[-1] + 1), float(cy0 + rows[-1] + 1)),
            class_id=part.class_id, instance_id=part.instance, attributes=dict(part.attributes),
        ))
    raster.boxes = boxes
    return raster
