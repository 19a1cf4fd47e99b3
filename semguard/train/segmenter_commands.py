"""`semguard segmenter ...`: train the guide (source labels) or the judge (target labels),
and the crop classifier that reads light states and sign pictograms for box preservation.

Handlers import torch and the models lazily so `semguard --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from semguard.console import output_console
from semguard.data.check import require_usable
from semguard.data.folder import FolderDataset
from semguard.data.formats import open_dataset
from semguard.common import parse_hw
from semguard.errors import ConfigError
from semguard.train.crop_classifier import train_crop_classifier
from semguard.train.segmenter import train_segmenter
from semguard.validate import (
    MAX_COUNT, MAX_STEPS, add_threads_argument, device, existing_path, number, output_file, parse_options, require_memory,
    use_threads, workers,
)


def _size(text: str) -> tuple[int, int] | None:
    """'HxW' -> (H, W); 'none' -> None (full frames). An argparse type: errors are ArgumentTypeErrors."""
    if text.lower() in ("none", "full"):
        return None
    try:
        return parse_hw(text, "--crop")
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _open(root: str, fmt: str, what: str, options: dict | None = None):
    """A labelled data set (sequence of Samples) from ROOT in format FMT (with format options)."""
    if options:
        return open_dataset(root, fmt, **options)
    if fmt == "folder":
        return FolderDataset(root, labels_required=True)
    return open_dataset(root, fmt)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="ROOT", help="labelled training data set")
    parser.add_argument("--format", default="folder", help="data set format of --data and --val (default folder)")
    parser.add_argument("--val", metavar="ROOT", help="labelled validation data set (reported at the end)")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE", default=None,
                        help="format option of --data and --val, repeatable (e.g. version=0.9.14 for carla, "
                             "table=PATH for palette, split=train)")
    parser.add_argument("--check-frames", type=int, default=200,
                        help="frames of --data decoded by the pre-flight check (default 200; -1 = all); "
                             "--val is always checked whole")
    parser.add_argument("--out", required=True, metavar="PATH", help="checkpoint file to write (.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default cpu)")
    parser.add_argument("--workers", type=int, default=0, help="data loading processes (default 0)")
    add_threads_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    parser = subparsers.add_parser("segmenter", help="train the guide (source labels) or the judge (target labels)")
    parser.set_defaults(group_parser=parser)
    group = parser.add_subparsers(dest="segmenter_command", metavar="SUBCOMMAND")

    train = group.add_parser(
        "train", help="train a segmenter (guide on source labels, judge on target labels)",
        description="Train a segmentation_models_pytorch segmenter on labelled frames and write a "
                    "self-describing checkpoint. --role guide: source-domain labels, used by the "
                    "seg-consistency loss. --role judge: target-domain labels, used only by evaluation.",
    )
    _add_common(train)
    train.add_argument("--role", required=True, choices=("guide", "judge", "downstream"),
                       help="guide: source labels (seg-consistency loss); judge: target labels (evaluation); "
                            "downstream: the downstream perception test")
    train.add_argument("--steps", type=int, default=500)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--crop", type=_size, default=(128, 128), metavar="HxW",
                       help="random training crop (default 128x128; 'none' = full frames)")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--small-box-crop-prob", type=float, default=0.2,
                       help="share of crops placed around a traffic light or sign (default 0.2)")
    train.add_argument("--arch", default="unet", help="unet, fpn, deeplabv3plus, ... (default unet)")
    train.add_argument("--class-balance", type=float, default=0.5,
                       help="class weight exponent: w_c = (freq_c / median)^-a (default 0.5 = inverse sqrt; 0 = off)")
    train.add_argument("--encoder", default="resnet18", help="smp encoder name (default resnet18)")
    train.add_argument("--encoder-weights", default="none",
                       help="none (random) or imagenet (read from the local cache only; never downloaded)")
    train.add_argument("--encoder-depth", type=int, default=5)
    train.add_argument("--eval-batch-size", type=int, default=4)
    train.add_argument("--floor-data", metavar="PAIRED",
                       help="judges: a paired truth (source layouts in the target style, e.g. toy/paired/val) on "
                            "which the judge's own flip rates (its floor) are measured and recorded in the checkpoint")
    train.set_defaults(handler=_train_handler)

    crops = group.add_parser(
        "train-crops", help="train the crop classifier (traffic light state, sign pictogram)",
        description="Train a small CNN that reads traffic light states and traffic sign pictograms from "
                    "box crops of labelled target-domain frames; used by box preservation in `semguard eval`.",
    )
    _add_common(crops)
    crops.add_argument("--epochs", type=int, default=30)
    crops.add_argument("--batch-size", type=int, default=128)
    crops.add_argument("--lr", type=float, default=2e-3)
    crops.add_argument("--crop-size", type=int, default=24, help="side of the square crop in pixels (default 24)")
    crops.add_argument("--margin", type=float, default=0.25, help="context added around each box, as a share of its size")
    crops.add_argument("--val-fraction", type=float, default=0.2,
                       help="held-out share of the training frames when --val is not given (default 0.2)")
    crops.set_defaults(handler=_train_crops_handler)


def _train_handler(args) -> int:
    console = output_console()
    options = _preflight(args, {
        "--steps": (args.steps, dict(low=1, high=MAX_STEPS, integer=True)),
        "--batch-size": (args.batch_size, dict(low=1, high=MAX_COUNT, integer=True)),
        "--lr": (args.lr, dict(low=0.0, low_open=True)),
        "--small-box-crop-prob": (args.small_box_crop_prob, dict(low=0.0, high=1.0)),
        "--class-balance": (args.class_balance, dict(low=0.0)),
        "--encoder-depth": (args.encoder_depth, dict(low=1, high=5, integer=True)),
        "--eval-batch-size": (args.eval_batch_size, dict(low=1, high=MAX_COUNT, integer=True)),
    })
    train_set = _open(args.data, args.format, "--data", options)
    val_set = _open(args.val, args.format, "--val", options) if args.val else None
    _require_segmenter_memory(args, train_set, val_set)
    if args.floor_data and args.role != "judge":
        raise ConfigError("--floor-data measures a judge's floor; it applies to --role judge only")
    floor_set = _open(args.floor_data, args.format, "--floor-data", options) if args.floor_data else None
    console.print(f"training a {args.role} segmenter ({args.arch}/{args.encoder}) on {len(train_set)} frames from {args.data}")
    _, metrics = train_segmenter(
        train_set, val_set, role=args.role, steps=args.steps, batch_size=args.batch_size, crop=args.crop,
        lr=args.lr, seed=args.seed, workers=args.workers, device=args.device, out_path=args.out,
        arch=args.arch, encoder=args.encoder, encoder_weights=args.encoder_weights,
        encoder_depth=args.encoder_depth, small_box_crop_prob=args.small_box_crop_prob,
        class_balance=args.class_balance, eval_batch_size=args.eval_batch_size, progress=not args.quiet,
        floor_dataset=floor_set,
        data_info={"root": str(args.data), "format": args.format, "count": len(train_set),
                   # the training domain (dataset.json), so a translator records what its guide read
                   "domain": (getattr(train_set, "info", None) or {}).get("domain"),
                   **({"val_root": str(args.val), "val_count": len(val_set)} if val_set is not None else {})},
    )
    console.print(f"trained {args.steps} steps in {metrics['seconds']:.0f} s, final loss {metrics['train_loss']:.3f}")
    if "val" in metrics:
        _print_iou(console, metrics["val"], args.val)
    if "floor" in metrics:
        floor = metrics["floor"]
        high = [name for name, rate in floor["per_class"].items() if rate > 0.15]
        console.print(f"floor on {args.floor_data} (paired truth): pixel flip {floor['pixel_flip_rate']:.4f}; "
                      f"classes above 15%: {', '.join(high) or 'none'}")
    console.print(f"wrote {args.out}")
    return 0


def _print_iou(console, result: dict, root: str) -> None:
    table = Table(title=f"validation on {root} ({result['images']} frames)")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name, iou in result["per_class_iou"].items():
        table.add_row(name, f"{iou:.3f}")
    console.print(table)
    console.print(f"val mIoU {result['miou']:.4f}  pixel accuracy {result['pixel_accuracy']:.4f}")


# peak memory of a segmenter training step per pixel of the batch's crops (measured on CPU: resnet18 U-Net,
# about 1 KiB per pixel over the process's fixed cost; doubled for margin), and of evaluation (no backward)
SEGMENTER_TRAIN_BYTES_PER_PIXEL = 2048
SEGMENTER_EVAL_BYTES_PER_PIXEL = 512


def _require_segmenter_memory(args, train_set, val_set) -> None:
    """Refuse a --crop x --batch-size (full frames with --crop none) or an --eval-batch-size whose step
    cannot fit in memory, with the estimate. A crop larger than the frames pads them to it."""
    frame = train_set[0].size if len(train_set) else (1, 1)
    crop = args.crop or frame
    require_memory(SEGMENTER_TRAIN_BYTES_PER_PIXEL * args.batch_size * crop[0] * crop[1],
                   (f"training on {crop[0]}x{crop[1]} crops (--crop) of {frame[0]}x{frame[1]} frames" if args.crop
                    else f"training on whole {crop[0]}x{crop[1]} frames (--crop none)")
                   + f" in batches of {args.batch_size} (--batch-size)",
                   "use a smaller --crop or --batch-size (the default 128x128 in batches of 8 fits anywhere)")
    if val_set is not None and len(val_set):
        height, width = val_set[0].size
        require_memory(SEGMENTER_EVAL_BYTES_PER_PIXEL * args.eval_batch_size * height * width,
                       f"evaluating {height}x{width} frames in batches of {args.eval_batch_size} (--eval-batch-size)",
                       "use a smaller --eval-batch-size")


def _train_crops_handler(args) -> int:
    console = output_console()
    options = _preflight(args, {
        "--epochs": (args.epochs, dict(low=1, high=MAX_STEPS, integer=True)),
        "--batch-size": (args.batch_size, dict(low=1, high=MAX_COUNT, integer=True)),
        "--lr": (args.lr, dict(low=0.0, low_open=True)), "--crop-size": (args.crop_size, dict(low=4, high=512, integer=True)),
        "--margin": (args.margin, dict(low=0.0, high=10.0)),
        "--val-fraction": (args.val_fraction, dict(low=0.0, high=1.0, high_open=True)),
    })
    # the crop classifier is a small CNN: its step holds about 1 KiB per crop pixel (estimate with margin)
    require_memory(1024 * args.batch_size * args.crop_size ** 2,
                   f"training on {args.crop_size}x{args.crop_size} crops in batches of {args.batch_size} (--batch-size)",
                   "use a smaller --batch-size or --crop-size")
    train_set = _open(args.data, args.format, "--data", options)
    val_set = _open(args.val, args.format, "--val", options) if args.val else None
    _, metrics = train_crop_classifier(
        train_set, val_set, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, crop_size=args.crop_size,
        margin=args.margin, val_fraction=args.val_fraction, seed=args.seed, device=args.device,
        workers=args.workers, out_path=args.out, progress=not args.quiet,
        data_info={"root": str(args.data), "format": args.format, "count": len(train_set),
                   **({"val_root": str(args.val), "val_count": len(val_set)} if val_set is not None else {})},
    )
    held_out = metrics["val"]
    console.print(f"trained on {metrics['train_crops']} crops in {metrics['seconds']:.0f} s; "
                  f"held-out crops: {held_out['crops']} ({metrics['val_source']})")
    for task, accuracy in held_out["accuracy"].items():
        console.print(f"  {task}: accuracy {accuracy:.3f} over {held_out['counts'][task]} crops")
    console.print(f"wrote {args.out}")
    return 0


def _preflight(args, limits: dict) -> dict:
    """Everything that can be refused before training, refused before training: paths (--out is a
    file outside --data/--val), numbers, and the data of --data (first --check-frames frames),
    --val and --floor-data (all frames), so that no model is lost to a bad argument found at the end. Removes a
    temporary file a killed earlier run left beside --out. Returns the --option dict."""
    floor = getattr(args, "floor_data", None)
    use_threads(args.threads)
    existing_path(args.data, "--data", "dir")
    for flag, root in (("--val", args.val), ("--floor-data", floor)):
        if root:
            existing_path(root, flag, "dir")
    out = output_file(args.out, "--out", {"--data": args.data, "--val": args.val, "--floor-data": floor},
                      example="segmenter.pt")
    number(args.seed, "--seed", low=0, integer=True)
    workers(args.workers, "--workers")
    device(args.device)
    number(args.check_frames, "--check-frames", low=-1, integer=True)
    for flag, (value, limit) in limits.items():
        number(value, flag, **limit)
    options = parse_options(args.option)
    limit = None if args.check_frames < 0 else args.check_frames
    if limit != 0:
        require_usable(args.data, args.format, limit=limit, what="--data", **options)
    for flag, root in (("--val", args.val), ("--floor-data", floor)):
        if root:  # read whole at the end of training: checked whole now
            require_usable(root, args.format, what=flag, **options)
    for stale in Path(out).parent.glob(f".{Path(out).name}.*.tmp"):  # left by a killed save_checkpoint
        stale.unlink(missing_ok=True)
    return options
