"""The benchmark's result: figures gathered from the stages' outputs, report.json and report.md, the picture.

JSON shape (kept from benchmarks/run_benchmark.py): `variants.NAME` a list of per-seed records
(flip, realism, boxes, train speed), `references` (the untranslated source and, when given, the
paired truth, as the first evaluation measured them), `downstream.NAME` for sim,
BASELINE_translated, METHOD_translated and real_oracle, each a list of per-seed records with
`miou` and `per_class_iou`; with the judge, its floor and where that floor comes from, the
reliable classes, the split, the source classes the target never labels, and every stage's time.
With budgets.eval_every, `curves.NAME` (records with `steps`, `seconds` of training so far, `seed`
and the figure keys of `variants`, one per evaluated checkpoint, the last one included) and
`equal_wallclock` (per seed, the method at its last step beside the baseline's checkpoint whose
training seconds are nearest).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path

from semguard.benchmark.plan import Layout, downstream_sets, target_merges
from semguard.benchmark.preflight import Preflight
from semguard.benchmark.spec import LoadedSpec
from semguard.config import config_to_dict
from semguard.common import cpu_description
from semguard.benchmark.score import class_pixel_counts
from semguard.checkpoints import load_segmenter
from semguard.data.folder import FolderDataset
from semguard.metrics.report import draw_panel_grid
from semguard.translate import Translator

GAP_CLASSES = ("sky", "vegetation", "building", "road", "sidewalk", "traffic sign", "traffic light")
HEADLINE = ("pixel_flip_rate", "excess_pixel_flip_rate", "reliable_mean_flip_rate", "excess_reliable_mean_flip_rate")
FLOOR_MAX, IOU_MIN = 0.15, 0.5   # semguard eval's reliability rule (floor <= 15%, judge IoU >= 50%)

WITHOUT_PAIRED_TRUTH = (
    "There is no paired truth on real data (no frame shows the source layout in the target's style), so: "
    "the judge's floor is its own error on the target val frames, per class (the share of class-c pixels it reads "
    "as another class), not its error on a perfect translation, and no excess flip is given; a flip rate is the "
    "share of source-labelled pixels the judge reads as another class on the translation, so it mixes the "
    "translator's content changes with the judge's own error on images of that kind; only the reliable classes "
    "(floor <= 15% and judge IoU >= 50% on target val) are averaged; realism is KID on the judge's features "
    "against target val (it also rewards copying the target's layout, which sKVD on label-matched crops does not); "
    "the downstream test needs no paired truth at all: it scores, on target val, segmenters trained on each "
    "translation with the source labels.")


def _rate(value):
    if isinstance(value, dict):
        value = value.get("value", value.get("rate"))
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def summarise_report(report: dict, variant: str = "translated") -> dict:
    """The figures the benchmark compares, out of one report.json variant."""
    entry = report["variants"][variant]
    flip = entry["flip"]
    per_class = {name: _rate(value) for name, value in flip.get("per_class", {}).items()}
    distance = entry.get("image_distance") or {}
    extractor = distance.get("feature_extractor")
    out = {
        "mean_flip_rate": _rate(flip.get("mean_flip_rate")),
        "pixel_flip_rate": _rate(flip.get("pixel_flip_rate")),
        "flip_rate": {**{name: None for name in GAP_CLASSES}, **per_class},
        f"fid_{extractor}": distance.get(f"fid_{extractor}"),
        f"kid_{extractor}_mean": distance.get(f"kid_{extractor}_mean"),
        f"kid_{extractor}_std": distance.get(f"kid_{extractor}_std"),
    }
    headline = flip.get("headline") or {}
    for key in HEADLINE[1:]:
        figure = headline.get(key)
        out[key] = figure.get("value") if isinstance(figure, dict) else None
    out["headline_ci"] = {key: (headline.get(key) or {}).get("ci") for key in HEADLINE}
    realism = entry.get("realism") or {}
    to_paired = realism.get("to_paired_truth") or {}
    out[f"kid_{extractor}_to_paired_mean"] = to_paired.get(f"kid_{extractor}_mean")
    out[f"fid_{extractor}_to_paired"] = to_paired.get(f"fid_{extractor}")
    skvd = realism.get("skvd") or {}
    out[f"skvd_{extractor}"] = skvd.get("kid_mean")
    out["skvd_match_rate"] = skvd.get("match_rate")
    for key, value in (entry.get("attributes") or {}).items():
        if isinstance(value, dict) and "accuracy" in value:
            out[f"{key}_preserved"] = _rate(value["accuracy"])
    for name, value in (entry.get("boxes") or {}).items():
        if isinstance(value, dict) and "mean_flip_rate" in value:
            out[f"box_flip_{name}"] = _rate(value["mean_flip_rate"])
    paired = entry.get("paired_distance") or {}
    out["psnr_to_paired"] = paired.get("psnr")
    out["ssim_to_paired"] = paired.get("ssim")
    return out


def training_seconds(log_path: Path) -> dict[int, float]:
    """step -> training seconds so far, from a run's log.jsonl (a resumed sitting's clock restarts: its
    time is added to the sittings' before it)."""
    seconds: dict[int, float] = {}
    offset, previous = 0.0, 0.0
    if not log_path.is_file():
        return seconds
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if record["time"] < previous:
            offset += previous
        previous = record["time"]
        seconds[int(record["step"])] = round(offset + record["time"], 1)
    return seconds


def equal_wallclock(records: list[dict], seconds: float) -> dict | None:
    """The record whose training seconds are nearest `seconds` (None when none is timed)."""
    timed = [record for record in records if record.get("seconds") is not None]
    if not timed:
        return None
    return min(timed, key=lambda record: (abs(record["seconds"] - seconds), record["steps"]))


def _curves(loaded: LoadedSpec, layout: Layout, judge: dict, variants: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """variant -> a record per seed and evaluated checkpoint (budgets.eval_every), the last step included
    (its figures are the variant's per-seed record in `variants`)."""
    spec = loaded.spec
    curves: dict[str, list[dict]] = {}
    for variant, finals in variants.items():
        for final in finals:
            seed = final["seed"]
            seconds = training_seconds(layout.run(variant, seed) / "log.jsonl")
            for step in spec.budgets.eval_steps:
                report = json.loads((layout.report(variant, seed, step) / "report.json").read_text())
                record = {"steps": step, "seconds": seconds.get(step), "seed": seed, **summarise_report(report)}
                record["target_reliable_mean_flip_rate"] = _mean_over(record["flip_rate"], _target_reliable(judge))
                curves.setdefault(variant, []).append(record)
            step = spec.budgets.translator_steps
            curves.setdefault(variant, []).append({**final, "steps": step, "seconds": seconds.get(step)})
    return curves


def _equal_wallclock(loaded: LoadedSpec, curves: dict[str, list[dict]]) -> list[dict]:
    """Per seed: the method's last step beside the baseline's checkpoint nearest its training seconds."""
    baseline, method = loaded.spec.downstream.baseline, loaded.spec.downstream.method
    if baseline not in curves or method not in curves:
        return []
    pairs = []
    for record in curves[method]:
        if record["steps"] != loaded.spec.budgets.translator_steps or record["seconds"] is None:
            continue
        match = equal_wallclock([r for r in curves[baseline] if r["seed"] == record["seed"]], record["seconds"])
        if match is not None:
            pairs.append({"seed": record["seed"], "method": method, "steps": record["steps"],
                          "seconds": record["seconds"], "pixel_flip_rate": record["pixel_flip_rate"],
                          "baseline": baseline, "baseline_steps": match["steps"], "baseline_seconds": match["seconds"],
                          "baseline_pixel_flip_rate": match["pixel_flip_rate"]})
    return pairs


def read_train_speed(run_dir: Path) -> float | None:
    """Mean img/s over the logged steps of a training run (log.jsonl), skipping the first fifth (warm-up)."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return None
    speeds = [float(r["images_per_s"]) for r in map(json.loads, log.read_text().splitlines())
              if isinstance(r.get("images_per_s"), (int, float))]
    speeds = speeds[len(speeds) // 5:] if len(speeds) > 4 else speeds
    return round(statistics.fmean(speeds), 3) if speeds else None


def machine() -> dict:
    import torch


    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_description(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def collect(loaded: LoadedSpec, preflight: Preflight, work: Path, stages: dict[str, dict]) -> dict:
    """The result document from the finished stages' outputs."""

    spec = loaded.spec
    layout = Layout(work)
    judge_score = json.loads(layout.score("judge").read_text())

    _, judge_meta = load_segmenter(layout.segmenter("judge"))
    recorded_floor = (judge_meta.get("metrics") or {}).get("floor") or {}
    paired = spec.data.paired.given
    judge = {
        "miou": judge_score["miou"], "per_class_iou": judge_score["per_class_iou"], "merges": judge_score["merges"],
        "arch": spec.segmenters.judge.arch, "seed": spec.segmenters.judge.seed,
        "floor": {"per_class": recorded_floor.get("per_class") if paired else judge_score["per_class_error"],
                  "pixel_flip_rate": recorded_floor.get("pixel_flip_rate") if paired else 1 - judge_score["pixel_accuracy"],
                  "source": ("the judge's flip rates on the paired truth (a perfect translation)" if paired else
                             "the judge's own per-class error on the target val frames (no paired truth exists)")},
    }
    variants: dict[str, list[dict]] = {}
    references: dict[str, dict] = {}
    reliability = None
    for seed in spec.seeds:
        for variant in spec.variants:
            if seed not in loaded.variant_seeds(variant):
                continue
            report = json.loads((layout.report(variant, seed) / "report.json").read_text())
            summary = summarise_report(report)
            run_dir = layout.run(variant, seed)
            train = stages.get(f"train_{variant}_seed{seed}", {})
            summary.update(seed=seed, train_img_per_s=read_train_speed(run_dir), train_peak_rss_mb=train.get("peak_rss_mb"),
                           train_seconds=train.get("seconds"))
            summary["target_reliable_mean_flip_rate"] = _mean_over(summary["flip_rate"], _target_reliable(judge))
            variants.setdefault(variant, []).append(summary)
            for reference in ("source", "paired_truth"):
                if reference in report["variants"] and reference not in references:
                    references[reference] = summarise_report(report, reference)
                    references[reference]["target_reliable_mean_flip_rate"] = _mean_over(
                        references[reference]["flip_rate"], _target_reliable(judge))
            reliability = reliability or report.get("reliability")
    downstream: dict[str, list[dict]] = {}
    if spec.downstream.enabled:
        for name in downstream_sets(loaded, preflight):
            for seed in spec.seeds:
                score = json.loads(layout.score(f"downstream_{name}_seed{seed}").read_text())
                downstream.setdefault(name, []).append({"seed": seed, "miou": score["miou"],
                                                        "per_class_iou": score["per_class_iou"],
                                                        "pixel_accuracy": score["pixel_accuracy"]})
    detection: dict[str, list[dict]] = {}
    if spec.downstream.enabled and preflight.detection_skipped is None:
        for name in downstream_sets(loaded, preflight):
            for seed in spec.seeds:
                score = json.loads(layout.score(f"detector_{name}_seed{seed}").read_text())
                detection.setdefault(name, []).append({"seed": seed, "map": score["map"], "map_50": score["map_50"],
                                                       "ap_per_class": score["ap_per_class"],
                                                       "boxes_per_class": score["boxes_per_class"]})
    source_val = layout.data("source_val" if spec.data.source_val.given else "source")
    source_classes, target_classes = class_pixel_counts(source_val), class_pixel_counts(layout.data("target_val"))
    curves = _curves(loaded, layout, judge, variants) if spec.budgets.eval_every else {}
    figure = comparison_figure(loaded, layout, seed=spec.seeds[0])
    split = json.loads((layout.split / "split.json").read_text())
    return {
        "name": spec.name,
        "profile": spec.name,
        "description": spec.description,
        "spec_file": str(loaded.path),
        "spec": config_to_dict(spec),
        "spec_overrides": list(loaded.overrides),
        "command": " ".join(["semguard", *map(shlex.quote, sys.argv[1:])]) if sys.argv else "semguard benchmark",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "seeds": list(spec.seeds),
        "split": split,
        "judge": judge,
        "target_reliable_classes": _target_reliable(judge),
        "merges": target_merges(loaded),
        "classes": {"source_val": sorted(source_classes), "target_val": sorted(target_classes),
                    "source_not_in_target": sorted(set(source_classes) - set(target_classes))},
        "variant_names": list(spec.variants),
        "variants": variants,
        "references": references,
        "reliability": reliability,
        "downstream": downstream,
        "downstream_detection": detection,
        "curves": curves,
        "equal_wallclock": _equal_wallclock(loaded, curves),
        "detection_skipped": preflight.detection_skipped,
        "paired_truth": paired,
        "figure": figure,
        "stages": stages,
    }


def _target_reliable(judge: dict) -> list[str]:
    floor = judge["floor"]["per_class"] or {}
    return sorted(name for name, iou in judge["per_class_iou"].items()
                  if iou >= IOU_MIN and floor.get(name) is not None and floor[name] <= FLOOR_MAX)


def _mean_over(per_class: dict, classes: list[str]):
    values = [per_class[name] for name in classes if per_class.get(name) is not None]
    return statistics.fmean(values) if values else None


def comparison_figure(loaded: LoadedSpec, layout: Layout, seed: int, frames: int = 4) -> str | None:
    """The same source frames as source | baseline | method (| paired truth), for the README and the report."""
    import numpy as np


    spec = loaded.spec
    shown = [v for v in (spec.downstream.baseline, spec.downstream.method) if v in spec.variants]
    checkpoints = {v: layout.run(v, seed) / "final.pt" for v in shown}
    if not shown or not all(path.is_file() for path in checkpoints.values()):
        return None
    source = FolderDataset(layout.data("source_val" if spec.data.source_val.given else "source"))
    paired = FolderDataset(layout.data("paired")) if spec.data.paired.given else None
    translators = {v: Translator.from_checkpoint(path) for v, path in checkpoints.items()}
    rows = []
    for index in range(min(frames, len(source))):
        sample = source[index]
        row = [sample.image] + [np.asarray(translators[v].translate_sample(sample).image) for v in shown]
        if paired is not None:
            row.append(paired[paired.names.index(sample.name)].image)
        rows.append(row)
    captions = ["source"] + [f"{v} (seed {seed})" for v in shown] + (["paired truth"] if paired is not None else [])
    path = layout.work / "comparison.png"
    draw_panel_grid(rows, captions, "the same source frames, translated", path)
    return str(path)


# ------------------------------------------------------------------ Markdown


def _fmt(value, digits=3):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _values(rows: list[dict], key: str, sub: str | None = None) -> list[float]:
    values = [(row.get(key) if sub is None else (row.get(key) or {}).get(sub)) for row in rows]
    return [v for v in values if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))]


def cell(rows: list[dict], key: str, sub: str | None = None, digits: int = 3) -> str:
    values = _values(rows, key, sub)
    if not values:
        return "n/a"
    text = f"{statistics.fmean(values):.{digits}f}"
    return text + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def _downstream_table(records_by_set: dict[str, list[dict]], headline: tuple[str, ...], per_class_key: str,
                      per_class_label: str, titles: dict[str, str]) -> list[str]:
    """Markdown rows of a downstream test: per training set the headline figures (mean ± std over seeds),
    the first one per seed, and each class's figure."""
    classes = sorted({c for records in records_by_set.values() for r in records for c in r[per_class_key]})
    lines = ["| training data | " + " | ".join(titles[key] for key in headline) + f" | per seed ({titles[headline[0]]}) | "
             + " | ".join(f"{per_class_label} {c}" for c in classes) + " |",
             "|---" * (len(classes) + len(headline) + 2) + "|"]
    for name, records in records_by_set.items():
        seeds = ", ".join(_fmt(r[headline[0]]) for r in records)
        lines.append(f"| {name} | " + " | ".join(cell(records, key) for key in headline) + f" | {seeds} | "
                     + " | ".join(cell(records, per_class_key, c) for c in classes) + " |")
    return lines


def _curves_table(curves: dict[str, list[dict]], references: dict[str, dict], paired: bool) -> list[str]:
    lines = ["## Over training (budgets.eval_every; mean ± std over seeds)", "",
             "Every kept checkpoint evaluated like the final one; seconds: training time so far (stage seconds, "
             "not a quiet timing when stages ran side by side).", ""]
    columns = [("pixel flip", "pixel_flip_rate", None), ("reliable-class mean flip", "target_reliable_mean_flip_rate", None),
               ("sky flip", "flip_rate", "sky")]
    rows = sum(curves.values(), [])
    if paired:
        columns.insert(1, ("excess pixel flip", "excess_pixel_flip_rate", None))
    if any(_values(rows, "state_preserved")):
        columns += [("light state kept", "state_preserved", None), ("sign pictogram kept", "pictogram_preserved", None)]
    lines += ["| variant | steps | seconds | " + " | ".join(c[0] for c in columns) + " |",
              "|---" * (len(columns) + 3) + "|"]
    for name, records in curves.items():
        for steps in sorted({r["steps"] for r in records}):
            at = [r for r in records if r["steps"] == steps]
            lines.append(f"| {name} | {steps} | {cell(at, 'seconds', digits=0)} | "
                         + " | ".join(cell(at, key, sub) for _, key, sub in columns) + " |")
    for name, ref in references.items():
        lines.append(f"| *{name} (reference)* | | | " + " | ".join(
            _fmt((ref.get(key) or {}).get(sub) if sub else ref.get(key)) for _, key, sub in columns) + " |")
    return lines


def _wallclock_lines(result: dict) -> list[str]:
    pairs = result.get("equal_wallclock") or []
    if not pairs:
        return []
    lines = ["", "At equal wall clock: the method at its last step beside the baseline's checkpoint whose training "
             "seconds are nearest (the baseline's longest run bounds the match).", "",
             "| seed | method steps | seconds | pixel flip | baseline steps | seconds | pixel flip |",
             "|---|---|---|---|---|---|---|"]
    for pair in pairs:
        lines.append(f"| {pair['seed']} | {pair['method']} {pair['steps']} | {pair['seconds']} | "
                     f"{pair['pixel_flip_rate']:.3f} | {pair['baseline']} {pair['baseline_steps']} | "
                     f"{pair['baseline_seconds']} | {pair['baseline_pixel_flip_rate']:.3f} |")
    return lines


def to_markdown(result: dict) -> str:
    rows = result["variants"]
    all_rows = sum(rows.values(), [])
    kid_key = next((k for row in all_rows for k in row if k.startswith("kid_") and k.endswith("_mean")
                    and not k.endswith("_to_paired_mean")), "kid_judge_mean")
    extractor = kid_key[len("kid_"):-len("_mean")]
    judge, paired = result["judge"], result["paired_truth"]
    floor = judge["floor"]
    reliability = result.get("reliability") or {}
    machine_info = result["machine"]
    lines = [
        f"# semguard benchmark: {result['name']}",
        "",
        *([result["description"], ""] if result.get("description") else []),
        f"- command: `{result['command']}` (spec {result['spec_file']}"
        + (f", overrides {result['spec_overrides']}" if result.get("spec_overrides") else "") + ")",
        f"- date: {result['date']}",
        f"- machine: {machine_info.get('cpu') or machine_info['platform']}, torch {machine_info['torch']}"
        + (f", {machine_info['cuda']}" if machine_info.get("cuda") else ", no GPU"),
        f"- seeds: {result['seeds']}; frames: {json.dumps(result['spec']['frames'])}; budgets: "
        f"{json.dumps(result['spec']['budgets'])}",
        f"- split: {result['split']['translators_frames']} target frames for the translators (guide, discriminators, "
        f"pairing, oracle), {result['split']['judge_frames']} for the judge; {result['split']['how']}",
        f"- judge ({judge['arch']}, seed {judge['seed']}): mIoU on target val {_fmt(judge['miou'])}"
        + (f" (predictions merged as the target labels them: {judge['merges']})" if judge.get("merges") else "")
        + f"; floor: {floor['source']}; pixel {_fmt(floor.get('pixel_flip_rate'))}; classes with a floor above 0.15: "
        f"{', '.join(n for n, r in (floor.get('per_class') or {}).items() if r > 0.15) or 'none'}",
        f"- reliable classes (floor <= {FLOOR_MAX}, judge IoU >= {IOU_MIN} on target val): "
        f"{', '.join(result['target_reliable_classes']) or 'none'}; as `semguard eval` chose them: "
        f"{', '.join(reliability.get('reliable') or []) or 'none'}",
        f"- source classes the target never labels (listed, not scored): "
        f"{', '.join(result['classes']['source_not_in_target']) or 'none'}",
        "",
    ]
    if not paired:
        lines += ["## Reading these figures without a paired truth", "", WITHOUT_PAIRED_TRUTH, ""]
    lines += ["## Headline (mean ± std over seeds)", "",
              "Flip: the share of source-labelled pixels the judge reads as another class on the translation. "
              + ("Excess = minus the paired truth's (the judge's error on a perfect translation, same frames). "
                 if paired else "")
              + f"Realism: KID ({extractor} features) against target val and sKVD (KID on crops matched by label "
              "layout). Lower is better everywhere except the 'kept' columns.", ""]
    columns = [("pixel flip", "pixel_flip_rate", 3), ("reliable-class mean flip", "target_reliable_mean_flip_rate", 3)]
    if paired:
        columns += [("excess pixel flip", "excess_pixel_flip_rate", 3),
                    ("excess reliable mean (eval)", "excess_reliable_mean_flip_rate", 3),
                    (f"kid_{extractor} to paired", f"kid_{extractor}_to_paired_mean", 4)]
    columns += [(f"kid_{extractor} vs target val", kid_key, 4), (f"skvd_{extractor}", f"skvd_{extractor}", 4)]
    if any(_values(all_rows, "box_flip_traffic sign")):
        columns += [("box flip sign", "box_flip_traffic sign", 3), ("box flip light", "box_flip_traffic light", 3)]
    if any(_values(all_rows, "state_preserved")):
        columns += [("light state kept", "state_preserved", 3), ("sign pictogram kept", "pictogram_preserved", 3)]
    columns += [("train img/s", "train_img_per_s", 2)]
    lines += ["| variant | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, variant_rows in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(variant_rows, key, digits=d) for _, key, d in columns) + " |")
    for name, ref in result["references"].items():
        lines.append(f"| *{name} (reference)* | " + " | ".join(_fmt(ref.get(key), d) for _, key, d in columns) + " |")
    classes = [c for c in GAP_CLASSES if any(_values(all_rows, "flip_rate", c))] or \
        sorted({c for row in all_rows for c in row["flip_rate"]})[:8]
    lines += ["", "## Per-class flip rates (mean ± std over seeds)", "",
              "| variant | mean flip (all classes) | " + " | ".join(f"flip {c}" for c in classes) + " |",
              "|---" * (len(classes) + 2) + "|"]
    for name, variant_rows in rows.items():
        lines.append(f"| {name} | {cell(variant_rows, 'mean_flip_rate')} | "
                     + " | ".join(cell(variant_rows, "flip_rate", c) for c in classes) + " |")
    for name, ref in result["references"].items():
        lines.append(f"| *{name} (reference)* | {_fmt(ref.get('mean_flip_rate'))} | "
                     + " | ".join(_fmt(ref["flip_rate"].get(c)) for c in classes) + " |")
    if result.get("curves"):
        lines += ["", *_curves_table(result["curves"], result["references"], paired), *_wallclock_lines(result)]
    if result["downstream"]:
        lines += ["", "## Downstream: a segmenter trained on ..., scored on target val (mean ± std over seeds)", "",
                  "sim: the untranslated source; NAME_translated: the source translated by NAME, with the source "
                  "labels; real_oracle: the translators' part of the target with its own labels (the ceiling).", ""]
        lines += _downstream_table(result["downstream"], ("miou",), "per_class_iou", "IoU", {"miou": "mIoU"})
    if result.get("downstream_detection"):
        lines += ["", "## Downstream detection: a detector trained on ..., scored on target val's boxes "
                  "(mean ± std over seeds)", ""]
        lines += _downstream_table(result["downstream_detection"], ("map", "map_50"), "ap_per_class", "AP",
                                   {"map": "mAP", "map_50": "mAP@0.5"})
    elif result.get("detection_skipped"):
        lines += ["", f"Downstream detection: skipped ({result['detection_skipped']})."]
    if result.get("figure"):
        captions = "source | " + " | ".join(v for v in (result["spec"]["downstream"]["baseline"],
                                                         result["spec"]["downstream"]["method"]))
        lines += ["", "## Picture", "", f"![{captions}]({result['figure']})"]
    lines += ["", "## Stages", "", "| stage | seconds | peak RSS MB |", "|---|---|---|"]
    for name, info in result["stages"].items():
        lines.append(f"| {name} | {info['seconds']} | {info.get('peak_rss_mb', '')} |")
    return "\n".join(lines) + "\n"


def check_well_formed(result: dict) -> list[str]:
    """Problems with a result (every figure present and in range)."""
    problems = []
    for name, rows in result["variants"].items():
        for row in rows:
            value = row.get("mean_flip_rate")
            if not isinstance(value, float) or not 0.0 <= value <= 1.0:
                problems.append(f"{name} seed {row['seed']}: mean flip rate {value!r} is not a rate")
            value = row.get("pixel_flip_rate")
            if not isinstance(value, float) or not 0.0 <= value <= 1.0:
                problems.append(f"{name} seed {row['seed']}: pixel flip rate {value!r} is not a rate")
    if set(result["variants"]) != set(result["variant_names"]):
        problems.append(f"variants {sorted(result['variants'])} != {sorted(result['variant_names'])}")
    for name, records in result["downstream"].items():
        for record in records:
            miou = record.get("miou")
            if not isinstance(miou, float) or not 0.0 <= miou <= 1.0:
                problems.append(f"downstream {name} seed {record['seed']}: mIoU {miou!r} is not in [0, 1]")
    for name, records in (result.get("downstream_detection") or {}).items():
        for record in records:
            value = record.get("map")   # None: the target val frames hold no box of a detector class
            if value is not None and not (isinstance(value, float) and 0.0 <= value <= 1.0):
                problems.append(f"downstream detection {name} seed {record['seed']}: mAP {value!r} is not in [0, 1]")
    return problems
