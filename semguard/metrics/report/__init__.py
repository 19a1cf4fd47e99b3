"""The flip report that `semguard eval` writes: report.json, report.md, the terminal tables and pictures.

The report is data first: a JSON document with "schema_version" that validates against
semguard/metrics/report_schema.json. `semguard.metrics.evaluate` measures and builds it; the
modules here each do one job with it:

    schema.py    the schema version and a self-contained validator (no jsonschema needed)
    files.py     json_safe; report.json and report.md written atomically, report.json read back
    text.py      each table's rows built once, rendered as Markdown (report.md) and rich tables
    figures.py   pictures with PIL and numpy: flip-table heat maps, flip bars, worst images, panel grids

The names below are the report's public face (`from semguard.metrics import report`).
"""

from __future__ import annotations

from semguard.metrics.report.figures import draw_flip_bars, draw_flip_table, draw_panel_grid, draw_worst_image
from semguard.metrics.report.files import json_safe, read_report, write_report_files, write_report_json
from semguard.metrics.report.schema import SCHEMA_VERSION, report_schema, schema_errors, validate_report
from semguard.metrics.report.text import (
    VARIANT_TITLES,
    distance_fields,
    markdown_report,
    per_class_rows,
    print_comparison,
    print_summary,
    reliability_lines,
    summary_rows,
    top_flip_rows,
)

__all__ = [
    "SCHEMA_VERSION", "VARIANT_TITLES", "distance_fields", "draw_flip_bars", "draw_flip_table", "draw_panel_grid",
    "draw_worst_image", "json_safe", "markdown_report", "per_class_rows", "print_comparison", "print_summary",
    "read_report", "reliability_lines", "report_schema", "schema_errors", "summary_rows", "top_flip_rows",
    "validate_report", "write_report_files", "write_report_json",
]
