"""Where semguard's output goes, and how it looks on a terminal, in a log and for a machine.

Every command prints through `output_console()`. On a terminal that is plain rich: coloured text
and boxed tables fitted to the window. When the stream is not a terminal (a pipe, a file, a CI
log) nothing is wrapped: a line longer than the log's width stays one line, and a table prints
as plain lines, one row a line, cells padded into columns and never folded, so a file path in a
table can be grepped and copied whole. The test is the stream's own `isatty()`, made at each
print (the stream may change, as under pytest); FORCE_COLOR and COLUMNS change colours and widths,
not this.

`print_json(data)` is the machine-readable twin: one JSON document on stdout, nothing else.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

COLUMN_GAP = "  "


class OutputConsole(Console):
    """A rich Console that, when its stream is not a terminal, never wraps and prints tables as lines."""

    @property
    def plain(self) -> bool:
        """True when the stream is not a terminal (pipe, file, CI log)."""
        isatty = getattr(self.file, "isatty", None)
        try:
            return not (callable(isatty) and isatty())
        except ValueError:  # a closed stream
            return True

    def print(self, *objects: Any, **options: Any) -> None:
        if not self.plain:
            super().print(*objects, **options)
            return
        options["soft_wrap"] = True
        if not any(isinstance(item, Table) for item in objects):
            super().print(*objects, **options)
            return
        for item in objects:
            if isinstance(item, Table):
                for line in table_lines(item):
                    super().print(Text(line), soft_wrap=True)
            else:
                super().print(item, **options)


def output_console(stderr: bool = False, **options: Any) -> OutputConsole:
    """The console of a command: stdout, or stderr with `stderr=True`; `options` go to rich.Console
    (highlight defaults to False: rich's guesses colour pieces of paths and numbers)."""
    options.setdefault("highlight", False)
    return OutputConsole(stderr=stderr, **options)


def print_json(data: Any) -> None:
    """`data` as one JSON document on stdout (strict JSON: no NaN or Infinity)."""
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def table_lines(table: Table) -> list[str]:
    """A rich Table as plain lines: the title, the header, then one line per row.

    Columns are padded to their widest cell (right-justified columns to the right) and separated
    by two spaces; a cell's line breaks become spaces so a row stays one line."""
    columns = table.columns
    rows = [[_plain(column.header) for column in columns]] if table.show_header else []
    cells = [[_plain(cell) for cell in column.cells] for column in columns]
    rows += [list(row) for row in zip(*cells)]
    widths = [max((cell_len(row[i]) for row in rows), default=0) for i in range(len(columns))]
    lines = [_plain(table.title)] if table.title else []
    for row in rows:
        padded = []
        for cell, width, column in zip(row, widths, columns):
            gap = " " * (width - cell_len(cell))
            padded.append(gap + cell if column.justify == "right" else cell + gap)
        lines.append(COLUMN_GAP.join(padded).rstrip())
    return lines


def _plain(renderable: Any) -> str:
    """A cell as text: markup applied (a Table reads its string cells as markup), styles dropped."""
    if isinstance(renderable, Text):
        text = renderable.plain
    elif isinstance(renderable, str):
        text = Text.from_markup(renderable, emoji=False).plain
    else:
        text = str(renderable)
    return " ".join(text.splitlines())
