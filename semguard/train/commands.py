"""`semguard train`: train a translator (semguard or a baseline) from a YAML config.

    semguard train --config configs/toy.yaml [--set train.steps=200 ...] [--out DIR] [--device cpu] [--resume]

Under torchrun (`torchrun --nproc_per_node N -m semguard.cli train --config ...`) each
process trains on its share of the data (DistributedDataParallel); rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import os

from semguard.config import load_config
from semguard.console import output_console
from semguard.train.trainer import train
from semguard.validate import add_threads_argument, use_threads


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
    add_threads_argument(parser)
    parser.set_defaults(handler=run_train)


def run_train(args) -> int:
    use_threads(args.threads)
    config = load_config(args.config, list(args.overrides))
    if args.out is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, out=args.out))
    if args.device is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, device=args.device))
    # train() checks the whole run first (config_checks.check_run) and holds train.out while it runs
    result = train(config, resume=args.resume, show_progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        terms = " ".join(f"{name} {value:.4g}" for name, value in result.last_terms.items())
        output_console().print(
            f"trained {result.step} steps ({result.images_per_s:.1f} img/s); final checkpoint {result.final_checkpoint}"
            + (f"; last terms: {terms}" if terms else "")
        )
    return 0
