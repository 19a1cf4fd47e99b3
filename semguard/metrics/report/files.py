"""The flip report on disk: report.json (schema-checked, written atomically) and report.md, and reading one back.

A report is plain JSON data before it is written: `json_safe` turns what the metrics return
(NaN, tuples, numpy and torch scalars) into it once, where the report is built
(`semguard.metrics.evaluate.build_report`); the writers here check it against the schema and
refuse what does not fit rather than mending it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from semguard.data.folder import _atomic_write_bytes, write_json
from semguard.errors import DataError
from semguard.metrics.report.schema import SCHEMA_VERSION, schema_errors, validate_report
from semguard.metrics.report.text import markdown_report


def json_safe(value: Any) -> Any:
    """Plain JSON data: NaN and inf become None, tuples lists, numpy/torch scalars numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report_json(report: dict, path: str | Path) -> Path:
    """Validate and write report.json atomically; `report` is plain JSON data (see `json_safe`)."""
    validate_report(report)
    path = Path(path)
    write_json(path, report)
    return path


def write_report_files(report: dict, out: str | Path) -> dict[str, Path]:
    """OUT/report.json (validated) and OUT/report.md; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_report_json(report, out / "report.json")
    md_path = out / "report.md"
    text = markdown_report(report).encode("utf-8")
    _atomic_write_bytes(md_path, lambda handle: handle.write(text))
    return {"json": json_path, "markdown": md_path}


def read_report(path: str | Path) -> dict:
    """Read and validate a report.json; SemguardError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"report {path} does not exist; write one with `semguard eval --flip-report --out DIR`")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: corrupt JSON ({err.msg} at line {err.lineno})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; give the report.json an `eval --flip-report` run wrote") from None
    if not isinstance(report, dict) or report.get("schema_version") != SCHEMA_VERSION:
        found = report.get("schema_version") if isinstance(report, dict) else None
        hint = ("; an older semguard wrote it: rerun `semguard eval --flip-report` to regenerate it"
                if isinstance(found, int) and found < SCHEMA_VERSION else "")
        raise DataError(f"{path}: not a semguard report of schema version {SCHEMA_VERSION} (found {found!r}){hint}")
    errors = schema_errors(report)
    if errors:
        raise DataError(f"{path}: does not fit the report schema ({errors[0]}{' ...' if len(errors) > 1 else ''})")
    return report
