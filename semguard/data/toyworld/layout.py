"""Scene layouts drawn from a domain prior: the *semantic* half of the toy world's gap.

A layout is a street in world units (metres) seen from a car-mounted pinhole camera:
road, sidewalks, a strip of terrain, building blocks along both sides, trees, bushes,
poles carrying traffic lights and signs, parked and moving cars, pedestrians. Nothing
here knows about pixels' colours; `raster.py` turns a layout into label, instance and
material maps, and `style.py` into an image.

The two priors differ on purpose (docs/DESIGN.md, "The toy world"): the *sim* street is wide
and open, with low buildings set far back, few trees and much sky; the *real* street is
a narrow canyon of tall facades and tree crowns where sim shows sky, with more parked
cars. `gap` in [0, ...] moves the real prior from the sim prior (0: no semantic gap) to
the full real prior (1, the default) and beyond (values > 1 exaggerate it, clipped to
physically sensible ranges).

World frame: X lateral (metres, + to the right), z depth along the road (metres ahead of
the camera), heights above the ground. The road runs straight along z.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from semguard.data.toyworld.materials import N_CARS, N_FACADES, N_PANTS, N_SHIRTS
from semguard.labels import LIGHT_STATES

PICTOGRAMS: tuple[str, ...] = ("arrow_left", "arrow_right", "stop", "warning", "yield")
"""Sign pictograms. The arrows swap meaning under a horizontal flip; the others are symmetric."""

DOMAINS: tuple[str, ...] = ("sim", "real")

MIN_SIZE = (32, 32)   # smallest toy-world frame (H, W)


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """Return (H, W) as ints; raise ValueError unless both are >= 32."""
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if height < MIN_SIZE[0] or width < MIN_SIZE[1]:
        raise ValueError(f"toy-world frames must be at least {MIN_SIZE[0]}x{MIN_SIZE[1]} pixels, got {height}x{width}")
    return height, width



@dataclass(frozen=True)
class DomainPrior:
    """Ranges (lo, hi) sampled uniformly and probabilities of one domain's street layout."""

    road_half: tuple[float, float]          # half width of the carriageway, m
    sidewalk: tuple[float, float]           # sidewalk width, m
    setback: tuple[float, float]            # terrain strip between sidewalk and facades, m
    building_prob: float                    # chance that a block along the street is built
    building_height: tuple[float, float]    # m
    block_length: tuple[float, float]       # m along the street
    tree_prob: float                        # chance of a tree per 9 m slot and side
    tree_radius: tuple[float, float]        # crown radius, m
    trunk_height: tuple[float, float]       # m below the crown
    tree_on_sidewalk: float                 # 1: trees stand at the curb; 0: on the terrain strip
    bushes: tuple[float, float]             # bushes per side
    parked_prob: float                      # chance of a parked car per 6 m slot and side
    moving_cars: tuple[float, float]
    persons: tuple[float, float]
    poles: tuple[float, float]              # poles per side


SIM_PRIOR = DomainPrior(
    road_half=(5.5, 7.5), sidewalk=(1.5, 2.5), setback=(14.0, 32.0), building_prob=0.45,
    building_height=(3.0, 7.0), block_length=(12.0, 30.0), tree_prob=0.06, tree_radius=(1.6, 2.4),
    trunk_height=(1.2, 2.0), tree_on_sidewalk=0.0, bushes=(1.0, 4.0), parked_prob=0.05,
    moving_cars=(1.0, 3.99), persons=(0.0, 2.99), poles=(1.0, 2.99),
)
REAL_PRIOR = DomainPrior(
    road_half=(3.0, 4.0), sidewalk=(2.5, 3.5), setback=(0.0, 0.6), building_prob=0.85,
    building_height=(10.0, 22.0), block_length=(8.0, 22.0), tree_prob=0.7, tree_radius=(3.0, 4.2),
    trunk_height=(2.2, 3.2), tree_on_sidewalk=1.0, bushes=(0.0, 1.0), parked_prob=0.6,
    moving_cars=(0.0, 2.99), persons=(1.0, 4.99), poles=(1.0, 2.99),
)


def domain_prior(domain: str, gap: float = 1.0) -> DomainPrior:
    """The layout prior of `domain` ("sim" | "real") at semantic-gap strength `gap` >= 0.

    The real prior is sim + gap * (full real - sim), field by field, clipped so that
    probabilities stay in [0, 1] and lengths stay positive.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown toy-world domain {domain!r}; expected one of {DOMAINS}")
    if not np.isfinite(gap) or gap < 0:
        raise ValueError(f"gap must be a finite number >= 0, got {gap}")
    if domain == "sim":
        return SIM_PRIOR
    values = {}
    for item in fields(DomainPrior):
        sim, real = getattr(SIM_PRIOR, item.name), getattr(REAL_PRIOR, item.name)
        if isinstance(sim, tuple):
            lo, hi = (s + gap * (r - s) for s, r in zip(sim, real))
            floor = 0.0 if item.name in ("setback", "bushes", "moving_cars", "persons") else 0.5
            lo, hi = max(lo, floor), max(hi, floor)
            values[item.name] = (min(lo, hi), max(lo, hi))
        else:
            values[item.name] = float(np.clip(sim + gap * (real - sim), 0.0, 1.0))
    values["road_half"] = (max(values["road_half"][0], 2.2), max(values["road_half"][1], 2.4))
    values["building_height"] = tuple(min(v, 45.0) for v in values["building_height"])
    return replace(SIM_PRIOR, **values)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: frame size (px), focal length (px), horizon row and vanishing column
    (px, float), camera height above the road (m)."""

    height: int
    width: int
    focal: float
    horizon: float
    vanish_x: float
    cam_height: float = 1.5

    def project(self, x: float, z: float, h: float) -> tuple[float, float]:
        """World point (X m, depth z m > 0, height h m) -> pixel (column, row), floats."""
        return self.vanish_x + self.focal * x / z, self.horizon + self.focal * (self.cam_height - h) / z


@dataclass(frozen=True)
class Blocks:
    """Building blocks along one side: block k spans depths [edges[k], edges[k+1]) m."""

    edges: np.ndarray        # float [K+1], increasing, edges[0] = 0
    present: np.ndarray      # bool [K]
    heights: np.ndarray      # float [K], m
    variants: np.ndarray     # int [K], facade colour variant


@dataclass(frozen=True)
class Tree:
    x: float
    z: float
    trunk_height: float
    radius: float
    bumps: np.ndarray        # float [2,3]: amplitude/phase of the crown outline's lobes
    bush: bool = False       # a bush is a crown without trunk, sitting on the ground


@dataclass(frozen=True)
class Pole:
    x: float
    z: float
    height: float
    light_state: str | None  # "red" | "amber" | "green" | None
    pictogram: str | None    # one of PICTOGRAMS | None
    side: int                # -1 left, +1 right (the light hangs toward the road)


@dataclass(frozen=True)
class Car:
    x: float
    z: float
    width: float
    height: float
    variant: int
    parked: bool


@dataclass(frozen=True)
class Person:
    x: float
    z: float
    height: float
    shirt: int
    pants: int
    stride: float            # leg spread, fraction of the body width


@dataclass(frozen=True)
class Layout:
    """One street scene in world units; see the module docstring for the frame."""

    domain: str
    camera: Camera
    road_center: float
    road_half: float
    sidewalk: float
    facade_x: tuple[float, float]          # |X| of the left and right facade planes, m
    blocks: tuple[Blocks, Blocks]          # left, right
    trees: list[Tree] = field(default_factory=list)
    poles: list[Pole] = field(default_factory=list)
    cars: list[Car] = field(default_factory=list)
    persons: list[Person] = field(default_factory=list)
    odometer: float = 0.0                  # m the camera has driven since the layout was drawn (clips):
                                           # shifts ground and facade textures, which are fixed to the world


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _count(rng: np.random.Generator, bounds: tuple[float, float]) -> int:
    return int(np.floor(rng.uniform(bounds[0], bounds[1])))


def _blocks(rng: np.random.Generator, prior: DomainPrior, z_far: float = 400.0) -> Blocks:
    lengths = rng.uniform(*prior.block_length, size=64)
    edges = np.concatenate([[0.0], np.cumsum(lengths)])
    count = int(np.searchsorted(edges, z_far)) + 1
    edges = edges[: count + 1]
    return Blocks(
        edges=edges,
        present=rng.random(count) < prior.building_prob,
        heights=rng.uniform(*prior.building_height, size=count),
        variants=rng.integers(0, N_FACADES, size=count),
    )


def _free(z: float, taken: list[float], gap: float) -> bool:
    return all(abs(z - other) >= gap for other in taken)


def sample_layout(rng: np.random.Generator, domain: str, size: tuple[int, int], gap: float = 1.0) -> Layout:
    """Draw one street layout of `domain` for a frame of `size` = (H, W) pixels.

    Every random number comes from `rng` in a fixed order, so a layout is a pure function
    of the generator's seed, the domain, the size and the gap.
    """
    prior = domain_prior(domain, gap)
    height, width = size
    camera = Camera(
        height=height, width=width, focal=0.55 * width,
        horizon=height * rng.uniform(0.44, 0.49), vanish_x=width * rng.uniform(0.44, 0.56),
    )
    road_half = _uniform(rng, prior.road_half)
    road_center = float(rng.uniform(-0.45, 0.2) * road_half)   # the camera drives right of the centre
    sidewalk = _uniform(rng, prior.sidewalk)
    curb = [road_center - road_half, road_center + road_half]   # left, right curb X
    facade_x = tuple(float(abs(c) + sidewalk + _uniform(rng, prior.setback)) for c in curb)
    blocks = (_blocks(rng, prior), _blocks(rng, prior))

    poles: list[Pole] = []
    pole_z: list[list[float]] = [[], []]
    for side_index, side in enumerate((-1, 1)):
        for _ in range(_count(rng, prior.poles)):
            z = float(rng.uniform(7.0, 34.0))
            kind = rng.random()
            if not _free(z, pole_z[side_index], 7.0):
                continue
            pole_z[side_index].append(z)
            state = LIGHT_STATES[int(rng.integers(0, 3))] if kind < 0.75 else None
            pictogram = PICTOGRAMS[int(rng.integers(0, len(PICTOGRAMS)))] if kind > 0.45 else None
            poles.append(Pole(
                x=curb[side_index] + side * 0.45, z=z, height=4.6 if state else 3.2,
                light_state=state, pictogram=pictogram, side=side,
            ))

    trees: list[Tree] = []
    for side_index, side in enumerate((-1, 1)):
        curb_x = curb[side_index]
        strip = facade_x[side_index] - abs(curb_x) - sidewalk          # terrain between sidewalk and facades
        for slot in range(14):
            z = 3.0 + 9.0 * slot + float(rng.uniform(0.0, 5.0))
            grows = rng.random() < prior.tree_prob
            radius = _uniform(rng, prior.tree_radius)
            trunk = _uniform(rng, prior.trunk_height)
            on_sidewalk = rng.random() < prior.tree_on_sidewalk
            outer = float(rng.uniform(0.3, 0.8))
            bumps = rng.uniform(0.0, 1.0, size=(2, 3))
            if not grows or not _free(z, pole_z[side_index], 4.0):
                continue
            if on_sidewalk:
                x = curb_x + side * 1.1
            else:
                x = side * (abs(curb_x) + sidewalk + 1.0 + outer * max(strip - 2.0, 0.5))
            trees.append(Tree(x=x, z=z, trunk_height=trunk, radius=radius, bumps=bumps))
        for _ in range(_count(rng, prior.bushes)):
            z = float(rng.uniform(5.0, 80.0))
            radius = float(rng.uniform(0.7, 1.5))
            outer = float(rng.uniform(0.1, 0.9))
            bumps = rng.uniform(0.0, 1.0, size=(2, 3))
            x = side * (abs(curb_x) + sidewalk + 0.8 + outer * max(strip - 1.6, 0.2))
            trees.append(Tree(x=x, z=z, trunk_height=0.0, radius=radius, bumps=bumps, bush=True))

    cars: list[Car] = []

    def add_car(x: float, z: float, parked: bool) -> None:
        if all(abs(z - c.z) >= 5.5 or abs(x - c.x) >= 2.1 for c in cars):
            cars.append(Car(
                x=x, z=z, width=float(rng.uniform(1.7, 1.95)), height=float(rng.uniform(1.4, 1.9)),
                variant=int(rng.integers(0, N_CARS)), parked=parked,
            ))

    for side_index, side in enumerate((-1, 1)):
        for slot in range(12):
            z = 4.5 + 6.0 * slot + float(rng.uniform(0.0, 0.8))
            if rng.random() < prior.parked_prob:
                add_car(curb[side_index] - side * 1.05, z, parked=True)
    for _ in range(_count(rng, prior.moving_cars)):
        lane = -1 if rng.random() < 0.5 else 1
        x = road_center + lane * road_half * 0.42 + float(rng.uniform(-0.3, 0.3))
        add_car(x, float(rng.uniform(7.0, 60.0)), parked=False)

    persons: list[Person] = []
    for _ in range(_count(rng, prior.persons)):
        side_index = int(rng.integers(0, 2))
        side = (-1, 1)[side_index]
        crossing = rng.random() < 0.15
        offset = float(rng.uniform(0.5, max(sidewalk - 0.4, 0.6)))
        x = float(rng.uniform(-road_half, road_half) + road_center) if crossing else curb[side_index] + side * offset
        persons.append(Person(
            x=x, z=float(rng.uniform(5.0, 40.0)), height=float(rng.uniform(1.55, 1.9)),
            shirt=int(rng.integers(0, N_SHIRTS)), pants=int(rng.integers(0, N_PANTS)),
            stride=float(rng.uniform(0.0, 0.35)),
        ))

    return Layout(
        domain=domain, camera=camera, road_center=road_center, road_half=road_half, sidewalk=sidewalk,
        facade_x=facade_x, blocks=blocks, trees=trees, poles=poles, cars=cars, persons=persons,
    )
