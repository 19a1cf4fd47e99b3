"""translate_dataset: a whole data set (or one shard of it) through a Translator.

Pipelined (DataLoader workers decode, the model runs, a thread pool encodes and verifies
PNGs), resumable (atomic files; a manifest of verified frames lets a rerun skip them) and
gated by an optional judge (per-frame flip rate). Manifest and shard bookkeeping live in
semguard.translate.manifest.
"""

from __future__ import annotations

import errno
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from semguard.common import file_sha256
from semguard.data.batch import Batch, collate_samples
from semguard.data.folder import (
    BOX_DIR,
    IMAGE_DIR,
    INSTANCE_DIR,
    LABEL_DIR,
    PNG_COMPRESS_LEVEL,
    read_sample,
    write_dataset_info,
    write_sample,
)
from semguard.data.sample import Sample
from semguard.errors import SemguardError
from semguard.output_lock import hold_output
from semguard.translate.manifest import Manifest, outputs_valid, remove_stale_temporaries, shard_names
from semguard.translate.memory import reuse_freed_memory
from semguard.translate.tiling import tiled_apply
from semguard.translate.translator import Translator, flip_rates, quantize
from semguard.validate import require_inside

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


def _write_frame(out: Path, translated: Sample, png_level: int) -> dict:
    write_sample(out, translated, png_level)
    return _verify_written(out, translated, translated)


def _remove_frame(out: Path, name: str) -> None:
    for relative in (f"{IMAGE_DIR}/{name}.png", f"{LABEL_DIR}/{name}.png", f"{INSTANCE_DIR}/{name}.png",
                     f"{BOX_DIR}/{name}.json"):
        require_inside(out, out / relative).unlink(missing_ok=True)  # never delete through a symlink out of OUT


# write errors that no later frame escapes (a full disk or quota, a read-only file system): they end the
# run as bad input (exit 2) instead of failing every remaining frame one by one
OUTPUT_REFUSED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _too_small(translator, size: tuple[int, int]) -> str | None:
    """Why a frame of `size` (H, W) is too small for `translator`, or None."""
    smallest = translator.smallest_side() if callable(getattr(translator, "smallest_side", None)) else 1
    if min(size) >= smallest:
        return None
    return (f"the frame is {size[1]}x{size[0]} px; this translator needs at least {smallest} px a side "
            "(its generator halves the frame several times); remove the frame or upscale it")


# Measured (bench_translate.py, 957x526 on a 2-core CPU, three back-to-back runs): decoding in the main
# process with one PNG writer ran at 0.316 img/s, 2 decode workers + 2 writers at 0.225 and 1 + 1 at 0.226:
# on a small CPU the model's threads already use every core and the helpers only take them away.
SMALL_CPU_CORES = 4


def io_threads(device: torch.device, workers: int | None = None, writers: int | None = None) -> tuple[int, int]:
    """(decode workers, PNG writer threads) for a translation on `device`; None = the default:
    2 and 2 on a GPU or a CPU with more than SMALL_CPU_CORES cores, else 0 (decode in the main
    process) and 1."""
    small_cpu = device.type == "cpu" and (os.cpu_count() or 1) <= SMALL_CPU_CORES
    default_workers, default_writers = (0, 1) if small_cpu else (2, 2)
    return (default_workers if workers is None else int(workers), default_writers if writers is None else int(writers))


def translate_dataset(
    translator: Translator,
    dataset,
    out: str | Path,
    *,
    header: dict,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 1,
    workers: int | None = None,
    writers: int | None = None,
    judge: Callable[[torch.Tensor], torch.Tensor] | None = None,
    judge_size_multiple: int = 32,
    max_flip_rate: float | None = None,
    drop_flagged: bool = False,
    verify_existing: bool = False,
    stop_on_failure: bool = False,
    progress: bool = True,
    dataset_info: dict | None = None,
    shard_by: Callable[[list[str], tuple[int, int]], list[str]] | None = None,
    png_level: int = PNG_COMPRESS_LEVEL,
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
      translate_manifest.shard_names; semguard.translate.temporal.shard_clips keeps clips whole).
    workers, writers: decode worker processes and PNG writer threads; None: `io_threads`' default.
    png_level: zlib level of the written PNGs (0 fastest .. 9 smallest; the pixels are the same).
    One run per output and shard: a second run on the same `out` and shard while the first runs
    stops at once, naming the first (semguard.output_lock); other shards run beside it.
    """
    out = Path(out)
    lock = "translate" if tuple(shard) == (0, 1) else f"translate-shard-{shard[0]}-of-{shard[1]}"
    with hold_output(out, lock):
        return _translate_locked(
            translator, dataset, out, header=header, shard=shard, batch_size=batch_size, workers=workers,
            writers=writers, judge=judge, judge_size_multiple=judge_size_multiple, max_flip_rate=max_flip_rate,
            drop_flagged=drop_flagged, verify_existing=verify_existing, stop_on_failure=stop_on_failure,
            progress=progress, dataset_info=dataset_info, shard_by=shard_by, png_level=png_level)


def _translate_locked(translator: Translator, dataset, out: Path, *, header: dict, shard: tuple[int, int],
                      batch_size: int, workers: int | None, writers: int | None, judge, judge_size_multiple: int,
                      max_flip_rate: float | None, drop_flagged: bool, verify_existing: bool, stop_on_failure: bool,
                      progress: bool, dataset_info: dict | None, shard_by, png_level: int) -> TranslateSummary:
    """translate_dataset's work, while its output lock is held."""
    workers, writers = io_threads(translator.device, workers, writers)
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

    columns = [TextColumn("[bold]translate[/]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:.2f} img/s"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn()]
    in_flight: deque[tuple[Future, Sample, float | None, bool]] = deque()

    def settle(future: Future, translated: Sample, rate: float | None, flagged: bool) -> None:
        try:
            files = future.result()
        except OSError as err:
            if err.errno in OUTPUT_REFUSED:  # the machine refuses every further write: stop, as bad input
                raise SemguardError(f"--out {out}: writing frame {translated.name} failed: {err.strerror or err} "
                                    f"({err.filename or out}); free space or choose another --out, then rerun to "
                                    "continue (the frames finished so far are kept)") from None
            fail(translated.name, f"write or verification failed: {type(err).__name__}: {err}")
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
                    too_small = _too_small(translator, samples[0].size)
                    if too_small:  # the model cannot take it: this frame fails by name, the others go on
                        for sample in samples:
                            fail(sample.name, too_small)
                            advance()
                        continue
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
                        in_flight.append((pool.submit(_write_frame, out, translated, png_level), translated, rate, flagged))
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
