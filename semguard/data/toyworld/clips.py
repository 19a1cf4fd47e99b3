"""Toy-world clips: short sequences of one street, for measuring flicker.

Translated video flickers (instance normalisation makes a car entering one corner change
the tone of the whole frame); measuring that needs sequences whose frame-to-frame change
is known. A clip is one layout (`sample_layout`, drawn once per clip from the clip's
layout stream) moved through time, frame by frame, in closed form:

- camera "static" (even clips): the ego camera stands; moving cars drive along their lane
  (4-9 m/s, oncoming on the left of the road centre), persons walk along the sidewalk or
  across the road (0.8-1.6 m/s), traffic lights cycle green 2.0 s -> amber 0.6 s -> red 1.6 s.
- camera "forward" (odd clips): the same, while the ego camera drives forward at 6-10 m/s:
  every object, building block and the ground and facade textures (`Layout.odometer`)
  move toward it; objects nearer than NEAR_Z metres (or behind the camera) leave the scene.

Frame t is at time t / FPS seconds. The motion's random numbers (speeds, light phases)
come from a sibling stream of the layout's, so a frame is a pure function of (seed, clip,
frame, layout domain, style, size, gap), whatever the worker count or the frames rendered
before it. Frame 0 of a clip shows the layout exactly as drawn (lights in their drawn state).

Real style: the style stream (sky tint, light falloff, cast, blur, sensor noise pattern) is
the clip's, the same for every frame: one camera films the clip, and its fixed-pattern noise
does not change between frames. So a pixel whose content does not change keeps its exact
value in the paired truth too, and the paired truth's static-region flicker is the floor
a translator can be held to (zero where nothing nearby moves).

On disk (`make_toy_world(..., clips=N, clip_length=T)`, `semguard data make-toy --clips N`):

    OUT/clips/sim        sim layouts, sim style         NAME = clip_CCCC/FFFFFF
    OUT/clips/paired     the same layouts, real style   (the paired truth; evaluation only)
    OUT/clips/real       real layouts, real style       (target-domain clips)

each a semguard folder data set whose dataset.json records {"clips": N, "clip_length": T,
"fps": FPS, "cameras": [...]} besides the usual toy-world metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from semguard.data.folder import write_sample
from semguard.data.sample import Sample
from semguard.data.toyworld.layout import Layout, check_size, sample_layout
from semguard.labels import LIGHT_STATES
from semguard.data.toyworld.raster import rasterize
from semguard.data.toyworld.style import render_real, render_sim

CLIP_INDEX_BASE = 3_000_000
"""Clip k draws its layout from index CLIP_INDEX_BASE + k (no frame split uses these indices)."""
MAX_CLIPS = 1_000_000
FPS = 10.0
CAMERAS: tuple[str, ...] = ("static", "forward")
"""Camera motion of clip k: CAMERAS[k % 2]."""
NEAR_Z = 2.5
FAR_Z = 150.0
LIGHT_CYCLE: tuple[tuple[str, float], ...] = (("green", 2.0), ("amber", 0.6), ("red", 1.6))
"""(state, seconds) in cycle order."""
CLIP_FOLDERS: tuple[tuple[str, str, str], ...] = (
    # folder under OUT, layout domain, style
    ("clips/sim", "sim", "sim"),
    ("clips/paired", "sim", "real"),
    ("clips/real", "real", "real"),
)
_LAYOUT_CODE = {"sim": 1, "real": 2}
_STYLE_CODE = {"sim": 1, "real": 2}
_MOTION_STREAM = 20


def clip_name(clip: int, frame: int) -> str:
    """'clip_0003/000012': frame order is the sorted name order."""
    return f"clip_{clip:04d}/{frame:06d}"


def clip_of(name: str) -> str:
    """The clip a frame name belongs to: everything before its last '/' ('' for a name without one)."""
    return name.rpartition("/")[0]


def camera_of(clip: int) -> str:
    return CAMERAS[clip % len(CAMERAS)]


@dataclass(frozen=True)
class ClipMotion:
    """How a clip's layout moves: speeds in m/s (+z away from the camera), light phases in s."""

    ego_speed: float
    car_speed: tuple[float, ...]                     # per layout.cars entry (0 for parked cars)
    person_velocity: tuple[tuple[float, float], ...]  # per layout.persons entry: (vx, vz)
    light_phase: tuple[float, ...]                   # per layout.poles entry: seconds into LIGHT_CYCLE at t=0


def _cycle_start(state: str) -> tuple[float, float]:
    start = 0.0
    for name, seconds in LIGHT_CYCLE:
        if name == state:
            return start, seconds
        start += seconds
    raise ValueError(f"unknown light state {state!r}; expected one of {LIGHT_STATES}")


def light_state_at(phase: float) -> str:
    """The light state `phase` seconds into the cycle (any real number, wrapped)."""
    period = sum(seconds for _, seconds in LIGHT_CYCLE)
    position = float(np.mod(phase, period))
    for name, seconds in LIGHT_CYCLE:
        if position < seconds:
            return name
        position -= seconds
    return LIGHT_CYCLE[-1][0]


def sample_motion(rng: np.random.Generator, layout: Layout, camera: str) -> ClipMotion:
    """Draw the motion of `layout` (a fixed order of random numbers: ego, cars, persons, lights)."""
    if camera not in CAMERAS:
        raise ValueError(f"unknown clip camera {camera!r}; expected one of {CAMERAS}")
    ego = float(rng.uniform(6.0, 10.0))
    ego = ego if camera == "forward" else 0.0
    cars = []
    for car in layout.cars:
        speed = float(rng.uniform(4.0, 9.0))
        cars.append(0.0 if car.parked else (speed if car.x >= layout.road_center else -speed))
    persons = []
    for person in layout.persons:
        speed, direction = float(rng.uniform(0.8, 1.6)), (1.0 if rng.random() < 0.5 else -1.0)
        crossing = abs(person.x - layout.road_center) < layout.road_half
        persons.append((direction * speed, 0.0) if crossing else (0.0, direction * speed))
    phases = []
    for pole in layout.poles:
        into = float(rng.random())
        if pole.light_state is None:
            phases.append(0.0)
            continue
        start, seconds = _cycle_start(pole.light_state)
        phases.append(start + into * seconds)     # frame 0 shows the drawn state
    return ClipMotion(ego_speed=ego, car_speed=tuple(cars), person_velocity=tuple(persons),
                      light_phase=tuple(phases))


def layout_at(layout: Layout, motion: ClipMotion, time: float) -> Layout:
    """The clip's layout `time` seconds after its first frame (objects past NEAR_Z/FAR_Z left out)."""
    travelled = motion.ego_speed * time

    def visible(z: float) -> bool:
        return NEAR_Z <= z <= FAR_Z

    cars = [replace(car, z=car.z + speed * time - travelled) for car, speed in zip(layout.cars, motion.car_speed)]
    persons = [replace(person, x=person.x + vx * time, z=person.z + vz * time - travelled)
               for person, (vx, vz) in zip(layout.persons, motion.person_velocity)]
    poles = [replace(pole, z=pole.z - travelled,
                     light_state=None if pole.light_state is None else light_state_at(phase + time))
             for pole, phase in zip(layout.poles, motion.light_phase)]
    trees = [replace(tree, z=tree.z - travelled) for tree in layout.trees]
    blocks = tuple(replace(side, edges=side.edges - travelled) for side in layout.blocks)
    return replace(
        layout, blocks=blocks, odometer=layout.odometer + travelled,
        cars=[c for c in cars if visible(c.z)], persons=[p for p in persons if visible(p.z)],
        poles=[p for p in poles if visible(p.z)], trees=[t for t in trees if visible(t.z)],
    )


def render_clip_frame(
    seed: int,
    clip: int,
    frame: int,
    layout: str = "sim",
    style: str = "sim",
    size: tuple[int, int] = (128, 256),
    gap: float = 1.0,
) -> Sample:
    """Frame `frame` of toy-world clip `clip` of world `seed` (see the module docstring).

    Returns a Sample as `render_sample` does (image uint8 [H,W,3], label uint8 [H,W],
    instances int32 [H,W], tight boxes with light states and sign pictograms), named
    clip_name(clip, frame). Pure in its arguments.
    """
    if not 0 <= int(clip) < MAX_CLIPS or int(frame) < 0 or int(seed) < 0:
        raise ValueError(f"need seed >= 0, 0 <= clip < {MAX_CLIPS} and frame >= 0, got {seed}, {clip}, {frame}")
    size = check_size(size)
    index = CLIP_INDEX_BASE + int(clip)
    code = _LAYOUT_CODE[layout]
    scene = sample_layout(np.random.default_rng([int(seed), index, code, 0]), layout, size, gap)
    motion = sample_motion(np.random.default_rng([int(seed), index, code, _MOTION_STREAM]), scene, camera_of(clip))
    scene = layout_at(scene, motion, int(frame) / FPS)
    raster = rasterize(scene)
    if style == "sim":
        image = render_sim(raster)
    else:
        style_rng = np.random.default_rng([int(seed), index, code, 10 + _STYLE_CODE[style]])
        image = render_real(raster, style_rng, horizon=scene.camera.horizon, focal=scene.camera.focal)
    return Sample(image=image, label=raster.label, instances=raster.instances, boxes=raster.boxes,
                  name=clip_name(clip, frame))


@dataclass(frozen=True)
class ClipJob:
    """One clip frame to render and write (picklable, for worker processes)."""

    root: str
    clip: int
    frame: int
    layout: str
    style: str
    seed: int
    size: tuple[int, int]
    gap: float


def make_clip_frame(job: ClipJob) -> str:
    sample = render_clip_frame(job.seed, job.clip, job.frame, job.layout, job.style, job.size, job.gap)
    write_sample(job.root, sample)
    return sample.name


def clip_jobs(out, clips: int, clip_length: int, size: tuple[int, int], seed: int, gap: float) -> list[ClipJob]:
    """Every frame of `clips` clips of `clip_length` frames, in every folder of CLIP_FOLDERS."""
    return [ClipJob(str(Path(out) / folder), clip, frame, layout, style, seed, size, gap)
            for folder, layout, style in CLIP_FOLDERS for clip in range(clips) for frame in range(clip_length)]


def clip_info(clips: int, clip_length: int) -> dict:
    """The clip fields of a clip folder's dataset.json."""
    return {"clips": int(clips), "clip_length": int(clip_length), "fps": FPS,
            "cameras": [camera_of(k) for k in range(clips)], "clip_index_base": CLIP_INDEX_BASE}
