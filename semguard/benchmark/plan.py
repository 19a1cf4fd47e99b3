"""The benchmark's protocol as a list of stages: what runs, in which order, reading and writing what.

    make_toy                     the toy world (when the spec names toy sets)
    split                        target_train -> the translators' part and the judge's (WORK/split)
    view_*                       every set as a folder set at the benchmark's size (WORK/data)
    source_guide, target_guide   the guides the variants read (source labels; the translators' part), and
    *_guide_ensembleI            the further guides of configs that list guide.ensemble
    judge, score_judge           the judge (the judge's part; another arch and seed than target_guide),
                                 its floor (paired truth, else its own error on target val) and its score
    crop_classifier              box attributes (toy world)
    train_V_seedS, eval_V_seedS  every variant and seed on equal budgets; `semguard eval --flip-report`
    eval_V_seedS_stepK           with budgets.eval_every: the checkpoint after K steps, evaluated the same way
    translate_V_seedS            the downstream test per seed: source translated by baseline and method,
    downstream_D_seedS           a segmenter trained on each (and on the untranslated source, and on the
    score_downstream_D_seedS     translators' part of the target), scored on target val
    detector_D_seedS             with budgets.detector_steps and boxes on both sides: a detector trained on
    score_detector_D_seedS       each of the same sets with its boxes, scored on target val's boxes (mAP)

Every command stage is what a user would type; its paths are under WORK. Each stage names the
stages it `needs` (whose outputs it reads), so that `semguard benchmark --jobs N` can run
independent ones side by side; every stage after the data views needs them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from semguard.benchmark.preflight import Preflight
from semguard.benchmark.score import FORMAT_MERGES, score_segmenter
from semguard.benchmark.spec import DataSetSpec, LoadedSpec
from semguard.benchmark.stages import Stage
from semguard.benchmark.views import JUDGE_LIST, SPLIT_DIR, TRANSLATORS_LIST, make_view, read_names, split_names, write_split
from semguard.checkpoints import step_checkpoint_name
from semguard.data.formats import open_dataset

# expected seconds per unit on the reference 2-core CPU at 64x128 (the ETA's weights)
TRANSLATOR_SECONDS_PER_STEP = 0.7
SEGMENTER_SECONDS_PER_STEP = 0.32
DETECTOR_SECONDS_PER_STEP = 0.15   # semguard detector train, batch 8, 64x128: 1200 steps in 176 s of CPU time
REFERENCE_PIXELS = 64 * 128


@dataclass(frozen=True)
class Layout:
    """Where everything lives under the work folder."""

    work: Path

    def data(self, name: str) -> Path:
        return self.work / "data" / name

    def segmenter(self, name: str) -> Path:
        return self.work / "segmenters" / f"{name}.pt"

    def run(self, variant: str, seed: int) -> Path:
        return self.work / "runs" / f"{variant}_seed{seed}"

    def report(self, variant: str, seed: int, step: int | None = None) -> Path:
        """The final checkpoint's evaluation, or the one of the checkpoint after `step` steps."""
        return self.work / "reports" / (f"{variant}_seed{seed}" + (f"_step{step}" if step is not None else ""))

    def translated(self, variant: str, seed: int) -> Path:
        return self.work / "translated" / f"{variant}_seed{seed}"

    def downstream(self, name: str, seed: int) -> Path:
        return self.work / "downstream" / f"{name}_seed{seed}.pt"

    def detector(self, name: str, seed: int) -> Path:
        return self.work / "detectors" / f"{name}_seed{seed}.pt"

    def score(self, name: str) -> Path:
        return self.work / "scores" / f"{name}.json"

    @property
    def split(self) -> Path:
        return self.work / SPLIT_DIR


def downstream_sets(loaded: LoadedSpec, preflight: Preflight) -> list[str]:
    """The downstream training sets, in report order: sim, BASELINE_translated, METHOD_translated, real_oracle."""
    spec = loaded.spec
    names = ["sim", f"{spec.downstream.baseline}_translated", f"{spec.downstream.method}_translated"]
    return names + (["real_oracle"] if preflight.target_labelled else [])


def target_merges(loaded: LoadedSpec) -> dict[str, str]:
    data = loaded.spec.data
    return dict(data.merges) if data.merges else dict(FORMAT_MERGES.get(data.target_val.format, {}))


def build_plan(loaded: LoadedSpec, preflight: Preflight, work: Path) -> list[Stage]:
    spec = loaded.spec
    layout = Layout(work)
    scale = _pixels(spec.frames.crop) / REFERENCE_PIXELS
    seg_scale = _pixels(spec.segmenter_crop) / REFERENCE_PIXELS
    stages: list[Stage] = []

    def where(data_set: DataSetSpec) -> tuple[Path, str, dict]:
        if data_set.toy is not None:
            return work / "toy" / data_set.toy, "folder", {}
        return loaded.resolve(data_set.root), data_set.format, dict(data_set.options)

    def opened(data_set: DataSetSpec, labels_required: bool = True):

        root, fmt, options = where(data_set)
        return open_dataset(root, fmt, **{"labels_required": labels_required, **options})

    if any(getattr(spec.data, name).toy is not None for name in ("source", "source_val", "paired", "target_train",
                                                                  "judge_train", "target_val")):
        toy = spec.toy
        last = "judge/train" if toy.judge > 0 else "real/val"
        stages.append(Stage("make_toy", work / "toy" / last / "dataset.json", command=(
            "data", "make-toy", "--out", str(work / "toy"), "--train", str(toy.train), "--val", str(toy.val),
            "--judge", str(toy.judge), "--size", f"{toy.size[0]}x{toy.size[1]}", "--seed", str(toy.seed),
            "--gap", str(toy.gap), "--workers", str(toy.workers), "--overwrite"),
            weight=25 * (toy.train + toy.judge) / 600 * _pixels(toy.size) / REFERENCE_PIXELS + 3))

    data = spec.data
    target_labelled = preflight.target_labelled

    def split_action() -> dict:
        root, fmt, options = where(data.target_train)
        names = list(opened(data.target_train, target_labelled).names)
        record = {"target_train": {"root": str(root), "format": fmt, "options": options}, "seed": spec.split.seed,
                  "judge_share": spec.split.judge_share}
        if data.judge_train.given:
            judge_root, judge_fmt, judge_options = where(data.judge_train)
            judge = list(opened(data.judge_train).names)
            record.update(judge_set_separate=True, judge_train={"root": str(judge_root), "format": judge_fmt,
                                                                "options": judge_options},
                          how="the judge learns data.judge_train, a set of its own; the translators all of target_train")
            write_split(layout.split, sorted(names), sorted(judge), record)
        else:
            translators, judge = split_names(names, spec.split.judge_share, spec.split.seed)
            record.update(judge_set_separate=False, how="a seeded permutation of target_train's frame names")
            write_split(layout.split, translators, judge, record)
        return {}

    stages.append(Stage("split", layout.split / "split.json", action=split_action, weight=1,
                        needs=tuple(stage.name for stage in stages)))

    def view(name: str, data_set: DataSetSpec, names_file: str | None = None, labels_required: bool = True) -> None:
        def action() -> dict:
            root, fmt, options = where(data_set)
            names = read_names(layout.split / names_file) if names_file else None
            count = make_view(opened(data_set, labels_required), root, fmt, layout.data(name), spec.frames.size,
                              names, origin={"options": options})
            return {"frames": count}

        stages.append(Stage(f"view_{name}", layout.data(name) / "dataset.json", action=action, weight=5,
                            needs=("split",)))

    view("source", data.source)
    if data.source_val.given:
        view("source_val", data.source_val)
    if data.paired.given:
        view("paired", data.paired)
    view("translators", data.target_train, TRANSLATORS_LIST, labels_required=target_labelled)
    if data.judge_train.given:
        view("judge", data.judge_train)
    else:
        view("judge", data.target_train, JUDGE_LIST)
    view("target_val", data.target_val)
    source_val = layout.data("source_val" if data.source_val.given else "source")
    target_val = layout.data("target_val")
    merges = target_merges(loaded)
    segmenters = spec.segmenters
    seg_common = ("--steps", "--crop", f"{spec.segmenter_crop[0]}x{spec.segmenter_crop[1]}",
                  "--batch-size", str(segmenters.batch_size), "--device", spec.device, "--quiet")

    def segmenter(role: str, data_root: Path, val: Path, out: Path, model, steps: int, *extra: str) -> tuple[str, ...]:
        return ("segmenter", "train", "--role", role, "--data", str(data_root), "--val", str(val), "--out", str(out),
                "--arch", model.arch, "--encoder", model.encoder, "--seed", str(model.seed), seg_common[0], str(steps),
                *seg_common[1:], *extra)

    def score(name: str, checkpoint: Path, needs: str) -> None:
        def action() -> dict:
            result = score_segmenter(checkpoint, target_val, merges)
            path = layout.score(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1))
            return {}

        stages.append(Stage(f"score_{name}", layout.score(name), action=action, weight=3, needs=(needs,)))

    data_stages = tuple(stage.name for stage in stages)   # the toy world, the split and the views
    guides = {variant.guide for variant in spec.variants.values()}
    if "source" in guides:
        stages.append(Stage("source_guide", layout.segmenter("source_guide"), weight=_seg(spec.budgets.guide_steps, seg_scale),
                            command=segmenter("guide", layout.data("source"), source_val, layout.segmenter("source_guide"),
                                              segmenters.source_guide, spec.budgets.guide_steps)))
    # configs listing guide.ensemble get that many further guides on their main guide's data, the i-th with the
    # i-th entry of segmenters.ensemble_guides (preflight refused a config listing more than the spec gives)
    ensembles: dict[str, int] = {}
    for name, variant in spec.variants.items():
        if variant.guide != "none" and preflight.configs[name].guide.ensemble:
            ensembles[variant.guide] = max(ensembles.get(variant.guide, 0), len(preflight.configs[name].guide.ensemble))
    guide_data = {"source": (layout.data("source"), source_val), "target": (layout.data("translators"), target_val)}
    for guide, count in sorted(ensembles.items()):
        for index in range(count):
            model = segmenters.ensemble_guides[index]
            path = layout.segmenter(f"{guide}_guide_ensemble{index}")
            stages.append(Stage(f"{guide}_guide_ensemble{index}", path, weight=_seg(spec.budgets.guide_steps, seg_scale),
                                command=segmenter("guide", *guide_data[guide], path, model, spec.budgets.guide_steps)))
    floor_data = layout.data("paired") if data.paired.given else target_val
    stages.append(Stage("judge", layout.segmenter("judge"), weight=_seg(spec.budgets.judge_steps, seg_scale),
                        command=segmenter("judge", layout.data("judge"), target_val, layout.segmenter("judge"),
                                          segmenters.judge, spec.budgets.judge_steps, "--floor-data", str(floor_data))))
    score("judge", layout.segmenter("judge"), "judge")
    if "target" in guides:
        stages.append(Stage("target_guide", layout.segmenter("target_guide"), weight=_seg(spec.budgets.guide_steps, seg_scale),
                            command=segmenter("guide", layout.data("translators"), target_val,
                                              layout.segmenter("target_guide"), segmenters.target_guide,
                                              spec.budgets.guide_steps)))
    crops = layout.segmenter("crops") if spec.budgets.crop_classifier_epochs > 0 else None
    if crops is not None:
        stages.append(Stage("crop_classifier", crops, weight=7.5 * spec.budgets.crop_classifier_epochs, command=(
            "segmenter", "train-crops", "--data", str(layout.data("translators")), "--val", str(target_val),
            "--out", str(crops), "--epochs", str(spec.budgets.crop_classifier_epochs))))

    eval_frames = preflight.frame_counts.get("source_val" if data.source_val.given else "source")
    if eval_frames is None:
        eval_frames = spec.toy.val if (data.source_val.toy or "").endswith("val") else spec.toy.train
    for seed in spec.seeds:
        for variant in spec.variants:
            if seed not in loaded.variant_seeds(variant):
                continue
            config = preflight.configs[variant]
            run_dir = layout.run(variant, seed)
            guide = spec.variants[variant].guide
            overrides = [
                f"data.source={layout.data('source')}", "data.source_format=folder", "data.source_options={}",
                f"data.target={layout.data('translators')}", "data.target_format=folder", "data.target_options={}",
                "data.resize=null", f"data.crop=[{spec.frames.crop[0]},{spec.frames.crop[1]}]",
                f"data.batch_size={spec.budgets.batch_size}", f"train.steps={spec.budgets.translator_steps}",
                f"train.seed={seed}", f"train.out={run_dir}", f"train.device={spec.device}",
                "guide.checkpoint=null" if guide == "none" else f"guide.checkpoint={layout.segmenter(guide + '_guide')}",
                "guide.ensemble=[" + ",".join(str(layout.segmenter(f"{guide}_guide_ensemble{i}"))
                                              for i in range(len(config.guide.ensemble) if guide != "none" else 0)) + "]",
                *loaded.variant_overrides(variant),
                # last: the checkpoints the eval_V_seedS_stepK stages read (whatever the overrides say)
                *((f"train.checkpoint_every={spec.budgets.eval_every}", "train.keep_last=0")
                  if spec.budgets.eval_every else ()),
            ]
            args = ["train", "--config", str(loaded.variant_config_path(variant)), "--no-progress"]
            for override in overrides:
                args += ["--set", override]
            heavy = 2.5 if config.model.discriminator.kind == "segmentation" else 1.0
            guide_stages = () if guide == "none" else (
                f"{guide}_guide", *(f"{guide}_guide_ensemble{i}" for i in range(len(config.guide.ensemble))))
            stages.append(Stage(f"train_{variant}_seed{seed}", run_dir / "final.pt", command=tuple(args),
                                weight=TRANSLATOR_SECONDS_PER_STEP * heavy * spec.budgets.translator_steps * scale
                                * spec.budgets.batch_size / 2, needs=guide_stages))
            for step in (*spec.budgets.eval_steps, None):   # None: the final checkpoint
                checkpoint = run_dir / ("final.pt" if step is None else f"checkpoints/{step_checkpoint_name(step)}")
                report = layout.report(variant, seed, step)
                eval_args = ["eval", "--checkpoint", str(checkpoint), "--source", str(source_val),
                             "--target-val", str(target_val), "--judge", str(layout.segmenter("judge")),
                             "--features", spec.eval.features, "--flip-report", "--out", str(report), "--seed", str(seed),
                             "--device", spec.device]
                if data.paired.given:
                    eval_args += ["--paired", str(layout.data("paired"))]
                if crops is not None:
                    eval_args += ["--crop-classifier", str(crops)]
                if not spec.eval.lpips:
                    eval_args.append("--no-lpips")
                stages.append(Stage(f"eval_{variant}_seed{seed}" + (f"_step{step}" if step is not None else ""),
                                    report / "report.json", command=tuple(eval_args), weight=8 + 0.2 * eval_frames * scale,
                                    needs=(f"train_{variant}_seed{seed}", "judge") + (("crop_classifier",) if crops else ())))
        if spec.downstream.enabled:
            _downstream_stages(loaded, preflight, layout, seed, stages, segmenter, score, seg_scale, scale)
    # every later stage reads the data views (and nothing runs beside the in-process split and views)
    return [stage if stage.name in data_stages else replace(stage, needs=(*data_stages, *stage.needs))
            for stage in stages]


def _downstream_stages(loaded, preflight, layout: Layout, seed: int, stages: list[Stage], segmenter, score,
                       seg_scale: float, scale: float) -> None:
    spec = loaded.spec
    training = {"sim": layout.data("source")}
    made_by: dict[str, tuple[str, ...]] = {"sim": (), "real_oracle": ()}
    frames = preflight.frame_counts.get("source", spec.toy.train)
    for variant in (spec.downstream.baseline, spec.downstream.method):
        out = layout.translated(variant, seed)
        stages.append(Stage(f"translate_{variant}_seed{seed}", out / "manifest.json", weight=3 + 0.06 * frames * scale,
                            command=(
            "translate", "--checkpoint", str(layout.run(variant, seed) / "final.pt"), "--input",
            str(layout.data("source")), "--format", "folder", "--out", str(out), "--device", spec.device, "--no-progress"),
            needs=(f"train_{variant}_seed{seed}",)))
        training[f"{variant}_translated"] = out
        made_by[f"{variant}_translated"] = (f"translate_{variant}_seed{seed}",)
    if preflight.target_labelled:
        training["real_oracle"] = layout.data("translators")
    model = spec.segmenters.downstream
    for name in downstream_sets(loaded, preflight):
        path = layout.downstream(name, seed)
        seeded = type(model)(model.arch, seed, model.encoder)
        stages.append(Stage(f"downstream_{name}_seed{seed}", path, weight=_seg(spec.budgets.downstream_steps, seg_scale),
                            command=segmenter("downstream", training[name], layout.data("target_val"), path, seeded,
                                              spec.budgets.downstream_steps), needs=made_by[name]))
        score(f"downstream_{name}_seed{seed}", path, f"downstream_{name}_seed{seed}")
        if preflight.detection_skipped is None:
            detector, scores = layout.detector(name, seed), layout.score(f"detector_{name}_seed{seed}")
            size = spec.frames.size or spec.toy.size
            stages.append(Stage(f"detector_{name}_seed{seed}", detector,
                                weight=DETECTOR_SECONDS_PER_STEP * spec.budgets.detector_steps * scale, command=(
                "detector", "train", "--data", str(training[name]), "--out", str(detector), "--steps",
                str(spec.budgets.detector_steps), "--seed", str(seed), "--size", f"{size[0]}x{size[1]}",
                "--device", spec.device, "--quiet"), needs=made_by[name]))
            stages.append(Stage(f"score_detector_{name}_seed{seed}", scores, weight=3, command=(
                "detector", "eval", "--checkpoint", str(detector), "--data", str(layout.data("target_val")),
                "--out", str(scores), "--device", spec.device, "--quiet"), needs=(f"detector_{name}_seed{seed}",)))


def _pixels(size) -> int:
    return int(size[0]) * int(size[1])


def _seg(steps: int, scale: float) -> float:
    return SEGMENTER_SECONDS_PER_STEP * steps * scale
