"""`semguard data check ROOT --format F`: a table of every problem in a data set, and a verdict.

Exit status 0 when the set is usable, 1 when it is not (every problem listed with its file),
2 for bad input (ROOT missing, bad --format/--option/--limit), as everywhere. On a terminal the
problems are a table; in a pipe or a log one problem a line, paths whole (semguard.console).
`--json` prints CheckReport.to_dict() on stdout instead, the verdict line on stderr.
"""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from semguard.console import output_console, print_json
from semguard.data.check import check_dataset
from semguard.data.formats import FORMATS
from semguard.validate import existing_path, number, parse_options


def run_check(args: argparse.Namespace) -> int:
    existing_path(args.root, "ROOT", "dir")
    number(args.limit, "--limit", low=1, integer=True)
    number(args.max_rows, "--max-rows", low=0, integer=True)
    options = parse_options(args.option)
    if args.unlabelled:
        options["labels_required"] = False
    report = check_dataset(args.root, args.format, limit=args.limit, **options)
    style = "bold green" if report.usable else "bold red"
    if args.json:
        print_json(report.to_dict())
        if report.skipped_line():
            output_console(stderr=True).print(f"[yellow]note:[/] {escape(report.skipped_line())}")
        output_console(stderr=True).print(f"[{style}]{escape(report.summary())}[/]")
        return 0 if report.usable else 1
    console = output_console()
    if report.problems:
        table = Table(title=f"problems in {escape(str(args.root))} ({args.format})", show_lines=False)
        table.add_column("kind", style="bold red", no_wrap=True)
        table.add_column("file", overflow="fold")
        table.add_column("detail", overflow="fold")
        for problem in report.problems[: args.max_rows]:
            detail = problem.detail
            if detail.startswith(problem.path + ": "):
                detail = detail[len(problem.path) + 2:]
            table.add_row(problem.kind, escape(problem.path), escape(detail))  # paths and boxes hold '[...]'
        console.print(table)
        if len(report.problems) > args.max_rows:
            console.print(f"... and {len(report.problems) - args.max_rows} more problems (--max-rows to see them)")
    skipped = report.skipped_line()
    if skipped:
        console.print(f"[yellow]note:[/] {escape(skipped)}")
    ignore_lines = report.ignore.lines(report.id_names)
    if ignore_lines:
        console.print("changed at load time (pixels sent to ignore, boxes clipped or dropped):")
        for line in ignore_lines:
            console.print(f"  {escape(line)}")
    console.print(f"[{style}]{escape(report.summary())}[/]")
    return 0 if report.usable else 1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="scan a data set and list every problem (exit 0 usable, 1 not)",
        description="Scan a data set: images without labels, labels without images, size mismatches, "
                    "unreadable or truncated files, unexpected ids, empty sets, boxes that are not finite, "
                    "inverted, outside the frame (past the 1 px clipping tolerance), of an unknown class or with "
                    "class and class_id disagreeing, a dataset.json of another format or version. Boxes clipped "
                    "or dropped and pixels sent to ignore are counted. Exit 0 when usable, 1 when not, 2 for bad "
                    "arguments.",
    )
    parser.add_argument("root", help="data set folder")
    parser.add_argument("--format", default="folder", choices=list(FORMATS), help="data set format (default folder)")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="format option, repeatable (e.g. version=0.9.14 for carla, table=PATH for palette, split=val)")
    parser.add_argument("--unlabelled", action="store_true", help="labels are optional (an unlabelled target set)")
    parser.add_argument("--limit", type=int, default=None, help="check only the first N frames")
    parser.add_argument("--max-rows", type=int, default=50, help="problems shown in the table (default 50)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON on stdout (every problem, whatever --max-rows; the verdict "
                             "line goes to stderr); the exit status is the same")
    parser.set_defaults(handler=run_check)
