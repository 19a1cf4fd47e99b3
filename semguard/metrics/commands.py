"""`semguard eval`: FID, KID, flip rates, box preservation; `--flip-report` writes report files.

    semguard eval (--checkpoint CK | --translated DIR) (--data TOYDIR | --source ROOT --target-val ROOT
                  [--paired ROOT]) --judge J [--crop-classifier C] [--features judge|inception|none]
                  [--flip-report --out OUT]
    semguard eval --compare A.json B.json ...

Without --flip-report only the summary table is printed (nothing is written).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="FID, KID, flip rates, box preservation; --flip-report writes report files",
        description="Measure translated source images with the judge segmenter: per-class flip rates and the c -> c' "
                    "flip table, FID/KID against target images, box and attribute preservation, distance to the "
                    "paired truth; side by side with the untranslated source and the paired truth (the floor).",
    )
    what = parser.add_argument_group("what to evaluate (one of)")
    what.add_argument("--checkpoint", metavar="CK", help="translator checkpoint: translate the source val set now")
    what.add_argument("--translated", metavar="DIR", help="folder of translated images (semguard translate output)")
    what.add_argument("--compare", nargs="+", metavar="REPORT", help="print several report.json side by side")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="TOYDIR", help="toy world root: sim/val, real/val, paired/val")
    data.add_argument("--source", metavar="ROOT", help="labelled source validation set")
    data.add_argument("--source-format", default="folder", help="format of --source (default folder)")
    data.add_argument("--target-val", metavar="ROOT", help="labelled target validation set")
    data.add_argument("--target-format", default="folder", help="format of --target-val (default folder)")
    data.add_argument("--paired", metavar="ROOT", help="paired truth (source layouts in the target style), optional")
    models = parser.add_argument_group("judges")
    models.add_argument("--judge", metavar="J", help="judge segmenter checkpoint (role judge, trained on target labels)")
    models.add_argument("--crop-classifier", metavar="C", help="crop classifier checkpoint (light state, sign pictogram)")
    options = parser.add_argument_group("options")
    options.add_argument("--features", default="judge", choices=("judge", "inception", "none"),
                         help="FID/KID feature extractor (default judge; inception needs its cached weight file)")
    options.add_argument("--flip-report", action="store_true", help="write report.json, report.md and pictures to --out")
    options.add_argument("--out", metavar="OUT", help="output folder of the flip report")
    options.add_argument("--batch-size", type=int, default=4)
    options.add_argument("--seed", type=int, default=0, help="seed of KID's random subsets")
    options.add_argument("--kid-subsets", type=int, default=100)
    options.add_argument("--kid-subset-size", type=int, default=1000)
    options.add_argument("--resize", metavar="HxW", help="evaluate at this size (images bilinear, labels nearest)")
    options.add_argument("--worst", type=int, default=6, help="worst images drawn per variant")
    options.add_argument("--max-images", type=int, help="evaluate only the first N source frames")
    options.add_argument("--no-lpips", action="store_true", help="skip LPIPS to the paired truth")
    options.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(handler=run_eval)


def _parse_size(text: str | None) -> tuple[int, int] | None:
    from semguard.errors import ConfigError

    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--resize expects HxW, e.g. 128x256, got {text!r}") from None
    if height <= 0 or width <= 0:
        raise ConfigError(f"--resize sizes must be positive, got {text!r}")
    return height, width


def _report_label(path: str, all_paths: list[str]) -> str:
    """A short column title: the run folder of OUT/report.json (the full path when ambiguous)."""
    from pathlib import Path

    def short(p: str) -> str:
        return Path(p).parent.name if Path(p).name == "report.json" and Path(p).parent.name else Path(p).stem

    return short(path) if [short(p) for p in all_paths].count(short(path)) == 1 else path


def run_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from semguard.errors import ConfigError
    from semguard.metrics import report as report_module

    console = Console()
    if args.compare:
        if args.checkpoint or args.translated:
            raise ConfigError("--compare prints existing reports; do not combine it with --checkpoint/--translated")
        reports = [(_report_label(path, args.compare), report_module.read_report(path)) for path in args.compare]
        report_module.print_comparison(reports, console)
        return 0
    if bool(args.checkpoint) == bool(args.translated):
        raise ConfigError("give exactly one of --checkpoint CK (translate now) or --translated DIR (or --compare A.json ...)")
    if not args.judge:
        raise ConfigError("--judge J is required: a segmenter trained on target labels (`semguard segmenter train --role judge`)")
    if args.flip_report and not args.out:
        raise ConfigError("--flip-report writes files: give --out OUT")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")

    from semguard.metrics.evaluate import EvalData, EvalSettings, evaluate, write_report_files

    if args.data:
        if args.source or args.target_val:
            raise ConfigError("give either --data TOYDIR or --source/--target-val, not both")
        data = EvalData.toy(args.data)
        if args.paired:
            data = EvalData(data.source_val, data.target_val, args.paired)
    else:
        if not (args.source and args.target_val):
            raise ConfigError("give --data TOYDIR, or both --source ROOT and --target-val ROOT")
        data = EvalData(args.source, args.target_val, args.paired, args.source_format, args.target_format)
    settings = EvalSettings(
        features=None if args.features == "none" else args.features, batch_size=args.batch_size, seed=args.seed,
        kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, resize=_parse_size(args.resize),
        worst_k=args.worst if args.flip_report else 0, device=args.device, lpips=not args.no_lpips,
        max_images=args.max_images,
    )
    report = evaluate(
        data, args.judge, checkpoint=args.checkpoint, translated_dir=args.translated,
        crop_classifier=args.crop_classifier, settings=settings, out=args.out if args.flip_report else None,
        progress=lambda message: console.print(f"[dim]{message}[/]"),
    )
    report = report_module.json_safe(report)
    report_module.print_summary(report, console, full=args.flip_report)
    if args.flip_report:
        paths = write_report_files(report, args.out)
        console.print(f"wrote {paths['json']}, {paths['markdown']} and {len(report['figures'])} pictures under "
                      f"{args.out}/figures")
    return 0
