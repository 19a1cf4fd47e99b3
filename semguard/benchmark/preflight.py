"""Everything a benchmark run needs, checked before its first stage: one clear message, not a failure an hour in.

`check_spec` opens every data set the spec names (scan only: roots, formats, options, labels),
reads every variant's translator config as `semguard train` would, and decides what the target's
labels allow. Target training frames without labels (declared `labelled: false`, or found so)
leave the variants that learn from target labels unable to run, and the judge without frames
unless the spec gives `data.judge_train`, and the downstream oracle without labels; the message
lists which variants can still run and which cannot, and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from semguard.benchmark.spec import DATA_SETS, LoadedSpec, load_variant_config, target_label_needs
from semguard.config import RunConfig
from semguard.errors import ConfigError, DataError
from semguard.data.formats import open_dataset
from semguard.detect.targets import has_boxes


@dataclass(frozen=True)
class Preflight:
    """What the checks found: each variant's config, the frame count of each set on disk, whether
    target_train is labelled."""

    configs: dict[str, RunConfig]
    frame_counts: dict[str, int]
    target_labelled: bool
    detection_skipped: str | None = None   # why the detection stage does not run (None: it runs)


def _open(loaded: LoadedSpec, name: str, labels_required: bool):

    data_set = getattr(loaded.spec.data, name)
    root = loaded.resolve(data_set.root)
    if not root.exists():
        raise ConfigError(f"{loaded.path}: data.{name}.root {root} does not exist (relative roots are relative to "
                          f"the spec file's folder {loaded.folder}); set it to where the data set lives")
    options = {"labels_required": labels_required, **data_set.options}
    return open_dataset(root, data_set.format, **options)


def _unlabelled(loaded: LoadedSpec, name: str):
    """The set opened without labels, when its labels are what failed (else None: another problem)."""
    try:
        opened = _open(loaded, name, labels_required=False)
    except DataError:
        return None
    return opened if len(opened) else None


def check_spec(loaded: LoadedSpec) -> Preflight:
    """Check a loaded spec against the disk; ConfigError/DataError naming the spec file and key otherwise."""
    spec = loaded.spec
    configs = {name: load_variant_config(loaded, name) for name in spec.variants}
    counts: dict[str, int] = {}
    boxes: dict[str, tuple[bool, str]] = {}
    target_labelled = spec.data.target_train.labelled
    for name in DATA_SETS:
        data_set = getattr(spec.data, name)
        if data_set.root is None:
            continue
        labelled = data_set.labelled
        try:
            opened = _open(loaded, name, labels_required=labelled)
        except DataError as err:
            unlabelled = _unlabelled(loaded, name) if labelled else None
            if unlabelled is None:
                raise DataError(f"{loaded.path}: data.{name} ({data_set.format} at {loaded.resolve(data_set.root)}): "
                                f"{err}") from None
            if name != "target_train":
                raise DataError(f"{loaded.path}: data.{name} must be labelled, but {err}") from None
            target_labelled, opened = False, unlabelled
        counts[name] = len(opened)
        if spec.budgets.detector_steps > 0 and name in ("source", "target_val"):
            boxes[name] = has_boxes(opened, what=f"data.{name}")
    _check_labels(loaded, configs, target_labelled)
    _check_segmenters(loaded, configs)
    if not spec.data.judge_train.given and "target_train" in counts and counts["target_train"] < 2:
        raise ConfigError(f"{loaded.path}: data.target_train has {counts['target_train']} frame(s); splitting it "
                          "between the translators and the judge needs at least 2")
    return Preflight(configs, counts, target_labelled, _detection_skipped(spec, boxes))


def _detection_skipped(spec, boxes: dict[str, tuple[bool, str]]) -> str | None:
    """Why the detection stage cannot run, in one line (None: it runs). Sets the toy world renders (no root) have
    boxes of every detector class; other sets are checked on disk (`has_boxes`)."""
    if spec.budgets.detector_steps == 0:
        return "budgets.detector_steps is 0"
    for name in ("source", "target_val"):
        usable, reason = boxes.get(name, (True, ""))
        if not usable:
            return f"the detector needs boxes on both sides: {reason}"
    return None


def _check_labels(loaded: LoadedSpec, configs: dict[str, RunConfig], target_labelled: bool) -> None:
    spec = loaded.spec
    if target_labelled:
        return
    needs = {name: target_label_needs(configs[name], spec.variants[name]) for name in spec.variants}
    refused = {name: reasons for name, reasons in needs.items() if reasons}
    runnable = [name for name, reasons in needs.items() if not reasons]
    problems = [f"{name} ({'; '.join(reasons)})" for name, reasons in refused.items()]
    if not spec.data.judge_train.given:
        problems.append("the judge (it learns the target labels of its part of target_train: give a labelled "
                        "data.judge_train)")
    if spec.downstream.enabled:
        problems.append("the downstream real oracle (trained on target labels: set downstream.enabled: false)")
    if not problems:
        return
    root = spec.data.target_train.root or spec.data.target_train.toy
    raise ConfigError(
        f"{loaded.path}: data.target_train ({root}) has frames without labels, so these cannot run: "
        + "; ".join(problems)
        + f". Variants that can run on unlabelled target frames: {', '.join(runnable) or 'none'}. "
        "Give labelled target frames, or keep only those variants (with data.judge_train and downstream.enabled: "
        "false); nothing was run")


def _check_segmenters(loaded: LoadedSpec, configs: dict[str, RunConfig]) -> None:
    spec = loaded.spec
    judge = spec.segmenters.judge
    # the guides trained on the target labels, as the judge is: the main one and the further ones the configs read
    further = max((len(configs[name].guide.ensemble) for name, v in spec.variants.items() if v.guide == "target"),
                  default=0)
    target_guides = []
    if any(v.guide == "target" for v in spec.variants.values()):
        target_guides.append(("segmenters.target_guide", spec.segmenters.target_guide))
    target_guides += [(f"segmenters.ensemble_guides[{i}]", guide)
                      for i, guide in enumerate(spec.segmenters.ensemble_guides[:further])]
    for key, guide in target_guides:
        if judge.arch == guide.arch or judge.seed == guide.seed:
            raise ConfigError(f"{loaded.path}: segmenters.judge ({judge.arch}, seed {judge.seed}) must differ from "
                              f"{key} ({guide.arch}, seed {guide.seed}) in architecture and seed: a translator tuned "
                              "against the guide would otherwise fool the judge alike")
    for name, config in configs.items():
        if spec.variants[name].guide == "none" and (config.loss.seg > 0 or config.loss.box > 0 and
                                                    config.loss.box_backbone == "guide"):
            raise ConfigError(f"{loaded.path}: variants.{name} has guide: none but its config uses the guide "
                              "(loss.seg or loss.box with box_backbone guide); give guide: source or target")
        listed, given = len(config.guide.ensemble), len(spec.segmenters.ensemble_guides)
        if spec.variants[name].guide != "none" and listed > given:
            raise ConfigError(f"{loaded.path}: variants.{name}'s config lists {listed} further guides (guide.ensemble) "
                              f"but segmenters.ensemble_guides gives {given}; add an entry per further guide "
                              "(e.g. {arch: unet, seed: 13})")
