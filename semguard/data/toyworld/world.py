"""The toy world's public face: one sample from (seed, index), a whole world on disk.

Every sample is a pure function of (seed, index, layout domain, style, size, gap): the
layout's random numbers come from `np.random.default_rng([seed, index, layout code, 0])`
and the style's from a sibling stream, so the bytes do not depend on the order in which
samples are made, nor on how many worker processes make them. The sim and real domains
use different layout streams, so their layouts are independent; validation samples use
indices offset by VAL_INDEX_BASE, so they never repeat a training layout.

On disk (`make_toy_world`, `semguard data make-toy`):

    OUT/sim/train, OUT/sim/val        sim layouts, sim style
    OUT/real/train, OUT/real/val      real layouts, real style (labels kept for the judge)
    OUT/paired/train, OUT/paired/val  the sim layouts of sim/train, sim/val in the real style, same names
    OUT/judge/train                   the judge's own split: fresh real layouts (real_NNNNNN) and fresh
                                      sim layouts (paired_NNNNNN), both in the real style
    OUT/clips/{sim,paired,real}       with clips=N: sequences clip_CCCC/FFFFFF (see toyworld.clips)

each a semguard folder data set (see semguard.data.folder) whose dataset.json records
domain, split, style, seed, gap, size and the index base of its sample names.

The judge split exists so that the judge (the evaluation's segmenter) reads what a pixel
*shows*, not where it sits: trained on real-style renderings of both layout priors, it has
seen real-looking sky in the sim prior's places, so its error on the paired truth (its
floor) is low. Its frames come from indices offset by JUDGE_INDEX_BASE, which no other
split uses, so no translator, guide or crop classifier ever trains on a judge frame.
"""

from __future__ import annotations

import multiprocessing
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from semguard.data.folder import write_dataset_info, write_sample
from semguard.data.sample import Sample
from semguard.data.toyworld.clips import CLIP_FOLDERS, MAX_CLIPS, ClipJob, clip_info, clip_jobs, make_clip_frame
from semguard.data.toyworld.layout import DOMAINS, check_size, sample_layout
from semguard.data.toyworld.raster import rasterize
from semguard.data.toyworld.style import STYLES, render_real, render_sim

VAL_INDEX_BASE = 1_000_000
"""Validation sample j is rendered from index VAL_INDEX_BASE + j (named f"{j:06d}")."""
JUDGE_INDEX_BASE = 2_000_000
"""Judge-split sample j is rendered from index JUDGE_INDEX_BASE + j (named real_/paired_ f"{j:06d}")."""
_LAYOUT_CODE = {"sim": 1, "real": 2}
_STYLE_CODE = {"sim": 1, "real": 2}
SPLITS: tuple[tuple[str, str, str, str, str], ...] = (
    # folder, split, layout domain, style, name prefix
    ("sim/train", "train", "sim", "sim", ""),
    ("sim/val", "val", "sim", "sim", ""),
    ("real/train", "train", "real", "real", ""),
    ("real/val", "val", "real", "real", ""),
    ("paired/train", "train", "sim", "real", ""),
    ("paired/val", "val", "sim", "real", ""),
    ("judge/train", "judge", "real", "real", "real_"),
    ("judge/train", "judge", "sim", "real", "paired_"),
)
INDEX_BASES = {"train": 0, "val": VAL_INDEX_BASE, "judge": JUDGE_INDEX_BASE}
DOMAIN_FOLDERS = ("sim", "real", "paired", "judge")


def render_sample(
    seed: int,
    index: int,
    layout: str = "sim",
    style: str = "sim",
    size: tuple[int, int] = (128, 256),
    gap: float = 1.0,
    draw: int = 0,
) -> Sample:
    """Render toy-world sample `index` of world `seed`.

    layout: "sim" | "real", the domain prior the street is drawn from; style: "sim" |
    "real", how it is coloured; size: (H, W) pixels, each >= 32; gap: semantic-gap
    strength >= 0 (0: both domains share the sim prior; 1: the default gap); draw: 0 the
    image make-toy writes, >= 1 the real style's camera randomness drawn again (same scene).
    Returns a Sample: image uint8 [H,W,3]; label uint8 [H,W] train ids (no ignore);
    instances int32 [H,W] (cars, persons, lights, signs; 0 elsewhere); boxes half-open
    xyxy, tight around visible pixels, lights with {"state": red|amber|green}, signs
    with {"pictogram": ...}; name f"{index:06d}".
    """
    if layout not in DOMAINS:
        raise ValueError(f"unknown layout domain {layout!r}; expected one of {DOMAINS}")
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    if int(draw) < 0:
        raise ValueError(f"draw must be >= 0 (0: make-toy's own image), got {draw}")
    size = check_size(size)
    layout_rng = np.random.default_rng([int(seed), int(index), _LAYOUT_CODE[layout], 0])
    scene = sample_layout(layout_rng, layout, size, gap)
    raster = rasterize(scene)
    if style == "sim":
        image = render_sim(raster)
    else:
        # draw >= 1: a fifth seed entry, a stream disjoint from the four-entry one make-toy uses
        entries = [int(seed), int(index), _LAYOUT_CODE[layout], 10 + _STYLE_CODE[style]] + ([int(draw)] if draw else [])
        image = render_real(raster, np.random.default_rng(entries), horizon=scene.camera.horizon, focal=scene.camera.focal)
    return Sample(image=image, label=raster.label, instances=raster.instances, boxes=raster.boxes, name=f"{index:06d}")


def render_real_redraw(
    seed: int,
    index: int,
    draw: int,
    layout: str = "sim",
    size: tuple[int, int] = (128, 256),
    gap: float = 1.0,
) -> Sample:
    """Sample `index` rendered in the real style with another draw of the style's randomness.

    The layout, label, instances and boxes are those of `render_sample(seed, index, layout,
    "real", size, gap)`; the image is the same scene under other camera draws (texture grain,
    clouds, haze, light, colour cast, blur, sensor noise). draw=0 is `render_sample`'s own
    image; draw >= 1 uses a separate stream per draw. With layout="sim" this is a second
    rendering of the paired truth: the floor of a two-sample test against it (two samples of
    one distribution with the same layouts). Writes nothing; make_toy_world never uses it.
    """
    return render_sample(seed, index, layout, "real", size, gap, draw=draw)


@dataclass(frozen=True)
class _Job:
    root: str
    name: str
    index: int
    layout: str
    style: str
    seed: int
    size: tuple[int, int]
    gap: float


def _make_one(job: _Job) -> str:
    sample = render_sample(job.seed, job.index, job.layout, job.style, job.size, job.gap)
    sample.name = job.name
    write_sample(job.root, sample)
    return job.name


def toy_world_jobs(out: Path, train: int, val: int, size: tuple[int, int], seed: int, gap: float,
                   judge: int = 0) -> list[_Job]:
    counts = {"train": train, "val": val, "judge": judge}
    jobs = []
    for folder, split, layout, style, prefix in SPLITS:
        base = INDEX_BASES[split]
        jobs.extend(
            _Job(str(out / folder), f"{prefix}{j:06d}", base + j, layout, style, seed, size, gap)
            for j in range(counts[split])
        )
    return jobs


def make_toy_world(
    out: str | Path,
    train: int = 200,
    val: int = 50,
    size: tuple[int, int] = (128, 256),
    seed: int = 0,
    gap: float = 1.0,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    judge: int | None = None,
    clips: int = 0,
    clip_length: int = 16,
) -> None:
    """Write a toy world under `out` (layout in the module docstring).

    train, val: samples per domain and split (>= 0; paired/train and paired/val hold the sim
    layouts of the same counts); judge: frames per layout prior in judge/train (default `train`;
    0 writes no judge split); clips, clip_length: also write `clips` sequences of `clip_length`
    frames under OUT/clips/{sim,paired,real} (semguard.data.toyworld.clips; 0: none);
    size: (H, W); seed: world seed >= 0; gap: semantic-gap strength >= 0; workers:
    processes (1 = in this process); the bytes written do not depend on it. overwrite:
    replace existing sim/, real/ and paired/ folders under `out` (else they are an error).
    progress: called as progress(done, total) after each sample.
    """
    out = Path(out)
    size = check_size(size)
    judge = train if judge is None else judge
    if train < 0 or val < 0 or judge < 0:
        raise ValueError(f"train, val and judge counts must be >= 0, got {train}, {val}, {judge}")
    if max(train, val, judge) >= VAL_INDEX_BASE:
        raise ValueError(f"at most {VAL_INDEX_BASE - 1} frames per split, so that splits never share an index")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0 <= clips < MAX_CLIPS or clip_length < 1:
        raise ValueError(f"need 0 <= clips < {MAX_CLIPS} and clip_length >= 1, got {clips} and {clip_length}")
    folders_written = DOMAIN_FOLDERS + (("clips",) if clips else ())
    existing = [out / d for d in folders_written if (out / d).exists()]
    if existing:
        if not overwrite:
            raise FileExistsError(f"{existing[0]} already exists; pass overwrite=True to replace it")
        for folder in existing:
            shutil.rmtree(folder)
    counts = {"train": train, "val": val, "judge": judge}
    folders: dict[str, list[tuple[str, str, str, str]]] = {}
    for folder, split, layout, style, prefix in SPLITS:
        if counts[split] > 0 or split != "judge":
            folders.setdefault(folder, []).append((split, layout, style, prefix))
    for folder, parts in folders.items():
        split = parts[0][0]
        (out / folder).mkdir(parents=True, exist_ok=True)
        write_dataset_info(
            out / folder, generator="semguard toy world", domain=folder.split("/")[0], split=split,
            layout="+".join(p[1] for p in parts), style=parts[0][2],
            seed=int(seed), gap=float(gap), size=[size[0], size[1]], count=int(counts[split]) * len(parts),
            index_base=INDEX_BASES[split], name_prefixes=[p[3] for p in parts],
        )
    for folder, layout, style in CLIP_FOLDERS[: 3 if clips else 0]:
        (out / folder).mkdir(parents=True, exist_ok=True)
        write_dataset_info(
            out / folder, generator="semguard toy world", domain=folder, split="clips", layout=layout, style=style,
            seed=int(seed), gap=float(gap), size=[size[0], size[1]], count=int(clips) * int(clip_length),
            **clip_info(clips, clip_length),
        )
    jobs = toy_world_jobs(out, train, val, size, int(seed), float(gap), judge)
    jobs += clip_jobs(out, int(clips), int(clip_length), size, int(seed), float(gap))
    for done, _ in enumerate(_run(jobs, workers), start=1):
        if progress is not None:
            progress(done, len(jobs))


def _make_any(job: _Job | ClipJob) -> str:
    return make_clip_frame(job) if isinstance(job, ClipJob) else _make_one(job)


def _run(jobs: list[_Job | ClipJob], workers: int) -> Iterable[str]:
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            yield _make_any(job)
        return
    # spawn: safe whatever the parent imported (torch, threads); samples do not depend on it
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=workers) as pool:
        yield from pool.imap_unordered(_make_any, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers))))


class ToyWorldDataset:
    """A toy-world split served from memory: len/getitem -> Sample, rendered on demand.

    Sample i is `render_sample(seed, base + i, layout, style, size, gap)` named f"{i:06d}",
    with base 0 for "train" and VAL_INDEX_BASE for "val": the same frames that
    `make_toy_world` writes for that split.
    """

    def __init__(self, count: int, split: str = "train", layout: str = "sim", style: str | None = None,
                 size: tuple[int, int] = (128, 256), seed: int = 0, gap: float = 1.0):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.count, self.layout, self.style = int(count), layout, style or layout
        self.size, self.seed, self.gap = check_size(size), int(seed), float(gap)
        self.base = 0 if split == "train" else VAL_INDEX_BASE
        self.names = [f"{i:06d}" for i in range(self.count)]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.count:
            raise IndexError(index)
        sample = render_sample(self.seed, self.base + index, self.layout, self.style, self.size, self.gap)
        sample.name = self.names[index]
        return sample
