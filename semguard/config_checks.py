"""Checks of a whole RunConfig: the rules between keys, and the files a config names.

semguard.config parses and type-checks each key, with its range on the field itself; this module
refuses settings that are valid one by one but inconsistent together (a seg loss without a guide,
an agreement mask without matched pairs ...), each with a ConfigError naming the key and the fix,
and `check_run` is the one pass a training run goes through before anything is built: the key
rules, memory, device, every file the config names (data sets, the target's labels where a
setting uses them, guide checkpoints) and the run folder. The discriminator kinds are the names of
semguard.losses.adversary.DISCRIMINATOR_KINDS (network and objective).
"""

from __future__ import annotations

from typing import Any

from semguard.checkpoints import load_checkpoint
from semguard.config import RunConfig, check_ranges, config_to_dict
from semguard.data.check import require_usable
from semguard.data.formats import open_dataset
from semguard.data.formats.base import as_bool
from semguard.errors import ConfigError, SemguardError
from semguard.losses.adversary import DISCRIMINATOR_KINDS
from semguard.validate import device, existing_path, output_folder, require_memory, workers

# keys that may differ between a run and its resumption (they do not change what is learnt)
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.logger", "train.sample_every", "train.sample_count",
                     "train.checkpoint_every", "train.keep_last", "train.device", "train.out", "data.workers",
                     "data.source", "data.target", "data.check_frames", "data.pairing_threshold")


def needs_guide(config: RunConfig) -> bool:
    """Whether the run's losses need a guide segmenter."""
    loss = config.loss
    return loss.seg > 0 or (loss.box > 0 and loss.box_backbone == "guide")


def target_label_users(config: RunConfig) -> list[str]:
    """The settings of `config` that need labelled target frames (empty: images alone will do)."""
    users = []
    kind = config.model.discriminator.kind
    if kind in DISCRIMINATOR_KINDS and DISCRIMINATOR_KINDS[kind].adversary.needs_target_labels:
        users.append(f"model.discriminator.kind: {kind}")
    if config.data.pairing == "layout_matched":
        users.append("data.pairing: layout_matched")
    if config.guide.mode == "cotrain_target" and needs_guide(config):
        users.append("guide.mode: cotrain_target")
    return users


def check_config(config: RunConfig) -> None:
    """Refuse inconsistent settings before anything is built (ConfigError naming the key)."""
    data, loss = config.data, config.loss
    discriminator = config.model.discriminator
    check_ranges(config)   # every field's own range (semguard.config.ranged / term), a config built in code too
    multiple = 2 ** config.model.n_downsample   # every generator halves the frame n_downsample times
    if data.crop[0] % multiple or data.crop[1] % multiple:
        raise ConfigError(f"data.crop {list(data.crop)} must be divisible by {multiple} for generator "
                          f"'{config.model.generator}' (n_downsample {config.model.n_downsample})")
    if loss.gan <= 0:
        raise ConfigError("loss.gan must be positive: without the adversarial term nothing pulls toward the target domain")
    if discriminator.kind not in DISCRIMINATOR_KINDS:
        raise ConfigError(f"unknown model.discriminator.kind '{discriminator.kind}'; valid names: "
                          f"{', '.join(sorted(DISCRIMINATOR_KINDS))}")
    if discriminator.texture_patch and discriminator.kind == "patch":
        raise ConfigError("model.discriminator.texture_patch adds a patch discriminator beside another kind; with "
                          "kind 'patch' the patch discriminator is already the adversary: set texture_patch: false")
    if discriminator.agreement_mask and data.pairing != "layout_matched":
        raise ConfigError("model.discriminator.agreement_mask needs data.pairing: layout_matched (the mask is where the "
                          f"paired source and target labels agree), but data.pairing is '{data.pairing}'")
    if discriminator.agreement_mask and discriminator.kind == "segmentation" and not discriminator.texture_patch:
        raise ConfigError("model.discriminator.agreement_mask restricts a patch discriminator, but kind "
                          f"'{discriminator.kind}' has none beside it: set texture_patch: true or agreement_mask: false")
    if config.guide.ensemble and loss.seg <= 0:
        raise ConfigError("guide.ensemble adds guides to the seg-consistency term, but loss.seg is 0; "
                          "set loss.seg > 0 or guide.ensemble: []")
    if loss.seg_target is not None and loss.seg <= 0:
        raise ConfigError(f"loss.seg_target {loss.seg_target} makes the seg term a constraint, but loss.seg is 0 "
                          "(the term is off); set loss.seg > 0 (the multiplier's starting weight) or seg_target: null")
    if loss.seg_target is not None and not loss.seg_weight_min <= loss.seg <= loss.seg_weight_max:
        raise ConfigError(f"loss.seg {loss.seg} (the multiplier's starting weight) must lie in [loss.seg_weight_min, "
                          f"loss.seg_weight_max] = [{loss.seg_weight_min}, {loss.seg_weight_max}]")
    if config.guide.ensemble_reduce != "mean" and not config.guide.ensemble:
        raise ConfigError(f"guide.ensemble_reduce '{config.guide.ensemble_reduce}' combines several guides, but "
                          "guide.ensemble is empty; add guide checkpoints to guide.ensemble or use ensemble_reduce: mean")
    if config.guide.ensemble and config.guide.mode != "frozen":
        raise ConfigError(f"guide.ensemble takes frozen guides only; guide.mode is '{config.guide.mode}': "
                          "use guide.mode: frozen or drop the ensemble")
    if needs_guide(config) and not config.guide.checkpoint:
        wanted = "loss.seg" if loss.seg > 0 else "loss.box with box_backbone 'guide'"
        raise ConfigError(
            f"{wanted} needs a guide segmenter, but guide.checkpoint is not set; train one first with "
            f"`semguard segmenter train --data {data.source} --format {data.source_format} --role guide --out guide.pt` "
            "and set guide.checkpoint (e.g. --set guide.checkpoint=guide.pt)"
        )
    if loss.attr > 0 and not config.guide.crop_classifier:
        raise ConfigError(
            "loss.attr needs a guide crop classifier, but guide.crop_classifier is not set; train one on labelled "
            "target frames with `semguard segmenter train-crops --data TARGET --seed 1 --out crop_guide.pt` (not the "
            "one `semguard eval --crop-classifier` reports with) and set --set guide.crop_classifier=crop_guide.pt"
        )


# peak memory of one training step, per pixel of the batch's crops (source, target and pairing candidates) and
# per base channel: measured on CPU with configs/toy.yaml (32 channels, segmentation + patch discriminators,
# batch 2, 8 candidates): 1.1 GiB peak at 64x128 crops, 1.8 GiB at 128x256, about 1.5 KiB per crop pixel over
# the process's fixed cost; rounded up to 2 KiB at 32 channels
TRAIN_BYTES_PER_PIXEL_CHANNEL = 64


def training_bytes(config: RunConfig) -> int:
    """Estimated peak memory (bytes) of one training step: crops of the batch (the source's, and the
    target's, pairing_candidates of them under layout matching) times the generator's width."""
    data, model = config.data, config.model
    height, width = data.crop
    crops = data.batch_size * (1 + (data.pairing_candidates if data.pairing == "layout_matched" else 1))
    channels = max(model.base_channels, model.discriminator.base_channels, model.discriminator.seg_base_channels)
    return TRAIN_BYTES_PER_PIXEL_CHANNEL * channels * crops * height * width


def require_training_memory(config: RunConfig) -> None:
    """Refuse a run whose training step cannot fit in memory (training_bytes), with the estimate."""
    data = config.data
    require_memory(training_bytes(config),
                   f"training with data.crop {data.crop[0]}x{data.crop[1]} and data.batch_size {data.batch_size}",
                   "use a smaller data.crop or data.batch_size (e.g. --set data.crop=[128,256])")
    if data.resize is not None:
        require_memory(16 * data.batch_size * data.resize[0] * data.resize[1],
                       f"resizing frames to data.resize {data.resize[0]}x{data.resize[1]}", "use a smaller data.resize")


def check_guide_checkpoint(path: str) -> dict:
    """Read a guide checkpoint's metadata; refuse anything that is not a guide segmenter (e.g. the judge)."""
    checkpoint = load_checkpoint(path)
    if checkpoint.get("kind") != "segmenter":
        raise ConfigError(f"guide.checkpoint {path} is a {checkpoint.get('kind', 'unknown')!r} checkpoint, "
                          "not a segmenter; give the output of `semguard segmenter train --role guide`")
    role = checkpoint.get("role")
    if role == "judge":
        raise ConfigError(
            f"guide.checkpoint {path} is the judge segmenter (role 'judge'); training against the judge would turn the "
            "evaluation metric into the objective. Train a guide on source labels with "
            "`semguard segmenter train --role guide ...` and use that"
        )
    if role != "guide":
        raise ConfigError(f"guide.checkpoint {path} has role {role!r}; expected 'guide' "
                          "(from `semguard segmenter train --role guide`)")
    return checkpoint


def check_run(config: RunConfig, rank_zero: bool = True) -> None:
    """Refuse a training run, before anything is built, for anything that would stop it later:
    inconsistent keys (check_config), a step that cannot fit in memory, a device or worker count
    that does not exist, missing data folders, a broken source set (its first data.check_frames
    frames), a target set without usable labels when a setting learns from them, a guide checkpoint
    that is not a guide, and a run folder (train.out) that is a file, equals or lies inside a data
    set, or holds a symlink out of it. The data sets' frames are read on rank zero only (`rank_zero`)."""
    data = config.data
    check_config(config)
    require_training_memory(config)
    device(config.train.device, "train.device (--device)")
    workers(data.workers, "data.workers")
    existing_path(data.source, "data.source", "dir")
    existing_path(data.target, "data.target", "dir")
    for path, key in [(config.guide.checkpoint, "guide.checkpoint")] + [(p, "guide.ensemble") for p in config.guide.ensemble]:
        if path:
            existing_path(path, key, "file")
            check_guide_checkpoint(path)   # refuse the judge even when no loss uses it
    output_folder(config.train.out, "train.out (--out)", {"data.source": data.source, "data.target": data.target})
    if rank_zero:
        limit = None if data.check_frames < 0 else data.check_frames
        if data.check_frames != 0:
            # the whole set's structure always; pixel-level checks on the first check_frames frames
            require_usable(data.source, data.source_format, limit=limit, **data.source_options)
        _check_target_labels(config, limit)


def _check_target_labels(config: RunConfig, limit: int | None) -> None:
    """A setting that learns from the target labels (target_label_users) needs every target frame
    labelled: refused like the source's, never read silently (ids outside the format's table would
    go to ignore without a word)."""
    data = config.data
    users = target_label_users(config)
    if not users:
        return
    needed = " and ".join(users)
    instead = ("model.discriminator.kind: patch, data.pairing: random and guide.mode: frozen (or cotrain) "
               "work with unlabelled target images")
    if not as_bool(data.target_options.get("labels_required", True), "data.target_options.labels_required"):
        raise ConfigError(f"{needed} needs target labels, but data.target_options sets labels_required: false; "
                          f"remove it, or use another setting: {instead}")
    options = {**data.target_options, "labels_required": True}
    try:
        dataset = open_dataset(data.target, data.target_format, **options)
        first = dataset[0].label if len(dataset) else None
    except SemguardError as err:
        raise ConfigError(f"{needed} needs a labelled target set, but {data.target} ({data.target_format}) cannot "
                          f"be read with labels: {str(err).splitlines()[0]}; give a labelled target set, or use "
                          f"another setting: {instead}") from None
    if first is not None and bool((first == 255).all()):
        raise ConfigError(f"{needed} needs target labels, but the first target frame of {data.target} is labelled "
                          f"ignore (255) everywhere; give a labelled target set, or use another setting: {instead}")
    if data.check_frames != 0:
        require_usable(data.target, data.target_format, limit=limit,
                       what=f"data.target (its labels are used by {needed})", **options)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def config_differences(saved: dict, current: dict) -> list[str]:
    """Dotted keys whose values differ, ignoring RESUMABLE_CHANGES.

    A key missing from `saved` (a run checkpointed before that option existed) takes its default,
    as it did in that run, so resuming across an upgrade refuses only real changes; a key set in
    `saved` that this version no longer has is a difference (what it did is gone)."""
    defaults = _flatten(config_to_dict(RunConfig()))
    old, new = _flatten(saved), _flatten(current)
    for key, value in defaults.items():
        if key not in old and not any(known.startswith(key + ".") for known in old):
            old[key] = value
    keys = sorted(set(old) | set(new))
    return [key for key in keys if old.get(key) != new.get(key) and key not in RESUMABLE_CHANGES]
