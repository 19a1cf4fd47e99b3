"""`semguard detector ...`: train the downstream detector on a data set's boxes, and score it.

    semguard detector train --data ROOT [--format F] [--option K=V] --out detector.pt
                            [--steps N] [--seed S] [--size HxW] [--threads T] [--val ROOT]
    semguard detector eval --checkpoint detector.pt --data ROOT [--format F] --out report.json

A set without boxes of the detector's classes is refused in one line (exit 2) before any
training; `semguard.detect.has_boxes` gives the benchmark the same line to skip the stage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.table import Table

from semguard.common import file_sha256, parse_hw
from semguard.console import output_console
from semguard.data.check import require_usable
from semguard.data.folder import FolderDataset
from semguard.data.formats import open_dataset
from semguard.detect.checkpoint import load_detector, save_detector
from semguard.detect.evaluate import evaluate_detector, map_backend
from semguard.detect.targets import DETECTOR_CLASSES, has_boxes
from semguard.detect.train import DEFAULT_BATCH_SIZE, DEFAULT_LR, DEFAULT_STEPS, train_detector
from semguard.errors import ConfigError, DataError
from semguard.files import write_atomically
from semguard.validate import (
    MAX_COUNT, MAX_STEPS, add_option_argument, add_threads_argument, device, existing_path, number, output_file,
    parse_options, use_threads,
)

HELP = "train the downstream detector on a data set's boxes (FCOS, from scratch) and score its mAP"


def _size(text: str) -> tuple[int, int] | None:
    """'HxW' -> (H, W); 'frame' -> None (the training frames' own size). An argparse type."""
    if text.lower() in ("frame", "none", "full"):
        return None
    try:
        return parse_hw(text, "--size", minimum=8)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="folder", help="data set format (default folder)")
    add_option_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default cpu)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"frames per step or per evaluation batch (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def register(subparsers) -> None:
    parser = subparsers.add_parser("detector", help=HELP)
    parser.set_defaults(group_parser=parser)
    group = parser.add_subparsers(dest="detector_command", metavar="SUBCOMMAND")

    train = group.add_parser(
        "train", help="train a detector (traffic light, traffic sign, person, car) on a labelled set's boxes",
        description="Train torchvision's FCOS on a small backbone from random weights (nothing is downloaded) "
                    "on the boxes of traffic lights, traffic signs, persons and cars, and write a "
                    "self-describing checkpoint. A set without such boxes is refused.",
    )
    train.add_argument("--data", required=True, metavar="ROOT", help="labelled training data set with boxes")
    train.add_argument("--val", metavar="ROOT",
                       help="data set with boxes scored at the end (recorded in the checkpoint)")
    train.add_argument("--out", required=True, metavar="PATH", help="checkpoint file to write (.pt)")
    train.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                       help=f"optimisation steps (default {DEFAULT_STEPS}: about 3 minutes on one CPU thread "
                            "for 64x128 frames)")
    train.add_argument("--seed", type=int, default=0, help="weights, frame order and flips (default 0)")
    train.add_argument("--size", type=_size, default=None, metavar="HxW",
                       help="frame size the detector sees; frames are resized (aspect kept) to fit it "
                            "(default: the first training frame's size, no resizing)")
    train.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"AdamW learning rate (default {DEFAULT_LR})")
    train.add_argument("--no-hflip", action="store_true", help="no random horizontal flips")
    train.add_argument("--check-frames", type=int, default=200,
                       help="frames of --data decoded by the pre-flight check (default 200; -1 = all)")
    _add_common(train)
    train.set_defaults(handler=_train_handler)

    score = group.add_parser(
        "eval", help="score a detector on a data set's boxes: mAP, mAP@0.5, AP per class (report.json)",
        description="COCO mAP (IoU 0.50:0.95), mAP at IoU 0.5 and 0.75, and AP per class through torchmetrics' "
                    "MeanAveragePrecision, with the number of boxes per class; the report records what produced it.",
    )
    score.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint of `semguard detector train`")
    score.add_argument("--data", required=True, metavar="ROOT", help="labelled data set with boxes to score on")
    score.add_argument("--out", metavar="PATH",
                       help="report file to write (.json); without it only the table is printed")
    _add_common(score)
    score.set_defaults(handler=_eval_handler)


def _open(root: str, fmt: str, options: dict):
    if not options and fmt == "folder":
        return FolderDataset(root, labels_required=True)
    return open_dataset(root, fmt, **options)


def _open_with_boxes(root: str, fmt: str, options: dict, flag: str):
    """The data set at ROOT; a DataError in one line when it has no boxes of the detector's classes."""
    dataset = _open(root, fmt, options)
    usable, reason = has_boxes(dataset, what=f"{flag} {root}")
    if not usable:
        raise DataError(reason)
    return dataset


def _common_checks(args, limits: dict) -> dict:
    device(args.device)
    number(args.batch_size, "--batch-size", low=1, high=MAX_COUNT, integer=True)
    for flag, (value, limit) in limits.items():
        number(value, flag, **limit)
    map_backend()  # refuse before training when mAP cannot be computed
    return parse_options(args.option)


def _train_handler(args) -> int:
    console = output_console()
    use_threads(args.threads)
    existing_path(args.data, "--data", "dir")
    if args.val:
        existing_path(args.val, "--val", "dir")
    out = output_file(args.out, "--out", {"--data": args.data, "--val": args.val}, example="detector.pt")
    options = _common_checks(args, {
        "--steps": (args.steps, dict(low=1, high=MAX_STEPS, integer=True)),
        "--seed": (args.seed, dict(low=0, integer=True)),
        "--lr": (args.lr, dict(low=0.0, low_open=True)),
        "--check-frames": (args.check_frames, dict(low=-1, integer=True)),
    })
    limit = None if args.check_frames < 0 else args.check_frames
    if limit != 0:
        require_usable(args.data, args.format, limit=limit, what="--data", **options)
    if args.val:
        require_usable(args.val, args.format, what="--val", **options)
    train_set = _open_with_boxes(args.data, args.format, options, "--data")
    val_set = _open_with_boxes(args.val, args.format, options, "--val") if args.val else None
    for stale in Path(out).parent.glob(f".{Path(out).name}.*.tmp"):  # left by a killed save_checkpoint
        stale.unlink(missing_ok=True)
    every = max(1, args.steps // 10)

    def log(step: int, terms: dict) -> None:
        if not args.quiet and (step % every == 0 or step == args.steps):
            text = "  ".join(f"{name} {value:.3f}" for name, value in terms.items())
            console.print(f"step {step}/{args.steps}  {text}")

    console.print(f"training a detector on {len(train_set)} frames from {args.data} ({args.steps} steps, "
                  f"batch {args.batch_size}, seed {args.seed}, torch threads: {torch.get_num_threads()})")
    data_info = {"root": str(args.data), "format": args.format, "options": options, "count": len(train_set),
                 "domain": (getattr(train_set, "info", None) or {}).get("domain")}
    model, metrics = train_detector(
        train_set, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, size=args.size,
        hflip=not args.no_hflip, device=args.device, out_path=None, log=log,
    )
    if val_set is not None:
        metrics["val"] = evaluate_detector(model, val_set, batch_size=args.batch_size)
        data_info.update(val_root=str(args.val), val_count=len(val_set))
    save_detector(out, model, DETECTOR_CLASSES, step=args.steps, training=metrics["training"], metrics=metrics,
                  data=data_info)
    console.print(f"trained {args.steps} steps in {metrics['seconds']:.0f} s, final loss {metrics['train_loss']:.3f}")
    if "val" in metrics:
        _print_scores(console, metrics["val"], args.val)
    console.print(f"wrote {out}")
    return 0


def _eval_handler(args) -> int:
    console = output_console()
    use_threads(args.threads)
    existing_path(args.checkpoint, "--checkpoint", "file")
    existing_path(args.data, "--data", "dir")
    out = output_file(args.out, "--out", {"--data": args.data, "--checkpoint": args.checkpoint},
                      example="report.json") if args.out else None
    options = _common_checks(args, {})
    model, metadata = load_detector(args.checkpoint, device=args.device)
    class_ids = tuple(metadata["class_ids"])
    require_usable(args.data, args.format, what="--data", **options)
    dataset = _open_with_boxes(args.data, args.format, options, "--data")
    if not args.quiet:
        console.print(f"scoring {args.checkpoint} on {len(dataset)} frames of {args.data}")
    scores = evaluate_detector(model, dataset, class_ids=class_ids, batch_size=args.batch_size)
    build = metadata["build"]
    report = {
        **scores,
        "protocol": {
            "checkpoint": str(args.checkpoint), "checkpoint_sha256": file_sha256(args.checkpoint),
            "data": str(args.data), "format": args.format, "options": options,
            "frame_size": list(dataset[0].size), "detector_size": build["size"],
            "resize": "bilinear, aspect kept, to fit detector_size (torchvision GeneralizedRCNNTransform)",
            "class_ids": list(class_ids), "score_thresh": build["score_thresh"], "nms_thresh": build["nms_thresh"],
            "detections_per_img": build["detections_per_img"],
            "training": metadata.get("training"), "training_data": metadata.get("data"),
            "threads": torch.get_num_threads(),
        },
    }
    _print_scores(console, scores, args.data)
    if out is not None:
        with write_atomically(out) as temporary:
            temporary.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {out}")
    return 0


def _text(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_scores(console, scores: dict, root) -> None:
    table = Table(title=f"detection on {root} ({scores['images']} frames)")
    for column in ("class", "AP", "AP@0.5", "boxes", "detections"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, ap in scores["ap_per_class"].items():
        table.add_row(name, _text(ap), _text(scores["ap_50_per_class"][name]), str(scores["boxes_per_class"][name]),
                      str(scores["detections_per_class"][name]))
    console.print(table)
    console.print(f"mAP {_text(scores['map'])}  mAP@0.5 {_text(scores['map_50'])}  mAP@0.75 {_text(scores['map_75'])}")
