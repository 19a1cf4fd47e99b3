"""`semguard ...`: the command line.

Each command group is registered by the module that implements it (`COMMAND_GROUPS`
maps a group name to that module and the one-line summary `semguard --help` lists; the
module's `register(subparsers)` adds its parser and sets `handler`). Handlers turn strings
into objects and call the library.

Why the summaries live here: the command modules import torch, torchvision and
torchmetrics, seconds of work. So, as pip does, `main` reads argv first with a parser that
knows each group by name and summary only, then imports the one chosen group's module;
`semguard --help`, `--version` and top-level argument errors import no command module.

Errors caused by the user (bad arguments, bad files, bad configs) print one clear line
and exit with status 2 (or the error's own `exit_code`: 1 for a frame that failed under
`translate --fail-on-error`); `--debug` shows the traceback. Any other exception is a bug:
one line saying so, status 70, and `--debug` for the traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from dataclasses import dataclass

from rich.markup import escape

from semguard import __version__
from semguard.console import output_console
from semguard.errors import SemguardError


@dataclass(frozen=True)
class CommandGroup:
    """module: implements the group (`register(subparsers)`); summary: its line in `semguard --help`
    (the same text as the module's own `help=`, which tests/test_cli.py checks)."""

    module: str
    summary: str


COMMAND_GROUPS: dict[str, CommandGroup] = {
    "data": CommandGroup("semguard.data.commands", "make the toy world; check, inspect and preview data sets"),
    "segmenter": CommandGroup("semguard.train.segmenter_commands",
                              "train the guide (source labels) or the judge (target labels)"),
    "train": CommandGroup("semguard.train.commands", "train a translator (semguard or a baseline) from a YAML config"),
    "translate": CommandGroup("semguard.translate.commands",
                              "translate a whole data set, labels and boxes carried through"),
    "eval": CommandGroup("semguard.metrics.commands",
                         "FID, KID, flip rates, box preservation; --flip-report writes report files"),
    "export": CommandGroup("semguard.export.commands",
                           "export a translator to ONNX (verified with onnxruntime) plus its input contract"),
    "benchmark": CommandGroup("semguard.benchmark.commands", "run the benchmark a spec describes (any labelled source "
                              "and target): variants, judge, downstream test"),
    "detector": CommandGroup("semguard.detect.commands",
                             "train the downstream detector on a data set's boxes (FCOS, from scratch) and score its mAP"),
}

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 70
# the machine, not semguard: a full disk, a read-only or forbidden path
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
                       errno.EFBIG, errno.EMLINK}

err_console = output_console(stderr=True, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line plus where to look for help."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        err_console.print(f"[bold red]error:[/] {escape(self.prog)}: {escape(message)} (see '{escape(self.prog)} --help')")
        raise SystemExit(EXIT_USER_ERROR)


def build_parser(group: str | None = None) -> argparse.ArgumentParser:
    """The `semguard` parser with `group`'s module imported and its full parser registered; every
    other group is a placeholder of name and summary that accepts any arguments (enough for
    `--help`, and for reading which group argv names)."""
    parser = _Parser(
        prog="semguard",
        description="Make synthetic driving images look real while keeping their labels and boxes true.",
    )
    parser.add_argument("--version", action="version", version=f"semguard {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command_group in COMMAND_GROUPS.items():
        if name == group:
            importlib.import_module(command_group.module).register(subparsers)
        else:
            subparsers.add_parser(name, help=command_group.summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # --help, --version and errors before the group (an unknown one included) end here
    chosen, _ = build_parser().parse_known_args(argv)
    parser = build_parser(chosen.command)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # a group named without its subcommand, or nothing at all
        target = getattr(args, "group_parser", parser)
        target.print_help()
        return EXIT_USER_ERROR if args.command else 0
    try:
        code = handler(args)
    except SemguardError as err:
        if args.debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(err))}")
        return int(getattr(err, "exit_code", EXIT_USER_ERROR))
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130
    except MemoryError:
        if args.debug:
            raise
        err_console.print("[bold red]error:[/] out of memory; use smaller sizes, batches or tiles (see the command's --help)")
        return EXIT_USER_ERROR
    except Exception as err:  # a bug: say so in one line, keep the traceback for --debug
        if args.debug:
            raise
        if isinstance(err, OSError) and err.errno in _ENVIRONMENT_ERRNOS:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}; free space or fix permissions and rerun")
            return EXIT_USER_ERROR
        err_console.print(
            f"[bold red]internal error:[/] {type(err).__name__}: {escape(str(err))} "
            "(this is a bug in semguard; rerun with --debug for the traceback)"
        )
        return EXIT_INTERNAL_ERROR
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
