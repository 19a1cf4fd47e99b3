"""Temporally stable translation: one set of instance-norm statistics per clip.

A generator that normalises with instance statistics measures them on each frame anew,
so a car entering one corner of a clip changes the mean and variance of every channel and
with them the tone of the whole frame: static road and sky shimmer from frame to frame.
`ClipTranslator` normalises every frame of a clip with the clip's statistics instead:
for each nn.InstanceNorm2d layer, the mean and variance of its input over all pixels of
all frames of the clip (pooled, i.e. var = E[x^2] - E[x]^2 over the clip), measured layer
by layer so that each layer's statistics are taken on inputs normalised by the layers
before it with clip statistics, exactly as the frame-wide statistics of tiled inference
(semguard.translate.tiling._FrameStatistics, whose hooks this module reuses: the frames of a clip
play the role of the tiles of a frame). A frame larger than the translator's tile is cut
into tiles whose owned regions partition it, as in tiled inference; the clip statistics
then also keep the tiles of a frame seamless.

Cost: one partial pass over the clip per instance-norm layer (about half a forward pass
each) plus the translation pass; memory: one tile batch of activations (frames are reloaded
from the data set for each pass). Statistics depend only on the clip's source frames, so
a resumed or resharded run writes the same bytes; `shard_clips` gives every clip to one
shard whole.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from semguard.data.batch import Batch, collate_samples
from semguard.data.sample import Sample
from semguard.data.toyworld.clips import clip_of
from semguard.errors import SemguardError
from semguard.models import build_conditioning
from semguard.translate.tiling import (
    _frame_statistics,
    _instance_norms,
    _owned_ranges,
    _StopForward,
    pad_to_multiple,
    tile_starts,
)
from semguard.translate.translator import quantize

TEMPORAL_MODES = ("none", "clip")
"""`semguard translate --temporal`: none = per-frame statistics; clip = the clip's statistics."""


def clip_groups(names: list[str]) -> dict[str, list[str]]:
    """Sorted frame names grouped by clip (the part of a name before its last '/')."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(clip_of(name), []).append(name)
    return groups


def shard_clips(names: list[str], shard: tuple[int, int]) -> list[str]:
    """The frames of shard (i, n) when sharding by clip: clip block i of n of the sorted clips
    (contiguous, so any n shards cover every clip exactly once), all frames of each."""
    index, count = shard
    groups = clip_groups(names)
    clips = sorted(groups)
    mine = clips[index * len(clips) // count:(index + 1) * len(clips) // count]
    return [name for clip in mine for name in groups[clip]]


def _frame_inputs(translator, sample: Sample) -> tuple[torch.Tensor, torch.Tensor | None]:
    """image float [1,3,H',W'] and condition [1,C,H',W'] | None, padded to the size multiple."""
    batch = collate_samples([sample])
    image = batch.image.to(translator.device).float()
    label = batch.label.to(translator.device)
    condition = build_conditioning(label, batch.instances.to(translator.device), batch.boxes, translator.spec,
                                   image)
    multiple = translator.size_multiple
    return pad_to_multiple(image, multiple), None if condition is None else pad_to_multiple(condition, multiple)


def _tile_size(translator, batch: int, height: int, width: int) -> tuple[int, int] | None:
    """The translator's tile choice for a batch (None: whole frames)."""
    if callable(getattr(translator, "plan", None)):
        return translator.plan(batch, height, width)
    tile = translator.tile
    return None if not tile or tile >= max(height, width) else (min(tile, height), min(tile, width))


def _tile_grid(translator, height: int, width: int) -> tuple[tuple[int, int], list[tuple[int, int, tuple, tuple]]]:
    """(tile size, [(y, x, owned rows, owned cols)]) for a padded frame, as tiled inference cuts it."""
    multiple = translator.size_multiple
    tile = _tile_size(translator, max(1, translator.tile_batch), height, width) or (height, width)
    tile_h = min(max(multiple, tile[0] // multiple * multiple), height)
    tile_w = min(max(multiple, tile[1] // multiple * multiple), width)
    rows = tile_starts(height, tile_h, min(translator.overlap, tile_h - 1), multiple)
    cols = tile_starts(width, tile_w, min(translator.overlap, tile_w - 1), multiple)
    owned_h, owned_w = _owned_ranges(rows, tile_h, multiple), _owned_ranges(cols, tile_w, multiple)
    return (tile_h, tile_w), [(y, x, owned_h[y], owned_w[x]) for y in rows for x in cols]


@torch.no_grad()
def clip_norm_statistics(translator, frames: list[Sample]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Pooled instance-norm statistics of a clip: {id(norm module): (mean [1,C], var [1,C])}.

    translator: a semguard.translate.Translator; frames: the clip's source frames, one size.
    Every nn.InstanceNorm2d of the generator gets statistics (empty dict: it has none).
    """
    norms = _instance_norms(translator.generator)
    if not norms or not frames:
        return {}
    sizes = {frame.size for frame in frames}
    if len(sizes) != 1:
        raise ValueError(f"the frames of a clip must share a size, got {sorted(sizes)}")
    first_image, _ = _frame_inputs(translator, frames[0])
    tile_size, grid = _tile_grid(translator, *first_image.shape[-2:])
    tile_h, tile_w = tile_size
    per_call = max(1, translator.tile_batch)
    with _frame_statistics(norms, 1, tile_size) as statistics:
        statistics.recording = True
        for _ in range(len(norms)):
            pending: list[tuple[torch.Tensor, torch.Tensor | None, tuple]] = []

            def run(chunk) -> None:
                statistics.owned = [owned for _, _, owned in chunk]
                images = torch.cat([image for image, _, _ in chunk])
                conditions = None if chunk[0][1] is None else torch.cat([c for _, c, _ in chunk])
                try:
                    translator._generate(images, conditions)
                except _StopForward:
                    pass

            for frame in frames:
                image, condition = _frame_inputs(translator, frame)
                for y, x, rows, cols in grid:
                    crop = (slice(None), slice(None), slice(y, y + tile_h), slice(x, x + tile_w))
                    pending.append((image[crop], None if condition is None else condition[crop], (rows, cols)))
                    if len(pending) == per_call:
                        run(pending)
                        pending = []
            if pending:
                run(pending)
            if not statistics.settle():
                break
        return dict(statistics.settled)


class ClipTranslator:
    """A Translator whose frames are normalised with their clip's statistics.

    translator: semguard.translate.Translator; dataset: map-style, len/getitem -> Sample,
    `.names` (the clip of a frame is clip_key(name), default the part before the last '/').
    Any other attribute is the wrapped translator's (device, tile, overlap ...), so
    `translate_dataset(ClipTranslator(...), dataset, ..., shard_by=shard_clips)` translates
    a sequence set clip by clip. The statistics of the
    last `cache` clips are kept (frames arrive clip by clip in name order).
    """

    def __init__(self, translator, dataset, clip_key=clip_of, cache: int = 2):
        self.translator = translator
        self.dataset = dataset
        self.clip_key = clip_key
        self.index_of = {name: index for index, name in enumerate(dataset.names)}
        self.frames_of: dict[str, list[str]] = {}
        for name in sorted(dataset.names):
            self.frames_of.setdefault(clip_key(name), []).append(name)
        if "" in self.frames_of:
            raise SemguardError(f"clip statistics need a sequence set whose frames are named CLIP/FRAME (e.g. "
                                f"clip_0003/000012, `semguard data make-toy --clips N`); frame "
                                f"{self.frames_of[''][0]!r} is in no clip folder")
        self.cache = max(1, int(cache))
        self._statistics: dict[str, dict] = {}
        self.skipped: dict[str, list[str]] = {}   # per clip, frames left out of its statistics (unreadable)

    def __getattr__(self, name: str):
        # everything but translate_batch is the wrapped translator's (device, tile, judge_tile ...)
        if name == "translator":
            raise AttributeError(name)
        return getattr(self.translator, name)

    def statistics(self, clip: str) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """The clip's instance-norm statistics (computed on first use from all its readable frames)."""
        if clip not in self._statistics:
            if clip not in self.frames_of:
                raise KeyError(f"no frames of clip {clip!r} in the data set")
            frames = []
            for name in self.frames_of[clip]:
                try:
                    sample = self.dataset[self.index_of[name]]
                    sample.validate()
                except Exception:  # noqa: BLE001 - the frame fails on its own in translate_dataset
                    self.skipped.setdefault(clip, []).append(name)
                    continue
                frames.append(sample)
            while len(self._statistics) >= self.cache:
                self._statistics.pop(next(iter(self._statistics)))
            self._statistics[clip] = clip_norm_statistics(self.translator, frames)
        return self._statistics[clip]

    @torch.inference_mode()
    def translate_batch(self, batch: Batch) -> torch.Tensor:
        """As Translator.translate_batch (float32 [B,3,H,W] in [-1,1]); batch.names name the frames."""
        if len(batch.names) != len(batch):
            raise ValueError(f"a clip batch needs one name per frame, got {len(batch.names)} for {len(batch)} frames")
        per_frame = [self.statistics(self.clip_key(name)) for name in batch.names]
        norms = _instance_norms(self.translator.generator)
        if not norms or not all(per_frame):
            return self.translator.translate_batch(batch)
        frame_norm, stages = self.translator.frame_norm, getattr(self.translator, "stages", None)
        with _frame_statistics(norms, len(batch), tuple(batch.image.shape[-2:])) as hooks:
            for module in norms:
                key = id(module)
                hooks.settled[key] = (torch.cat([stats[key][0] for stats in per_frame]),
                                      torch.cat([stats[key][1] for stats in per_frame]))
            # the clip statistics hold for every tile of every frame: no per-frame statistics,
            # neither tiled_apply's nor staged inference's (which would replace these hooks)
            self.translator.frame_norm = False
            if stages:
                self.translator.stages = None
            try:
                return self.translator.translate_batch(batch)
            finally:
                self.translator.frame_norm = frame_norm
                if stages:
                    self.translator.stages = stages


def translate_clip_frames(translator, frames: list[Sample], temporal: str = "none") -> list[Sample]:
    """Translate one clip in memory (eval): new Samples with translated images, labels kept.

    temporal: "none" (each frame its own statistics) | "clip" (the clip's statistics).
    """
    if temporal not in TEMPORAL_MODES:
        raise ValueError(f"unknown temporal mode {temporal!r}; expected one of {', '.join(TEMPORAL_MODES)}")

    class _Frames:
        names = [frame.name for frame in frames]

        def __getitem__(self, index):
            return frames[index]

        def __len__(self):
            return len(frames)

    model = ClipTranslator(translator, _Frames(), clip_key=lambda _name: "clip") if temporal == "clip" else translator
    out = []
    for frame in frames:
        image = quantize(model.translate_batch(collate_samples([frame])))[0].cpu().numpy()
        out.append(replace(frame, image=image, boxes=list(frame.boxes)))
    return out
