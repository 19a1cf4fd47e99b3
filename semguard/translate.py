"""Translate: a translator checkpoint and a data set in, a translated data set out.

Two layers:

- `Translator`: the generator of a checkpoint, rebuilt from the config inside it, that
  translates a `Batch` or one `Sample` at full resolution (reflection-padded to the
  generator's size multiple). By default (`tile="auto"`) a frame runs whole whenever its
  peak memory, measured per pixel on a probe frame (semguard.inference_memory), fits the
  memory budget, and is tiled exactly, stage by stage, only when it does not
  (semguard.tiling.staged_apply). For users who embed semguard in their own pipelines:

      translator = Translator.from_checkpoint("runs/toy/final.pt", device="cuda")
      translated = translator.translate_sample(sample)   # labels, instances, boxes unchanged

- `translate_dataset`: a whole data set (or one shard of it) through a translator,
  pipelined (DataLoader workers decode, the model runs, a thread pool encodes and
  verifies PNGs), resumable (atomic files; a manifest of verified frames lets a rerun
  skip them) and gated by an optional judge (per-frame flip rate). Manifest and shard
  bookkeeping live in semguard.translate_manifest.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from semguard.data.batch import Batch, collate_samples
from semguard.data.sample import Sample
from semguard.errors import SemguardError
from semguard.labels import IGNORE_ID
from semguard.inference_memory import (
    MemoryProfile, default_budget, format_bytes, measure_staged, measure_whole, network_tile_size, reuse_freed_memory,
    staged_tile_size,
)
from semguard.tiling import round_up, staged_apply, tiled_apply

DEFAULT_TILE = "auto"
DEFAULT_OVERLAP = 64


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """"auto"/None -> cuda (cuda:LOCAL_RANK under torchrun) when available, else cpu."""
    import os

    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SemguardError(f"--device {device} asked for, but no CUDA device is available; use --device cpu")
    return device


class Translator:
    """A frozen generator that translates batches and samples at full resolution.

    generator: forward(image [B,3,H,W] in [-1,1], condition [B,C,H,W] | None) -> [B,3,H,W];
      attribute `size_multiple` (H, W must be divisible by it; frames are padded); optional
      `stages()` (semguard.models.staged) for exact tiling.
    spec: its semguard.models.ConditioningSpec.
    tile: "auto" (default): a whole-frame pass whenever the batch's estimated peak memory
      (measured per pixel on a probe frame, semguard.inference_memory) fits `memory_budget`,
      the largest tiles that fit otherwise; an int: tiles of that size for larger frames;
      None or 0: always whole frames. Generators with stages tile exactly (per-stage halos
      and frame statistics, semguard.tiling.staged_apply); other models (the judge) with
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
        self._profiles: dict[int, MemoryProfile] = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", ema: bool = True,
                        **options) -> "Translator":
        """Rebuild the generator of a translator checkpoint (config inside it; no flags repeated).

        ema: use the EMA weights ("generator_ema") when the checkpoint has them; a
        checkpoint without them falls back to "generator" with a warning.
        options: Translator keyword arguments (tile, memory_budget, overlap, tile_batch, amp, frame_norm).
        """
        from semguard.config import config_from_dict
        from semguard.models import build_generator
        from semguard.train.checkpoint import load_checkpoint

        path = Path(path)
        checkpoint = load_checkpoint(path, kind="translator")
        if "config" not in checkpoint:
            raise SemguardError(f"translator checkpoint {path} has no 'config'; it was not written by `semguard train`")
        config = config_from_dict(checkpoint["config"], source=f"{path} (config)")
        generator, spec = build_generator(config.model)
        weights = "generator_ema" if ema and checkpoint.get("generator_ema") is not None else "generator"
        if ema and weights != "generator_ema":
            warnings.warn(f"{path} holds no EMA generator weights; translating with the raw generator weights",
                          stacklevel=2)
        if checkpoint.get(weights) is None:
            raise SemguardError(f"translator checkpoint {path} has no '{weights}' weights")
        try:
            generator.load_state_dict(checkpoint[weights], strict=True)
        except RuntimeError as err:
            raise SemguardError(
                f"translator checkpoint {path}: '{weights}' does not fit the generator its config builds "
                f"({str(err).splitlines()[0][:200]}); the file is inconsistent, retrain or use another checkpoint"
            ) from None
        metadata = {
            "path": str(path), "sha256": file_sha256(path), "step": checkpoint.get("step"), "weights": weights,
            "semguard_version": checkpoint.get("semguard_version"), "config": checkpoint["config"],
        }
        return cls(generator, spec, device=device, metadata=metadata, **options)

    def _generate(self, image: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        image, condition = self._layout(image, condition)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return self.generator(image, condition)

    def _generate_staged(self, image: torch.Tensor, condition: torch.Tensor | None,
                         tile: tuple[int, int]) -> torch.Tensor:
        image, condition = self._layout(image, condition)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return staged_apply(self.stages, image, condition, tile, self.size_multiple, model=self.generator)

    def _layout(self, image: torch.Tensor, condition: torch.Tensor | None):
        if self.device.type == "cuda":
            image = image.contiguous(memory_format=torch.channels_last)
            if condition is not None:
                condition = condition.contiguous(memory_format=torch.channels_last)
        return image, condition

    # ------------------------------------------------------------------ memory planning

    def budget(self) -> int:
        """Bytes one batch's pass may use: memory_budget, or the device's default budget
        (semguard.inference_memory.default_budget), taken once and kept, so the memory this
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
        """The generator's measured per-pixel memory (whole-frame, and staged when asked)."""
        key = id(self.generator)
        profile = self._profiles.get(key)
        if profile is None:
            whole = measure_whole(self._probe_inputs, self._generate, self.device, self.size_multiple)
            profile = self._profiles[key] = MemoryProfile(whole=whole)
        if staged and self.stages and profile.staged_frame is None:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
                frame, tile, halo = measure_staged(lambda h, w: self._layout(*self._probe_inputs(h, w)), self.stages,
                                                   self.device, self.size_multiple)
            profile = self._profiles[key] = replace(profile, staged_frame=frame, staged_tile=tile, halo=halo)
        return profile

    def plan(self, batch: int, height: int, width: int) -> tuple[int, int] | None:
        """None for a whole-frame pass of a [batch,3,height,width] batch, else the tile size."""
        height, width = round_up(height, self.size_multiple), round_up(width, self.size_multiple)
        key = (batch, height, width)
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
            need = profile.staged_bytes(batch, height, width, choice)
            if need > self.budget():
                warnings.warn(f"a {width}x{height} frame needs about {format_bytes(need)} even in {choice[1]}x"
                              f"{choice[0]} tiles, more than the memory budget {format_bytes(self.budget())}; "
                              "trying anyway (raise --memory-budget, or lower --batch-size)", stacklevel=2)
        else:
            side = network_tile_size(self.memory_profile().whole, batch, self.tile_batch, self.budget(),
                                     self.size_multiple)
            choice = None if side >= max(height, width) else (min(side, height), min(side, width))
        self.plans[key] = choice
        return choice

    def judge_tile(self, judge, size_multiple: int, batch: int, height: int, width: int) -> int | None:
        """The tile size (None: whole frames) for running `judge` (image -> logits) on a batch."""
        if self.tile != "auto":
            return self.tile
        key = id(judge)
        if key not in self._profiles:
            def probe(h, w):
                return (torch.rand(1, 3, h, w, device=self.device) * 2 - 1,)
            self._profiles[key] = MemoryProfile(whole=measure_whole(probe, judge, self.device, size_multiple))
        per_pixel = self._profiles[key].whole
        height, width = round_up(height, size_multiple), round_up(width, size_multiple)
        if per_pixel * batch * height * width <= self.budget():
            return None
        return network_tile_size(per_pixel, batch, self.tile_batch, self.budget(), size_multiple)

    @torch.inference_mode()
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
        from semguard.models import build_conditioning

        source_device = image.device
        image = image.to(self.device, non_blocking=True).float()
        label = batch.label.to(self.device, non_blocking=True)
        instances = batch.instances.to(self.device, non_blocking=True) if batch.instances is not None else None
        condition = build_conditioning(label, instances, batch.boxes, self.spec)
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
        from semguard.data.batch import tensor_to_image

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


# --------------------------------------------------------------------------- data sets


class FrameFailed(SemguardError):
    """A frame failed and translate_dataset(stop_on_failure=True) stopped there (the manifest is kept).
    Exit status 1 on the CLI: the input was fine as a whole, a frame of it was not."""

    exit_code = 1


@dataclass
class FrameFailure:
    """A frame that could not be read (corrupt file, bad label...), with the reason."""

    name: str
    reason: str


class _PendingFrames(torch.utils.data.Dataset):
    """The frames still to translate; a frame that fails to load becomes a FrameFailure
    (so one corrupt file is reported by name and the rest go on)."""

    def __init__(self, dataset, indices: list[int], names: list[str]):
        self.dataset, self.indices, self.names = dataset, indices, names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index, name = self.indices[position], self.names[position]
        try:
            sample = self.dataset[index]
            sample.validate()
        except Exception as err:  # noqa: BLE001 - reported per frame, by name
            return FrameFailure(name, f"{type(err).__name__}: {err}")
        sample.name = name
        return sample


def _collate(items: list) -> tuple[list[FrameFailure], list[tuple[Batch, list[Sample]]]]:
    """Split loaded items into failures and one Batch per frame size."""
    failures = [item for item in items if isinstance(item, FrameFailure)]
    groups: dict[tuple[int, int], list[Sample]] = {}
    for item in items:
        if isinstance(item, Sample):
            groups.setdefault(item.size, []).append(item)
    return failures, [(collate_samples(samples), samples) for samples in groups.values()]


@dataclass
class TranslateSummary:
    """What one translate_dataset call did (this process's shard)."""

    total: int = 0                 # frames in this shard
    skipped: int = 0               # already done and valid (resume)
    ok: int = 0
    flagged: int = 0
    dropped: int = 0               # flagged frames left out of the output
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    flagged_names: list[str] = field(default_factory=list)
    seconds: float = 0.0
    attempted: int = 0             # frames read in this run (ok + flagged + failed)

    @property
    def images_per_second(self) -> float:
        return self.attempted / self.seconds if self.seconds > 0 else 0.0


def _verify_written(out: Path, sample: Sample, written: Sample | None = None) -> dict:
    """Read back a written frame: image size, label, instances and boxes must equal the
    source's exactly. Returns {relative path: {"bytes", "sha256"}}; raises on a mismatch."""
    from semguard.data.folder import BOX_DIR, IMAGE_DIR, INSTANCE_DIR, LABEL_DIR, read_sample

    back = read_sample(out, sample.name)
    if back.image.shape != sample.image.shape:
        raise ValueError(f"written image has shape {back.image.shape}, expected {sample.image.shape}")
    if not np.array_equal(back.label, sample.label):
        raise ValueError("written label map differs from the source label map")
    if (back.instances is None) != (sample.instances is None) or (
            sample.instances is not None and not np.array_equal(back.instances, sample.instances)):
        raise ValueError("written instance map differs from the source instance map")
    if back.boxes != list(sample.boxes):
        raise ValueError("written boxes differ from the source boxes")
    if written is not None and not np.array_equal(back.image, written.image):
        raise ValueError("written image differs from the translated image")
    files = {}
    relatives = [f"{IMAGE_DIR}/{sample.name}.png", f"{LABEL_DIR}/{sample.name}.png", f"{BOX_DIR}/{sample.name}.json"]
    if sample.instances is not None:
        relatives.append(f"{INSTANCE_DIR}/{sample.name}.png")
    for relative in relatives:
        path = out / relative
        files[relative] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    return files


def _write_frame(out: Path, translated: Sample) -> dict:
    from semguard.data.folder import write_sample

    write_sample(out, translated)
    return _verify_written(out, translated, translated)


def _remove_frame(out: Path, name: str) -> None:
    from semguard.data.folder import BOX_DIR, IMAGE_DIR, INSTANCE_DIR, LABEL_DIR
    from semguard.validate import require_inside

    for relative in (f"{IMAGE_DIR}/{name}.png", f"{LABEL_DIR}/{name}.png", f"{INSTANCE_DIR}/{name}.png",
                     f"{BOX_DIR}/{name}.json"):
        require_inside(out, out / relative).unlink(missing_ok=True)  # never delete through a symlink out of OUT


def translate_dataset(
    translator: Translator,
    dataset,
    out: str | Path,
    *,
    header: dict,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 1,
    workers: int = 2,
    writers: int = 2,
    judge: Callable[[torch.Tensor], torch.Tensor] | None = None,
    judge_size_multiple: int = 32,
    max_flip_rate: float | None = None,
    drop_flagged: bool = False,
    verify_existing: bool = False,
    stop_on_failure: bool = False,
    progress: bool = True,
    dataset_info: dict | None = None,
    shard_by: Callable[[list[str], tuple[int, int]], list[str]] | None = None,
) -> TranslateSummary:
    """Translate shard `shard` (i, n) of `dataset` into the folder data set `out`.

    dataset: map-style, len/getitem -> Sample, `.names` (unique; may contain '/').
    header: run identity written to the manifest (checkpoint_sha256, config, judge...).
    judge: image float [B,3,H,W] in [-1,1] -> logits [B,19,H,W]; per-frame flip rate =
      share of labelled pixels whose judge class differs from the source label. Frames
      above `max_flip_rate` are "flagged"; with `drop_flagged` they are not written.
    Frames already recorded as done whose files are intact are skipped (resume).
    stop_on_failure: raise FrameFailed at the first failed frame (after recording it).
    shard_by: (names, shard) -> the shard's names in processing order (default
      translate_manifest.shard_names; semguard.temporal.shard_clips keeps clips whole).
    """
    from semguard.data.folder import write_dataset_info
    from semguard.translate_manifest import Manifest, outputs_valid, remove_stale_temporaries, shard_names

    out = Path(out)
    names = list(dataset.names)
    if len(set(names)) != len(names):
        raise SemguardError("the input data set has duplicate frame names; they would overwrite each other in --out")
    index_of = {name: index for index, name in enumerate(names)}
    mine = (shard_by or shard_names)(names, shard)
    manifest = Manifest(out, header, shard)
    manifest.load()
    pending = [name for name in mine if not outputs_valid(out, manifest.known.get(name), deep=verify_existing)]
    summary = TranslateSummary(total=len(mine), skipped=len(mine) - len(pending))
    remove_stale_temporaries(out, set(pending), manifest.part_path.name)
    write_dataset_info(out, **(dataset_info or {}))
    if translator.device.type == "cpu":
        reuse_freed_memory()   # large activations would be page-faulted in afresh on every pass otherwise
    started = time.monotonic()

    loader = torch.utils.data.DataLoader(
        _PendingFrames(dataset, [index_of[n] for n in pending], pending),
        batch_size=max(1, batch_size), num_workers=max(0, workers), collate_fn=_collate,
        pin_memory=translator.device.type == "cuda", prefetch_factor=2 if workers > 0 else None,
    )

    def fail(name: str, reason: str) -> None:
        summary.failed.append((name, reason))
        manifest.record(name, {"status": "failed", "reason": reason, "written": False})
        if stop_on_failure:
            raise FrameFailed(f"{name}: {reason}; stopped at the first failed frame (--fail-on-error); the frames "
                              "finished so far are kept, rerun to continue")

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn("[bold]translate[/]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:.2f} img/s"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn()]
    in_flight: deque[tuple[Future, Sample, float | None, bool]] = deque()

    def settle(future: Future, translated: Sample, rate: float | None, flagged: bool) -> None:
        try:
            files = future.result()
        except Exception as err:  # noqa: BLE001 - a write/verify failure is this frame's failure
            fail(translated.name, f"write or verification failed: {type(err).__name__}: {err}")
        else:
            status = "flagged" if flagged else "ok"
            reason = f"flip rate {rate:.4f} > {max_flip_rate}" if flagged else None
            manifest.record(translated.name, {"status": status, "reason": reason, "flip_rate": rate,
                                              "written": True, "files": files, "size": list(translated.size)})
            if flagged:
                summary.flagged += 1
                summary.flagged_names.append(translated.name)
            else:
                summary.ok += 1
        manifest.flush()

    with Progress(*columns, disable=not progress, transient=False) as bar, \
            ThreadPoolExecutor(max_workers=max(1, writers), thread_name_prefix="semguard-writer") as pool:
        task = bar.add_task("translate", total=len(pending), rate=0.0)

        def advance() -> None:
            done = summary.ok + summary.flagged + len(summary.failed)
            elapsed = time.monotonic() - started
            bar.update(task, completed=done, rate=done / elapsed if elapsed > 0 else 0.0)

        try:
            for failures, groups in loader:
                for failure in failures:
                    fail(failure.name, failure.reason)
                    advance()
                for batch, samples in groups:
                    output = translator.translate_batch(batch.to(translator.device, non_blocking=True))
                    rates: list[float | None] = [None] * len(samples)
                    images = quantize(output)
                    if judge is not None:
                        written = images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
                        judge_tile = translator.judge_tile(judge, judge_size_multiple, *written.shape[:1],
                                                           *written.shape[-2:])
                        logits = tiled_apply(judge, [written], tile=judge_tile, overlap=translator.overlap,
                                             size_multiple=judge_size_multiple, tile_batch=translator.tile_batch)
                        rates = flip_rates(logits, batch.label.to(logits.device))
                    images = images.cpu().numpy()
                    for k, sample in enumerate(samples):
                        rate = rates[k]
                        flagged = max_flip_rate is not None and rate is not None and rate > max_flip_rate
                        translated = replace(sample, image=images[k], boxes=list(sample.boxes))
                        if flagged and drop_flagged:
                            _remove_frame(out, sample.name)
                            manifest.record(sample.name, {"status": "flagged", "written": False, "flip_rate": rate,
                                                          "reason": f"flip rate {rate:.4f} > {max_flip_rate}; "
                                                                    "left out (--drop-flagged)"})
                            summary.flagged += 1
                            summary.dropped += 1
                            summary.flagged_names.append(sample.name)
                            continue
                        in_flight.append((pool.submit(_write_frame, out, translated), translated, rate, flagged))
                    # bound the frames waiting for the writers (memory), and settle finished ones in order
                    while in_flight and (len(in_flight) > 2 * max(1, writers) + batch_size or in_flight[0][0].done()):
                        settle(*in_flight.popleft())
                        advance()
                    advance()
            while in_flight:
                settle(*in_flight.popleft())
                advance()
        finally:
            # on an interruption, keep what the writers finished; unfinished frames are redone next run
            for future, translated, rate, flagged in in_flight:
                if future.done() and not future.cancelled() and future.exception() is None:
                    settle(future, translated, rate, flagged)
                else:
                    future.cancel()
            manifest.flush(force=True)
    summary.attempted = summary.ok + summary.flagged + len(summary.failed)
    summary.seconds = time.monotonic() - started
    return summary
