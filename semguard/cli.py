"""`semguard ...`: the command line.

Each command group is registered by the module that implements it (`COMMAND_GROUPS`
maps a group name to that module; the module's `register(subparsers)` adds its parser
and sets `handler`). Handlers turn strings into objects and call the library.

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

from rich.markup import escape

from semguard import __version__
from semguard.console import output_console
from semguard.errors import SemguardError

COMMAND_GROUPS: dict[str, str] = {
    "data": "semguard.data.commands",
    "segmenter": "semguard.train.segmenter_commands",
    "train": "semguard.train.commands",
    "translate": "semguard.translate.commands",
    "eval": "semguard.metrics.commands",
    "export": "semguard.export.commands",
}

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 70
# the machine, not semguard: a full disk, a read-only or forbidden path
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}

err_console = output_console(stderr=True, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line plus where to look for help."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        err_console.print(f"[bold red]error:[/] {escape(self.prog)}: {escape(message)} (see '{escape(self.prog)} --help')")
        raise SystemExit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="semguard",
        description="Make synthetic driving images look real while keeping their labels and boxes true.",
    )
    parser.add_argument("--version", action="version", version=f"semguard {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in COMMAND_GROUPS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
