"""The typed, frozen config tree of a training run, read from YAML.

One dataclass per section; `load_config(path, overrides)` reads YAML with
`yaml.safe_load`, applies dotted overrides (`train.steps=200`) and builds the tree.
Unknown or misspelt keys are errors that name the file, the key and the valid keys;
a value of the wrong type names the key, the value and the expected type. Nothing is
ignored silently. `config_to_dict` gives back plain data (for YAML and checkpoints).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from semguard.errors import ConfigError
import copy


@dataclass(frozen=True)
class DataConfig:
    """Where the unpaired source and target images come from and how they are batched."""

    source: str = "toy/sim/train"          # data set root of the source (simulator) domain
    source_format: str = "folder"          # a name in semguard.data.formats.FORMATS
    source_options: dict[str, str | bool | int] = field(default_factory=dict)  # format options, e.g. {split: train}
    target: str = "toy/real/train"         # data set root of the target (real) domain
    target_format: str = "folder"
    target_options: dict[str, str | bool | int] = field(default_factory=dict)  # unlabelled frames allowed unless labels_required: true
    crop: tuple[int, int] = (128, 256)     # training crop (H, W)
    resize: tuple[int, int] | None = None  # resize (H, W) before cropping; None keeps size
    small_box_crop_prob: float = 0.5       # share of crops centred on a sign or light box
    hflip: bool = True
    batch_size: int = 4
    workers: int = 0
    check_frames: int = 200                # frames decoded by the pre-flight data check (-1 = all, 0 = none)
    # random: independent shuffles; layout_matched: each source crop gets the best-agreeing of
    # pairing_candidates target crops (label agreement on a pairing_grid x pairing_grid nearest grid;
    # a pair counts as matched at >= pairing_threshold). Needs target labels.
    pairing: Literal["random", "layout_matched"] = "random"
    pairing_candidates: int = 8
    pairing_grid: int = 16
    pairing_threshold: float = 0.5


@dataclass(frozen=True)
class ConditioningConfig:
    """What the generator is conditioned on (all off = unconditioned)."""

    labels: bool = True          # one-hot train-id label map (19 channels + ignore)
    boxes: bool = True           # per box class: filled box and box edge maps
    boundaries: bool = True      # instance boundaries
    light_states: bool = False   # traffic light boxes by their "state" attribute (red, amber, green)
    box_image: bool = False      # the source image's pixels inside traffic light and sign boxes (3 channels)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The adversary. kind: a name in semguard.models.DISCRIMINATORS.

    patch: multi-scale PatchGAN (real/fake per patch; n_scales, base_channels, n_layers,
    spectral_norm). segmentation: OASIS-style segmenter with 19 + 1 ("fake") outputs per pixel,
    trained on the target labels (seg_base_channels, seg_levels, seg_class_balance); needs a
    labelled target set. texture_patch: with kind segmentation, a patch discriminator of the
    patch settings beside it for texture (its generator term is loss.gan_patch).
    agreement_mask: the patch discriminator counts each patch by the share of its pixels where
    the paired source and target labels agree (needs data.pairing: layout_matched).
    """

    kind: str = "patch"
    n_scales: int = 2
    base_channels: int = 32
    n_layers: int = 3
    spectral_norm: bool = True
    seg_base_channels: int = 32
    seg_levels: int = 4
    seg_class_balance: bool = True
    texture_patch: bool = False
    agreement_mask: bool = False


@dataclass(frozen=True)
class ModelConfig:
    generator: str = "spade"     # a name in semguard.models.GENERATORS
    base_channels: int = 32
    n_blocks: int = 4
    n_downsample: int = 2
    # SPADE architecture (semguard.models.spade.SPADE_VERSIONS); checkpoints without it are version 1;
    # 3 (half the FLOPs of 2) is opt-in until the benchmark's flip figures confirm it
    spade_version: Literal[1, 2, 3] = 2
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


@dataclass(frozen=True)
class LossConfig:
    """Weights of the named loss terms and their settings; a weight of 0 turns a term off."""

    gan_mode: Literal["hinge", "lsgan", "nonsaturating"] = "hinge"
    gan: float = 1.0
    gan_patch: float = 1.0                # the texture patch discriminator's term (model.discriminator.texture_patch)
    nce: float = 1.0
    nce_identity: float = 0.0
    nce_layers: tuple[int, ...] = (0, 1, 2)
    nce_patches: int = 128
    nce_temperature: float = 0.07
    nce_mlp_channels: int = 256           # width of the PatchNCE projection heads (0 = no heads)
    seg: float = 0.0
    seg_class_weights: dict[str, float] = field(default_factory=dict)
    box: float = 0.0
    box_backbone: Literal["guide", "lpips-alex", "lpips-vgg"] = "guide"
    box_class_weights: dict[str, float] = field(default_factory=dict)
    attr: float = 0.0                     # guide.crop_classifier must read each box's source attribute (light
                                          # state, sign pictogram) off the translation (losses.attribute_consistency)
    # The guide's reading as a constraint (GECO-style Lagrange multiplier, losses.constraint): with
    # seg_target set, the seg term's weight starts at `seg` and is multiplied by exp(rate * (CE_avg - target))
    # every step (CE_avg: a running mean of the seg term with factor seg_target_smoothing), so it rises while
    # the guide's cross-entropy is above the target and falls below it, within [seg_weight_min, seg_weight_max].
    # null: a fixed weight `seg`.
    seg_target: float | None = None
    seg_target_rate: float = 0.05
    seg_target_smoothing: float = 0.9
    seg_weight_min: float = 0.1
    seg_weight_max: float = 100.0


# the generator's named loss terms: LossConfig's weight keys (semguard.train.objective computes them)
GENERATOR_TERMS = ("gan", "gan_patch", "nce", "nce_identity", "seg", "box", "attr")


@dataclass(frozen=True)
class GuideConfig:
    """The guide segmenter that serves the seg-consistency loss (never the judge)."""

    checkpoint: str | None = None                    # a `semguard segmenter train` output
    # frozen; cotrain: keeps learning the source labels on the translations (easy to collapse);
    # cotrain_target: keeps learning the target labels on target images only (needs target labels)
    mode: Literal["frozen", "cotrain", "cotrain_target"] = "frozen"
    lr: float = 1e-4
    ensemble: tuple[str, ...] = ()                   # more guide checkpoints read the translation beside the first
    # how the guides' readings combine into the seg term: mean (of each guide's cross-entropy) or max (per pixel,
    # the worst guide's cross-entropy: every guide must read the source label, so a pattern that games one
    # guide is still penalised by another)
    ensemble_reduce: Literal["mean", "max"] = "mean"
    crop_classifier: str | None = None               # a `semguard segmenter train-crops` output for loss.attr
                                                     # (not the one `semguard eval --crop-classifier` reports with)
    perturb: float = 0.0                             # strength of random photometric/noise/resampling
                                                     # perturbations of the translation before the guide (0 = off)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_schedule: Literal["constant", "linear_decay"] = "linear_decay"
    decay_start: float = 0.5        # share of steps after which a linear decay starts
    ema_decay: float = 0.999
    grad_clip: float = 0.0          # 0 = no clipping
    amp: bool = True                # bf16 autocast on CUDA; ignored on CPU
    # NHWC layout. auto: on CUDA every network; on CPU the discriminators, the guide and the crop
    # classifier, with the generator and its batches in NCHW (oneDNN's NHWC kernels ran the generators'
    # steps 1.2-1.4x slower on one CPU, no faster on another: benchmarks/results/train_step_layout.md).
    # true: every network NHWC on every device; false: none.
    channels_last: bool | Literal["auto"] = "auto"
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    seed: int = 0
    out: str = "runs/toy"
    log_every: int = 10
    # jsonl: out/log.jsonl only; tensorboard: log.jsonl and TensorBoard event files in out/tensorboard/
    # (the same records plus the sample grids; needs the tensorboard extra)
    logger: Literal["jsonl", "tensorboard"] = "jsonl"
    sample_every: int = 200         # write out/samples/step_N.png every N steps (0 = only at the end)
    sample_count: int = 4           # source frames in each sample grid
    checkpoint_every: int = 200     # write out/checkpoints/step_N.pt every N steps (0 = only at the end)
    keep_last: int = 3              # step checkpoints kept (0 = all); out/final.pt is always written


@dataclass(frozen=True)
class RunConfig:
    """A whole translator training run (what `semguard train --config` reads)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------- machinery


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp` and convert lists to tuples."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    def wrong() -> ConfigError:
        return ConfigError(
            f"{source}: key '{key}' has value {value!r} ({type(value).__name__}), "
            f"expected {_type_name(tp)}"
        )

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong()
        return _build(tp, value, key, source)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key, source)
            except ConfigError:
                continue
        raise wrong()
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{source}: key '{key}' has value {value!r}; valid values: "
                + ", ".join(repr(a) for a in args)
            )
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise wrong()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
        if len(value) != len(args):
            raise wrong()
        return tuple(_convert(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        key_type, value_type = args
        return {
            _convert(k, key_type, f"{key}.{k}", source): _convert(v, value_type, f"{key}.{k}", source)
            for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong()
        if not math.isfinite(float(value)):
            raise ConfigError(f"{source}: key '{key}' is {value}; expected a finite number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if tp is str:
        if not isinstance(value, str):
            raise wrong()
        return value
    raise TypeError(f"config annotation {tp!r} of '{key}' is not supported")


def _build(cls: type, data: dict, prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            raise ConfigError(
                f"{source}: unknown key '{key}'; valid keys"
                f"{' in ' + repr(prefix) if prefix else ''}: {', '.join(fields)}"
            )
        kwargs[name] = _convert(value, hints[name], key, source)
    return cls(**kwargs)


def config_from_dict(data: dict | None, cls: type = RunConfig, source: str = "<config>") -> Any:
    """Build a config dataclass from plain data; errors name `source` and the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    config = _build(cls, data, "", source)
    if cls is RunConfig:
        check_ranges(config, source)
    return config


# Valid ranges of numeric keys: dotted key -> (low, high, low_open, high_open); None = unbounded.
# Keys are looked up on the built tree, so a key missing from an older or newer tree is skipped.
VALUE_RANGES: dict[str, tuple] = {
    "data.small_box_crop_prob": (0, 1, False, False),
    "data.batch_size": (1, None, False, False),
    "data.workers": (0, None, False, False),
    "data.check_frames": (-1, None, False, False),
    "data.crop[]": (1, None, False, False),
    "data.resize[]": (1, None, False, False),
    "data.pairing_candidates": (1, None, False, False),
    "data.pairing_grid": (1, None, False, False),
    "data.pairing_threshold": (0, 1, False, False),
    "model.base_channels": (1, None, False, False),
    "model.n_blocks": (0, None, False, False),
    "model.n_downsample": (0, None, False, False),
    "model.discriminator.n_scales": (1, None, False, False),
    "model.discriminator.base_channels": (1, None, False, False),
    "model.discriminator.n_layers": (1, None, False, False),
    "model.discriminator.seg_base_channels": (1, None, False, False),
    "model.discriminator.seg_levels": (1, None, False, False),
    "loss.gan": (0, None, False, False),
    "loss.gan_patch": (0, None, False, False),
    "loss.nce": (0, None, False, False),
    "loss.nce_identity": (0, None, False, False),
    "loss.nce_layers[]": (0, None, False, False),
    "loss.nce_patches": (1, None, False, False),
    "loss.nce_temperature": (0, None, True, False),
    "loss.nce_mlp_channels": (0, None, False, False),
    "loss.seg": (0, None, False, False),
    "loss.seg_class_weights{}": (0, None, False, False),
    "loss.box": (0, None, False, False),
    "loss.box_class_weights{}": (0, None, False, False),
    "loss.attr": (0, None, False, False),
    "loss.seg_target": (0, None, True, False),
    "loss.seg_target_rate": (0, None, False, False),
    "loss.seg_target_smoothing": (0, 1, False, True),
    "loss.seg_weight_min": (0, None, False, False),
    "loss.seg_weight_max": (0, None, True, False),
    "guide.lr": (0, None, True, False),
    "guide.perturb": (0, None, False, False),
    "train.steps": (1, None, False, False),
    "train.lr_g": (0, None, True, False),
    "train.lr_d": (0, None, True, False),
    "train.betas[]": (0, 1, False, True),
    "train.decay_start": (0, 1, False, False),
    "train.ema_decay": (0, 1, False, True),
    "train.grad_clip": (0, None, False, False),
    "train.seed": (0, None, False, False),
    "train.log_every": (0, None, False, False),
    "train.sample_every": (0, None, False, False),
    "train.sample_count": (0, None, False, False),
    "train.checkpoint_every": (0, None, False, False),
    "train.keep_last": (0, None, False, False),
}


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return f"{'>' if low_open else '>='} {low}" if low is not None else f"{'<' if high_open else '<='} {high}"


def check_ranges(config: Any, source: str = "<config>") -> None:
    """Refuse a numeric value outside its VALUE_RANGES range, naming the key and the range."""
    for dotted, (low, high, low_open, high_open) in VALUE_RANGES.items():
        path, each = dotted.rstrip("[]{}"), dotted[len(dotted.rstrip("[]{}")):]
        node = config
        for name in path.split("."):
            node = getattr(node, name, None)
            if node is None:
                break
        if node is None:
            continue
        values = ([(f"{path}[{i}]", v) for i, v in enumerate(node)] if each == "[]"
                  else [(f"{path}.{k}", v) for k, v in node.items()] if each == "{}" else [(path, node)])
        for key, value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            too_low = low is not None and (value <= low if low_open else value < low)
            too_high = high is not None and (value >= high if high_open else value > high)
            if too_low or too_high:
                raise ConfigError(f"{source}: key '{key}' is {value}; valid range: "
                                  f"{_range_text(low, high, low_open, high_open)}")


def config_to_dict(config: Any) -> dict:
    """Plain, YAML-safe data of a config tree (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one `section.key=value` override; the value is read as YAML (`200`, `[64,128]`)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value (e.g. train.steps=200)")
    dotted, raw = text.split("=", 1)
    path = dotted.strip().split(".")
    if not all(path):
        raise ConfigError(f"override '{text}': '{dotted}' is not a dotted key like train.steps")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': the value is not valid YAML ({err.problem})") from None
    return path, value


def apply_overrides(data: dict, overrides: list[str], cls: type = RunConfig) -> dict:
    """Return a copy of `data` with dotted overrides applied; unknown keys are errors."""
    data = copy.deepcopy(data) if data else {}
    for text in overrides:
        path, value = parse_override(text)
        node, node_cls = data, cls
        for depth, name in enumerate(path):
            valid = {f.name: f for f in dataclasses.fields(node_cls)} if dataclasses.is_dataclass(node_cls) else {}
            if name not in valid:
                where = ".".join(path[:depth]) or "the top level"
                raise ConfigError(
                    f"override '{text}': unknown key '{'.'.join(path[:depth + 1])}'; "
                    f"valid keys in {where}: {', '.join(valid) or '(none: not a section)'}"
                )
            if depth == len(path) - 1:
                node[name] = value
            else:
                node_cls = typing.get_type_hints(node_cls)[name]
                child = node.get(name)
                if child is None:
                    child = node[name] = {}
                if not isinstance(child, dict):
                    raise ConfigError(f"override '{text}': '{'.'.join(path[:depth + 1])}' is not a section")
                node = child
    return data


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file with `safe_load`; a missing or malformed file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; give the path of a YAML file (see configs/)")
    try:
        with path.open("r", encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}; fix the file and rerun") from None


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), cls: type = RunConfig) -> Any:
    """Read a config file (or the defaults when `path` is None) and apply overrides."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    if path is not None and data is None:
        raise ConfigError(f"{path}: the config file is empty (or holds only comments); a run needs at least its "
                          "data and train sections (see configs/toy.yaml); nothing was trained on defaults")
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    data = apply_overrides(data or {}, list(overrides), cls)
    return config_from_dict(data, cls, source)


def save_config(config: Any, path: str | Path) -> None:
    """Write the fully resolved config as YAML (what a run records beside its outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
