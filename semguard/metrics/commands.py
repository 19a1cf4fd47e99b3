"""`semguard eval`: FID, KID, flip rates, box preservation; `--flip-report` writes report files.

    semguard eval (--checkpoint CK | --translated DIR) (--data TOYDIR | --source ROOT --target-val ROOT
                  [--paired ROOT]) --judge J [--crop-classifier C] [--features judge|inception|none]
                  [--flip-report --out OUT]
    semguard eval --compare A.json B.json ...
    semguard eval --flicker (--checkpoint CK [--temporal none|clip] | --translated DIR) --clips TOYDIR/clips
                  --judge J --out OUT          (flicker.json, flicker.md, flicker_over_time.png)

Without --flip-report only the summary table is printed (nothing is written). With --json the
result is printed as JSON on stdout instead of the tables (the report.json document, or the
flicker.json one with --flicker); progress and "wrote ..." lines go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from semguard.checkpoints import load_checkpoint
from semguard.console import output_console, print_json
from semguard.data.check import require_usable
from semguard.common import file_sha256, parse_hw
from semguard.errors import ConfigError
from semguard.metrics import flicker as flicker_module
from semguard.metrics import report as report_module
from semguard.metrics.evaluate import EvalData, EvalSettings, evaluate
from semguard.validate import device, existing_path, number, output_folder, parse_options, require_memory


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="FID, KID, flip rates, box preservation; --flip-report writes report files",
        description="Measure translated source images with the judge segmenter, side by side with the untranslated "
                    "source and the paired truth (the judge's floor): pixel flip rate and its excess over the floor, "
                    "the mean flip over the classes the judge reads reliably (floor <= 15%, judge IoU >= 50%), with "
                    "bootstrap intervals over frames; per-class flip rates and the c -> c' flip table; realism on "
                    "matched content (KID/FID to the paired truth, sKVD on label-matched crops of the target set) and, "
                    "secondary, KID/FID against the target set; box and attribute preservation. FID is given only "
                    "with more images than feature dimensions.",
    )
    what = parser.add_argument_group("what to evaluate (one of)")
    what.add_argument("--checkpoint", metavar="CK", help="translator checkpoint: translate the source val set now")
    what.add_argument("--translated", metavar="DIR",
                      help="translated images made elsewhere: DIR/images/NAME.png (RGB, the source frame's size) for "
                           "every NAME of the source validation set, as `semguard translate --format folder` writes "
                           "them; labels and boxes are read from the source set, not from DIR")
    what.add_argument("--compare", nargs="+", metavar="REPORT", help="print several report.json side by side")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="TOYDIR", help="toy world root: sim/val, real/val, paired/val")
    data.add_argument("--source", metavar="ROOT", help="labelled source validation set")
    data.add_argument("--source-format", default="folder", help="format of --source (default folder)")
    data.add_argument("--target-val", metavar="ROOT", help="labelled target validation set")
    data.add_argument("--target-format", default="folder", help="format of --target-val (default folder)")
    data.add_argument("--paired", metavar="ROOT", help="paired truth (source layouts in the target style), optional")
    data.add_argument("--option", action="append", metavar="KEY=VALUE", default=None,
                      help="format option of both --source and --target-val, repeatable (e.g. split=val)")
    data.add_argument("--source-option", action="append", metavar="KEY=VALUE", default=None,
                      help="format option of --source only (e.g. version=0.9.14 for carla), repeatable")
    data.add_argument("--target-option", action="append", metavar="KEY=VALUE", default=None,
                      help="format option of --target-val only, repeatable")
    models = parser.add_argument_group("judges")
    models.add_argument("--judge", metavar="J", help="judge segmenter checkpoint (role judge, trained on target labels)")
    models.add_argument("--crop-classifier", metavar="C", help="crop classifier checkpoint (light state, sign pictogram)")
    options = parser.add_argument_group("options")
    options.add_argument("--features", default="judge", choices=("judge", "inception", "none"),
                         help="FID/KID feature extractor (default judge; inception needs its cached weight file)")
    options.add_argument("--flip-report", action="store_true", help="write report.json, report.md and pictures to --out")
    options.add_argument("--out", metavar="OUT", help="output folder of the flip report")
    options.add_argument("--json", action="store_true",
                         help="print the result as JSON on stdout (the report.json document; with --flicker the "
                              "flicker.json one) instead of the tables; progress goes to stderr")
    options.add_argument("--batch-size", type=int, default=4)
    options.add_argument("--seed", type=int, default=0, help="seed of KID's random subsets")
    options.add_argument("--kid-subsets", type=int, default=100)
    options.add_argument("--kid-subset-size", type=int, default=1000)
    options.add_argument("--resize", metavar="HxW", help="evaluate at this size (images bilinear, labels nearest)")
    options.add_argument("--worst", type=int, default=6, help="worst images drawn per variant")
    options.add_argument("--max-images", type=int, help="evaluate only the first N source frames")
    options.add_argument("--no-lpips", action="store_true", help="skip LPIPS to the paired truth")
    options.add_argument("--device", default="cpu", help="torch device (default cpu)")
    flicker = parser.add_argument_group("flicker of sequence sets (semguard.metrics.flicker)")
    flicker.add_argument("--flicker", action="store_true",
                         help="static-region and flip flicker of clips: writes flicker.json, flicker.md and "
                              "flicker_over_time.png to --out")
    flicker.add_argument("--clips", metavar="DIR", help="TOYDIR/clips (sim/ + paired/) or a sequence set named CLIP/FRAME")
    flicker.add_argument("--temporal", default="none", choices=("none", "clip"),
                         help="with --checkpoint: translate each clip with per-frame (none) or clip statistics")
    flicker.add_argument("--max-clips", type=int, help="evaluate only the first N clips")
    parser.set_defaults(handler=run_eval)


def _parse_size(text: str | None) -> tuple[int, int] | None:
    return None if text is None else parse_hw(text, "--resize")


def _report_label(path: str, all_paths: list[str]) -> str:
    """A short column title: the run folder of OUT/report.json (the full path when ambiguous)."""
    def short(p: str) -> str:
        return Path(p).parent.name if Path(p).name == "report.json" and Path(p).parent.name else Path(p).stem

    return short(path) if [short(p) for p in all_paths].count(short(path)) == 1 else path


def run_eval(args: argparse.Namespace) -> int:
    console = output_console(stderr=args.json)   # with --json, stdout holds the JSON document only
    if args.compare:
        if args.checkpoint or args.translated:
            raise ConfigError("--compare prints existing reports; do not combine it with --checkpoint/--translated")
        if args.json:
            raise ConfigError("--json prints the result of an evaluation; the report.json / flicker.json files "
                              "given to --compare are JSON already")
        for path in args.compare:
            existing_path(path, "--compare", "file")
        if all(flicker_module.is_flicker_report(_read_json(path)) for path in args.compare):
            flicker_module.print_flicker_comparison(
                [(flicker_module.report_label(path, args.compare), flicker_module.read_flicker_report(path))
                 for path in args.compare],
                console)
            return 0
        reports = [(_report_label(path, args.compare), report_module.read_report(path)) for path in args.compare]
        report_module.print_comparison(reports, console)
        _compare_flicker_beside(args.compare, console)
        return 0
    if bool(args.checkpoint) == bool(args.translated):
        raise ConfigError("give exactly one of --checkpoint CK (translate now) or --translated DIR (or --compare A.json ...)")
    if not args.judge:
        raise ConfigError("--judge J is required: a segmenter trained on target labels (`semguard segmenter train --role judge`)")
    if args.flicker:
        return _run_flicker(args, console)
    if args.flip_report and not args.out:
        raise ConfigError("--flip-report writes files: give --out OUT")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    source_options, target_options = _check_arguments(args)
    if args.checkpoint and args.crop_classifier:
        _refuse_trained_against(args.checkpoint, args.crop_classifier)
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
    data = dataclasses.replace(data, source_options=source_options, target_options=target_options)
    _check_data(data, args.max_images)
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
    if not args.json:
        report_module.print_summary(report, console, full=args.flip_report)
    if args.flip_report:
        paths = report_module.write_report_files(report, args.out)
        console.print(f"wrote {paths['json']}, {paths['markdown']} and {len(report['figures'])} pictures under "
                      f"{args.out}/figures")
    if args.json:
        print_json(report)
    return 0


def _refuse_trained_against(checkpoint: str, crop_classifier: str) -> None:
    """Refuse to report box attributes with the crop classifier the translator trained against
    (its guide.crop_classifier, the same file or a copy): the metric would be the objective."""
    guide = ((load_checkpoint(checkpoint).get("config") or {}).get("guide") or {}).get("crop_classifier")
    if not guide or not Path(guide).is_file():
        return
    if Path(guide).resolve() == Path(crop_classifier).resolve() or file_sha256(guide) == file_sha256(crop_classifier):
        raise ConfigError(
            f"--crop-classifier {crop_classifier} is the crop classifier {checkpoint} trained against "
            f"(guide.crop_classifier {guide}); its readings would be the training objective, not a measurement. "
            "Report with a crop classifier trained apart (another seed or split: `semguard segmenter train-crops`)")


def _check_arguments(args: argparse.Namespace) -> tuple[dict, dict]:
    """Refuse bad paths and numbers before any work (an --out equal to or inside an input, a
    missing judge...); returns the format options of the source and target sets."""
    for flag, kind in (("checkpoint", "file"), ("translated", "dir"), ("judge", "file"), ("crop_classifier", "file"),
                       ("data", "dir"), ("source", "dir"), ("target_val", "dir"), ("paired", "dir")):
        value = getattr(args, flag)
        if value:
            existing_path(value, "--" + flag.replace("_", "-"), kind)
    if args.out:
        inputs = {f"--{flag.replace('_', '-')}": getattr(args, flag)
                  for flag in ("data", "source", "target_val", "paired", "translated")}
        output_folder(args.out, "--out", inputs)
    number(args.seed, "--seed", low=0, integer=True)
    number(args.kid_subsets, "--kid-subsets", low=1, integer=True)
    number(args.kid_subset_size, "--kid-subset-size", low=1, integer=True)
    number(args.worst, "--worst", low=0, high=1000, integer=True)
    number(args.max_images, "--max-images", low=1, integer=True)
    device(args.device, allow_auto=False)
    size = _parse_size(args.resize)
    if size is not None:  # images, judge activations and features of a batch; about 2 kB per pixel
        require_memory(2048 * args.batch_size * size[0] * size[1], f"evaluating at --resize {args.resize} with "
                       f"--batch-size {args.batch_size}", "use a smaller --resize or --batch-size")
    both = parse_options(args.option)
    source = {**both, **parse_options(args.source_option, "--source-option")}
    target = {**both, **parse_options(args.target_option, "--target-option")}
    return source, target


def _check_data(data, max_images: int | None) -> None:
    """The source (first --max-images frames) and target validation sets, checked before any work."""
    existing_path(data.source_val, "source validation set", "dir")
    existing_path(data.target_val, "target validation set", "dir")
    require_usable(data.source_val, data.source_format, limit=max_images, what="source validation set",
                   **data.source_options)
    require_usable(data.target_val, data.target_format, what="target validation set", **data.target_options)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None   # read_report names the problem


def _compare_flicker_beside(paths: list[str], console) -> None:
    """With --compare of report.json files: the flicker.json beside each, when every one has it."""
    beside = [Path(path).with_name("flicker.json") for path in paths]
    if all(path.is_file() for path in beside):
        flicker_module.print_flicker_comparison(
            [(_report_label(path, paths), flicker_module.read_flicker_report(b)) for path, b in zip(paths, beside)],
            console)


def _run_flicker(args: argparse.Namespace, console) -> int:
    """`eval --flicker`: the flicker report of a sequence set."""
    if not args.clips or not args.out:
        raise ConfigError("--flicker needs --clips DIR (TOYDIR/clips or a sequence set) and --out OUT")
    if args.translated and args.temporal != "none":
        raise ConfigError("--temporal applies to --checkpoint (translate now); a --translated set was translated "
                          "already (`semguard translate --temporal clip`)")
    existing_path(args.clips, "--clips", "dir")
    for flag in ("checkpoint", "translated", "judge", "paired"):
        value = getattr(args, flag)
        if value:
            existing_path(value, "--" + flag, "file" if flag in ("checkpoint", "judge") else "dir")
    number(args.max_clips, "--max-clips", low=1, integer=True)
    clips = Path(args.clips)
    source, paired = (clips / "sim", clips / "paired") if (clips / "sim" / "images").is_dir() else (clips, None)
    paired = Path(args.paired) if args.paired else (paired if paired is not None and paired.is_dir() else None)
    output_folder(args.out, "--out", {"--clips": args.clips, "--translated": args.translated})
    report = flicker_module.evaluate_flicker(
        source, args.judge, checkpoint=args.checkpoint, translated_root=args.translated, paired_root=paired,
        temporal=args.temporal, device=args.device, max_clips=args.max_clips,
        progress=lambda message: console.print(f"[dim]{message}[/]"))
    if not args.json:
        flicker_module.print_flicker(report, console)
    paths = flicker_module.write_flicker_files(report, args.out)
    console.print(f"wrote {paths['json']}, {paths['markdown']} and {paths['picture']}")
    if args.json:
        print_json(report_module.json_safe(report))
    return 0
