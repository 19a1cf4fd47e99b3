"""`semguard data ...`: make the toy world, check, inspect and preview data sets."""

from __future__ import annotations

from semguard.data import check_commands, toy_commands


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="make the toy world; check, inspect and preview data sets")
    parser.set_defaults(group_parser=parser)
    group = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    toy_commands.register(group)
    check_commands.register(group)
