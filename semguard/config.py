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
from semguard.files import CONFIG_FILE_LIMIT, file_kind, read_regular_file
from semguard.validate import MAX_COUNT, MAX_STEPS
import copy


def ranged(default: Any = dataclasses.MISSING, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its valid range, checked by `check_ranges` on the value (each item of a tuple or list,
    each value of a dict; None and bools are not checked): the range lives on the field it bounds."""
    return field(default=default, default_factory=default_factory,
                 metadata={"range": (low, high, low_open, high_open)})


def term(default: float) -> Any:
    """A weight of one of the generator's named loss terms (>= 0; 0 turns the term off): GENERATOR_TERMS."""
    return field(default=default, metadata={"range": (0, None, False, False), "term": True})


@dataclass(frozen=True)
class DataConfig:
    """Where the unpaired source and target images come from and how they are batched."""

    source: str = "toy/sim/train"          # data set root of the source (simulator) domain
    source_format: str = "folder"          # a name in semguard.data.formats.FORMATS
    source_options: dict[str, str | bool | int] = field(default_factory=dict)  # format options, e.g. {split: train}
    target: str = "toy/real/train"         # data set root of the target (real) domain
    target_format: str = "folder"
    target_options: dict[str, str | bool | int] = field(default_factory=dict)  # unlabelled frames allowed unless labels_required: true
    crop: tuple[int, int] = ranged((128, 256), low=1)  # training crop (H, W)
    resize: tuple[int, int] | None = ranged(None, low=1)  # resize (H, W) before cropping; None keeps size
    small_box_crop_prob: float = ranged(0.5, low=0, high=1)  # share of crops centred on a sign or light box
    hflip: bool = True
    batch_size: int = ranged(4, low=1, high=MAX_COUNT)
    workers: int = ranged(0, low=0)
    # frames decoded by the pre-flight data check (-1 = all, 0 = none)
    check_frames: int = ranged(200, low=-1, high=MAX_COUNT)
    # random: independent shuffles; layout_matched: each source crop gets the best-agreeing of
    # pairing_candidates target crops (label agreement on a pairing_grid x pairing_grid nearest grid;
    # a pair counts as matched at >= pairing_threshold). Needs target labels.
    pairing: Literal["random", "layout_matched"] = "random"
    pairing_candidates: int = ranged(8, low=1, high=256)
    pairing_grid: int = ranged(16, low=1, high=1024)
    pairing_threshold: float = ranged(0.5, low=0, high=1)


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
    """The adversary. kind: a name in semguard.losses.adversary.DISCRIMINATOR_KINDS.

    patch: multi-scale PatchGAN (real/fake per patch; n_scales, base_channels, n_layers,
    spectral_norm). projection: the same PatchGANs conditioned on each patch's label by a
    projection on learnt class embeddings (a sky patch is judged against real sky patches; the
    patch settings; needs a labelled target set). segmentation: OASIS-style segmenter with 19 + 1 ("fake") outputs per pixel,
    trained on the target labels (seg_base_channels, seg_levels, seg_class_balance); needs a
    labelled target set. texture_patch: with kind segmentation or projection, a plain patch
    discriminator of the patch settings beside it for texture (its generator term is loss.gan_patch).
    agreement_mask: the patch discriminator counts each patch by the share of its pixels where
    the paired source and target labels agree (needs data.pairing: layout_matched).
    """

    kind: str = "patch"
    n_scales: int = ranged(2, low=1, high=10)
    base_channels: int = ranged(32, low=1, high=65536)
    n_layers: int = ranged(3, low=1, high=32)
    spectral_norm: bool = True
    seg_base_channels: int = ranged(32, low=1, high=65536)
    seg_levels: int = ranged(4, low=1, high=10)
    seg_class_balance: bool = True
    texture_patch: bool = False
    agreement_mask: bool = False


@dataclass(frozen=True)
class ModelConfig:
    generator: str = "spade"     # a name in semguard.models.GENERATORS
    base_channels: int = ranged(32, low=1, high=65536)
    n_blocks: int = ranged(4, low=0, high=1024)
    n_downsample: int = ranged(2, low=0, high=10)
    # SPADE architecture (semguard.models.spade.SPADE_VERSIONS); checkpoints without it are version 1;
    # 3 (half the FLOPs of 2) is opt-in until the benchmark's flip figures confirm it
    spade_version: Literal[1, 2, 3] = 2
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


@dataclass(frozen=True)
class LossConfig:
    """Weights of the named loss terms and their settings; a weight of 0 turns a term off."""

    gan_mode: Literal["hinge", "lsgan", "nonsaturating"] = "hinge"
    gan: float = term(1.0)
    gan_patch: float = term(1.0)          # the texture patch discriminator's term (model.discriminator.texture_patch)
    nce: float = term(1.0)
    nce_identity: float = term(0.0)
    nce_layers: tuple[int, ...] = ranged((0, 1, 2), low=0)
    nce_patches: int = ranged(128, low=1, high=MAX_COUNT)
    nce_temperature: float = ranged(0.07, low=0, low_open=True)
    nce_mlp_channels: int = ranged(256, low=0, high=65536)  # width of the PatchNCE projection heads (0 = no heads)
    seg: float = term(0.0)
    seg_class_weights: dict[str, float] = ranged(default_factory=dict, low=0)
    box: float = term(0.0)
    box_backbone: Literal["guide", "lpips-alex", "lpips-vgg"] = "guide"
    box_class_weights: dict[str, float] = ranged(default_factory=dict, low=0)
    attr: float = term(0.0)               # guide.crop_classifier must read each box's source attribute (light
                                          # state, sign pictogram) off the translation (losses.attribute_consistency)
    # The guide's reading as a constraint (GECO-style Lagrange multiplier, losses.constraint): with
    # seg_target set, the seg term's weight starts at `seg` and is multiplied by exp(rate * (CE_avg - target))
    # every step (CE_avg: a running mean of the seg term with factor seg_target_smoothing), so it rises while
    # the guide's cross-entropy is above the target and falls below it, within [seg_weight_min, seg_weight_max].
    # null: a fixed weight `seg`.
    seg_target: float | None = ranged(None, low=0, low_open=True)
    seg_target_rate: float = ranged(0.05, low=0)
    seg_target_smoothing: float = ranged(0.9, low=0, high=1, high_open=True)
    seg_weight_min: float = ranged(0.1, low=0, low_open=True)
    seg_weight_max: float = ranged(100.0, low=0, low_open=True)


# the generator's named loss terms: LossConfig's `term` fields (semguard.train.objective computes them)
GENERATOR_TERMS = tuple(f.name for f in dataclasses.fields(LossConfig) if f.metadata.get("term"))


@dataclass(frozen=True)
class GuideConfig:
    """The guide segmenter that serves the seg-consistency loss (never the judge)."""

    checkpoint: str | None = None                    # a `semguard segmenter train` output
    # frozen; cotrain: keeps learning the source labels on the translations (easy to collapse);
    # cotrain_target: keeps learning the target labels on target images only (needs target labels)
    mode: Literal["frozen", "cotrain", "cotrain_target"] = "frozen"
    lr: float = ranged(1e-4, low=0, low_open=True)
    ensemble: tuple[str, ...] = ()                   # more guide checkpoints read the translation beside the first
    # how the guides' readings combine into the seg term: mean (of each guide's cross-entropy) or max (per pixel,
    # the worst guide's cross-entropy: every guide must read the source label, so a pattern that games one
    # guide is still penalised by another)
    ensemble_reduce: Literal["mean", "max"] = "mean"
    crop_classifier: str | None = None               # a `semguard segmenter train-crops` output for loss.attr
                                                     # (not the one `semguard eval --crop-classifier` reports with)
    perturb: float = ranged(0.0, low=0)              # strength of random photometric/noise/resampling
                                                     # perturbations of the translation before the guide (0 = off)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = ranged(1000, low=1, high=MAX_STEPS)
    lr_g: float = ranged(2e-4, low=0, low_open=True)
    lr_d: float = ranged(2e-4, low=0, low_open=True)
    betas: tuple[float, float] = ranged((0.5, 0.999), low=0, high=1, high_open=True)
    lr_schedule: Literal["constant", "linear_decay"] = "linear_decay"
    decay_start: float = ranged(0.5, low=0, high=1)  # share of steps after which a linear decay starts
    ema_decay: float = ranged(0.999, low=0, high=1, high_open=True)
    grad_clip: float = ranged(0.0, low=0)  # 0 = no clipping
    amp: bool = True                # bf16 autocast on CUDA; ignored on CPU
    # NHWC layout. auto: on CUDA every network; on CPU the discriminators, the guide and the crop
    # classifier, with the generator and its batches in NCHW (oneDNN's NHWC kernels ran the generators'
    # steps 1.2-1.4x slower on one CPU, no faster on another: benchmarks/results/train_step_layout.md).
    # true: every network NHWC on every device; false: none.
    channels_last: bool | Literal["auto"] = "auto"
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    seed: int = ranged(0, low=0, high=2**63 - 1)
    out: str = "runs/toy"
    log_every: int = ranged(10, low=0, high=MAX_STEPS)
    # jsonl: out/log.jsonl only; tensorboard: log.jsonl and TensorBoard event files in out/tensorboard/
    # (the same records plus the sample grids; needs the tensorboard extra)
    logger: Literal["jsonl", "tensorboard"] = "jsonl"
    # write out/samples/step_N.png every N steps (0 = only at the end)
    sample_every: int = ranged(200, low=0, high=MAX_STEPS)
    sample_count: int = ranged(4, low=0, high=256)  # source frames in each sample grid
    # write out/checkpoints/step_N.pt every N steps (0 = only at the end)
    checkpoint_every: int = ranged(200, low=0, high=MAX_STEPS)
    keep_last: int = ranged(3, low=0, high=MAX_COUNT)  # step checkpoints kept (0 = all); out/final.pt is always written


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


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return f"{'>' if low_open else '>='} {low}" if low is not None else f"{'<' if high_open else '<='} {high}"


def check_ranges(config: Any, source: str = "<config>", prefix: str = "") -> None:
    """Refuse a numeric value outside its field's range (`ranged`, `term`), naming the key and the range."""
    for item in dataclasses.fields(config):
        value, key = getattr(config, item.name), f"{prefix}{item.name}"
        if dataclasses.is_dataclass(value):
            check_ranges(value, source, f"{key}.")
            continue
        if "range" not in item.metadata:
            continue
        low, high, low_open, high_open = item.metadata["range"]
        values = ([(f"{key}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, (list, tuple))
                  else [(f"{key}.{k}", v) for k, v in value.items()] if isinstance(value, dict) else [(key, value)])
        for name, number in values:
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                continue
            too_low = low is not None and (number <= low if low_open else number < low)
            too_high = high is not None and (number >= high if high_open else number > high)
            if too_low or too_high:
                raise ConfigError(f"{source}: key '{name}' is {number}; valid range: "
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
    value = parse_yaml(raw, f"override '{text}'") if raw.strip() else None
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


# the most nodes a YAML document may expand to, aliases counted at every use: a run config has a few
# hundred; an alias-expansion bomb ("billion laughs") has billions and would take the machine's memory
YAML_MAX_NODES = 100_000


class _StrictYamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (safe_load keeps the last one
    silently) and a document whose alias expansion exceeds YAML_MAX_NODES nodes."""

    source = "<yaml>"

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _count_expanded_nodes(node, self.source)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the constructor below names it
                    continue
                if first is not None:
                    raise ConfigError(
                        f"{self.source}: key '{key}' is given twice in one mapping (lines {first} and "
                        f"{key_node.start_mark.line + 1}); YAML would keep the last silently: give it once")
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _count_expanded_nodes(root, source: str) -> None:
    """Refuse a YAML node graph that expands (aliases counted at every use) to over YAML_MAX_NODES nodes."""
    expanded: dict[int, int] = {}

    def size(node) -> int:
        known = expanded.get(id(node))
        if known is not None:
            return known
        expanded[id(node)] = 1  # a recursive alias counts once, then the walk stops there
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        if total > YAML_MAX_NODES:
            raise ConfigError(f"{source}: the YAML expands to over {YAML_MAX_NODES} values (aliases counted at every "
                              "use; an alias-expansion bomb?); a config has a few hundred: fix the file")
        expanded[id(node)] = total
        return total

    size(root)


def parse_yaml(text: str | bytes, source: str) -> Any:
    """YAML text -> plain data, with safe_load's types, no repeated keys and bounded alias expansion;
    errors are ConfigErrors naming `source`."""
    loader = _StrictYamlLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply (or holds a recursive alias); fix the file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        what = "the value is not valid YAML" if source.startswith("override") else "malformed YAML"
        raise ConfigError(f"{source}: {what}{where}: {problem}; fix it and rerun") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file (parse_yaml): a regular file of at most CONFIG_FILE_LIMIT bytes; a missing,
    special (FIFO, device), oversized or malformed file is a ConfigError naming it."""
    path = Path(path)
    if file_kind(path) == "missing path":
        raise ConfigError(f"config file {path} does not exist; give the path of a YAML file (see configs/)")
    data = read_regular_file(path, "config file", CONFIG_FILE_LIMIT, error=ConfigError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start}); give a YAML file") from None
    return parse_yaml(text, str(path))


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
