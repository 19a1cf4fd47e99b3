"""Flip report writers: report.json (schema-checked), report.md, a rich terminal table, pictures.

The report is data first: `report.json` carries "schema_version" and validates against
semguard/metrics/report_schema.json (a JSON Schema, draft 7 subset). The validator here is
small and self-contained (type, enum, required, properties, patternProperties,
additionalProperties, items, minItems/maxItems, minimum/maximum, local $ref) because
jsonschema is not a dependency. Pictures are drawn with PIL and numpy only: the flip-table
heat map, per-class flip bars (one bar per variant), and the worst images with their
flipped pixels highlighted. The FID/KID feature extractor is part of every figure's name
("fid_judge"), so numbers from different extractors are never mixed.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rich.table import Table

from semguard.console import output_console
from semguard.data.folder import write_json
from semguard.errors import DataError
from semguard.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID_NAMES, colorize

SCHEMA_VERSION = 2
VARIANT_TITLES = {"translated": "translated", "source": "source (untranslated)", "paired_truth": "paired truth (floor)"}


# ---------------------------------------------------------------- schema


def report_schema() -> dict:
    """The JSON schema of report.json (shipped beside this module)."""
    text = resources.files("semguard.metrics").joinpath("report_schema.json").read_text(encoding="utf-8")
    return json.loads(text)


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(instance: Any, schema: dict | None = None) -> list[str]:
    """Every violation of `schema` (default: the report schema) as 'path: problem' lines."""
    root = schema if schema is not None else report_schema()
    errors: list[str] = []
    _check(instance, root, root, "$", errors)
    if schema is None and isinstance(instance, dict):
        errors += _extractor_errors(instance)
    return errors


def _extractor_errors(report: dict) -> list[str]:
    """What JSON Schema cannot say: every FID/KID figure is named after the report's one extractor."""
    errors = []
    protocol, variants = report.get("protocol"), report.get("variants")
    if not isinstance(protocol, dict) or not isinstance(variants, dict):
        return errors
    extractor = protocol.get("feature_extractor")
    for variant, entry in variants.items():
        if not isinstance(entry, dict):
            continue
        realism = entry.get("realism") if isinstance(entry.get("realism"), dict) else {}
        for where, distance in (("image_distance", entry.get("image_distance")),
                                ("realism.to_paired_truth", realism.get("to_paired_truth"))):
            if not isinstance(distance, dict):
                continue
            if distance.get("feature_extractor") != extractor:
                errors.append(f"$.variants.{variant}.{where}: feature extractor {distance.get('feature_extractor')!r} "
                              f"differs from the protocol's {extractor!r}")
            for key in distance:
                if key.startswith(("fid_", "kid_")) and key not in ("kid_subset_size", "kid_subsets", "fid_unavailable") \
                        and not key.startswith((f"fid_{extractor}", f"kid_{extractor}_")):
                    errors.append(f"$.variants.{variant}.{where}.{key}: figure of another feature extractor "
                                  f"than the protocol's {extractor!r}")
    return errors


def validate_report(report: dict) -> None:
    """Raise ValueError listing the violations when `report` does not fit the schema."""
    errors = schema_errors(report)
    if errors:
        raise ValueError("report does not fit its schema:\n  " + "\n  ".join(errors[:20]))


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported, got {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = target
    return schema


def _check(value: Any, schema: dict, root: dict, path: str, errors: list[str]) -> None:
    schema = _resolve(schema, root)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[kind](value) for kind in kinds):
            errors.append(f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f"{path}: {value} is not a finite number (JSON has no NaN/inf; use null)")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing required key {key!r}")
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for key, item in value.items():
            matched = False
            if key in properties:
                matched = True
                _check(item, properties[key], root, f"{path}.{key}", errors)
            for pattern, sub in patterns.items():
                if re.search(pattern, key):
                    matched = True
                    _check(item, sub, root, f"{path}.{key}", errors)
            if not matched:
                extra = schema.get("additionalProperties", True)
                if extra is False:
                    errors.append(f"{path}: unexpected key {key!r}")
                elif isinstance(extra, dict):
                    _check(item, extra, root, f"{path}.{key}", errors)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                _check(item, schema["items"], root, f"{path}[{index}]", errors)


# ---------------------------------------------------------------- json / markdown


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
    """Validate and write report.json atomically."""
    report = json_safe(report)
    validate_report(report)
    path = Path(path)
    write_json(path, report)
    return path


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


def _fmt(value: Any, digits: int = 3, percent: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if percent:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def distance_fields(distance: dict | None) -> tuple[str | None, float | None, float | None, float | None]:
    """(extractor, fid, kid mean, kid std) of an image_distance entry (extractor-named keys)."""
    if not distance:
        return None, None, None, None
    name = distance["feature_extractor"]
    return name, distance.get(f"fid_{name}"), distance.get(f"kid_{name}_mean"), distance.get(f"kid_{name}_std")


def summary_rows(report: dict) -> list[tuple[str, list[str]]]:
    """(figure name, one value per variant) for the headline figures; shared by md, terminal and --compare."""
    variants = list(report["variants"])
    rows: list[tuple[str, list[str]]] = []

    def row(name, getter, **fmt):
        rows.append((name, [_fmt(getter(report["variants"][v]), **fmt) for v in variants]))

    level = _ci_level(report)
    row(f"pixel flip [{level} CI]", lambda v: _figure_text(_headline(v, "pixel_flip_rate")))
    row("excess pixel flip", lambda v: _figure_text(_headline(v, "excess_pixel_flip_rate"), signed=True))
    row("reliable-class mean flip", lambda v: _figure_text(_headline(v, "reliable_mean_flip_rate")))
    row("excess reliable-class mean", lambda v: _figure_text(_headline(v, "excess_reliable_mean_flip_rate"), signed=True))
    row("mean flip (all classes)", lambda v: v["flip"]["mean_flip_rate"], percent=True)
    extractor = report["protocol"].get("feature_extractor")
    if extractor:
        to_paired = lambda v: (v.get("realism") or {}).get("to_paired_truth")  # noqa: E731
        if any(to_paired(v) for v in report["variants"].values()):
            row(f"kid_{extractor} to paired truth", lambda v: _kid_text(to_paired(v)))
            row(f"fid_{extractor} to paired truth", lambda v: distance_fields(to_paired(v))[1], digits=3)
        if any((v.get("realism") or {}).get("skvd") for v in report["variants"].values()):
            row(f"skvd_{extractor} vs target", lambda v: _skvd_text((v.get("realism") or {}).get("skvd")))
        row(f"kid_{extractor} vs target (2nd)", lambda v: _kid_text(v["image_distance"]))
        row(f"fid_{extractor} vs target (2nd)", lambda v: distance_fields(v["image_distance"])[1], digits=3)
    box_classes = list(next(iter(report["variants"].values()))["boxes"])
    for name in box_classes:
        row(f"box flip: {name}", lambda v, n=name: (v["boxes"].get(n) or {}).get("mean_flip_rate"), percent=True)
    attributes = sorted({k for v in report["variants"].values() for k in (v.get("attributes") or {})})
    for key in attributes:
        row(f"attribute kept: {key}", lambda v, k=key: ((v.get("attributes") or {}).get(k) or {}).get("accuracy"),
            percent=True)
    if any(v.get("paired_distance") for v in report["variants"].values()):
        row("PSNR to paired truth (dB)", lambda v: (v.get("paired_distance") or {}).get("psnr"), digits=2)
        row("SSIM to paired truth", lambda v: (v.get("paired_distance") or {}).get("ssim"))
        row("LPIPS to paired truth", lambda v: ((v.get("paired_distance") or {}).get("lpips") or {}).get("value"))
    return rows


def _headline(variant: dict, key: str) -> dict | None:
    return (variant["flip"].get("headline") or {}).get(key)


def _ci_level(report: dict) -> str:
    for variant in report["variants"].values():
        level = ((variant["flip"].get("headline") or {}).get("bootstrap") or {}).get("level")
        if level:
            return f"{100 * level:.0f}%"
    return "95%"


def _figure_text(figure: dict | None, signed: bool = False) -> str | None:
    """'33.1% [31.0, 35.2]' (percentage points), or None."""
    if not figure or figure.get("value") is None:
        return None
    sign = "+" if signed else ""
    text = f"{100 * figure['value']:{sign}.1f}%"
    if figure.get("ci"):
        low, high = figure["ci"]
        text += f" [{100 * low:{sign}.1f}, {100 * high:{sign}.1f}]"
    return text


def _skvd_text(skvd: dict | None) -> str | None:
    if not skvd:
        return None
    if skvd.get("kid_mean") is None:
        return f"no pairs ({100 * (skvd.get('match_rate') or 0):.0f}% matched)"
    return f"{skvd['kid_mean']:.4f} ({100 * skvd['match_rate']:.0f}% matched, {skvd['pairs']} pairs)"


def reliability_lines(report: dict) -> list[str]:
    """Plain lines: which classes the headline mean uses and why the others are left out."""
    reliability = report.get("reliability") or {}
    if not reliability:
        return []
    floor = reliability.get("floor") or {}
    lines = [f"reliable classes (floor <= {100 * reliability['floor_max']:.0f}% and judge IoU >= "
             f"{100 * reliability['iou_min']:.0f}%): {', '.join(reliability['reliable']) or 'none'}"]
    lines += [f"left out: {name}: {reason}" for name, reason in reliability["unreliable"].items()]
    lines.append(f"floor: {floor.get('source') or 'unknown'}")
    return lines


def _kid_text(distance: dict | None) -> str | None:
    _, _, mean, std = distance_fields(distance)
    if mean is None:
        return None
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def markdown_report(report: dict) -> str:
    """report.md: protocol, headline figures side by side, per-class flips, top flips, figures."""
    protocol = report["protocol"]
    variants = list(report["variants"])
    lines = ["# semguard flip report", ""]
    lines += ["## Protocol", ""]
    translation = protocol["translation"]
    judge = protocol.get("judge") or {}
    lines += [
        f"- images: {protocol['image_count']} source val, {protocol['target_image_count']} target val",
        f"- resolution: {', '.join('x'.join(map(str, r)) for r in protocol['resolution'])}; "
        f"resize: {'x'.join(map(str, protocol['resize'])) if protocol['resize'] else 'none'} ({protocol['resize_filter']})",
        f"- translation: {translation['mode']} `{translation['path']}` sha256 `{translation['sha256'][:16]}`",
        f"- judge: `{judge.get('path')}` sha256 `{str(judge.get('sha256'))[:16]}`; "
        f"mIoU on target val: {_fmt(report['judge']['miou'], percent=True)}",
        f"- FID/KID feature extractor: **{protocol['feature_extractor'] or 'none'}**",
        f"- seeds: {', '.join(f'{k}={v}' for k, v in protocol['seeds'].items())}",
        f"- data: source val `{protocol['data']['source_val']}`, target val `{protocol['data']['target_val']}`, "
        f"paired `{protocol['data']['paired']}`",
        "",
        "## Summary",
        "",
        "| figure | " + " | ".join(VARIANT_TITLES.get(v, v) for v in variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in summary_rows(report)]
    lines += ["", "Excess = the variant minus the paired truth (the judge's own error on a perfect translation), "
              "in percentage points; intervals are percentile bootstraps over frames (a variant and its floor "
              "resampled together). Realism on matched content: KID to the paired truth (same layouts, only "
              "appearance differs) and sKVD (KID on crops matched to target crops by label layout). "
              "(2nd): secondary figures against the whole target set, which reward painting the target's layout."]
    if report.get("reliability"):
        lines += ["", "## Which classes the judge reads reliably", ""]
        lines += [f"- {line}" for line in reliability_lines(report)]
    if report.get("notes"):
        lines += ["", "## Figures not given", ""]
        lines += [f"- {note}" for note in report["notes"]]
    lines += ["", "## Per-class flip rates", "",
              "| class | " + " | ".join(VARIANT_TITLES.get(v, v) for v in variants) + " | judge IoU |",
              "|---|" + "---|" * (len(variants) + 1)]
    for class_name in TRAIN_ID_NAMES:
        rates = [report["variants"][v]["flip"]["per_class"].get(class_name, {}).get("rate") for v in variants]
        if all(rate is None for rate in rates):
            continue
        iou = report["judge"]["per_class_iou"].get(class_name)
        lines.append(f"| {class_name} | " + " | ".join(_fmt(r, percent=True) for r in rates) + f" | {_fmt(iou, percent=True)} |")
    for variant in variants:
        flips = report["variants"][variant]["flip"]["top_flips"]
        lines += ["", f"## Top flips c -> c' ({VARIANT_TITLES.get(variant, variant)})", "",
                  "| from | to | share of 'from' pixels | pixels |", "|---|---|---|---|"]
        lines += [f"| {f['from']} | {f['to']} | {_fmt(f['rate'], percent=True)} | {f['pixels']} |" for f in flips]
    if report["figures"]:
        lines += ["", "## Figures", ""]
        lines += [f"![{key}]({path})" for key, path in report["figures"].items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- terminal


def print_summary(report: dict, console=None, full: bool = True) -> None:
    """Rich tables: headline figures per variant; with `full`, per-class flips and top flips."""
    console = console or output_console()
    variants = list(report["variants"])
    judge_miou = report["judge"]["miou"]
    extractor = report["protocol"].get("feature_extractor")
    table = Table(title=f"semguard flip report (judge mIoU on target val {_fmt(judge_miou, percent=True)}; "
                        f"features: {extractor or 'none'})")
    table.add_column("figure", no_wrap=True)
    for variant in variants:
        table.add_column(VARIANT_TITLES.get(variant, variant), justify="right")
    for name, values in summary_rows(report):
        table.add_row(name, *values)
    console.print(table)
    for note in report.get("notes") or []:
        console.print(f"[yellow]not given:[/] {note}", soft_wrap=True)
    if not full:
        return
    for line in reliability_lines(report):
        console.print(line, soft_wrap=True)
    per_class = Table(title="per-class flip rate (share of the class's source pixels read as another class)")
    per_class.add_column("class", no_wrap=True)
    for variant in variants:
        per_class.add_column(VARIANT_TITLES.get(variant, variant), justify="right")
    per_class.add_column("judge IoU", justify="right")
    for class_name in TRAIN_ID_NAMES:
        rates = [report["variants"][v]["flip"]["per_class"].get(class_name, {}).get("rate") for v in variants]
        if all(rate is None for rate in rates):
            continue
        per_class.add_row(class_name, *[_fmt(r, percent=True) for r in rates],
                          _fmt(report["judge"]["per_class_iou"].get(class_name), percent=True))
    console.print(per_class)
    flips = Table(title="top flips c -> c' (translated)")
    for column in ("from", "to", "share", "pixels"):
        flips.add_column(column, justify="right" if column in ("share", "pixels") else "left")
    for entry in report["variants"]["translated"]["flip"]["top_flips"]:
        flips.add_row(entry["from"], entry["to"], _fmt(entry["rate"], percent=True), str(entry["pixels"]))
    console.print(flips)


def print_comparison(reports: list[tuple[str, dict]], console=None) -> None:
    """Several reports side by side (translated variant of each, plus the shared floors)."""
    console = console or output_console()
    extractors = {r["protocol"].get("feature_extractor") for _, r in reports}
    table = Table(title="semguard reports side by side (translated images of each)")
    table.add_column("figure", no_wrap=True)
    for name, _ in reports:
        table.add_column(name, justify="right")
    rows: dict[str, list[str]] = {}
    order: list[str] = []
    for index, (_, report) in enumerate(reports):
        only_translated = dict(report, variants={"translated": report["variants"]["translated"]})
        for figure, values in summary_rows(only_translated):
            if figure not in rows:
                rows[figure] = ["-"] * len(reports)
                order.append(figure)
            rows[figure][index] = values[0]
    rows["judge mIoU (target val)"] = [_fmt(r["judge"]["miou"], percent=True) for _, r in reports]
    rows["judge sha256"] = [str((r["protocol"].get("judge") or {}).get("sha256", "-"))[:12] for _, r in reports]
    rows["images"] = [str(r["protocol"]["image_count"]) for _, r in reports]
    order += ["judge mIoU (target val)", "judge sha256", "images"]
    for figure in order:
        table.add_row(figure, *rows[figure])
    console.print(table)
    if len(extractors) > 1:
        console.print(f"[yellow]note:[/] the reports use different FID/KID feature extractors "
                      f"({', '.join(sorted(str(e) for e in extractors))}); their FID/KID rows are not comparable")
    judges = {(r["protocol"].get("judge") or {}).get("sha256") for _, r in reports}
    if len(judges) > 1:
        console.print("[yellow]note:[/] the reports use different judges; flip rates are not directly comparable")


# ---------------------------------------------------------------- pictures (PIL + numpy)


def _font(size: int = 11):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _heat_colour(value: float) -> tuple[int, int, int]:
    """0 -> white, 1 -> dark red (sqrt scale so small flips stay visible)."""
    t = math.sqrt(max(0.0, min(1.0, value)))
    return (int(255 - 95 * t), int(255 - 255 * t), int(255 - 255 * t))


def draw_flip_table(flip_table: list[list[int]], title: str, path: str | Path, cell: int = 26) -> Path:
    """Heat map of the c -> c' flip table: row c = share of c's source pixels read as c' (diagonal shown grey)."""
    counts = np.asarray(flip_table, dtype=np.float64)
    rows = counts.sum(1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    k = counts.shape[0]
    names = [TRAIN_ID_NAMES[i] if i < NUM_CLASSES else str(i) for i in range(k)]
    left, top = 110, 146
    image = Image.new("RGB", (left + k * cell + 20, top + k * cell + 40), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(12), _font(9)
    draw.text((8, 6), title, fill="black", font=font)
    draw.text((8, 24), "row: source label c; column: judge reads c'", fill="black", font=small)
    for i, name in enumerate(names):
        y = top + i * cell
        draw.text((4, y + cell // 3), name[:16], fill="black", font=small)
        column = Image.new("RGB", (100, 14), "white")
        ImageDraw.Draw(column).text((0, 0), name[:16], fill="black", font=small)
        rotated = column.rotate(90, expand=True)
        image.paste(rotated, (left + i * cell + cell // 4, top - 104))
        for j in range(k):
            x = left + j * cell
            if rows[i, 0] == 0:
                colour = (235, 235, 235)
            elif i == j:
                colour = (200, 200, 200)
            else:
                colour = _heat_colour(shares[i, j])
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour, outline=(225, 225, 225))
            if i != j and shares[i, j] >= 0.01:
                draw.text((x + 2, y + cell // 3), f"{100 * shares[i, j]:.0f}", fill="black" if shares[i, j] < 0.3 else "white",
                          font=small)
    draw.text((left, top + k * cell + 8), "cell: % of row class pixels; grey: diagonal / class absent", fill="black",
              font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


BAR_COLOURS = {"translated": (200, 40, 40), "source": (90, 90, 200), "paired_truth": (60, 160, 60)}


def draw_flip_bars(report: dict, path: str | Path, bar: int = 7) -> Path:
    """Per-class flip rates, one horizontal bar per variant for every class present."""
    variants = list(report["variants"])
    classes = [name for name in TRAIN_ID_NAMES
               if any(report["variants"][v]["flip"]["per_class"].get(name, {}).get("rate") is not None for v in variants)]
    left, top, width = 110, 50, 360
    group = bar * len(variants) + 6
    image = Image.new("RGB", (left + width + 70, top + group * max(1, len(classes)) + 30), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(12), _font(9)
    draw.text((8, 6), "per-class flip rate (share of source pixels the judge reads as another class)", fill="black",
              font=font)
    x = 8
    for variant in variants:
        colour = BAR_COLOURS.get(variant, (120, 120, 120))
        draw.rectangle([x, 28, x + 10, 36], fill=colour)
        draw.text((x + 14, 26), VARIANT_TITLES.get(variant, variant), fill="black", font=small)
        x += 160
    for row, name in enumerate(classes):
        y = top + row * group
        draw.text((4, y + group // 3 - 2), name, fill="black", font=small)
        for index, variant in enumerate(variants):
            rate = report["variants"][variant]["flip"]["per_class"].get(name, {}).get("rate")
            y0 = y + index * bar
            if rate is None:
                continue
            draw.rectangle([left, y0, left + int(width * rate), y0 + bar - 2], fill=BAR_COLOURS.get(variant, (120, 120, 120)))
            draw.text((left + int(width * rate) + 4, y0 - 2), f"{100 * rate:.1f}%", fill="black", font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def draw_worst_image(image: np.ndarray, source_label: np.ndarray, judge_prediction: np.ndarray, title: str,
                     path: str | Path) -> Path:
    """One row: image | source label | judge's reading | image with flipped pixels in magenta.

    image uint8 [H,W,3]; source_label, judge_prediction integer [H,W] (255 = ignore, never flipped).
    """
    flipped = (source_label != IGNORE_ID) & (judge_prediction != source_label)
    highlight = (image.astype(np.float32) * 0.45).astype(np.uint8)
    highlight[flipped] = (255, 0, 255)
    share = 100 * flipped.sum() / max(1, (source_label != IGNORE_ID).sum())
    panels = [image, colorize(source_label), colorize(judge_prediction), highlight]
    # panels between 200 and 512 pixels wide: small frames grow (nearest), large ones shrink
    scale = max(1, 200 // panels[0].shape[1]) if panels[0].shape[1] < 200 else min(1.0, 512 / panels[0].shape[1])
    if scale != 1:
        new_size = (max(1, round(panels[0].shape[1] * scale)), max(1, round(panels[0].shape[0] * scale)))
        panels = [np.asarray(Image.fromarray(np.ascontiguousarray(p)).resize(new_size, Image.NEAREST)) for p in panels]
    height, width = panels[0].shape[:2]
    captions = ["image", "source label", "judge reads", f"flipped {share:.1f}% (magenta)"]
    canvas = Image.new("RGB", (4 * width + 30, height + 36), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black", font=_font(11))
    for index, (panel, caption) in enumerate(zip(panels, captions)):
        x = index * (width + 10)
        canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (x, 30))
        draw.text((x + 2, 16), caption, fill="black", font=_font(9))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def draw_panel_grid(rows: list[list[np.ndarray]], captions: list[str], title: str, path: str | Path,
                    min_width: int = 160) -> Path:
    """A grid of same-size uint8 [H,W,3] panels, one list per row, a caption per column.

    Small frames grow by an integer factor (nearest) to at least `min_width` pixels wide.
    """
    if not rows or any(len(row) != len(captions) for row in rows):
        raise ValueError(f"every row needs {len(captions)} panels (one per caption)")
    scale = max(1, -(-min_width // rows[0][0].shape[1]))
    height, width = rows[0][0].shape[0] * scale, rows[0][0].shape[1] * scale
    canvas = Image.new("RGB", (len(captions) * (width + 6) + 4, len(rows) * (height + 6) + 34), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black", font=_font(11))
    for column, caption in enumerate(captions):
        draw.text((4 + column * (width + 6), 18), caption, fill="black", font=_font(9))
    for row_index, row in enumerate(rows):
        for column, panel in enumerate(row):
            image = Image.fromarray(np.ascontiguousarray(panel))
            if scale != 1:
                image = image.resize((width, height), Image.NEAREST)
            canvas.paste(image, (4 + column * (width + 6), 32 + row_index * (height + 6)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
