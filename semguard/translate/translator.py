"""The Translator: a translator checkpoint's generator, translating batches and samples.

- `Translator`: the generator of a checkpoint, rebuilt from the config inside it, that
  translates a `Batch` or one `Sample` at full resolution (reflection-padded to the
  generator's size multiple). By default (`tile="auto"`) a frame runs whole whenever its
  peak memory, measured per pixel on a probe frame (semguard.translate.memory), fits the
  memory budget, and is tiled exactly, stage by stage, only when it does not
  (semguard.translate.tiling.staged_apply). For users who embed semguard in their own pipelines:

      translator = Translator.from_checkpoint("runs/toy/final.pt", device="cuda")
      translated = translator.translate_sample(sample)   # labels, instances, boxes unchanged


Whole data sets go through semguard.translate.pipeline.translate_dataset.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import torch

from semguard.checkpoints import load_translator
from semguard.common import file_sha256, resolve_device
from semguard.data.batch import Batch, collate_samples, tensor_to_image
from semguard.data.check import MIN_FRAME_SIDE
from semguard.data.sample import Sample
from semguard.labels import IGNORE_ID
from semguard.models import build_conditioning
from semguard.translate.memory import (
    MemoryProfile,
    allocator_overhead,
    default_budget,
    format_bytes,
    measure_staged,
    measure_whole,
    network_tile_size,
    stage_tile_sizes,
    staged_tile_size,
)
from semguard.translate.tiling import round_up, staged_apply, tiled_apply

DEFAULT_TILE = "auto"
DEFAULT_OVERLAP = 64


class Translator:
    """A frozen generator that translates batches and samples at full resolution.

    generator: forward(image [B,3,H,W] in [-1,1], condition [B,C,H,W] | None) -> [B,3,H,W];
      attribute `size_multiple` (H, W must be divisible by it; frames are padded); optional
      `stages()` (semguard.models.staged) for exact tiling.
    spec: its semguard.models.ConditioningSpec.
    tile: "auto" (default): a whole-frame pass whenever the batch's estimated peak memory
      (measured per pixel on a probe frame, semguard.translate.memory) fits `memory_budget`,
      the largest tiles that fit otherwise; an int: tiles of that size for larger frames;
      None or 0: always whole frames. Generators with stages tile exactly (per-stage halos
      and frame statistics, semguard.translate.tiling.staged_apply); other models (the judge) with
      overlapping, blended tiles (`overlap`, `tile_batch` tiles per call, tiled_apply).
    memory_budget: bytes one batch's pass may use (None: default_budget of the device,
      taken once, at the first batch). amp: bf16 autocast on CUDA. frame_norm: frame-wide
      instance-norm statistics for blended tiles (staged tiles always have them).
    `plans` records each frame size's choice: {(batch, H, W): None (whole) or (tile_h, tile_w)}.
    """

    def __init__(self, generator: torch.nn.Module, spec, *, device: str | torch.device = "cpu",
                 tile: int | str | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, tile_batch: int = 1,
                 amp: bool = False, frame_norm: bool = True, memory_budget: int | None = None,
                 metadata: dict | None = None):
        self.device = resolve_device(device)
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.spec = spec
        self.size_multiple = int(getattr(generator, "size_multiple", 1))
        if isinstance(tile, str) and tile != "auto":
            raise ValueError(f"tile must be 'auto', a size in pixels or None, got {tile!r}")
        self.tile = tile if tile == "auto" else (int(tile) if tile else None)
        self.overlap = int(overlap)
        self.tile_batch = int(tile_batch)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.frame_norm = frame_norm
        self.memory_budget = int(memory_budget) if memory_budget else None
        self.metadata = dict(metadata or {})
        if self.device.type == "cuda":
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.stages = self.generator.stages() if callable(getattr(self.generator, "stages", None)) else None
        self.plans: dict[tuple[int, int, int], tuple[int, int] | None] = {}
        # staged plans under --tile auto: each stage's own tile (None: that stage whole)
        self.stage_plans: dict[tuple[int, int, int], list[tuple[int, int] | None]] = {}
        self._profiles: dict[int, MemoryProfile] = {}
        self._smallest_side: int | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", ema: bool = True,
                        **options) -> "Translator":
        """Rebuild the generator of a translator checkpoint (config inside it; no flags repeated).

        ema: use the EMA weights ("generator_ema") when the checkpoint has them; a
        checkpoint without them falls back to "generator" with a warning.
        options: Translator keyword arguments (tile, memory_budget, overlap, tile_batch, amp, frame_norm).
        """
        generator, spec, _, metadata = load_translator(path, ema=ema)
        metadata["sha256"] = file_sha256(path)
        return cls(generator, spec, device=device, metadata=metadata, **options)

    def _generate(self, image: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        image, condition = self._layout(image, condition)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return self.generator(image, condition)

    def _generate_staged(self, image: torch.Tensor, condition: torch.Tensor | None,
                         tile: tuple[int, int]) -> torch.Tensor:
        image, condition = self._layout(image, condition)
        stage_tiles = self.stage_plans.get(self._plan_key(image.shape[0], *image.shape[-2:]))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return staged_apply(self.stages, image, condition, tile, self.size_multiple, model=self.generator,
                                stage_tiles=stage_tiles)

    def _layout(self, image: torch.Tensor, condition: torch.Tensor | None):
        if self.device.type == "cuda":
            image = image.contiguous(memory_format=torch.channels_last)
            if condition is not None:
                condition = condition.contiguous(memory_format=torch.channels_last)
        return image, condition

    # ------------------------------------------------------------------ memory planning

    def budget(self) -> int:
        """Bytes one batch's pass may use: memory_budget, or the device's default budget
        (semguard.translate.memory.default_budget), taken once and kept, so the memory this
        process itself caches after the first frames does not shrink it."""
        if self.memory_budget is None:
            self.memory_budget = default_budget(self.device)
        return self.memory_budget

    def _probe_inputs(self, height: int, width: int):
        image = torch.rand(1, 3, height, width, device=self.device) * 2 - 1
        condition = (torch.rand(1, self.spec.channels, height, width, device=self.device)
                     if self.spec.channels else None)
        return image, condition

    def memory_profile(self, staged: bool = False) -> MemoryProfile:
        """The generator's measured per-pixel memory (whole-frame, and staged when asked), with the
        allocator overhead in force now (semguard.translate.memory.allocator_overhead)."""
        key = id(self.generator)
        profile = self._profiles.get(key)
        if profile is None:
            whole = measure_whole(self._probe_inputs, self._generate, self.device, self.size_multiple)
            profile = self._profiles[key] = MemoryProfile(whole=whole)
        if staged and self.stages and profile.staged_frame is None:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
                frame, stage_tiles, stage_radii = measure_staged(lambda h, w: self._layout(*self._probe_inputs(h, w)),
                                                                 self.stages, self.device, self.size_multiple)
            profile = self._profiles[key] = replace(profile, staged_frame=frame, stage_tiles=stage_tiles,
                                                    stage_radii=stage_radii)
        return replace(profile, overhead=allocator_overhead(self.device))

    def _plan_key(self, batch: int, height: int, width: int) -> tuple[int, int, int]:
        return batch, round_up(height, self.size_multiple), round_up(width, self.size_multiple)

    def plan(self, batch: int, height: int, width: int) -> tuple[int, int] | None:
        """None for a whole-frame pass of a [batch,3,height,width] batch, else the tile size (under
        --tile auto with a staged generator: the tile of the stages that need the smallest one;
        the others run in larger tiles or whole, see `stage_plan`)."""
        key = self._plan_key(batch, height, width)
        _, height, width = key
        if key in self.plans:
            return self.plans[key]
        if self.tile is None:
            choice = None
        elif self.tile != "auto":
            choice = None if self.tile >= max(height, width) else (min(self.tile, height), min(self.tile, width))
        elif self.memory_profile().whole_bytes(batch, height, width) <= self.budget():
            choice = None
        elif self.stages:
            profile = self.memory_profile(staged=True)
            choice = staged_tile_size(profile, batch, height, width, self.budget(), self.size_multiple)
            self.stage_plans[key] = stage_tile_sizes(profile, batch, height, width, self.budget(), self.size_multiple)
            need = profile.staged_bytes(batch, height, width, choice, self.stage_plans[key])
            if need > self.budget():
                warnings.warn(f"a {width}x{height} frame needs about {format_bytes(need)} even in {choice[1]}x"
                              f"{choice[0]} tiles, more than the memory budget {format_bytes(self.budget())}; "
                              "trying anyway (raise --memory-budget, or lower --batch-size)", stacklevel=2)
        else:
            side = network_tile_size(self.memory_profile().whole_per_pixel, batch, self.tile_batch, self.budget(),
                                     self.size_multiple)
            choice = None if side >= max(height, width) else (min(side, height), min(side, width))
        self.plans[key] = choice
        return choice

    def stage_plan(self, batch: int, height: int, width: int) -> list[tuple[int, int] | None] | None:
        """Each stage's tile (None: that stage whole) of the staged pass `plan` chose for such a
        batch; None when it chose no per-stage tiles (whole frames, fixed --tile, no stages)."""
        self.plan(batch, height, width)
        return self.stage_plans.get(self._plan_key(batch, height, width))

    def planned_bytes(self, batch: int, height: int, width: int) -> float | None:
        """The estimated peak of the pass `plan` chose for such a batch (None: fixed network-level
        tiles, which have no estimate)."""
        tile = self.plan(batch, height, width)
        key = self._plan_key(batch, height, width)
        if tile is None:
            return self.memory_profile().whole_bytes(*key)
        if not self.stages:
            return None
        return self.memory_profile(staged=True).staged_bytes(*key, tile, self.stage_plan(batch, height, width))

    def judge_tile(self, judge, size_multiple: int, batch: int, height: int, width: int) -> int | None:
        """The tile size (None: whole frames) for running `judge` (image -> logits) on a batch."""
        if self.tile != "auto":
            return self.tile
        key = id(judge)
        if key not in self._profiles:
            def probe(h, w):
                return (torch.rand(1, 3, h, w, device=self.device) * 2 - 1,)
            self._profiles[key] = MemoryProfile(whole=measure_whole(probe, judge, self.device, size_multiple))
        per_pixel = self._profiles[key].whole * allocator_overhead(self.device)[0]
        height, width = round_up(height, size_multiple), round_up(width, size_multiple)
        if per_pixel * batch * height * width <= self.budget():
            return None
        return network_tile_size(per_pixel, batch, self.tile_batch, self.budget(), size_multiple)

    @torch.inference_mode()
    def smallest_side(self) -> int:
        """The smallest frame side (px) this generator translates: at least the data sets' floor
        (semguard.data.check.MIN_FRAME_SIDE), more for deeper generators (their reflection pads and
        norms need 2 px at the coarsest level). Probed once on blank square frames, then kept."""
        if self._smallest_side is None:
            side = MIN_FRAME_SIDE
            for side in range(MIN_FRAME_SIDE, 4 * self.size_multiple + MIN_FRAME_SIDE + 1):
                image = torch.zeros(1, 3, side, side, device=self.device)
                label = torch.zeros(1, side, side, dtype=torch.int64, device=self.device)
                try:
                    with torch.no_grad():
                        condition = build_conditioning(label, None, [[]], self.spec, image)
                        tiled_apply(self._generate, [image, condition], tile=None, overlap=self.overlap,
                                    size_multiple=self.size_multiple, tile_batch=1, frame_norm=self.frame_norm,
                                    norm_modules=self.generator)
                    break
                except (RuntimeError, ValueError):
                    continue
            self._smallest_side = side
        return self._smallest_side

    def translate_batch(self, batch: Batch) -> torch.Tensor:
        """Translated images: float32 [B,3,H,W] in [-1,1] on the batch's device.

        batch.image: float [B,3,H,W] in [-1,1]; batch.label, batch.instances: int64 [B,H,W];
        batch.boxes: B lists of Box. The label/boxes condition the generator (when its
        spec says so) and are never changed.
        """
        image = batch.image
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"batch.image must be float [B,3,H,W], got {tuple(image.shape)}")
        if tuple(batch.label.shape) != (image.shape[0], *image.shape[-2:]):
            raise ValueError(f"batch.label {tuple(batch.label.shape)} does not match batch.image {tuple(image.shape)}")
        source_device = image.device
        image = image.to(self.device, non_blocking=True).float()
        label = batch.label.to(self.device, non_blocking=True)
        instances = batch.instances.to(self.device, non_blocking=True) if batch.instances is not None else None
        condition = build_conditioning(label, instances, batch.boxes, self.spec, image)
        tile = self.plan(image.shape[0], *image.shape[-2:])
        if tile is not None and self.stages:
            output = self._generate_staged(image, condition, tile)
        else:
            output = tiled_apply(self._generate, [image, condition], tile=tile, overlap=self.overlap,
                                 size_multiple=self.size_multiple, tile_batch=self.tile_batch,
                                 frame_norm=self.frame_norm, norm_modules=self.generator)
        return output.clamp_(-1.0, 1.0).to(source_device)

    def translate_sample(self, sample: Sample) -> Sample:
        """One frame: a new Sample with the translated image (uint8 [H,W,3]) and the same
        label, instances, boxes, name and source_path."""
        output = self.translate_batch(collate_samples([sample]))
        return replace(sample, image=tensor_to_image(output[0]), boxes=list(sample.boxes))


def quantize(image: torch.Tensor) -> torch.Tensor:
    """float [B,3,H,W] in [-1,1] -> uint8 [B,H,W,3] as written to PNG (rounded)."""
    return image.add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def flip_rates(logits: torch.Tensor, label: torch.Tensor) -> list[float | None]:
    """Per image: share of labelled pixels (label != 255) whose judge argmax differs from the label.

    logits: [B,K,H,W]; label: int64 [B,H,W]. None for an image without labelled pixels.
    """
    prediction = logits.argmax(1)
    valid = label != IGNORE_ID
    flipped = (prediction != label) & valid
    rates: list[float | None] = []
    for b in range(label.shape[0]):
        count = int(valid[b].sum())
        rates.append(float(flipped[b].sum()) / count if count else None)
    return rates
