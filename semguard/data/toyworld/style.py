"""Colour a rasterised scene in a domain style: the *image* half of the toy world's gap.

`sim` looks like a cheap game engine: each material one flat, saturated colour, hard
edges, even light, no noise. `real` looks like a camera: another (muted) palette,
textures that depend on the surface (asphalt grain, paving joints, facade windows laid
out in metric facade coordinates, foliage, grass, clouds), atmospheric haze with depth,
a light gradient across the frame, vignetting, a colour cast, slight blur and sensor
noise. Lit lamps are emissive: they keep their colour whatever the light, so a light's
state stays readable in both styles.

Both styles colour the same `Raster`, so any layout can be shown in either (the paired
truth is a sim layout in the real style). Only the image changes; labels never do.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from semguard.data.toyworld.materials import EMISSIVE, MATERIAL_CLASS, REAL_PALETTE, SIM_PALETTE, M
from semguard.data.toyworld.materials import BUILDING, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION
from semguard.data.toyworld.raster import Raster

STYLES: tuple[str, ...] = ("sim", "real")


def render_sim(raster: Raster) -> np.ndarray:
    """Flat, saturated, evenly lit: uint8 [H,W,3] straight from the sim palette."""
    return SIM_PALETTE[raster.material]


@lru_cache(maxsize=32)
def _interpolation(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation from `in_size` samples to `out_size` pixels: (low, high, frac)."""
    pos = np.clip((np.arange(out_size, dtype=np.float64) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
    low = np.floor(pos).astype(np.intp)
    return low, np.minimum(low + 1, in_size - 1), (pos - low).astype(np.float32)


def smooth_noise(rng: np.random.Generator, size: tuple[int, int], cell: float) -> np.ndarray:
    """float32 [H,W] smooth noise, unit-ish variance, features about `cell` px wide.

    A coarse grid of normal samples, linearly interpolated (no BLAS: worker processes
    stay single-threaded).
    """
    height, width = size
    grid = rng.standard_normal((max(2, int(np.ceil(height / cell)) + 1), max(2, int(np.ceil(width / cell)) + 1)))
    grid = grid.astype(np.float32)
    low, high, frac = _interpolation(height, grid.shape[0])
    rows = grid[low] * (1 - frac)[:, None] + grid[high] * frac[:, None]
    low, high, frac = _interpolation(width, grid.shape[1])
    return rows[:, low] * (1 - frac)[None, :] + rows[:, high] * frac[None, :]


def _hash(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random value in [0,1) per integer cell (a, b)."""
    value = np.sin(a * 12.9898 + b * 78.233) * 43758.5453
    return value - np.floor(value)


def _blur3(image: np.ndarray, weight: float) -> np.ndarray:
    """Separable [w, 1-2w, w] blur of float [H,W,C] with edge replication."""
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows = weight * padded[:-2] + (1 - 2 * weight) * padded[1:-1] + weight * padded[2:]
    return weight * rows[:, :-2] + (1 - 2 * weight) * rows[:, 1:-1] + weight * rows[:, 2:]


def render_real(raster: Raster, rng: np.random.Generator, horizon: float, focal: float) -> np.ndarray:
    """Camera-like rendering of `raster`: uint8 [H,W,3].

    horizon: horizon row (px) for the sky gradient; focal: focal length (px), used to fade
    metric textures (windows, paving joints) when they get smaller than a pixel.
    Surface textures are computed on the pixels of their class only (flat indices), the
    light, haze, cast, blur and noise on the whole frame.
    """
    material = raster.material.ravel()
    label = MATERIAL_CLASS[material]
    height, width = raster.material.shape
    depth = raster.depth.ravel()
    s, t = raster.surface_s.ravel(), raster.surface_t.ravel()
    image = REAL_PALETTE[material]                                     # float32 [N,3], 0..255
    grain = rng.standard_normal(height * width).astype(np.float32)
    coarse = smooth_noise(rng, (height, width), max(height / 6, 2.0)).ravel()
    medium = smooth_noise(rng, (height, width), max(height / 24, 1.5)).ravel()
    gain = np.ones(height * width, dtype=np.float32)

    road = np.flatnonzero(label == ROAD)
    gain[road] = 1.0 + 0.07 * grain[road] + 0.08 * coarse[road]

    walk = np.flatnonzero(label == SIDEWALK)
    joint = (np.mod(s[walk], 1.3) < 0.09) | (np.mod(t[walk], 1.3) < 0.09)
    joint_weight = np.clip(focal * 0.09 / np.maximum(depth[walk], 1e-3), 0.0, 1.0)
    gain[walk] = (1.0 - 0.18 * joint * joint_weight) * (1.0 + 0.05 * grain[walk])

    facade = np.flatnonzero(label == BUILDING)
    if facade.size:
        fs, ft = s[facade] / 3.4, (t[facade] - 0.4) / 3.1
        across, up = fs - np.floor(fs), ft - np.floor(ft)               # position inside a window cell
        in_window = (across > 0.28) & (up > 0.32) & (up < 0.82) & (t[facade] > 3.4)
        weight = (np.clip((focal * 1.5 / np.maximum(depth[facade], 1e-3) - 1.0) / 2.0, 0.0, 1.0) * in_window)[:, None]
        lit = _hash(np.floor(fs), np.floor(ft))[:, None]
        glass = np.float32([30, 36, 44]) + np.float32([70, 66, 50]) * lit
        image[facade] = image[facade] * (1 - weight) + glass * weight
        shade = 1.0 + 0.06 * coarse[facade] + 0.04 * grain[facade]
        ground_floor = (t[facade] < 3.4) & (t[facade] > 0.3)
        gain[facade] = np.where(ground_floor, 0.8 * shade, shade)

    green = np.flatnonzero(label == VEGETATION)
    if green.size:
        leaves = 0.35 * grain[green] + 0.45 * medium[green]
        gain[green] = np.clip(1.0 + 0.45 * leaves, 0.35, 1.9)
        image[green] += np.float32([10, 12, -2]) * medium[green, None]

    grass = np.flatnonzero(label == TERRAIN)
    gain[grass] = 1.0 + 0.16 * grain[grass] + 0.12 * coarse[grass]

    sky_mask = label == SKY
    sky = np.flatnonzero(sky_mask)
    if sky.size:
        rows = sky // width + 0.5
        up = np.clip((horizon - rows) / max(horizon, 1.0), 0.0, 1.0).astype(np.float32)[:, None]
        zenith = np.float32([118, 150, 196]) + rng.uniform(-12, 12, 3).astype(np.float32)
        colour = REAL_PALETTE[M["sky"]] * (1 - up) + zenith * up
        cloud = np.clip(coarse[sky] * 0.9 + medium[sky] * 0.3 - 0.1, 0.0, 1.0)[:, None]
        image[sky] = colour * (1 - 0.7 * cloud) + np.float32([226, 226, 230]) * (0.7 * cloud)

    haze = np.clip(1.0 - np.exp(-depth / rng.uniform(90.0, 170.0)), 0.0, 0.6).astype(np.float32)
    haze[sky] = 0.0
    haze_colour = REAL_PALETTE[M["sky"]] * np.float32(1.02)

    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None] / height - 0.5
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :] / width - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    falloff = 1.0 + rng.uniform(0.15, 0.3) * 2 * (np.cos(angle) * xs + np.sin(angle) * ys)
    vignette = 1.0 - rng.uniform(0.35, 0.6) * (xs * xs + ys * ys) * 2
    light = (rng.uniform(0.85, 1.08) * falloff * vignette).astype(np.float32).ravel()

    # albedo * texture, hazed with depth, lit; emissive lamps keep their own colour
    image *= gain[:, None]
    image += (haze_colour[None, :] - image) * haze[:, None]
    image *= light[:, None]
    lamps = np.flatnonzero(EMISSIVE[material])
    image[lamps] = REAL_PALETTE[material[lamps]]

    cast = rng.uniform(0.03, 0.1) * (1 if rng.random() < 0.7 else -1)
    image *= np.float32([1 + cast, 1 + 0.2 * cast, 1 - cast])
    image = _blur3(image.reshape(height, width, 3), float(rng.uniform(0.12, 0.2))).reshape(-1, 3)
    # a lit lamp saturates the sensor: its glow spreads into the blur, its own pixels stay its colour
    image[lamps] = REAL_PALETTE[material[lamps]]
    image = image.reshape(height, width, 3)
    image += rng.normal(0.0, rng.uniform(2.5, 5.0), size=image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
