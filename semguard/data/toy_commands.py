"""`semguard data make-toy | stats | preview`: make the toy world and look at it.

Handlers parse strings into values and call semguard.data.toyworld; heavy imports stay
inside the handlers so that `semguard --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from rich.progress import Progress
from rich.table import Table

from semguard.console import output_console
from semguard.data.folder import IMAGE_DIR, list_names
from semguard.data.toyworld import make_toy_world
from semguard.data.toyworld.clips import MAX_CLIPS
from semguard.data.formats import FORMATS, open_dataset
from semguard.data.toyworld.overview import (
    dataset_preview_grid, dataset_statistics, domain_statistics, find_domains, preview_grid, spatial_prior_image,
)
from semguard.data.toyworld.world import VAL_INDEX_BASE
from semguard.common import parse_hw
from semguard.errors import SemguardError
from semguard.labels import NUM_CLASSES, TRAIN_ID_NAMES
from semguard.files import write_atomically
from semguard.validate import (
    MAX_COUNT, add_option_argument, existing_path, number, output_file, output_folder, parse_options, require_memory,
    workers,
)


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. '128x256') -> (H, W); toy-world frames are at least 32x32."""
    return parse_hw(text, "--size", minimum=32)


def _make_toy(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    judge = args.train if args.judge is None else args.judge
    if args.train < 0 or args.val < 0 or judge < 0:
        raise SemguardError(f"--train, --val and --judge must be >= 0, got {args.train}, {args.val} and {judge}")
    _check_make_toy(args, size, judge)
    if args.workers < 1:
        raise SemguardError(f"--workers must be >= 1, got {args.workers}")
    if args.seed < 0:
        raise SemguardError(f"--seed must be >= 0, got {args.seed}")
    if not args.gap >= 0:
        raise SemguardError(f"--gap must be >= 0 (0: no semantic gap, 1: the default), got {args.gap}")
    out = Path(args.out)
    existing = [out / d for d in ("sim", "real", "paired", "judge") + (("clips",) if args.clips else ())
                if (out / d).exists()]
    if existing and not args.overwrite:
        raise SemguardError(f"{existing[0]} already exists; choose another --out or pass --overwrite to replace it")
    console = output_console()
    total = 3 * args.train + 3 * args.val + 2 * judge + 3 * args.clips * args.clip_length
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"rendering {total} frames", total=total)
        make_toy_world(
            out, train=args.train, val=args.val, size=size, seed=args.seed, gap=args.gap,
            workers=args.workers, overwrite=args.overwrite, judge=judge,
            clips=args.clips, clip_length=args.clip_length,
            progress=lambda done, _total: progress.update(task, completed=done),
        )
    console.print(
        f"toy world written to {out}: sim/train, real/train, paired/train ({args.train} each), sim/val, real/val, "
        f"paired/val ({args.val} each), judge/train ({judge} real + {judge} paired layouts, for the judge only), "
        f"{size[0]}x{size[1]}, seed {args.seed}, gap {args.gap}"
        + (f"; clips/sim, clips/paired, clips/real ({args.clips} clips of {args.clip_length} frames each, "
           "static and forward-moving camera alternating)" if args.clips else "")
    )
    return 0


def _open_formatted(args: argparse.Namespace):
    """The data set at ROOT through its --format loader (None without --format: a toy world or folder set)."""
    if args.format is None:
        if args.option:
            raise SemguardError("--option needs --format (the format whose option it is)")
        return None
    if args.out is None:
        raise SemguardError(f"--out is required with --format (the default would write into the data set {args.root})")
    return open_dataset(args.root, args.format, **parse_options(args.option))


def _set_title(args: argparse.Namespace) -> str:
    """'camvid split=val': the column / row title of a --format data set."""
    return " ".join([Path(args.root).resolve().name or args.format, *(args.option or [])])


def _stats(args: argparse.Namespace) -> int:
    existing_path(args.root, "ROOT", "dir")
    number(args.limit, "--limit", low=1, integer=True)
    if args.out:  # refused before the statistics are computed, not after
        output_file(args.out, "--out", {"ROOT": args.root}, example="stats.png")
    dataset = _open_formatted(args)
    if dataset is not None:
        stats = [dataset_statistics(_set_title(args), dataset, limit=args.limit)]
    else:
        domains = find_domains(args.root)
        if len(domains) > 1:
            domains.pop("paired", None)                              # paired/val has the sim/val labels
        stats = [domain_statistics(name, folders, limit=args.limit) for name, folders in domains.items()]
    table = Table(title=f"class pixel shares, {args.root}")
    table.add_column("class")
    for domain in stats:
        table.add_column(f"{domain.name} ({domain.frames})", justify="right")
    for c in range(NUM_CLASSES):
        if any(d.counts[c] for d in stats):
            table.add_row(TRAIN_ID_NAMES[c], *(f"{100 * d.shares[c]:.2f}%" for d in stats))
    console = output_console()
    console.print(table)
    out = Path(args.out) if args.out else Path(args.root) / "stats.png"
    output_file(out, "--out", example="stats.png")
    with write_atomically(out) as temporary:  # replaces the path, never writes through a link at it
        Image.fromarray(spatial_prior_image(stats)).save(temporary, format="PNG")
    console.print(f"spatial priors (per class, where in the frame it occurs) written to {out}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise SemguardError(f"--n must be >= 1, got {args.n}")
    number(args.n, "--n", low=1, high=MAX_COUNT, integer=True)
    existing_path(args.root, "ROOT", "dir")
    dataset = _open_formatted(args)
    _check_preview(args, dataset)
    out = Path(args.out)
    if dataset is not None:
        grid = dataset_preview_grid(dataset, _set_title(args), count=args.n, scale=args.scale)
    else:
        grid = preview_grid(args.root, count=args.n, scale=args.scale)
    with write_atomically(out) as temporary:  # replaces the path, never writes through a link at it
        Image.fromarray(grid).save(temporary, format="PNG")
    output_console().print(f"preview written to {out}")
    return 0


# peak memory of rendering one toy frame, per pixel (measured: about 140 B/px, real style, any size)
RENDER_BYTES_PER_PIXEL = 160


def _check_make_toy(args: argparse.Namespace, size: tuple[int, int], judge: int) -> None:
    """Refuse, before rendering: counts past the index range of a split, frames that cannot fit in
    memory (per worker), and an --out that is a file or holds a symlink out of it."""
    number(args.gap, "--gap", low=0.0, high=100.0)
    workers(args.workers, "--workers", low=1)

    number(args.clips, "--clips", low=0, high=MAX_CLIPS - 1, integer=True)
    number(args.clip_length, "--clip-length", low=2, high=VAL_INDEX_BASE - 1, integer=True)
    for flag, count in (("--train", args.train), ("--val", args.val), ("--judge", judge)):
        if count >= VAL_INDEX_BASE:
            raise SemguardError(f"{flag} {count}: at most {VAL_INDEX_BASE - 1} frames per split "
                                "(splits draw from disjoint index ranges)")
    require_memory(RENDER_BYTES_PER_PIXEL * size[0] * size[1] * args.workers,
                   f"rendering {size[0]}x{size[1]} toy frames with {args.workers} worker(s)",
                   "choose a smaller --size (e.g. 128x256) or fewer --workers")
    output_folder(args.out, "--out")


def _check_preview(args: argparse.Namespace, dataset=None) -> None:
    """Refuse a --scale or --n whose grid cannot fit in memory (estimated from the first frame's
    size), and an --out that is a folder or lies inside ROOT. dataset: the --format loader's set, if any."""
    existing_path(args.root, "ROOT", "dir")
    number(args.scale, "--scale", low=1, integer=True)
    output_file(args.out, "--out", {"ROOT": args.root}, example="preview.png")
    if dataset is not None:
        if len(dataset):
            height, width = dataset[0].size
            scale = args.scale or max(1, round(512 / width))
            canvas = (110 + args.n * (width * scale + 3)) * 3 * (height * scale + 3) * 3
            require_memory(4 * canvas, f"a preview grid of {args.n} frames at --scale {scale} "
                                       f"({width * scale}x{height * scale} px per tile)", "use a smaller --scale or --n")
        return
    domains = find_domains(args.root)
    for found in domains.values():
        folder = next((f for f in found if f.name == "val"), found[0])
        names = list_names(folder)
        if names:
            break
    else:
        return  # preview_grid says there is nothing to show
    try:
        with Image.open(folder / IMAGE_DIR / f"{names[0]}.png") as image:
            width, height = image.size
    except OSError:
        return  # preview_grid names the unreadable file
    scale = args.scale or max(1, round(512 / width))
    canvas = (110 + args.n * (width * scale + 3)) * 3 * len(domains) * (height * scale + 3) * 3
    require_memory(4 * canvas, f"a preview grid of {args.n} frames per domain at --scale {scale} "
                               f"({width * scale}x{height * scale} px per tile)", "use a smaller --scale or --n")


def _add_format_arguments(parser) -> None:
    """--format and --option of stats and preview: any data set a format loader reads."""
    parser.add_argument("--format", default=None, choices=list(FORMATS),
                        help="read ROOT with this format loader (e.g. camvid, ids, cityscapes; needs --out); "
                             "default: a toy world or a folder data set")
    add_option_argument(parser)


def register(subparsers) -> None:
    """Add make-toy, stats and preview to the `data` group's subparsers."""
    make = subparsers.add_parser(
        "make-toy", help="render the toy sim/real driving world to disk",
        description="Render the toy world as semguard folder data sets: sim/{train,val}, real/{train,val}, "
                    "paired/{train,val} (the sim layouts in the real style, same names: evaluation only) and "
                    "judge/train (fresh real and sim layouts, both in the real style, from indices no other split "
                    "uses: train the judge on it, and nothing else).",
    )
    make.add_argument("--out", required=True, help="output folder")
    make.add_argument("--train", type=int, default=200, help="training frames per domain (default 200)")
    make.add_argument("--val", type=int, default=50, help="validation frames per domain (default 50)")
    make.add_argument("--judge", type=int, default=None,
                      help="judge-split frames per layout prior (default: --train; 0: no judge split)")
    make.add_argument("--size", default="128x256", help="frame size HxW (default 128x256)")
    make.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    make.add_argument("--gap", type=float, default=1.0,
                      help="semantic gap strength: 0 none, 1 default, >1 stronger (default 1.0)")
    make.add_argument("--workers", type=int, default=1,
                      help="worker processes; the output does not depend on it (default 1)")
    make.add_argument("--clips", type=int, default=0,
                      help="also write this many clips (sequences) under OUT/clips/{sim,paired,real}: even clips "
                           "with a static ego camera, odd ones driving forward (default 0)")
    make.add_argument("--clip-length", type=int, default=16, help="frames per clip, 10 per second (default 16)")
    make.add_argument("--overwrite", action="store_true", help="replace existing sim/, real/, paired/, judge/ under --out")
    make.set_defaults(handler=_make_toy)

    stats = subparsers.add_parser(
        "stats", help="per-class pixel shares per domain and spatial-prior maps",
        description="Print per-class pixel shares per domain (sim vs real) and write the spatial "
                    "prior of every class (where in the frame it occurs) as a PNG.",
    )
    stats.add_argument("root", help="a toy world (from make-toy), a folder data set, or any set with --format")
    stats.add_argument("--out", help="PNG to write (default ROOT/stats.png; required with --format)")
    stats.add_argument("--limit", type=int, default=None, help="at most this many frames per domain")
    _add_format_arguments(stats)
    stats.set_defaults(handler=_stats)

    preview = subparsers.add_parser(
        "preview", help="a grid of images, label overlays and boxes",
        description="Write a PNG grid: per domain (sim, real, paired) rows of images, coloured "
                    "label overlays and boxes.",
    )
    preview.add_argument("root", help="a toy world (from make-toy), a folder data set, or any set with --format")
    preview.add_argument("--out", required=True, help="PNG to write")
    preview.add_argument("--n", type=int, default=4, help="frames per domain (default 4)")
    preview.add_argument("--scale", type=int, default=None,
                         help="upscale factor (default: about 512 px per frame width)")
    _add_format_arguments(preview)
    preview.set_defaults(handler=_preview)
