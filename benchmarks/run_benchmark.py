"""The benchmark: semguard against the unconditioned CUT baseline and the ablations.

On the toy world, with equal budgets (steps, batch, crop, seeds), it trains every variant
(CUT; conditioning only; + seg-consistency; + box perceptual; semguard full), evaluates each
with the same judge (FID/KID on judge features, per-class flip rates, box preservation,
distance to the paired truth), measures train img/s and peak memory, and runs the downstream
test: a segmenter trained on (a) untranslated sim, (b) CUT-translated sim, (c) semguard-
translated sim, each with the sim labels, and (d) real labels (the oracle), scored by mIoU on
labelled real validation data.

Every stage is the user's own command (`semguard ...` in a subprocess), so the benchmark
exercises the product as shipped. Results: JSON + Markdown with the command, machine,
seeds and date.

    python benchmarks/run_benchmark.py --profile ci   --work /tmp/bench      # CI: < 20 min
    python benchmarks/run_benchmark.py --profile full --work runs/bench_full  # committed results
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"

# name -> config; every variant trains with the same budget, data and guide unless GUIDES says otherwise
VARIANTS: dict[str, str] = {
    "cut": "configs/toy_cut.yaml",
    "semguard_v1": "configs/toy_v1.yaml",
    "segdisc": "configs/toy_segdisc.yaml",
    "layout": "configs/toy_layout.yaml",
    "guide_real": "configs/toy_guide_real.yaml",
    "semguard": "configs/toy.yaml",
}
# run with --variants only: the earlier ablations of semguard_v1 (configs/toy_cond_*.yaml) and two
# one-key variants of semguard (VARIANT_OVERRIDES)
OPTIONAL_VARIANTS: dict[str, str] = {
    "cond_only": "configs/toy_cond_only.yaml",
    "cond_seg": "configs/toy_cond_seg.yaml",
    "cond_box": "configs/toy_cond_box.yaml",
    "semguard_seg16": "configs/toy.yaml",
    "semguard_spade2": "configs/toy.yaml",
    "semguard_attr": "configs/toy.yaml",
    "semguard_lights": "configs/toy.yaml",
    "semguard_no_lights": "configs/toy.yaml",
    "semguard_box_image": "configs/toy.yaml",
    "semguard_seg2": "configs/toy.yaml",
    "semguard_seg4": "configs/toy.yaml",
}
# variant -> --set overrides of its own, after the profile's (a variant that differs from its config in one key)
VARIANT_OVERRIDES: dict[str, tuple[str, ...]] = {
    # semguard with the segmentation discriminator at half width (a quarter of its FLOPs; issue 13)
    "semguard_seg16": ("model.discriminator.seg_base_channels=16",),
    # semguard with SPADE version 2 (3 in the full profile): what version 3's half of the FLOPs costs in flips
    "semguard_spade2": ("model.spade_version=2",),
    # semguard with the attribute term: a guide crop classifier reads each light's state and sign's pictogram
    "semguard_attr": ("loss.attr=1",),
    # semguard told each traffic light's state in the conditioning (model.conditioning.light_states; toy.yaml
    # has it on since benchmark_full_lights.md, so this variant equals semguard now), and the ablation without it
    "semguard_lights": ("model.conditioning.light_states=true",),
    "semguard_no_lights": ("model.conditioning.light_states=false",),
    # semguard handed the source pixels inside traffic light and sign boxes (model.conditioning.box_image)
    "semguard_box_image": ("model.conditioning.box_image=true",),
    # semguard with the guide's seg term at twice and four times its weight
    "semguard_seg2": ("loss.seg=2.0",),
    "semguard_seg4": ("loss.seg=4.0",),
}
# variant -> the guide it trains with (default "guide": sim labels on sim images); "guide_real" learns the
# target labels on target images (another architecture and seed than the judge, never the judge's split)
GUIDES: dict[str, str] = {"guide_real": "guide_real", "semguard": "guide_real", "semguard_seg16": "guide_real",
                          "semguard_spade2": "guide_real", "semguard_attr": "guide_real",
                          "semguard_lights": "guide_real", "semguard_no_lights": "guide_real",
                          "semguard_box_image": "guide_real", "semguard_seg2": "guide_real",
                          "semguard_seg4": "guide_real"}
# these run every seed of the profile (the others seed 0 only)
MAIN_VARIANTS = ("cut", "semguard", "semguard_seg16", "semguard_attr", "semguard_lights", "semguard_no_lights",
                 "semguard_box_image", "semguard_seg2", "semguard_seg4")
# variants that train with a guide crop classifier (loss.attr): it learns real/train crops with another seed
# than the instrument (crops.pt)
CROP_GUIDE_VARIANTS = ("semguard_attr",)
# variants whose light state and pictogram are also read by a third classifier, trained on the judge split
# that nothing trains on ("held-out" columns), beside semguard's
ATTRIBUTE_CHECKED_VARIANTS = ("semguard_attr", "semguard_lights", "semguard_no_lights", "semguard_box_image",
                              "semguard_seg2", "semguard_seg4")
GAP_CLASSES = ("sky", "vegetation", "building", "road", "sidewalk", "traffic sign", "traffic light")
HEADLINE = ("pixel_flip_rate", "excess_pixel_flip_rate", "reliable_mean_flip_rate", "excess_reliable_mean_flip_rate")


@dataclass(frozen=True)
class Profile:
    train: int            # toy frames per domain, training split
    val: int              # toy frames per domain, validation split (every figure of the report is over these)
    judge_frames: int     # judge split: frames per layout prior (real and sim layouts, real style)
    size: str             # toy frame size HxW
    crop: str             # training crop HxW ([H,W] for the YAML override)
    segmenter_steps: int  # the guide segmenters
    judge_steps: int      # the judge (trained once per benchmark; it needs the capacity to read what pixels show)
    downstream_steps: int  # each of the four downstream segmenters
    segmenter_crop: str
    crop_epochs: int      # crop classifier
    translator_steps: int
    batch_size: int
    seeds: tuple[int, ...]   # every seed for CUT and semguard; the ablations run the first seed only
    variants: tuple[str, ...] = tuple(VARIANTS)
    extra: tuple[str, ...] = field(default_factory=tuple)  # further --set overrides for every translator


PROFILES = {
    "ci": Profile(train=48, val=12, judge_frames=48, size="64x128", crop="64x128", segmenter_steps=60, judge_steps=60,
                  downstream_steps=60, segmenter_crop="64x128", crop_epochs=5, translator_steps=30, batch_size=2,
                  seeds=(0,), variants=("cut", "semguard", "segdisc"),
                  extra=("train.sample_every=0", "train.checkpoint_every=0")),
    # Sized for a 2-core CPU in about an hour; a GPU affords the 128x256 world and longer runs.
    "full": Profile(train=400, val=160, judge_frames=800, size="64x128", crop="64x128", segmenter_steps=400,
                    judge_steps=1000, downstream_steps=250, segmenter_crop="64x128", crop_epochs=20,
                    translator_steps=300, batch_size=2, seeds=(0, 1, 2),
                    variants=("cut", "semguard", "segdisc", "guide_real"),
                    extra=("train.sample_every=100", "train.checkpoint_every=150", "model.spade_version=3")),
}


class StageFailed(RuntimeError):
    pass


def run_stage(name: str, args: list[str], log_dir: Path) -> dict:
    """Run `semguard ARGS` in a subprocess; return wall time and the child's peak RSS (MB)."""
    command = [sys.executable, "-m", "semguard.cli", *args]
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    print(f"[{dt.datetime.now():%H:%M:%S}] {name}: semguard {shlex.join(args)}", flush=True)
    start = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise StageFailed(f"stage {name} failed with exit code {process.returncode}; log {log_path}:\n{tail}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "log": str(log_path)}


def read_train_speed(run_dir: Path) -> float | None:
    """Mean img/s over the logged steps of a training run (log.jsonl), skipping warm-up."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return None
    speeds = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        value = record.get("images_per_s")
        if isinstance(value, (int, float)):
            speeds.append(float(value))
    speeds = speeds[len(speeds) // 5:] if len(speeds) > 4 else speeds
    return round(statistics.fmean(speeds), 3) if speeds else None


def _rate(value):
    if isinstance(value, dict):
        value = value.get("value", value.get("rate"))
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _figure_value(figure):
    return figure.get("value") if isinstance(figure, dict) else None


def summarise_report(report: dict, variant: str = "translated") -> dict:
    """The figures the benchmark compares, out of one report.json variant."""
    entry = report["variants"][variant]
    flip = entry["flip"]
    per_class = {}
    for name, value in flip.get("per_class", {}).items():
        per_class[name] = _rate(value)
    distance = entry.get("image_distance") or {}
    extractor = distance.get("feature_extractor")
    out = {
        "mean_flip_rate": _rate(flip.get("mean_flip_rate")),
        "pixel_flip_rate": _rate(flip.get("pixel_flip_rate")),
        "flip_rate": {name: per_class.get(name) for name in GAP_CLASSES},
        f"fid_{extractor}": distance.get(f"fid_{extractor}"),
        f"kid_{extractor}_mean": distance.get(f"kid_{extractor}_mean"),
        f"kid_{extractor}_std": distance.get(f"kid_{extractor}_std"),
    }
    headline = flip.get("headline") or {}
    for key in HEADLINE[1:]:
        out[key] = _figure_value(headline.get(key))
    out["headline_ci"] = {key: (headline.get(key) or {}).get("ci") for key in HEADLINE}
    realism = entry.get("realism") or {}
    to_paired = realism.get("to_paired_truth") or {}
    out[f"kid_{extractor}_to_paired_mean"] = to_paired.get(f"kid_{extractor}_mean")
    out[f"fid_{extractor}_to_paired"] = to_paired.get(f"fid_{extractor}")
    skvd = realism.get("skvd") or {}
    out[f"skvd_{extractor}"] = skvd.get("kid_mean")
    out["skvd_match_rate"] = skvd.get("match_rate")
    attributes = entry.get("attributes") or {}
    for key, value in attributes.items():
        if isinstance(value, dict) and "accuracy" in value:
            out[f"{key}_preserved"] = _rate(value["accuracy"])
    boxes = entry.get("boxes") or {}
    for name, value in boxes.items():
        if isinstance(value, dict) and "mean_flip_rate" in value:
            out[f"box_flip_{name}"] = _rate(value["mean_flip_rate"])
    paired = entry.get("paired_distance") or {}
    out["psnr_to_paired"] = paired.get("psnr")
    out["ssim_to_paired"] = paired.get("ssim")
    return out


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def load_judge_metadata(path: Path):
    from semguard.checkpoints import load_segmenter

    return load_segmenter(path)


def segmenter_miou(path: Path) -> dict:
    from semguard.checkpoints import load_segmenter

    _, metadata = load_segmenter(path)
    val = metadata.get("metrics", {}).get("val", {})
    return {"miou": val.get("miou"), "per_class_iou": val.get("per_class_iou")}


def run(profile_name: str, work: Path, only: tuple[str, ...] | None = None) -> dict:
    profile = PROFILES[profile_name]
    variants = only or profile.variants
    logs = work / "logs"
    toy = work / "toy"
    crop_h, crop_w = profile.crop.split("x")
    # A rerun with the same --work skips the stages that finished (their output exists),
    # so an interrupted full run loses no finished work.
    stages_file = work / "stages.json"
    stages: dict[str, dict] = json.loads(stages_file.read_text()) if stages_file.is_file() else {}

    def stage(name, args, output: Path):
        if name in stages and output.exists():
            print(f"{name}: done earlier ({output}), skipped", flush=True)
            return stages[name]
        stages[name] = run_stage(name, args, logs)
        stages_file.write_text(json.dumps(stages, indent=1))
        return stages[name]

    stage("make_toy", ["data", "make-toy", "--out", str(toy), "--train", str(profile.train), "--val", str(profile.val),
                       "--judge", str(profile.judge_frames), "--size", profile.size, "--seed", "0", "--workers", "2",
                       "--overwrite"],
          toy / "judge/train/dataset.json")
    common_seg = ["--steps", str(profile.segmenter_steps), "--crop", profile.segmenter_crop, "--quiet"]
    stage("guide", ["segmenter", "train", "--role", "guide", "--data", str(toy / "sim/train"),
                    "--val", str(toy / "sim/val"), "--out", str(work / "guide.pt"), *common_seg], work / "guide.pt")
    # the judge reads the toy world's own judge split (fresh real and sim layouts, real style), which no
    # translator, guide or crop classifier trains on; its floor on the paired truth is recorded
    stage("judge", ["segmenter", "train", "--role", "judge", "--data", str(toy / "judge/train"),
                    "--val", str(toy / "real/val"), "--floor-data", str(toy / "paired/val"), "--out", str(work / "judge.pt"),
                    "--steps", str(profile.judge_steps), "--crop", profile.segmenter_crop, "--seed", "7", "--quiet"],
          work / "judge.pt")
    for guide in sorted({GUIDES[v] for v in variants if v in GUIDES}):
        stage(guide, ["segmenter", "train", "--role", "guide", "--data", str(toy / "real/train"),
                      "--val", str(toy / "real/val"), "--out", str(work / f"{guide}.pt"), "--arch", "fpn", "--seed", "2",
                      *common_seg],
              work / f"{guide}.pt")
    stage("crop_classifier", ["segmenter", "train-crops", "--data", str(toy / "real/train"),
                              "--val", str(toy / "real/val"), "--out", str(work / "crops.pt"),
                              "--epochs", str(profile.crop_epochs)], work / "crops.pt")
    if set(variants) & set(CROP_GUIDE_VARIANTS):
        stage("crop_guide", ["segmenter", "train-crops", "--data", str(toy / "real/train"), "--val", str(toy / "real/val"),
                             "--out", str(work / "crop_guide.pt"), "--epochs", str(profile.crop_epochs), "--seed", "1"],
              work / "crop_guide.pt")
    checked = bool(set(variants) & set(ATTRIBUTE_CHECKED_VARIANTS))
    if checked:
        stage("crop_check", ["segmenter", "train-crops", "--data", str(toy / "judge/train"), "--val", str(toy / "real/val"),
                             "--out", str(work / "crop_check.pt"), "--epochs", str(profile.crop_epochs), "--seed", "3"],
              work / "crop_check.pt")
    judge = segmenter_miou(work / "judge.pt")
    _, judge_meta = load_judge_metadata(work / "judge.pt")
    judge["floor"] = (judge_meta.get("metrics") or {}).get("floor")

    results: dict[str, list[dict]] = {}
    references: dict[str, dict] = {}
    reliability = None
    for variant in variants:
        for seed in (profile.seeds if variant in MAIN_VARIANTS else profile.seeds[:1]):
            run_dir = work / "runs" / f"{variant}_seed{seed}"
            overrides = [
                f"data.source={toy / 'sim/train'}", f"data.target={toy / 'real/train'}",
                f"data.crop=[{crop_h},{crop_w}]", f"data.batch_size={profile.batch_size}",
                f"train.steps={profile.translator_steps}", f"train.seed={seed}", f"train.out={run_dir}",
                f"guide.checkpoint={work / (GUIDES.get(variant, 'guide') + '.pt')}", *profile.extra,
                *VARIANT_OVERRIDES.get(variant, ()),
            ]
            if variant in CROP_GUIDE_VARIANTS:
                overrides.append(f"guide.crop_classifier={work / 'crop_guide.pt'}")
            args = ["train", "--config", {**VARIANTS, **OPTIONAL_VARIANTS}[variant], "--no-progress"]
            for override in overrides:
                args += ["--set", override]
            train_stage = stage(f"train_{variant}_seed{seed}", args, run_dir / "final.pt")
            report_dir = work / "reports" / f"{variant}_seed{seed}"
            stage(f"eval_{variant}_seed{seed}", [
                "eval", "--checkpoint", str(run_dir / "final.pt"), "--data", str(toy), "--judge", str(work / "judge.pt"),
                "--crop-classifier", str(work / "crops.pt"), "--flip-report", "--out", str(report_dir),
                "--seed", str(seed), "--no-lpips"], report_dir / "report.json")
            report = json.loads((report_dir / "report.json").read_text())
            summary = summarise_report(report)
            summary.update(seed=seed, train_img_per_s=read_train_speed(run_dir),
                           train_peak_rss_mb=train_stage["peak_rss_mb"], train_seconds=train_stage["seconds"])
            if checked and (variant in ATTRIBUTE_CHECKED_VARIANTS or variant == "semguard"):
                check_dir = work / "reports" / f"{variant}_seed{seed}_check"
                stage(f"evalcheck_{variant}_seed{seed}", [
                    "eval", "--checkpoint", str(run_dir / "final.pt"), "--data", str(toy), "--judge", str(work / "judge.pt"),
                    "--crop-classifier", str(work / "crop_check.pt"), "--flip-report", "--out", str(check_dir), "--seed", str(seed),
                    "--no-lpips"], check_dir / "report.json")
                check = summarise_report(json.loads((check_dir / "report.json").read_text()))
                summary.update({f"{key}_check": check.get(key) for key in ("state_preserved", "pictogram_preserved")})
            results.setdefault(variant, []).append(summary)
            for reference in ("source", "paired_truth"):
                if reference in report["variants"] and reference not in references:
                    references[reference] = summarise_report(report, reference)
            reliability = report.get("reliability")

    downstream = run_downstream(profile, work, toy, stage)
    figure = comparison_figure(work, toy, [v for v in ("cut", "semguard") if v in variants], profile.seeds[0])
    return {
        "profile": profile_name,
        "profile_settings": asdict(profile),
        "command": " ".join([Path(sys.executable).name, *map(shlex.quote, sys.argv)]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "seeds": list(profile.seeds),
        "judge": judge,
        "variant_names": list(variants),
        "variants": results,
        "references": references,
        "reliability": reliability,
        "downstream": downstream,
        "figure": figure,
        "stages": stages,
    }


def comparison_figure(work: Path, toy: Path, variants: list[str], seed: int, frames: int = 4) -> str | None:
    """The same validation frames as source | each variant | paired truth, for the README and the results."""
    import numpy as np

    from semguard.data.folder import FolderDataset
    from semguard.metrics.report import draw_panel_grid
    from semguard.translate import Translator

    checkpoints = {v: work / "runs" / f"{v}_seed{seed}" / "final.pt" for v in variants}
    if not variants or not all(path.is_file() for path in checkpoints.values()):
        return None
    source, paired = FolderDataset(toy / "sim/val"), FolderDataset(toy / "paired/val")
    translators = {v: Translator.from_checkpoint(path) for v, path in checkpoints.items()}
    rows = []
    for index in range(min(frames, len(source))):
        sample = source[index]
        rows.append([sample.image] + [np.asarray(translators[v].translate_sample(sample).image) for v in variants]
                    + [paired[paired.names.index(sample.name)].image])
    draw_panel_grid(rows, ["source (sim)"] + [f"{v} (seed {seed})" for v in variants] + ["paired truth"],
                    "the same sim validation frames, translated", work / "comparison.png")
    return str(work / "comparison.png")


def run_downstream(profile: Profile, work: Path, toy: Path, stage) -> dict:
    """Segmenters trained on sim / CUT-translated sim / semguard-translated sim / real, tested on real val."""
    seed = profile.seeds[0]
    sets = {"sim": toy / "sim/train", "real_oracle": toy / "real/train"}
    for variant in ("cut", "semguard"):
        out = work / "translated" / variant
        stage(f"translate_{variant}", ["translate", "--checkpoint", str(work / "runs" / f"{variant}_seed{seed}" / "final.pt"),
                                       "--input", str(toy / "sim/train"), "--format", "folder", "--out", str(out),
                                       "--no-progress"], out / "manifest.json")
        sets[f"{variant}_translated"] = out
    scores = {}
    for name, data in sets.items():
        path = work / "downstream" / f"{name}.pt"
        stage(f"downstream_{name}", ["segmenter", "train", "--role", "downstream", "--data", str(data),
                                     "--val", str(toy / "real/val"), "--out", str(path), "--seed", str(seed),
                                     "--steps", str(profile.downstream_steps), "--crop", profile.segmenter_crop, "--quiet"],
              path)
        scores[name] = segmenter_miou(path)
    return scores


# ------------------------------------------------------------------ output


def _fmt(value, digits=3):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mean_spread(rows: list[dict], key: str, sub: str | None = None):
    values = [(row.get(key) if sub is None else (row.get(key) or {}).get(sub)) for row in rows]
    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _cell(rows, key, sub=None, digits=3):
    mean, spread = _mean_spread(rows, key, sub)
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {spread:.{digits}f}" if spread is not None else "")


def to_markdown(result: dict) -> str:
    rows = result["variants"]
    all_rows = sum(rows.values(), [])
    kid_key = next((k for row in all_rows for k in row if k.startswith("kid_") and k.endswith("_to_paired_mean")),
                   "kid_judge_to_paired_mean")
    extractor = kid_key[len("kid_"):-len("_to_paired_mean")]
    judge = result["judge"]
    floor = judge.get("floor") or {}
    reliability = result.get("reliability") or {}
    lines = [
        f"# semguard benchmark ({result['profile']} profile)",
        "",
        f"- command: `{result['command']}`",
        f"- date: {result['date']}",
        f"- machine: {result['machine']['platform']}, {result['machine']['cpu_count']} CPUs, torch {result['machine']['torch']}"
        + (f", {result['machine']['cuda']}" if result['machine']['cuda'] else ", no GPU"),
        f"- seeds: {result['seeds']}; settings: {json.dumps(result['profile_settings'])}",
        f"- judge (trained on the toy world's judge split): mIoU on real val {_fmt(judge['miou'])}; floor (pixel flip on "
        f"the paired truth) {_fmt(floor.get('pixel_flip_rate'))}; classes with a floor above 0.15: "
        f"{', '.join(n for n, r in (floor.get('per_class') or {}).items() if r > 0.15) or 'none'}",
        f"- reliable classes (floor <= {reliability.get('floor_max')}, judge IoU >= {reliability.get('iou_min')}): "
        f"{', '.join(reliability.get('reliable') or []) or 'n/a'}; left out: "
        f"{'; '.join(f'{k} ({v})' for k, v in (reliability.get('unreliable') or {}).items()) or 'none'}",
        f"- every figure is over the {result['profile_settings']['val']} sim validation frames; mean ± std over seeds",
        "",
        "## Headline (mean ± std over seeds)",
        "",
        "Excess = minus the paired truth (the judge's error on a perfect translation, same frames). Realism on matched "
        f"content: KID ({extractor} features) to the paired truth, and sKVD (KID on crops matched by label layout to real "
        "val crops). Lower is better everywhere except the 'kept' columns.",
        "",
        f"| variant | pixel flip | excess pixel flip | reliable-class mean flip | excess reliable mean | box flip sign | "
        f"box flip light | light state kept | sign pictogram kept | kid_{extractor} to paired | skvd_{extractor} | "
        f"train img/s |",
        "|---" * 12 + "|",
    ]
    headline_cells = [("pixel_flip_rate", None, 3), ("excess_pixel_flip_rate", None, 3), ("reliable_mean_flip_rate", None, 3),
                      ("excess_reliable_mean_flip_rate", None, 3), ("box_flip_traffic sign", None, 3),
                      ("box_flip_traffic light", None, 3), ("state_preserved", None, 3), ("pictogram_preserved", None, 3),
                      (kid_key, None, 4), (f"skvd_{extractor}", None, 4)]
    for name, variant_rows in rows.items():
        cells = [_cell(variant_rows, key, sub, digits) for key, sub, digits in headline_cells]
        cells.append(_cell(variant_rows, "train_img_per_s", digits=2))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, ref in result["references"].items():
        cells = [_fmt(ref.get(key), digits) for key, _, digits in headline_cells]
        lines.append(f"| *{name} (reference)* | " + " | ".join(cells) + " |  |")
    lines += ["", "## Per-class flip rates and secondary figures (mean ± std over seeds)", "",
              f"| variant | mean flip (all classes) | {' | '.join('flip ' + c for c in GAP_CLASSES)} | "
              f"kid_{extractor} vs real val (rewards real layout) | PSNR to paired | peak RSS MB |",
              "|---" * (5 + len(GAP_CLASSES)) + "|"]
    for name, variant_rows in rows.items():
        cells = [_cell(variant_rows, "mean_flip_rate")] + [_cell(variant_rows, "flip_rate", c) for c in GAP_CLASSES]
        cells += [_cell(variant_rows, f"kid_{extractor}_mean", digits=4), _cell(variant_rows, "psnr_to_paired", digits=2),
                  _cell(variant_rows, "train_peak_rss_mb", digits=0)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, ref in result["references"].items():
        cells = [_fmt(ref.get("mean_flip_rate"))] + [_fmt(ref["flip_rate"].get(c)) for c in GAP_CLASSES]
        cells += [_fmt(ref.get(f"kid_{extractor}_mean"), 4), _fmt(ref.get("psnr_to_paired"), 2), ""]
        lines.append(f"| *{name} (reference)* | " + " | ".join(cells) + " |")
    lines += ["", "## Downstream: segmenter trained on ..., tested on real val", "", "| training data | mIoU | IoU traffic light | IoU traffic sign |", "|---|---|---|---|"]
    for name, score in result["downstream"].items():
        per_class = score.get("per_class_iou") or {}
        lines.append(f"| {name} | {_fmt(score.get('miou'))} | {_fmt(per_class.get('traffic light'))} | {_fmt(per_class.get('traffic sign'))} |")
    checked = {name: variant_rows for name, variant_rows in rows.items()
               if any(row.get("state_preserved_check") is not None for row in variant_rows)}
    if checked:
        lines += ["", "## Box attributes read by a held-out crop classifier (mean ± std over seeds)", "",
                  "The columns above read with the instrument (a crop classifier on real/train crops, seed 0; a variant "
                  "with loss.attr trains against another one, real/train crops, seed 1). These read with a third "
                  "classifier trained on the judge split, which nothing trains on, so a gain that only fools "
                  "classifiers of real/train crops would not show here.", "",
                  "| variant | light state kept (instrument) | light state kept (held-out) | pictogram kept (instrument) | "
                  "pictogram kept (held-out) |", "|---|---|---|---|---|"]
        for name, variant_rows in checked.items():
            cells = [_cell(variant_rows, key) for key in ("state_preserved", "state_preserved_check",
                                                          "pictogram_preserved", "pictogram_preserved_check")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if result.get("figure"):
        lines += ["", "## Picture", "", f"![source, translations, paired truth]({result['figure']})"]
    lines += ["", "## Stages", "", "| stage | seconds | peak RSS MB |", "|---|---|---|"]
    for name, info in result["stages"].items():
        lines.append(f"| {name} | {info['seconds']} | {info['peak_rss_mb']} |")
    return "\n".join(lines) + "\n"


def check_well_formed(result: dict) -> list[str]:
    """Problems with a result (every stage ran, every figure present and finite)."""
    problems = []
    for name, rows in result["variants"].items():
        for row in rows:
            value = row.get("mean_flip_rate")
            if not isinstance(value, float) or not 0.0 <= value <= 1.0:
                problems.append(f"{name} seed {row['seed']}: mean flip rate {value!r} is not a rate")
            if not any(k.startswith("kid_") and k.endswith("_to_paired_mean") and isinstance(v, (int, float))
                       and math.isfinite(v) for k, v in row.items()):
                problems.append(f"{name} seed {row['seed']}: no finite KID to the paired truth")
            no_reliable = not (result.get("reliability") or {}).get("reliable")
            for key in HEADLINE:
                value = row.get(key)
                if value is None and no_reliable and "reliable" in key:
                    continue   # a judge that reads no class reliably (short ci budgets): said in the results
                if not isinstance(value, float) or not -1.0 <= value <= 1.0:
                    problems.append(f"{name} seed {row['seed']}: {key} {value!r} is not a rate (or a difference of two)")
    expected = set(result.get("variant_names") or PROFILES[result["profile"]].variants)
    if set(result["variants"]) != expected:
        problems.append(f"variants {sorted(result['variants'])} != {sorted(expected)}")
    for name in ("sim", "real_oracle", "cut_translated", "semguard_translated"):
        miou = result["downstream"].get(name, {}).get("miou")
        if not isinstance(miou, float) or not 0.0 <= miou <= 1.0:
            problems.append(f"downstream {name}: mIoU {miou!r} is not in [0, 1]")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    parser.add_argument("--work", type=Path, required=True, help="working folder for data, checkpoints and reports")
    parser.add_argument("--results", type=Path, default=None,
                        help="where to write benchmark_<profile>.json/.md (default: benchmarks/results for full, --work for ci)")
    parser.add_argument("--variants", nargs="+", choices=sorted({**VARIANTS, **OPTIONAL_VARIANTS}),
                        help="run these variants instead of the profile's (cut and semguard are needed downstream)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        result = run(args.profile, args.work, tuple(args.variants) if args.variants else None)
    except StageFailed as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    results_dir = args.results or (RESULTS if args.profile == "full" else args.work)
    results_dir.mkdir(parents=True, exist_ok=True)
    if result.get("figure"):
        figure = results_dir / f"benchmark_{args.profile}_comparison.png"
        shutil.copyfile(result["figure"], figure)
        result["figure"] = str(figure.relative_to(results_dir))
    (results_dir / f"benchmark_{args.profile}.json").write_text(json.dumps(result, indent=1))
    markdown = to_markdown(result)
    (results_dir / f"benchmark_{args.profile}.md").write_text(markdown)
    print(markdown)
    problems = check_well_formed(result)
    if problems:
        print("benchmark results are not well formed:\n- " + "\n- ".join(problems), file=sys.stderr)
        return 1
    print(f"benchmark ({args.profile}) complete in {result['total_seconds']} s; results in {results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
