"""Label fidelity against training budget: every headline figure at every checkpoint of long runs.

The benchmark (run_benchmark.py) scores each translator at one budget; a method that keeps labels
true at 300 steps and paints the sky by 1,200 passes it. This script trains each variant once per
seed to the longest budget, keeps a checkpoint every --every steps, evaluates every one of them with
the same judge (semguard eval --flip-report), and writes the curves:

    benchmarks/results/budget.json   curves.NAME: records {steps, seconds, seed, <figure keys>};
                                     variants.NAME: per-seed records at the largest budget;
                                     references: the untranslated frames and the paired truth (floor);
                                     equal_wallclock.cut: CUT at the step whose training seconds are
                                     nearest semguard's at the largest budget (when both ran)
    benchmarks/results/budget.md     the tables and the command
    benchmarks/results/budget.png    pixel and sky flip against steps, untranslated and floor as lines

Every stage is the user's own command in a subprocess; a rerun with the same --work skips what
finished (training resumes from its last checkpoint, finished evaluations are read back), so the
profile can span several sittings. Runs are scheduled onto the cores: --parallel runs at a time,
each with --threads threads (two 1-thread runs gave more throughput than one 2-thread run on a
2-core machine). Seconds are each run's own training time (log.jsonl); they are only comparable
between runs that shared the machine the same way.

    python benchmarks/run_curves.py --work runs/curves --steps 2400 --every 300 \\
        --variants cut semguard semguard_fidelity --seeds 0 --parallel 2 --threads 1
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_benchmark import machine, summarise_report  # noqa: E402
from semguard.benchmark.results import equal_wallclock, training_seconds  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"

# name -> (config, guide names (the first is guide.checkpoint, the others guide.ensemble), overrides)
CURVE_VARIANTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "cut": ("configs/toy_cut.yaml", (), ()),
    # toy.yaml as it was before issue 28 (4-level segmentation discriminator, fixed seg weight)
    "semguard_seg4": ("configs/toy.yaml", ("guide_real",), ("model.discriminator.seg_levels=4",)),
    # the lead of issue 28: the segmentation discriminator's field of view bounded to 28 px (2 levels)
    "semguard_seg2": ("configs/toy.yaml", ("guide_real",), ("model.discriminator.seg_levels=2",)),
    # + the guide's reading as a constraint and a second guide of another architecture whose worst reading counts
    # (toy.yaml until the third guide)
    "semguard_fidelity": ("configs/toy.yaml", ("guide_real", "guide_linknet"),
                          ("model.discriminator.seg_levels=2", "loss.seg_target=0.4", "loss.seg_target_rate=0.01",
                           "loss.seg_weight_max=10", "guide.ensemble_reduce=max")),
    # toy.yaml as it is now (three guides: the same runs as semguard_three_guides)
    "semguard": ("configs/toy.yaml", ("guide_real", "guide_linknet", "guide_deeplab"), ()),
    # toy.yaml with the projection discriminator (EPE-style: each patch judged against real patches of its class,
    # field of view 34 px at n_layers 2) instead of the segmentation discriminator and the texture patch one
    "semguard_projection": ("configs/toy.yaml", ("guide_real", "guide_linknet"),
                            ("model.discriminator.kind=projection", "model.discriminator.texture_patch=false")),
    # the projection discriminator with toy.yaml's texture patch discriminator beside it (counted only where the
    # paired labels agree), for the realism the projection one alone gives up
    "semguard_projection_texture": ("configs/toy.yaml", ("guide_real", "guide_linknet"),
                                    ("model.discriminator.kind=projection",)),
    # toy.yaml with the discriminators' learning rate halved: the discriminator loss keeps falling while the
    # judge's flips creep up after 1,200 steps (a probe of whether the adversary's growing strength drives it)
    "semguard_lr_d_half": ("configs/toy.yaml", ("guide_real", "guide_linknet"), ("train.lr_d=0.0001",)),
    # a third guide of a third architecture (DeepLabV3+) whose reading also counts (the worst of three): the probe
    # of whether the creep after 1,200 steps is two frozen guides being gamed, and toy.yaml since it held on 3 seeds
    "semguard_three_guides": ("configs/toy.yaml", ("guide_real", "guide_linknet", "guide_deeplab"), ()),
    # probes of the creep that remains with three guides (0.054 -> 0.061 from 1,200 to 2,400 steps): a fourth
    # guide of a fourth architecture (PSPNet), and the guides reading copies perturbed twice as strongly
    "semguard_four_guides": ("configs/toy.yaml", ("guide_real", "guide_linknet", "guide_deeplab", "guide_pspnet"),
                             ()),
    "semguard_perturb_04": ("configs/toy.yaml", ("guide_real", "guide_linknet", "guide_deeplab"),
                            ("guide.perturb=0.4",)),
}
# guide name -> (architecture, seed); every guide learns the target labels on real/train (never the judge split)
GUIDES = {"guide_real": ("fpn", 2), "guide_linknet": ("linknet", 5), "guide_deeplab": ("deeplabv3plus", 11),
          "guide_pspnet": ("pspnet", 13)}
FIGURES = ("pixel_flip_rate", "excess_pixel_flip_rate", "reliable_mean_flip_rate", "flip_rate",
           "state_preserved", "pictogram_preserved", "kid_judge_to_paired_mean", "kid_judge_mean")


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def semguard(args: list[str], log_path: Path, threads: int) -> None:
    """`semguard ARGS` in a subprocess with `threads` torch threads; raises naming the log on failure."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log(f"semguard {shlex.join(args)}")
    with log_path.open("a") as handle:
        status = subprocess.run([sys.executable, "-m", "semguard.cli", *args], stdout=handle,
                                stderr=subprocess.STDOUT, cwd=REPO, env=env).returncode
    if status != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"semguard {args[0]} failed (exit {status}); log {log_path}:\n{tail}")


def prepare(work: Path, threads: int, variants: list[str]) -> None:
    """The quick start's world, guides, judge and crop classifier (skipped where the file exists)."""
    toy, logs = work / "toy", work / "logs"
    if not (toy / "judge/train/dataset.json").exists():
        semguard(["data", "make-toy", "--out", str(toy), "--train", "300", "--val", "64", "--judge", "300",
                  "--size", "64x128", "--seed", "0", "--workers", "2", "--overwrite"], logs / "make_toy.log", threads)
    needed = {guide for name in variants for guide in CURVE_VARIANTS[name][1]}
    for guide in sorted(needed):
        arch, seed = GUIDES[guide]
        if not (work / f"{guide}.pt").exists():
            semguard(["segmenter", "train", "--role", "guide", "--data", str(toy / "real/train"), "--val",
                      str(toy / "real/val"), "--out", str(work / f"{guide}.pt"), "--arch", arch, "--seed", str(seed),
                      "--steps", "300", "--crop", "64x128", "--quiet"], logs / f"{guide}.log", threads)
    if not (work / "judge.pt").exists():
        semguard(["segmenter", "train", "--role", "judge", "--data", str(toy / "judge/train"), "--val",
                  str(toy / "real/val"), "--floor-data", str(toy / "paired/val"), "--out", str(work / "judge.pt"),
                  "--steps", "600", "--seed", "7", "--crop", "64x128", "--quiet"], logs / "judge.log", threads)
    if not (work / "crops.pt").exists():
        semguard(["segmenter", "train-crops", "--data", str(toy / "real/train"), "--val", str(toy / "real/val"),
                  "--out", str(work / "crops.pt"), "--epochs", "10", "--quiet"], logs / "crops.log", threads)


def _val_frames(toy: Path, folder: str):
    from semguard.data.formats import open_dataset

    dataset = open_dataset(toy / folder, "folder", labels_required=False)
    return [dataset[index] for index in range(len(dataset))]


def two_sample(checkpoint: Path | None, toy: Path, seed: int, threads: int) -> dict:
    """The classifier two-sample test (semguard.metrics.two_sample) of translated sim/val frames (untranslated
    when checkpoint is None) against the paired truth of the same layouts: 0.5 = indistinguishable."""
    import torch

    from semguard.metrics.two_sample import two_sample_accuracy
    from semguard.translate.translator import Translator

    sources, truth = _val_frames(toy, "sim/val"), _val_frames(toy, "paired/val")
    torch.set_num_threads(threads)
    if checkpoint is None:
        images = [sample.image for sample in sources]
    else:
        translator = Translator.from_checkpoint(checkpoint)
        with torch.no_grad():
            images = [translator.translate_sample(sample).image for sample in sources]
    result = two_sample_accuracy(images, [sample.image for sample in truth], seed=seed, threads=threads)
    return {key: result[key] for key in ("accuracy", "interval", "pair_accuracy", "n_test")}


def two_sample_floor(toy: Path, seed: int, threads: int) -> dict:
    """The same test between the paired truth and a second rendering of it (other noise and style draws)."""
    from semguard.data.toyworld.world import render_real_redraw
    from semguard.metrics.two_sample import two_sample_accuracy

    info = json.loads((toy / "paired/val/dataset.json").read_text())
    truth = _val_frames(toy, "paired/val")
    redraw = [render_real_redraw(info["seed"], info["index_base"] + index, 1, "sim", tuple(info["size"]),
                                 info["gap"]).image for index in range(len(truth))]
    result = two_sample_accuracy([sample.image for sample in truth], redraw, seed=seed, threads=threads)
    return {key: result[key] for key in ("accuracy", "interval", "pair_accuracy", "n_test")}


def checkpoint_steps(steps: int, every: int) -> list[int]:
    """The budgets on the curve: every `every` steps up to `steps` (which is always one)."""
    budgets = list(range(every, steps, every)) if every > 0 else []
    return budgets + [steps]


def train_and_evaluate(work: Path, name: str, seed: int, steps: int, every: int, threads: int,
                       collect: bool = False) -> list[dict]:
    """Train (or resume) one run to `steps`, evaluate every kept checkpoint; returns its curve records.
    collect: train nothing, evaluate the checkpoints the run has so far (an unfinished run: a partial curve)."""
    config, guides, overrides = CURVE_VARIANTS[name]
    run = work / "runs" / f"{name}_seed{seed}"
    toy = work / "toy"
    sets = [f"data.source={toy / 'sim/train'}", f"data.target={toy / 'real/train'}", "data.crop=[64,128]",
            f"train.steps={steps}", f"train.seed={seed}", f"train.out={run}", f"train.checkpoint_every={every}",
            "train.keep_last=0", "train.sample_every=300", *overrides]
    if guides:
        sets.append(f"guide.checkpoint={work / (guides[0] + '.pt')}")
        sets.append("guide.ensemble=[" + ",".join(str(work / (g + ".pt")) for g in guides[1:]) + "]")
    if not collect and not (run / "final.pt").exists():
        args = ["train", "--config", config, "--no-progress", "--resume"]
        for value in sets:
            args += ["--set", value]
        semguard(args, work / "logs" / f"train_{name}_seed{seed}.log", threads)
    seconds = training_seconds(run / "log.jsonl")
    records = []
    for budget in checkpoint_steps(steps, every):
        checkpoint = run / "checkpoints" / f"step_{budget:08d}.pt"
        if budget == steps:
            checkpoint = run / "final.pt"
        if collect and not checkpoint.exists():
            continue
        report_dir = work / "reports" / f"{name}_seed{seed}" / f"step_{budget:08d}"
        if not (report_dir / "report.json").exists():
            semguard(["eval", "--checkpoint", str(checkpoint), "--data", str(toy), "--judge", str(work / "judge.pt"),
                      "--crop-classifier", str(work / "crops.pt"), "--flip-report", "--out", str(report_dir),
                      "--seed", str(seed), "--no-lpips"], work / "logs" / f"eval_{name}_seed{seed}.log", threads)
        report = json.loads((report_dir / "report.json").read_text())
        record = {"steps": budget, "seconds": seconds.get(budget), "seed": seed, **summarise_report(report)}
        record["references"] = {variant: summarise_report(report, variant)
                                for variant in ("source", "paired_truth") if variant in report["variants"]}
        if budget in two_sample_steps(steps, every):   # a CNN trained per checkpoint: at three budgets, not all
            record["two_sample"] = cached(report_dir / "two_sample.json",
                                          lambda: two_sample(checkpoint, toy, seed, threads))
        if budget == steps:
            record["references"]["source"]["two_sample"] = cached(
                work / "reports" / f"two_sample_untranslated_seed{seed}.json", lambda: two_sample(None, toy, seed, threads))
            record["references"]["paired_truth"]["two_sample"] = cached(
                work / "reports" / f"two_sample_floor_seed{seed}.json", lambda: two_sample_floor(toy, seed, threads))
        records.append(record)
    return records


def downstream(work: Path, name: str, seed: int, steps: int, downstream_steps: int, threads: int) -> dict:
    """The downstream test at the largest budget: a segmenter (unet, seeded with `seed`) trained for
    `downstream_steps` on the training set `name` with the source labels (sim: the untranslated sim/train;
    real_oracle: real/train with its own labels; V_translated: sim/train translated by variant V's final
    checkpoint), scored on real/val. Returns {"seed", "miou", "per_class_iou"}; every file is kept and reused."""
    from semguard.benchmark.score import score_segmenter

    toy, logs = work / "toy", work / "logs"
    if name == "sim":
        data = toy / "sim/train"
    elif name == "real_oracle":
        data = toy / "real/train"
    else:
        variant = name.removesuffix("_translated")
        data = work / "translated" / f"{variant}_seed{seed}"
        if not (data / "manifest.json").exists():
            semguard(["translate", "--checkpoint", str(work / "runs" / f"{variant}_seed{seed}" / "final.pt"),
                      "--input", str(toy / "sim/train"), "--format", "folder", "--out", str(data), "--device", "cpu",
                      "--no-progress"], logs / f"translate_{variant}_seed{seed}.log", threads)
    checkpoint = work / "downstream" / f"{name}_steps{downstream_steps}_seed{seed}.pt"
    if not checkpoint.exists():
        semguard(["segmenter", "train", "--role", "downstream", "--data", str(data), "--val", str(toy / "real/val"),
                  "--out", str(checkpoint), "--arch", "unet", "--encoder", "resnet18", "--seed", str(seed),
                  "--steps", str(downstream_steps), "--crop", "64x128", "--device", "cpu", "--quiet"],
                 logs / f"downstream_{name}_seed{seed}.log", threads)
    score = cached(checkpoint.with_suffix(".json"), lambda: score_segmenter(checkpoint, toy / "real/val", {}))
    return {"seed": seed, "steps": steps, "miou": score["miou"], "per_class_iou": score["per_class_iou"]}


def two_sample_steps(steps: int, every: int) -> set[int]:
    """The budgets that get the two-sample test: the first, the middle one and the last."""
    budgets = checkpoint_steps(steps, every)
    return {budgets[0], budgets[(len(budgets) - 1) // 2], budgets[-1]}


def cached(path: Path, compute) -> dict:
    """compute() once: its JSON is kept at `path` and read back on a rerun."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value))
    return value


def summarise(curves: dict[str, list[dict]], steps: int) -> dict:
    variants = {name: [r for r in records if r["steps"] == steps] for name, records in curves.items()}
    last = next((r for records in variants.values() for r in records), None)
    references = last["references"] if last else {}
    result = {"variants": variants, "references": references,
              "curves": {name: [{k: v for k, v in r.items() if k != "references"} for r in records]
                         for name, records in curves.items()}}
    for records in variants.values():
        for record in records:
            record.pop("references", None)
    method = next((name for name in ("semguard", "semguard_three_guides", "semguard_fidelity") if name in curves),
                  None)
    if "cut" in curves and method is not None:
        pairs = []
        for record in curves[method]:
            match = equal_wallclock(curves["cut"], record["seconds"]) if record.get("seconds") else None
            if match is not None:
                pairs.append({"method": method, "seed": record["seed"], "steps": record["steps"],
                              "seconds": record["seconds"], "pixel_flip_rate": record["pixel_flip_rate"],
                              "cut": {k: v for k, v in match.items() if k != "references"}})
        final = [pair for pair in pairs if pair["steps"] == steps]
        if final:
            # the method's largest budget against CUT's record nearest its training seconds (per the first seed's
            # run); `pairs`: the same for every budget and seed, CUT's record nearest each
            result["equal_wallclock"] = {"cut": final[0]["cut"], "semguard_seconds": final[0]["seconds"],
                                         "method": method, "pairs": pairs}
    return result


def _mean(records: list[dict], key: str, sub: str | None = None) -> str:
    values = [(r.get(key) or {}).get(sub) if sub else r.get(key) for r in records]
    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def to_markdown(result: dict, command: str) -> str:
    lines = ["# Label fidelity against training budget", "",
             f"- command: `{command}`", f"- date: {result['date']}; machine: {json.dumps(result['machine'])}",
             f"- world: the quick start's (64x128, 300 train / 64 val frames per domain); judge floor pixel flip "
             f"{result['references'].get('paired_truth', {}).get('pixel_flip_rate', float('nan')):.3f}, "
             f"untranslated {result['references'].get('source', {}).get('pixel_flip_rate', float('nan')):.3f}",
             f"- seeds {result['seeds']}; seconds are each run's training time with {result['parallel']} runs at "
             f"{result['threads']} thread(s) side by side" + (f"; note: {result['note']}" if result.get("note") else ""),
             f"- picture: {result.get('name', 'budget')}.png: pixel and sky flip against steps, pixel flip against "
             "training seconds (seed means; untranslated and paired truth dashed)", "",
             "| variant | steps | seconds | pixel flip | sky flip | vegetation flip | reliable mean | light state kept | "
             "pictogram kept | KID to paired truth | two-sample accuracy to paired truth |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, records in result["curves"].items():
        for steps in sorted({r["steps"] for r in records}):
            rows = [r for r in records if r["steps"] == steps]
            seconds = _mean(rows, "seconds")
            lines.append(f"| {name} | {steps} | {seconds} | {_mean(rows, 'pixel_flip_rate')} | "
                         f"{_mean(rows, 'flip_rate', 'sky')} | {_mean(rows, 'flip_rate', 'vegetation')} | "
                         f"{_mean(rows, 'reliable_mean_flip_rate')} | {_mean(rows, 'state_preserved')} | "
                         f"{_mean(rows, 'pictogram_preserved')} | {_mean(rows, 'kid_judge_to_paired_mean')} | "
                         f"{_mean(rows, 'two_sample', 'accuracy')} |")
    for name, reference in result["references"].items():
        lines.append(f"| {name} (reference) | | | {reference.get('pixel_flip_rate', 0):.3f} | "
                     f"{(reference.get('flip_rate') or {}).get('sky') or 0:.3f} | "
                     f"{(reference.get('flip_rate') or {}).get('vegetation') or 0:.3f} | "
                     f"{reference.get('reliable_mean_flip_rate') or 0:.3f} | | | | "
                     f"{(reference.get('two_sample') or {}).get('accuracy', '-')} |")
    classes = ("sky", "road", "sidewalk", "building", "vegetation", "terrain", "car", "person", "pole",
               "traffic sign", "traffic light")
    lines += ["", "## Per-class flip at each variant's last budget (mean ± std over seeds)", "",
              "| variant | steps | " + " | ".join(classes) + " |", "|---" * (len(classes) + 2) + "|"]
    for name, records in result["curves"].items():
        last = max(r["steps"] for r in records)
        rows = [r for r in records if r["steps"] == last]
        lines.append(f"| {name} | {last} | " + " | ".join(_mean(rows, "flip_rate", c) for c in classes) + " |")
    for name, reference in result["references"].items():
        flips = reference.get("flip_rate") or {}
        lines.append(f"| {name} (reference) | | " + " | ".join(
            f"{flips[c]:.3f}" if isinstance(flips.get(c), (int, float)) else "-" for c in classes) + " |")
    if result.get("downstream"):
        lines += ["", f"## Downstream at {result['steps']} steps: a segmenter trained {result['downstream_steps']} steps on "
                  "each set with the sim labels (the oracle: real/train with its own), mIoU on real/val", "",
                  "| training set | seeds | mIoU |", "|---|---|---|"]
        for name, records in result["downstream"].items():
            if not records:   # a run without its final checkpoint (stopped early) has no downstream test
                continue
            lines.append(f"| {name} | {len(records)} | {_mean(records, 'miou')} |")
    if "equal_wallclock" in result:
        match = result["equal_wallclock"]
        lines += ["", f"## At equal wall clock: each {match['method']} checkpoint beside CUT's checkpoint nearest its "
                  "training seconds (CUT's longest run bounds the match)", "",
                  f"| seed | {match['method']} steps | seconds | pixel flip | CUT steps | CUT seconds | CUT pixel flip |",
                  "|---|---|---|---|---|---|---|"]
        for pair in match["pairs"]:
            cut = pair["cut"]
            lines.append(f"| {pair['seed']} | {pair['steps']} | {pair['seconds']} | {pair['pixel_flip_rate']:.3f} | "
                         f"{cut['steps']} | {cut['seconds']} | {cut['pixel_flip_rate']:.3f} |")
    return "\n".join(lines) + "\n"


def draw_curves(result: dict, path: Path, keys=(("pixel_flip_rate", None, "steps", None),
                                                ("pixel_flip_rate", None, "steps", 0.12),
                                                ("flip_rate", "sky", "steps", None),
                                                ("pixel_flip_rate", None, "seconds", None))) -> None:
    """A PNG: one panel per (figure, sub-key, x axis, y top): the figure against steps or training seconds per
    variant (the seed mean at each budget, placed at the seeds' mean seconds), references dashed. A panel with a
    y top is a zoom: the curves and references that rise above it are left out."""
    from PIL import Image, ImageDraw

    colours = [(200, 60, 60), (60, 120, 200), (60, 160, 80), (160, 90, 200), (230, 150, 30), (90, 90, 90),
               (0, 150, 150), (220, 80, 160), (140, 90, 30)]
    panel_w, panel_h, margin = 420, 300, 50
    legend_rows = (len(result["curves"]) + 1) // 2
    image = Image.new("RGB", (panel_w * len(keys), panel_h + 30 + 14 * legend_rows), "white")
    draw = ImageDraw.Draw(image)
    for panel, (key, sub, axis, zoom) in enumerate(keys):
        max_x = max((r.get(axis) or 0) for records in result["curves"].values() for r in records) or 1
        x0 = panel * panel_w + margin
        width, height = panel_w - margin - 15, panel_h - margin

        def value(record):
            v = record.get(key)
            return v.get(sub) if sub and isinstance(v, dict) else v

        top = zoom or max([value(r) or 0 for records in result["curves"].values() for r in records]
                          + [value(ref) or 0 for ref in result["references"].values()] + [0.05]) * 1.1

        def point(x, v):
            return x0 + width * x / max_x, 20 + height * (1 - v / top)
        draw.rectangle([x0, 20, x0 + width, 20 + height], outline=(0, 0, 0))
        draw.text((x0, 4), f"{key}{'/' + sub if sub else ''} (judge) vs {axis}; "
                  + (f"zoomed to 0..{top:.2f}" if zoom else f"max {top:.2f}"), fill=(0, 0, 0))
        draw.text((x0, 24 + height), f"0 .. {max_x:.0f} {axis}" + (" (training, 1 thread)" if axis == "seconds" else ""),
                  fill=(0, 0, 0))
        for index, (name, ref) in enumerate(result["references"].items()):
            if value(ref) is None or value(ref) > top:
                continue
            y = point(0, value(ref))[1]
            for x in range(int(x0), int(x0 + width), 8):
                draw.line([x, y, x + 4, y], fill=(120, 120, 120))
            draw.text((x0 + width - 90, y - 12), name, fill=(120, 120, 120))
        for index, (name, records) in enumerate(result["curves"].items()):
            colour = colours[index % len(colours)]
            draw.text((x0 + 5 + 200 * (index % 2), panel_h + 22 + 14 * (index // 2)), name, fill=colour)
            steps = sorted({r["steps"] for r in records if r.get(axis) is not None})
            means = [(statistics.fmean(r[axis] for r in records if r["steps"] == s),
                      statistics.fmean(value(r) for r in records if r["steps"] == s)) for s in steps]
            if any(v > top for _, v in means):
                continue                        # a zoomed panel leaves out what rises above it
            points = [point(x, v) for x, v in means]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--every", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=["cut", "semguard"], choices=sorted(CURVE_VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--name", default="budget", help="results file stem")
    parser.add_argument("--downstream", type=int, default=0, metavar="STEPS",
                        help="the downstream test at the largest budget: a segmenter trained STEPS steps on each "
                             "variant's translated sim frames (and on the untranslated ones, and the real oracle), "
                             "scored on real/val, per seed (0: off)")
    parser.add_argument("--note", default=None,
                        help="a line for the results' header, e.g. what else ran beside these runs (it bears on seconds)")
    parser.add_argument("--collect", action="store_true",
                        help="train nothing: evaluate and collect the checkpoints that the runs of --variants x --seeds "
                             "have (an unfinished run gives a partial curve)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    prepare(args.work, max(args.threads * args.parallel, 1), args.variants)
    jobs = [(name, seed) for seed in args.seeds for name in args.variants]
    if args.collect:   # runs that wrote at least one checkpoint
        jobs = [(name, seed) for name, seed in jobs if (args.work / "runs" / f"{name}_seed{seed}" / "log.jsonl").exists()]
    curves: dict[str, list[dict]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = {pool.submit(train_and_evaluate, args.work, name, seed, args.steps, args.every, args.threads,
                               args.collect):
                   (name, seed) for name, seed in jobs}
        for future in concurrent.futures.as_completed(futures):
            name, seed = futures[future]
            curves.setdefault(name, []).extend(future.result())
            log(f"{name} seed {seed}: done")
    curves = {name: sorted(curves[name], key=lambda r: (r["seed"], r["steps"])) for name in args.variants if name in curves}
    result = summarise(curves, args.steps)
    if args.downstream > 0:
        finished = [name for name in args.variants if name in curves]
        sets = ["sim"] + [f"{name}_translated" for name in finished] + ["real_oracle"]
        tasks = [(name, seed) for seed in args.seeds for name in sets
                 if not name.endswith("_translated") or (args.work / "runs" / f"{name.removesuffix('_translated')}"
                                                                                 f"_seed{seed}" / "final.pt").exists()]
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
            records = list(pool.map(lambda task: (task[0], downstream(args.work, task[0], task[1], args.steps,
                                                                      args.downstream, args.threads)), tasks))
        result["downstream"] = {name: [record for task, record in records if task == name] for name in sets}
        result["downstream_steps"] = args.downstream
    result.update(date=dt.date.today().isoformat(), machine=machine(), seeds=args.seeds, parallel=args.parallel,
                  threads=args.threads, steps=args.steps, every=args.every, name=args.name, note=args.note,
                  total_seconds=round(time.perf_counter() - start, 1))
    command = "python benchmarks/run_curves.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    result["command"] = command
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    (args.results / f"{args.name}.md").write_text(to_markdown(result, command))
    draw_curves(result, args.results / f"{args.name}.png")
    log(f"curves written to {args.results / args.name}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
