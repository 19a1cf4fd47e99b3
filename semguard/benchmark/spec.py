"""The benchmark spec: one typed, frozen tree read from YAML (what `semguard benchmark SPEC.yaml` runs).

A spec names the data (a labelled source, the target's training frames, a labelled target
validation set; optionally the source frames to measure, a paired truth and a separate judge
set), the frame size, the segmenters (guides, judge, downstream), the budgets every variant
shares, the variants (a translator config + overrides each) and the seeds. It is read with
semguard.config's strict YAML reader and tree builder, so an unknown or misspelt key is an
error naming the file, the key and the valid keys, and `--set budgets.translator_steps=20`
overrides work as for `semguard train`.

Relative paths (data roots, variant configs) are relative to the spec file's folder. A data
set may instead name a set of the toy world the benchmark renders (`toy: sim/train`), when the
spec has a `toy:` section. `check_spec` then checks everything a run needs before any stage
runs (see there).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from semguard.config import RunConfig, load_config
from semguard.errors import ConfigError


@dataclass(frozen=True)
class DataSetSpec:
    """One data set: a root on disk in a format (semguard.data.formats), or a set of the rendered toy world.

    root: folder (relative to the spec file's folder, or absolute); toy: a toy world set instead
    (sim/train, sim/val, real/train, real/val, paired/val, judge/train); format: a FORMATS name;
    options: that format's options (e.g. {split: val}); labelled: whether every frame has a label
    (false only for target_train: see check_spec).
    """

    root: str | None = None
    toy: str | None = None
    format: str = "folder"
    options: dict[str, str | bool | int] = field(default_factory=dict)
    labelled: bool = True

    @property
    def given(self) -> bool:
        return self.root is not None or self.toy is not None


@dataclass(frozen=True)
class DataSpec:
    """source: labelled frames the translators translate (and the downstream test trains on);
    source_val: the source frames every figure is measured on (default: source);
    paired: a paired truth of source_val (same names, the target's style; the toy world has one);
    target_train: the target's training frames, split into the translators' part and the judge's;
    judge_train: a labelled target set for the judge alone (then target_train is not split);
    target_val: labelled target frames (the judge's mIoU, realism and the downstream scores)."""

    source: DataSetSpec = field(default_factory=DataSetSpec)
    source_val: DataSetSpec = field(default_factory=DataSetSpec)
    paired: DataSetSpec = field(default_factory=DataSetSpec)
    target_train: DataSetSpec = field(default_factory=DataSetSpec)
    judge_train: DataSetSpec = field(default_factory=DataSetSpec)
    target_val: DataSetSpec = field(default_factory=DataSetSpec)
    # predicted class -> the class the target's labels call it (e.g. CamVid labels traffic lights as
    # signs); empty: the format's own (CamVid: traffic light -> traffic sign, bicycle -> rider)
    merges: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToySpec:
    """The toy world the benchmark renders into WORK/toy (`semguard data make-toy`); train 0: none."""

    train: int = 0
    val: int = 50
    judge: int = 0
    size: tuple[int, int] = (64, 128)
    seed: int = 0
    gap: float = 1.0
    workers: int = 2


@dataclass(frozen=True)
class SplitSpec:
    """How target_train splits into the translators' part and the judge's (a seeded permutation)."""

    judge_share: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class FramesSpec:
    """size: every set is brought to (H, W) before anything reads it (None: native size, which must then
    suit every set); crop: the translators' training crop; segmenter_crop: the segmenters' (default crop)."""

    size: tuple[int, int] | None = None
    crop: tuple[int, int] = (64, 128)
    segmenter_crop: tuple[int, int] | None = None


@dataclass(frozen=True)
class SegmenterSpec:
    arch: str = "unet"
    seed: int = 0
    encoder: str = "resnet18"


@dataclass(frozen=True)
class SegmentersSpec:
    """source_guide: learns the source labels; target_guide: the target labels of the translators' part;
    judge: the judge's part, another architecture and seed than every target guide; downstream: the
    segmenters of the downstream test (seeded with each benchmark seed); ensemble_guides: the further
    guides of a variant whose config lists guide.ensemble (the i-th config entry gets the i-th, trained on
    its main guide's data)."""

    source_guide: SegmenterSpec = field(default_factory=lambda: SegmenterSpec("unet", 0))
    target_guide: SegmenterSpec = field(default_factory=lambda: SegmenterSpec("fpn", 2))
    judge: SegmenterSpec = field(default_factory=lambda: SegmenterSpec("unet", 7))
    downstream: SegmenterSpec = field(default_factory=lambda: SegmenterSpec("unet", 0))
    ensemble_guides: tuple[SegmenterSpec, ...] = (SegmenterSpec("linknet", 5), SegmenterSpec("deeplabv3plus", 11))
    batch_size: int = 8


@dataclass(frozen=True)
class BudgetSpec:
    """Equal for every variant: translator steps and batch; the segmenters' steps; crop classifier epochs
    (0: none; it needs boxes with light states and sign pictograms, which the toy world has)."""

    translator_steps: int = 300
    batch_size: int = 2
    guide_steps: int = 400
    judge_steps: int = 1000
    downstream_steps: int = 250
    crop_classifier_epochs: int = 0
    # the downstream detector (semguard detector train) on each downstream set, scored on target val's boxes;
    # 0: no detection stage (it also needs boxes on both sides; the report says why it was skipped)
    detector_steps: int = 0
    # > 0: every translator keeps a checkpoint each eval_every steps and each is evaluated like the final one:
    # the figures over training (`curves.NAME` in the result); 0: the final checkpoint only
    eval_every: int = 0

    @property
    def eval_steps(self) -> tuple[int, ...]:
        """The steps before the last whose checkpoints are evaluated (empty without eval_every)."""
        return tuple(range(self.eval_every, self.translator_steps, self.eval_every)) if self.eval_every else ()


@dataclass(frozen=True)
class VariantSpec:
    """config: a `semguard train` YAML (relative to the spec file); overrides: `--set` overrides of this
    variant; guide: which guide its seg/box terms read (source labels, target labels, or none);
    all_seeds: false trains the first seed only (an ablation)."""

    config: str = ""
    overrides: tuple[str, ...] = ()
    guide: Literal["source", "target", "none"] = "source"
    all_seeds: bool = True


@dataclass(frozen=True)
class DownstreamSpec:
    """The downstream test per seed: segmenters trained on the untranslated source ('sim'), on the
    baseline's and the method's translations ('NAME_translated') and on the translators' part of the
    target ('real_oracle'), all scored on target_val. enabled false: skipped."""

    baseline: str = "cut"
    method: str = "semguard"
    enabled: bool = True


@dataclass(frozen=True)
class EvalSpec:
    """`semguard eval` settings: features for KID/FID, LPIPS to the paired truth."""

    features: Literal["judge", "inception", "none"] = "judge"
    lpips: bool = False


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str = "benchmark"
    description: str = ""
    toy: ToySpec = field(default_factory=ToySpec)
    data: DataSpec = field(default_factory=DataSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    frames: FramesSpec = field(default_factory=FramesSpec)
    segmenters: SegmentersSpec = field(default_factory=SegmentersSpec)
    budgets: BudgetSpec = field(default_factory=BudgetSpec)
    variants: dict[str, VariantSpec] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()       # `--set` overrides of every variant (before the variant's own)
    seeds: tuple[int, ...] = (0,)
    downstream: DownstreamSpec = field(default_factory=DownstreamSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    threads: int = 0                      # torch threads of every stage (OMP_NUM_THREADS; 0: torch's default)
    device: str = "cpu"                   # every stage's torch device: cpu, cuda, cuda:N

    @property
    def segmenter_crop(self) -> tuple[int, int]:
        return self.frames.segmenter_crop or self.frames.crop


DATA_SETS = tuple(f.name for f in dataclasses.fields(DataSpec) if f.name != "merges")
TOY_SETS = ("sim/train", "sim/val", "real/train", "real/val", "paired/train", "paired/val", "judge/train")


@dataclass(frozen=True)
class LoadedSpec:
    """A spec with where it came from: relative paths resolve against `folder`."""

    spec: BenchmarkSpec
    path: Path
    overrides: tuple[str, ...] = ()

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.folder / candidate).resolve()

    def variant_config_path(self, name: str) -> Path:
        return self.resolve(self.spec.variants[name].config)

    def variant_overrides(self, name: str) -> list[str]:
        return [*self.spec.overrides, *self.spec.variants[name].overrides]

    def variant_seeds(self, name: str) -> tuple[int, ...]:
        return self.spec.seeds if self.spec.variants[name].all_seeds else self.spec.seeds[:1]


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedSpec:
    """Read a spec file (strict YAML, dotted overrides) and check its values; ConfigError naming the file."""
    path = Path(path)
    spec = load_config(path, list(overrides), cls=BenchmarkSpec)
    _check_values(spec, str(path))
    return LoadedSpec(spec, path, tuple(overrides))


def _check_values(spec: BenchmarkSpec, source: str) -> None:
    """Values the tree's types cannot express: required sets, ranges, names that must agree."""
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}")

    for name in ("source", "target_train", "target_val"):
        if not getattr(spec.data, name).given:
            raise fail(f"data.{name} is required (a root with its format, or a toy world set); "
                       "see `semguard benchmark --help`")
    for name in DATA_SETS:
        data_set = getattr(spec.data, name)
        if data_set.root is not None and data_set.toy is not None:
            raise fail(f"data.{name} gives both root and toy; give one")
        if data_set.toy is not None:
            if data_set.toy not in TOY_SETS:
                raise fail(f"data.{name}.toy is {data_set.toy!r}; valid toy world sets: {', '.join(TOY_SETS)}")
            if spec.toy.train <= 0:
                raise fail(f"data.{name} names the toy world set {data_set.toy!r} but the spec renders no toy world; "
                           "give a toy: section with train > 0")
            if data_set.toy == "judge/train" and spec.toy.judge <= 0:
                raise fail(f"data.{name} names toy judge/train; give toy.judge > 0")
    if not spec.data.target_val.labelled:
        raise fail("data.target_val.labelled is false, but the target validation set must be labelled: the judge's "
                   "mIoU, the reliable classes and the downstream scores are measured on its labels")
    if not spec.data.source.labelled or (spec.data.source_val.given and not spec.data.source_val.labelled):
        raise fail("the source must be labelled (flips compare the source labels with the judge's reading of the "
                   "translation): data.source.labelled / data.source_val.labelled must be true")
    if not spec.variants:
        raise fail("variants is empty; name at least one (e.g. cut: {config: ../toy_cut.yaml, guide: none})")
    for name, variant in spec.variants.items():
        if not variant.config:
            raise fail(f"variants.{name}.config is required (a `semguard train` YAML)")
    if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds) or min(spec.seeds) < 0:
        raise fail(f"seeds {list(spec.seeds)} must be distinct non-negative integers, at least one")
    if not 0.0 < spec.split.judge_share < 1.0:
        raise fail(f"split.judge_share is {spec.split.judge_share}; valid range: (0, 1)")
    for key in ("translator_steps", "batch_size", "guide_steps", "judge_steps", "downstream_steps"):
        if getattr(spec.budgets, key) < 1:
            raise fail(f"budgets.{key} is {getattr(spec.budgets, key)}; valid range: >= 1")
    for key in ("crop_classifier_epochs", "detector_steps", "eval_every"):
        if getattr(spec.budgets, key) < 0:
            raise fail(f"budgets.{key} is {getattr(spec.budgets, key)}; valid range: >= 0 (0: none)")
    for key, value in (("frames.size", spec.frames.size), ("frames.crop", spec.frames.crop),
                       ("frames.segmenter_crop", spec.frames.segmenter_crop), ("toy.size", spec.toy.size)):
        if value is not None and min(value) < 1:
            raise fail(f"{key} is {list(value)}; both sides must be at least 1 pixel")
    if spec.downstream.enabled:
        for role in ("baseline", "method"):
            name = getattr(spec.downstream, role)
            if name not in spec.variants:
                raise fail(f"downstream.{role} is {name!r}, not a variant; variants: {', '.join(spec.variants)} "
                           "(or downstream.enabled: false)")
            if not spec.variants[name].all_seeds:
                raise fail(f"downstream.{role} {name!r} must train every seed (variants.{name}.all_seeds: true)")
    if spec.threads < 0:
        raise fail("threads must be >= 0 (0: torch's default)")


def load_variant_config(loaded: LoadedSpec, name: str) -> RunConfig:
    """The variant's translator config as `semguard train` would read it (spec overrides applied)."""
    path = loaded.variant_config_path(name)
    if not path.is_file():
        raise ConfigError(f"{loaded.path}: variants.{name}.config {path} does not exist (relative paths are relative "
                          f"to the spec file's folder {loaded.folder})")
    return load_config(path, loaded.variant_overrides(name))


def target_label_needs(config: RunConfig, variant: VariantSpec) -> list[str]:
    """Why a variant needs target labels (empty: it runs on unlabelled target frames)."""
    reasons = []
    if config.model.discriminator.kind == "segmentation":
        reasons.append("model.discriminator.kind: segmentation (the discriminator learns the target labels)")
    if config.data.pairing == "layout_matched":
        reasons.append("data.pairing: layout_matched (pairs crops by label layout)")
    if config.model.discriminator.agreement_mask:
        reasons.append("model.discriminator.agreement_mask (label agreement of the pairs)")
    if config.guide.mode == "cotrain_target":
        reasons.append("guide.mode: cotrain_target")
    if variant.guide == "target":
        reasons.append("guide: target (a guide trained on the target labels)")
    return reasons
