"""`semguard train`: train a translator (semguard or a baseline) from a YAML config.

    semguard train --config configs/toy.yaml [--set train.steps=200 ...] [--out DIR] [--device cpu] [--resume]

Under torchrun (`torchrun --nproc_per_node N -m semguard.cli train --config ...`) each
process trains on its share of the data (DistributedDataParallel); rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

from semguard.checkpoints import remove_stale_temporaries
from semguard.config import load_config
from semguard.config_checks import check_config, require_training_memory, target_label_users
from semguard.data.check import require_usable
from semguard.output_lock import hold_output
from semguard.console import output_console
from semguard.train.trainer import CHECKPOINT_DIR, SAMPLE_DIR, train
from semguard.validate import device, existing_path, output_folder, workers


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a translator (semguard or a baseline) from a YAML config",
        description="Train a translator from a YAML config (see configs/). Writes OUT/config.yaml, OUT/log.jsonl, "
                    "OUT/samples/*.png, OUT/checkpoints/step_*.pt (last train.keep_last), OUT/final.pt and, with "
                    "train.logger: tensorboard, OUT/tensorboard/ (TensorBoard event files).",
    )
    parser.add_argument("--config", required=True, help="YAML run config, e.g. configs/toy.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.steps=200 (repeatable)")
    parser.add_argument("--out", default=None, help="output folder (overrides train.out)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides train.device)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the output folder from its newest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log.jsonl is still written)")
    parser.set_defaults(handler=run_train)


def run_train(args) -> int:
    config = load_config(args.config, list(args.overrides))
    if args.out is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, out=args.out))
    if args.device is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, device=args.device))
    rank_zero = int(os.environ.get("RANK", "0")) == 0
    _check_run(config, rank_zero=rank_zero)
    # one run per train.out (semguard.output_lock): a second one stops at once, naming the first
    with hold_output(config.train.out, "train", "train.out (--out)") if rank_zero else contextlib.nullcontext():
        result = train(config, resume=args.resume, show_progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        terms = " ".join(f"{name} {value:.4g}" for name, value in result.last_terms.items())
        output_console().print(
            f"trained {result.step} steps ({result.images_per_s:.1f} img/s); final checkpoint {result.final_checkpoint}"
            + (f"; last terms: {terms}" if terms else "")
        )
    return 0


def _check_run(config, rank_zero: bool = True) -> None:
    """Refuse, before anything is built: inconsistent settings, sizes that cannot fit in memory,
    absurd step counts, a target set with label problems when the run uses its labels, missing data
    or guide files, and a run folder (train.out)
    that is a file, equals or lies inside a data set (its checkpoints and samples would poison
    the set), or holds a symlink out of it. Removes the temporary files a killed run left in
    the run folder and its checkpoints/ (rank 0 only)."""
    data = config.data
    check_config(config)
    require_training_memory(config)
    device(config.train.device, "train.device (--device)")
    workers(data.workers, "data.workers")
    existing_path(data.source, "data.source", "dir")
    existing_path(data.target, "data.target", "dir")
    users = target_label_users(config)
    opted_out = str(data.target_options.get("labels_required", True)).strip().lower() in ("false", "0", "no", "off")
    if users and not opted_out and data.check_frames != 0 and rank_zero:
        # the run learns from the target labels: refused like the source's, not read silently (ids outside
        # the format's table would go to ignore without a word)
        limit = None if data.check_frames < 0 else data.check_frames
        require_usable(data.target, data.target_format, limit=limit,
                       what=f"data.target (its labels are used by {' and '.join(users)})",
                       **{**data.target_options, "labels_required": True})
    if config.guide.checkpoint:
        existing_path(config.guide.checkpoint, "guide.checkpoint", "file")
    for extra in getattr(config.guide, "ensemble", ()) or ():
        existing_path(extra, "guide.ensemble", "file")
    out = output_folder(config.train.out, "train.out (--out)", {"data.source": data.source, "data.target": data.target})
    if rank_zero:
        remove_stale_temporaries(out, Path(out) / CHECKPOINT_DIR, Path(out) / SAMPLE_DIR)
