"""`semguard translate`: a whole data set through a translator checkpoint.

    semguard translate --checkpoint runs/toy/final.pt --input toy/sim/val --format folder --out toy/translated
        [--tile 512] [--overlap 64] [--batch-size 1] [--workers 2] [--writers 2] [--shard i/n]
        [--device auto] [--judge JUDGE.pt [--max-flip-rate 0.2 [--drop-flagged]]]

Exit status: 0 when the run finished, even if some frames failed (each is named in the
summary and in OUT/manifest.json with its reason); 1 when every frame tried in this run
failed, or when --fail-on-error is given and any frame failed; 2 for a user error (bad
checkpoint, broken data set, bad flags). Under torchrun (RANK/WORLD_SIZE set) each
process takes its own block of the (sorted) frames.
"""

from __future__ import annotations

import os


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "translate", help="translate a whole data set, labels and boxes carried through",
        description="Translate every frame of a data set at full resolution into semguard's folder format, "
                    "labels, instances and boxes carried through unchanged (verified after writing). "
                    "Resumable: rerun the same command to finish a killed run.")
    parser.add_argument("--checkpoint", required=True, help="translator checkpoint (from `semguard train`)")
    parser.add_argument("--input", required=True, help="root of the source data set")
    parser.add_argument("--format", default="folder", help="format of --input (see semguard.data.formats)")
    parser.add_argument("--out", required=True, help="output folder (semguard folder format + manifest.json)")
    parser.add_argument("--tile", type=int, default=512, help="tile size in pixels for large frames; 0 = whole frames")
    parser.add_argument("--overlap", type=int, default=64, help="overlap of neighbouring tiles in pixels")
    parser.add_argument("--tile-batch", type=int, default=1,
                        help="most tiles per generator call (memory grows with it; raise on large GPUs)")
    parser.add_argument("--batch-size", type=int, default=1, help="frames per batch")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes decoding input")
    parser.add_argument("--writers", type=int, default=2, help="threads encoding and verifying output PNGs")
    parser.add_argument("--shard", default="0/1", help="translate shard i of n (i/n, from 0)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator weights, not the EMA ones")
    parser.add_argument("--judge", help="judge segmenter checkpoint: record each frame's flip rate")
    parser.add_argument("--max-flip-rate", type=float, help="flag frames whose flip rate exceeds this (needs --judge)")
    parser.add_argument("--drop-flagged", action="store_true", help="leave flagged frames out of --out")
    parser.add_argument("--fail-on-error", action="store_true", help="exit 1 if any frame failed")
    parser.add_argument("--verify-existing", action="store_true",
                        help="on resume, re-hash finished frames instead of checking their sizes")
    parser.add_argument("--check-frames", type=int, default=None,
                        help="check only the first N frames before starting (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_translate)


def run_translate(args) -> int:
    from rich.console import Console

    from semguard import __version__
    from semguard.data.check import check_dataset
    from semguard.data.formats import open_dataset
    from semguard.errors import DataError, SemguardError
    from semguard.translate import Translator, file_sha256, translate_dataset
    from semguard.translate_manifest import combine_shard, parse_shard

    console = Console(stderr=True, highlight=False)
    if args.max_flip_rate is not None and not args.judge:
        raise SemguardError("--max-flip-rate needs --judge (the segmenter that reads the translated images)")
    if args.drop_flagged and args.max_flip_rate is None:
        raise SemguardError("--drop-flagged needs --max-flip-rate")
    if args.tile and args.overlap >= args.tile:
        raise SemguardError(f"--overlap {args.overlap} must be smaller than --tile {args.tile}")
    shard = parse_shard(args.shard)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    shard = combine_shard(shard, rank, world)
    chatty = rank == 0

    report = check_dataset(args.input, args.format, limit=args.check_frames)
    set_level = [p for p in report.problems if p.path in (str(args.input), args.input)]
    if set_level or report.frames == 0 or (report.problems and len(report.problems) >= report.checked):
        first = "; ".join(p.detail for p in report.problems[:3])
        raise DataError(f"{report.summary()}. First problems: {first}. "
                        f"Run `semguard data check {args.input} --format {args.format}` for the full list")
    if report.problems and chatty:
        console.print(f"[yellow]warning:[/] {report.summary()}; those frames will be reported as failed, "
                      "the rest translated")

    translator = Translator.from_checkpoint(args.checkpoint, device=args.device, ema=not args.no_ema,
                                            tile=args.tile or None, overlap=args.overlap,
                                            tile_batch=args.tile_batch, amp=args.amp)
    judge = None
    if args.judge:
        from semguard.train.segmenter import load_segmenter

        judge, _ = load_segmenter(args.judge, device=translator.device, expected_role="judge")
    dataset = open_dataset(args.input, args.format)
    meta = translator.metadata
    header = {
        "semguard_version": __version__,
        "checkpoint": meta.get("path"), "checkpoint_sha256": meta.get("sha256"), "checkpoint_step": meta.get("step"),
        "weights": meta.get("weights"), "config": meta.get("config"),
        "input": str(args.input), "input_format": args.format,
        "judge": args.judge, "judge_sha256": file_sha256(args.judge) if args.judge else None,
        "max_flip_rate": args.max_flip_rate, "drop_flagged": bool(args.drop_flagged),
        "tile": args.tile, "overlap": args.overlap,
    }
    summary = translate_dataset(
        translator, dataset, args.out, header=header, shard=shard, batch_size=args.batch_size,
        workers=args.workers, writers=args.writers, judge=judge,
        judge_size_multiple=int(getattr(judge, "size_multiple", 32)) if judge is not None else 32,
        max_flip_rate=args.max_flip_rate, drop_flagged=args.drop_flagged, verify_existing=args.verify_existing,
        progress=chatty and not args.no_progress,
        dataset_info={"domain": "translated", "source": str(args.input), "source_format": args.format,
                      "checkpoint_sha256": meta.get("sha256")},
    )
    where = f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else ""
    console.print(
        f"translated{where}: {summary.ok} ok, {summary.flagged} flagged"
        + (f" ({summary.dropped} left out)" if summary.dropped else "")
        + f", {len(summary.failed)} failed, {summary.skipped} already done of {summary.total}; "
        f"{summary.images_per_second:.2f} img/s over {summary.seconds:.1f} s -> {args.out}"
    )
    for name, reason in summary.failed[:10]:
        console.print(f"[red]failed:[/] {name}: {reason}")
    if len(summary.failed) > 10:
        console.print(f"[red]... and {len(summary.failed) - 10} more failed frames[/] (see {args.out}/manifest.json)")
    if summary.flagged_names:
        console.print(f"[yellow]flagged:[/] {', '.join(summary.flagged_names[:10])}"
                      + (" ..." if len(summary.flagged_names) > 10 else ""))
    if summary.failed and (args.fail_on_error or summary.attempted == len(summary.failed)):
        return 1
    return 0
