"""`semguard data make-toy | stats | preview`: make the toy world and look at it.

Handlers parse strings into values and call semguard.data.toyworld; heavy imports stay
inside the handlers so that `semguard --help` stays fast.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from semguard.errors import SemguardError


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. '128x256') -> (H, W); a clear SemguardError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match:
        raise SemguardError(f"--size {text!r} is not HxW (height x width in pixels), e.g. --size 128x256")
    height, width = int(match.group(1)), int(match.group(2))
    if height < 32 or width < 32:
        raise SemguardError(f"--size {text}: toy-world frames must be at least 32x32 pixels")
    return height, width


def _make_toy(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from semguard.data.toyworld import make_toy_world

    size = parse_size(args.size)
    if args.train < 0 or args.val < 0:
        raise SemguardError(f"--train and --val must be >= 0, got {args.train} and {args.val}")
    if args.workers < 1:
        raise SemguardError(f"--workers must be >= 1, got {args.workers}")
    if args.seed < 0:
        raise SemguardError(f"--seed must be >= 0, got {args.seed}")
    if not args.gap >= 0:
        raise SemguardError(f"--gap must be >= 0 (0: no semantic gap, 1: the default), got {args.gap}")
    out = Path(args.out)
    existing = [out / d for d in ("sim", "real", "paired") if (out / d).exists()]
    if existing and not args.overwrite:
        raise SemguardError(f"{existing[0]} already exists; choose another --out or pass --overwrite to replace it")
    console = Console()
    total = 2 * (args.train + args.val) + args.val
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"rendering {total} frames", total=total)
        make_toy_world(
            out, train=args.train, val=args.val, size=size, seed=args.seed, gap=args.gap,
            workers=args.workers, overwrite=args.overwrite,
            progress=lambda done, _total: progress.update(task, completed=done),
        )
    console.print(
        f"toy world written to {out}: sim/train, real/train ({args.train} each), sim/val, real/val, "
        f"paired/val ({args.val} each), {size[0]}x{size[1]}, seed {args.seed}, gap {args.gap}"
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    from PIL import Image
    from rich.console import Console
    from rich.table import Table

    from semguard.data.toyworld.overview import domain_statistics, find_domains, spatial_prior_image
    from semguard.labels import NUM_CLASSES, TRAIN_ID_NAMES

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
    console = Console()
    console.print(table)
    out = Path(args.out) if args.out else Path(args.root) / "stats.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(spatial_prior_image(stats)).save(out)
    console.print(f"spatial priors (per class, where in the frame it occurs) written to {out}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from PIL import Image
    from rich.console import Console

    from semguard.data.toyworld.overview import preview_grid

    if args.n < 1:
        raise SemguardError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(preview_grid(args.root, count=args.n, scale=args.scale)).save(out)
    Console().print(f"preview written to {out}")
    return 0


def register(subparsers) -> None:
    """Add make-toy, stats and preview to the `data` group's subparsers."""
    make = subparsers.add_parser(
        "make-toy", help="render the toy sim/real driving world to disk",
        description="Render the toy world: sim/{train,val}, real/{train,val} and paired/val "
                    "(sim layouts in the real style) as semguard folder data sets.",
    )
    make.add_argument("--out", required=True, help="output folder")
    make.add_argument("--train", type=int, default=200, help="training frames per domain (default 200)")
    make.add_argument("--val", type=int, default=50, help="validation frames per domain (default 50)")
    make.add_argument("--size", default="128x256", help="frame size HxW (default 128x256)")
    make.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    make.add_argument("--gap", type=float, default=1.0,
                      help="semantic gap strength: 0 none, 1 default, >1 stronger (default 1.0)")
    make.add_argument("--workers", type=int, default=1,
                      help="worker processes; the output does not depend on it (default 1)")
    make.add_argument("--overwrite", action="store_true", help="replace existing sim/, real/, paired/ under --out")
    make.set_defaults(handler=_make_toy)

    stats = subparsers.add_parser(
        "stats", help="per-class pixel shares per domain and spatial-prior maps",
        description="Print per-class pixel shares per domain (sim vs real) and write the spatial "
                    "prior of every class (where in the frame it occurs) as a PNG.",
    )
    stats.add_argument("root", help="a toy world (from make-toy) or a folder data set")
    stats.add_argument("--out", help="PNG to write (default ROOT/stats.png)")
    stats.add_argument("--limit", type=int, default=None, help="at most this many frames per domain")
    stats.set_defaults(handler=_stats)

    preview = subparsers.add_parser(
        "preview", help="a grid of images, label overlays and boxes",
        description="Write a PNG grid: per domain (sim, real, paired) rows of images, coloured "
                    "label overlays and boxes.",
    )
    preview.add_argument("root", help="a toy world (from make-toy) or a folder data set")
    preview.add_argument("--out", required=True, help="PNG to write")
    preview.add_argument("--n", type=int, default=4, help="frames per domain (default 4)")
    preview.add_argument("--scale", type=int, default=None,
                         help="upscale factor (default: about 512 px per frame width)")
    preview.set_defaults(handler=_preview)
