"""The flip report as text: report.md and the terminal tables, both built from the same rows.

Each table's rows are made once, as strings (`summary_rows`, `per_class_rows`,
`top_flip_rows`), and rendered twice: as Markdown lines for report.md and as rich tables for
the terminal (`print_summary`; `print_comparison` sets several reports side by side). The
FID/KID feature extractor is part of every figure's name ("fid_judge"), so numbers from
different extractors are never mixed.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from semguard.console import output_console
from semguard.labels import TRAIN_ID_NAMES

VARIANT_TITLES = {"translated": "translated", "source": "source (untranslated)", "paired_truth": "paired truth (floor)"}


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


def per_class_rows(report: dict) -> list[list[str]]:
    """class, its flip rate in each variant, the judge's IoU: a row per class some variant's source labels hold."""
    rows = []
    for class_name in TRAIN_ID_NAMES:
        rates = [variant["flip"]["per_class"].get(class_name, {}).get("rate") for variant in report["variants"].values()]
        if all(rate is None for rate in rates):
            continue
        rows.append([class_name, *(_fmt(rate, percent=True) for rate in rates),
                     _fmt(report["judge"]["per_class_iou"].get(class_name), percent=True)])
    return rows


def top_flip_rows(report: dict, variant: str) -> list[list[str]]:
    """from, to, share of the 'from' class's pixels, pixels: the variant's largest c -> c' flips."""
    return [[entry["from"], entry["to"], _fmt(entry["rate"], percent=True), str(entry["pixels"])]
            for entry in report["variants"][variant]["flip"]["top_flips"]]


def _variant_titles(report: dict) -> list[str]:
    return [VARIANT_TITLES.get(variant, variant) for variant in report["variants"]]


# ---------------------------------------------------------------- Markdown


def _markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
        ["| " + " | ".join(row) + " |" for row in rows]


def markdown_report(report: dict) -> str:
    """report.md: protocol, headline figures side by side, per-class flips, top flips, figures."""
    protocol = report["protocol"]
    titles = _variant_titles(report)
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
    ]
    lines += _markdown_table(["figure", *titles], [[name, *values] for name, values in summary_rows(report)])
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
    lines += ["", "## Per-class flip rates", ""]
    lines += _markdown_table(["class", *titles, "judge IoU"], per_class_rows(report))
    for variant in report["variants"]:
        lines += ["", f"## Top flips c -> c' ({VARIANT_TITLES.get(variant, variant)})", ""]
        lines += _markdown_table(["from", "to", "share of 'from' pixels", "pixels"], top_flip_rows(report, variant))
    if report["figures"]:
        lines += ["", "## Figures", ""]
        lines += [f"![{key}]({path})" for key, path in report["figures"].items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- terminal


def _terminal_table(title: str, columns: list[str], rows: list[list[str]], right_from: int = 1,
                    no_wrap_first: bool = True) -> Table:
    """A rich table; the columns from `right_from` on (the numbers) right-aligned."""
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if index >= right_from else "left",
                         no_wrap=no_wrap_first and index == 0)
    for row in rows:
        table.add_row(*row)
    return table


def print_summary(report: dict, console=None, full: bool = True) -> None:
    """Rich tables: headline figures per variant; with `full`, per-class flips and top flips."""
    console = console or output_console()
    titles = _variant_titles(report)
    judge_miou = report["judge"]["miou"]
    extractor = report["protocol"].get("feature_extractor")
    console.print(_terminal_table(
        f"semguard flip report (judge mIoU on target val {_fmt(judge_miou, percent=True)}; "
        f"features: {extractor or 'none'})",
        ["figure", *titles], [[name, *values] for name, values in summary_rows(report)]))
    for note in report.get("notes") or []:
        console.print(f"[yellow]not given:[/] {note}", soft_wrap=True)
    if not full:
        return
    for line in reliability_lines(report):
        console.print(line, soft_wrap=True)
    console.print(_terminal_table("per-class flip rate (share of the class's source pixels read as another class)",
                                  ["class", *titles, "judge IoU"], per_class_rows(report)))
    console.print(_terminal_table("top flips c -> c' (translated)", ["from", "to", "share", "pixels"],
                                  top_flip_rows(report, "translated"), right_from=2, no_wrap_first=False))


def print_comparison(reports: list[tuple[str, dict]], console=None) -> None:
    """Several reports side by side (translated variant of each, plus the shared floors)."""
    console = console or output_console()
    extractors = {r["protocol"].get("feature_extractor") for _, r in reports}
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
    console.print(_terminal_table("semguard reports side by side (translated images of each)",
                                  ["figure", *(name for name, _ in reports)], [[figure, *rows[figure]] for figure in order]))
    if len(extractors) > 1:
        console.print(f"[yellow]note:[/] the reports use different FID/KID feature extractors "
                      f"({', '.join(sorted(str(e) for e in extractors))}); their FID/KID rows are not comparable")
    judges = {(r["protocol"].get("judge") or {}).get("sha256") for _, r in reports}
    if len(judges) > 1:
        console.print("[yellow]note:[/] the reports use different judges; flip rates are not directly comparable")
