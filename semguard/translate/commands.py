"""`semguard translate`: a whole data set through a translator checkpoint.

    semguard translate --checkpoint runs/toy/final.pt --input toy/sim/val --format folder --out toy/translated
        [--tile auto] [--memory-budget auto] [--overlap 64] [--batch-size 1] [--workers auto] [--writers auto] [--shard i/n]
        [--device auto] [--judge JUDGE.pt [--max-flip-rate 0.2 [--drop-flagged]]]

Exit status: 0 only when every frame of the shard was done as asked (translated, or judged
and flagged); 1 when some frames failed (each is named in the summary and in OUT/manifest.json
with its reason; the others are translated, and --fail-on-error stops at the first); 2 for
bad input, refused before any work (bad checkpoint, broken data set, bad flags, an --out equal
to, inside or around --input, a symlink under --out that leads out of it, another translate running on
the same --out and shard, a disk that fills up); 70 for a bug. A frame too small for the generator
fails by name (exit 1), like a damaged one.
Under torchrun (RANK/WORLD_SIZE set) each process takes its own block of the (sorted) frames.
"""

from __future__ import annotations

import argparse
import os

from rich.markup import escape

from semguard import __version__
from semguard.checkpoints import load_segmenter
from semguard.common import file_sha256
from semguard.console import output_console
from semguard.data.check import check_dataset
from semguard.data.folder import PNG_COMPRESS_LEVEL
from semguard.data.formats import open_dataset
from semguard.data.formats.base import as_bool
from semguard.data.mapping import UNEXPECTED_IDS
from semguard.errors import DataError, SemguardError
from semguard.labels import LIGHT_STATES
from semguard.translate.manifest import combine_shard, parse_shard
from semguard.translate.memory import describe_stage_tiles, format_bytes, parse_memory_size
from semguard.translate.pipeline import translate_dataset
from semguard.translate.temporal import ClipTranslator, shard_clips
from semguard.translate.translator import Translator
from semguard.validate import (
    add_option_argument, add_threads_argument, device, existing_path, number, output_folder, parse_options, use_threads,
    workers,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "translate", help="translate a whole data set, labels and boxes carried through",
        description="Translate every frame of a data set at full resolution into semguard's folder format, "
                    "labels, instances and boxes carried through unchanged (verified after writing). "
                    "Resumable: rerun the same command to finish a killed run.")
    parser.add_argument("--checkpoint", required=True, help="translator checkpoint (from `semguard train`)")
    parser.add_argument("--input", required=True, help="root of the source data set")
    parser.add_argument("--format", default="folder", help="format of --input (see semguard.data.formats)")
    add_option_argument(parser, what="--input (strict=true by default: unexpected label ids fail their frame)")
    parser.add_argument("--out", required=True, help="output folder (semguard folder format + manifest.json)")
    parser.add_argument("--tile", type=_tile_value, default="auto",
                        help="auto (default): whole frames whenever their measured memory need fits --memory-budget, "
                             "the largest tiles that fit otherwise; N: tiles of N pixels for larger frames; "
                             "0: always whole frames. Generator tiles are exact (frame statistics, halos)")
    parser.add_argument("--memory-budget", type=_memory_budget, default="auto",
                        help="memory one batch may use, e.g. 3GiB or 800MB (auto: half the available RAM on CPU, "
                             "80%% of the free GPU memory on CUDA)")
    parser.add_argument("--overlap", type=int, default=64,
                        help="overlap of neighbouring tiles in pixels, for models tiled with blending (the judge)")
    parser.add_argument("--tile-batch", type=int, default=1,
                        help="most tiles per generator call (memory grows with it; raise on large GPUs)")
    parser.add_argument("--batch-size", type=int, default=1, help="frames per batch")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader worker processes decoding input (default 2; 0, the main process, on a CPU "
                             "with 4 cores or fewer, where the model's own threads use every core)")
    parser.add_argument("--writers", type=int, default=None,
                        help="threads encoding and verifying output PNGs (default 2; 1 on a CPU with 4 cores or fewer)")
    parser.add_argument("--png-level", type=int, default=PNG_COMPRESS_LEVEL,
                        help=f"zlib level of the written PNGs, 0 (fastest) .. 9 (smallest files); the pixels are the "
                             f"same at every level (default {PNG_COMPRESS_LEVEL}: on a real-style 2048x1024 frame 0.33 s "
                             "against 0.72 s at 6, files 14%% larger)")
    parser.add_argument("--shard", default="0/1", help="translate shard i of n (i/n, from 0)")
    parser.add_argument("--temporal", default="none", choices=("none", "clip"),
                        help="clip: a sequence set (NAME = CLIP/FRAME) normalised with each clip's instance-norm "
                             "statistics, so static regions do not flicker; shards by clip (default none)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_threads_argument(parser)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator weights, not the EMA ones")
    parser.add_argument("--judge", help="judge segmenter checkpoint: record each frame's flip rate")
    parser.add_argument("--max-flip-rate", type=float, help="flag frames whose flip rate exceeds this (needs --judge)")
    parser.add_argument("--drop-flagged", action="store_true", help="leave flagged frames out of --out")
    parser.add_argument("--fail-on-error", action="store_true",
                        help="stop at the first failed frame (exit 1; without it the other frames are translated, "
                             "and the exit status is 1 all the same)")
    parser.add_argument("--verify-existing", action="store_true",
                        help="on resume, re-hash finished frames instead of checking their sizes")
    parser.add_argument("--check-frames", type=int, default=None,
                        help="check only the first N frames before starting (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_translate)


def run_translate(args) -> int:
    console = output_console(stderr=True, soft_wrap=True)  # one line per message
    use_threads(args.threads)
    options = _check_arguments(args)
    if args.max_flip_rate is not None and not args.judge:
        raise SemguardError("--max-flip-rate needs --judge (the segmenter that reads the translated images)")
    if args.drop_flagged and args.max_flip_rate is None:
        raise SemguardError("--drop-flagged needs --max-flip-rate")
    if isinstance(args.tile, int) and args.tile and args.overlap >= args.tile:
        raise SemguardError(f"--overlap {args.overlap} must be smaller than --tile {args.tile}")
    shard = parse_shard(args.shard)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    shard = combine_shard(shard, rank, world)
    chatty = rank == 0

    report = check_dataset(args.input, args.format, limit=args.check_frames,
                           **{k: v for k, v in options.items() if k != "strict"})
    if not as_bool(options.get("strict", True), "strict"):
        # unexpected ids go to ignore (counted below) instead of failing their frame
        report.problems = [p for p in report.problems if p.kind != UNEXPECTED_IDS]
    set_level = [p for p in report.problems if p.path in (str(args.input), args.input)]
    if set_level or report.frames == 0 or (report.problems and len(report.problems) >= report.checked):
        first = "; ".join(p.detail for p in report.problems[:3])
        raise DataError(f"{report.summary()}. First problems: {first}. "
                        f"Run `semguard data check {args.input} --format {args.format}` for the full list")
    if report.problems and chatty:
        console.print(f"[yellow]warning:[/] {escape(report.summary())}; those frames will be reported as failed, "
                      "the rest translated")
    if report.skipped_line() and chatty:
        console.print(f"[yellow]note:[/] {escape(report.skipped_line())}")
    changes = report.ignore.changes()
    if changes and chatty:
        scope = "" if report.checked == report.frames else f" (in the {report.checked} frames checked)"
        console.print(f"loading {args.input} changed{scope}: {changes}; per source id and class in "
                      f"{args.out}/manifest.json (header.load_changes)")

    translator = Translator.from_checkpoint(args.checkpoint, device=args.device, ema=not args.no_ema,
                                            tile=args.tile or None, overlap=args.overlap,
                                            tile_batch=args.tile_batch, amp=args.amp,
                                            memory_budget=None if args.memory_budget == "auto" else args.memory_budget)
    judge = None
    if args.judge:
        judge, _ = load_segmenter(args.judge, device=translator.device, expected_role="judge")
    dataset = open_dataset(args.input, args.format, **{"strict": True, **options})
    if translator.spec.light_states and chatty:
        warning = light_state_warning(report)
        if warning:
            console.print(f"[yellow]warning:[/] {escape(warning)}")
    shard_by = None
    if args.temporal == "clip":
        translator, shard_by = ClipTranslator(translator, dataset), shard_clips
    meta = translator.metadata
    header = {
        "semguard_version": __version__,
        "checkpoint": meta.get("path"), "checkpoint_sha256": meta.get("sha256"), "checkpoint_step": meta.get("step"),
        "weights": meta.get("weights"), "config": meta.get("config"),
        "input": str(args.input), "input_format": args.format,
        "judge": args.judge, "judge_sha256": file_sha256(args.judge) if args.judge else None,
        "max_flip_rate": args.max_flip_rate, "drop_flagged": bool(args.drop_flagged),
        "temporal": args.temporal,
        "tile": args.tile, "overlap": args.overlap, "memory_budget": args.memory_budget, "input_options": options,
        "load_changes": {**report.ignore.to_dict(), "frames_checked": report.checked, "frames": report.frames,
                         "skipped_files": list(report.skipped)},
    }
    summary = translate_dataset(
        translator, dataset, args.out, header=header, shard=shard, batch_size=args.batch_size,
        workers=args.workers, writers=args.writers, judge=judge,
        judge_size_multiple=int(getattr(judge, "size_multiple", 32)) if judge is not None else 32,
        max_flip_rate=args.max_flip_rate, drop_flagged=args.drop_flagged, verify_existing=args.verify_existing,
        stop_on_failure=args.fail_on_error, shard_by=shard_by, png_level=args.png_level,
        progress=chatty and not args.no_progress,
        dataset_info={"domain": "translated", "source": str(args.input), "source_format": args.format,
                      "checkpoint_sha256": meta.get("sha256"), "temporal": args.temporal},
    )
    where = f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else ""
    console.print(
        f"translated{where}: {summary.ok} ok, {summary.flagged} flagged"
        + (f" ({summary.dropped} left out)" if summary.dropped else "")
        + f", {len(summary.failed)} failed, {summary.skipped} already done of {summary.total}; "
        f"{summary.images_per_second:.2f} img/s over {summary.seconds:.1f} s -> {args.out}"
    )
    if chatty:
        for line in _plan_lines(translator):
            console.print(line)
    for name, reason in summary.failed[:10]:
        console.print(f"[red]failed:[/] {escape(name)}: {escape(reason)}")
    if len(summary.failed) > 10:
        console.print(f"[red]... and {len(summary.failed) - 10} more failed frames[/] (see {args.out}/manifest.json)")
    if summary.flagged_names:
        console.print(f"[yellow]flagged:[/] {', '.join(summary.flagged_names[:10])}"
                      + (" ..." if len(summary.flagged_names) > 10 else ""))
    return 1 if summary.failed else 0


def light_state_warning(report) -> str | None:
    """For a translator conditioned on light states: a warning when traffic light boxes in the
    frames the data check read carry no known state (CheckReport's light counts), else None."""
    if not report.lights_without_state:
        return None
    return (f"this translator was trained with traffic light states in its conditioning "
            f"(model.conditioning.light_states), but {report.lights_without_state} of the {report.lights} traffic "
            f"light boxes in the {report.checked} frames checked carry no state of {'/'.join(LIGHT_STATES)} (box "
            "attribute 'state'); those lights are translated without one, unlike in training")


def _tile_value(text: str) -> str | int:
    """--tile: 'auto' or a non-negative number of pixels."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile must be 'auto' or a whole number of pixels, got {text!r}") from None


def _memory_budget(text: str) -> str | int:
    """--memory-budget: 'auto' or a size (3GiB, 800MB, 2e9)."""
    try:
        size = parse_memory_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--memory-budget: {err}") from None
    return "auto" if size is None else size


def _plan_lines(translator) -> list[str]:
    """One line per frame size: whole-frame pass or tiles, with the estimate behind it."""
    if translator.tile != "auto" or not translator.plans:
        return []
    profile = translator.memory_profile()
    lines = []
    for (batch, height, width), tile in sorted(translator.plans.items()):
        frames = f"{width}x{height} frames (batch {batch})"
        if tile is None:
            need = profile.whole_bytes(batch, height, width)
            lines.append(f"{frames}: whole-frame passes, about {format_bytes(need)} of the "
                         f"{format_bytes(translator.budget())} memory budget")
        else:
            need = translator.planned_bytes(batch, height, width)
            lines.append(f"{frames}: a whole frame needs about {format_bytes(profile.whole_bytes(batch, height, width))}"
                         f", over the {format_bytes(translator.budget())} budget: "
                         f"{describe_stage_tiles(tile, translator.stage_plan(batch, height, width))}"
                         + (f" (about {format_bytes(need)})" if need is not None else ""))
    return lines


MAX_TILE = 1 << 16      # px
MAX_BATCH = 4096        # frames or tiles per call


def _check_arguments(args) -> dict:
    """Refuse bad paths and numbers before any work; returns the --option dict."""
    existing_path(args.checkpoint, "--checkpoint", "file")
    existing_path(args.input, "--input", "dir")
    if args.judge:
        existing_path(args.judge, "--judge", "file")
    output_folder(args.out, "--out", {"--input": args.input}, refuse_input_inside=True)
    # sizes past these are typos: a tile or overlap wider than any frame a machine can hold, batches whose
    # decoded frames alone would take the memory (the model's own memory is planned by --memory-budget)
    for flag, value, low, high in (("--tile", args.tile, 0, MAX_TILE), ("--overlap", args.overlap, 0, MAX_TILE),
                                   ("--tile-batch", args.tile_batch, 1, MAX_BATCH)):
        if isinstance(value, (int, float)):  # a word such as 'auto' is parsed by its own code
            number(value, flag, low=low, high=high, integer=True)
    number(args.batch_size, "--batch-size", low=1, high=MAX_BATCH, integer=True)
    workers(args.workers, "--workers")
    workers(args.writers, "--writers", low=1)
    number(args.png_level, "--png-level", low=0, high=9, integer=True)
    device(args.device)
    number(args.max_flip_rate, "--max-flip-rate", low=0.0, high=1.0)
    number(args.check_frames, "--check-frames", low=1, integer=True)
    return parse_options(args.option)
