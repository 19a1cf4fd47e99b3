"""Checkpoints: the three kinds semguard writes, their layout, and the one place that reads them.

Every checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (no classes),
saved with `torch.save` and read with `torch.load(weights_only=True)`, so loading a file from
someone else never executes code. `save_checkpoint` writes a temporary file beside the target
and renames it over the target (`os.replace`), so a kill mid-write leaves the previous
checkpoint intact. `rotate_checkpoints` keeps the last K step checkpoints of a run.

Kinds (the "kind" key) and their layouts:

- "translator" (`semguard train`; `save_translator` / `load_translator`):
      {"kind", "semguard_version", "config": config_to_dict(RunConfig), "step",
       "generator": state dict, "generator_ema": state dict | None,
       "conditioning_channels"}
  plus, in the checkpoints a training run writes (Trainer.state_dict), what resuming needs:
      "discriminator", "texture_discriminator"?, "patch_sampler", "guide"?,
      "optimizers": {"generator", "discriminator", "guide"?}, "schedulers", "rng" (one per
      rank), "loader", "world_size", "guide_checkpoint"?, "guides"? (what each guide learnt from).
  The config inside rebuilds the generator; nothing is repeated on the command line.
  Files written before `model.spade_version` existed are read as SPADE version 1.
- "segmenter" (`semguard segmenter train`; `save_segmenter` / `load_segmenter`):
      {"kind", "role": guide | judge | downstream, "build": build_segmenter arguments,
       "encoder_weights", "state_dict", "metrics" (mIoU, per-class IoU, the judge's "floor"),
       "data" (root, count, ...), "semguard_version"}
  `load_segmenter(..., expected_role="guide")` refuses a judge: the judge never trains.
- "crop_classifier" (`semguard segmenter train-crops`; `save_crop_classifier` /
  `load_crop_classifier`): {"kind", "build": {tasks, crop_size, channels, margin},
   "state_dict", "metrics", "data", "semguard_version"}
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semguard import __version__
from semguard.config import RunConfig, config_from_dict, config_to_dict
from semguard.errors import ConfigError, DataError, SemguardError
from semguard.files import CHECKPOINT_FILE_LIMIT, file_kind, require_regular_file
from semguard.models import build_generator, conditioning_spec
from semguard.models.crop_classifier import CropClassifier
from semguard.models.segmenter import ROLES, Segmenter, build_segmenter

TRANSLATOR = "translator"
SEGMENTER = "segmenter"
CROP_CLASSIFIER = "crop_classifier"
KINDS = (TRANSLATOR, SEGMENTER, CROP_CLASSIFIER)

STEP_CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.pt$")


def step_checkpoint_name(step: int) -> str:
    """File name of the checkpoint written after `step` optimisation steps."""
    return f"step_{step:08d}.pt"


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write `checkpoint` to `path` atomically (temporary file + os.replace); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True` (no pickled code runs); tensors land on CPU.

    Raises DataError naming the file when it is missing, not a regular file (a FIFO, a device:
    named as such, never read), larger than CHECKPOINT_FILE_LIMIT, truncated/corrupt, holds
    something other than a dict, or (when `kind` is given) holds another kind of
    checkpoint (e.g. a segmenter where a translator is expected).
    """
    path = Path(path)
    if file_kind(path) == "missing path":
        raise DataError(f"checkpoint {path} does not exist; check the path (runs write OUT/final.pt and OUT/checkpoints/step_*.pt)")
    # a regular file of a checkpoint's size: a FIFO or device would block torch.load or feed it without end
    require_regular_file(path, "checkpoint", CHECKPOINT_FILE_LIMIT, error=DataError)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if unsafe:
            raise DataError(
                f"checkpoint {path} holds a pickled object ({unsafe.group(1)}) that is not loaded for safety "
                "(weights_only=True); semguard checkpoints hold only tensors and plain data: re-save it with semguard"
            ) from None
        raise DataError(f"checkpoint {path} is corrupt or not a PyTorch checkpoint; use an earlier checkpoint of the run or retrain") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as err:
        raise DataError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}); "
            "use an earlier checkpoint of the run or retrain"
        ) from None
    if not isinstance(checkpoint, dict):
        raise DataError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a semguard checkpoint dict")
    if kind is not None and checkpoint.get("kind") != kind:
        raise DataError(
            f"checkpoint {path} is a {checkpoint.get('kind', 'unknown')!r} checkpoint, expected a {kind!r} checkpoint"
        )
    if checkpoint.get("kind") == TRANSLATOR:
        _record_spade_version(checkpoint)
    return checkpoint


def _record_spade_version(checkpoint: dict[str, Any]) -> None:
    """Translator checkpoints written before `model.spade_version` existed hold SPADE version 1
    (per-norm conditioning embeddings): say so in their config, so it rebuilds that generator."""
    model = (checkpoint.get("config") or {}).get("model")
    if isinstance(model, dict) and "spade_version" not in model:
        model["spade_version"] = 1


def list_step_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the step checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = STEP_CHECKPOINT_PATTERN.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_step_checkpoint(directory: str | Path) -> Path | None:
    """The newest step checkpoint in `directory`, or None."""
    found = list_step_checkpoints(directory)
    return found[-1][1] if found else None


def rotate_checkpoints(directory: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` step checkpoints; returns the deleted paths.

    `keep_last` <= 0 keeps everything.
    """
    if keep_last <= 0:
        return []
    found = list_step_checkpoints(directory)
    removed = []
    for _, path in found[:-keep_last]:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# mkstemp's names: "." + target name + "." + 8 random characters + ".tmp" (save_checkpoint, folder writers)
STALE_TEMPORARY_PATTERN = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(*directories: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left in `directories` (not recursive).

    save_checkpoint writes '.NAME.XXXXXXXX.tmp' beside NAME and renames it; a kill between
    the two leaves the temporary behind (the previous NAME stays intact). Call this only
    when no other process writes into these folders (a resumed run's rank 0 does)."""
    removed = []
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if STALE_TEMPORARY_PATTERN.match(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


# ---------------------------------------------------------------- translators


def translator_checkpoint(config: RunConfig, generator: torch.nn.Module, generator_ema: dict | None = None,
                          step: int = 0, **training_state: Any) -> dict[str, Any]:
    """The translator checkpoint dict (layout in the module docstring).

    generator: the generator module (its state dict is stored); generator_ema: the EMA
    weights' state dict, or None. training_state: the keys a training run adds to resume.
    """
    checkpoint = {
        "kind": TRANSLATOR,
        "semguard_version": __version__,
        "config": config_to_dict(config),
        "step": int(step),
        "generator": generator.state_dict(),
        "generator_ema": generator_ema,
        "conditioning_channels": int(conditioning_spec(config.model).channels),
    }
    checkpoint.update(training_state)
    return checkpoint


def save_translator(path: str | Path, config: RunConfig, generator: torch.nn.Module,
                    generator_ema: dict | None = None, step: int = 0) -> Path:
    """Write an inference-ready translator checkpoint (no training state) atomically."""
    return save_checkpoint(path, translator_checkpoint(config, generator, generator_ema, step))


def load_translator(path: str | Path, ema: bool = True) -> tuple[torch.nn.Module, Any, RunConfig, dict[str, Any]]:
    """(generator in eval mode on the CPU, its ConditioningSpec, the run config, metadata).

    ema: use the EMA weights ("generator_ema") when the checkpoint has them; a checkpoint
    without them falls back to "generator" with a warning. metadata: path, step, weights
    used, semguard_version, config (as stored). Errors are SemguardErrors naming the file.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path, kind=TRANSLATOR)
    if "config" not in checkpoint:
        raise SemguardError(f"translator checkpoint {path} has no 'config'; it was not written by `semguard train`")
    config = config_from_dict(checkpoint["config"], source=f"{path} (config)")
    generator, spec = build_generator(config.model)
    weights = "generator_ema" if ema and checkpoint.get("generator_ema") is not None else "generator"
    if ema and weights != "generator_ema":
        warnings.warn(f"{path} holds no EMA generator weights; translating with the raw generator weights",
                      stacklevel=3)
    if checkpoint.get(weights) is None:
        raise SemguardError(f"translator checkpoint {path} has no '{weights}' weights")
    try:
        generator.load_state_dict(checkpoint[weights], strict=True)
    except RuntimeError as err:
        raise SemguardError(
            f"translator checkpoint {path}: '{weights}' does not fit the generator its config builds "
            f"({str(err).splitlines()[0][:200]}); the file is inconsistent, retrain or use another checkpoint"
        ) from None
    metadata = {"path": str(path), "step": checkpoint.get("step"), "weights": weights,
                "semguard_version": checkpoint.get("semguard_version"), "config": checkpoint["config"]}
    return generator.eval(), spec, config, metadata


# ---------------------------------------------------------------- segmenters


def save_segmenter(path: str | Path, model: Segmenter, role: str, metrics: dict | None = None,
                   data: dict | None = None) -> None:
    """Write a self-describing segmenter checkpoint atomically (see the module docstring)."""
    if role not in ROLES:
        raise ConfigError(f"segmenter role must be one of {ROLES}, got {role!r}")
    build = getattr(model, "build", None)
    if build is None:
        raise ValueError("save_segmenter needs a model made by build_segmenter (it carries .build)")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(Path(path), {
        "kind": SEGMENTER,
        "role": role,
        "build": dict(build),
        "encoder_weights": getattr(model, "encoder_weights", None),
        "state_dict": state,
        "metrics": plain_value(metrics or {}),
        "data": plain_value(data or {}),
        "semguard_version": __version__,
    })


def plain_value(value):
    """Only plain types go into checkpoints (weights_only=True loads them)."""
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def load_segmenter(path: str | Path, device: str | torch.device = "cpu",
                   expected_role: str | None = None) -> tuple[Segmenter, dict[str, Any]]:
    """(model in eval mode on `device`, metadata) from a segmenter checkpoint.

    metadata: the checkpoint without its weights (kind, role, build, metrics, data,
    semguard_version). expected_role "guide"/"judge" refuses a checkpoint of the other
    role (a judge must never train a translator). Errors are SemguardErrors naming the file.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != SEGMENTER:
        kind = checkpoint.get("kind") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise SemguardError(
            f"{path} is not a segmenter checkpoint (kind {kind!r}); pass a file written by `semguard segmenter train`"
        )
    role = checkpoint.get("role")
    if expected_role is not None and role != expected_role:
        raise SemguardError(
            f"{path} is a {role!r} segmenter but a {expected_role!r} is needed; "
            + ("the judge serves evaluation only and must never guide training: train a guide on source labels "
               "with `semguard segmenter train --role guide`" if expected_role == "guide" else
               "train a judge on labelled target-domain data with `semguard segmenter train --role judge`")
        )
    try:
        build = dict(checkpoint["build"])
        model = build_segmenter(arch=build["arch"], encoder=build["encoder"], encoder_weights=None,
                                num_classes=build["num_classes"], encoder_depth=build.get("encoder_depth", 5),
                                decoder_channels=build.get("decoder_channels"))
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError, ConfigError) as err:
        raise SemguardError(
            f"segmenter checkpoint {path} is inconsistent ({type(err).__name__}: {str(err)[:300]}); "
            "retrain it with `semguard segmenter train`"
        ) from None
    model.encoder_weights = checkpoint.get("encoder_weights")
    metadata = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    metadata["path"] = str(path)
    return model.to(device).eval(), metadata


# ---------------------------------------------------------------- crop classifiers


def save_crop_classifier(path: str | Path, model: CropClassifier, metrics: dict | None = None,
                         data: dict | None = None) -> None:
    """Write a self-describing crop classifier checkpoint atomically."""
    save_checkpoint(Path(path), {
        "kind": CROP_CLASSIFIER,
        "build": model.build,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": plain_value(metrics or {}),
        "data": plain_value(data or {}),
        "semguard_version": __version__,
    })


def load_crop_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[CropClassifier, dict[str, Any]]:
    """(model in eval mode, metadata) from a crop classifier checkpoint (weights_only=True)."""
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if checkpoint.get("kind") != CROP_CLASSIFIER:
        raise SemguardError(f"{path} is not a crop classifier checkpoint (kind {checkpoint.get('kind')!r}); "
                            "pass a file written by `semguard segmenter train-crops`")
    try:
        build = checkpoint["build"]
        model = CropClassifier(build["tasks"], crop_size=build["crop_size"], channels=build["channels"],
                               margin=build["margin"])
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise SemguardError(f"crop classifier checkpoint {path} is inconsistent ({type(err).__name__}: "
                            f"{str(err)[:300]}); retrain it with `semguard segmenter train-crops`") from None
    metadata = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    metadata["path"] = str(path)
    return model.to(device).eval(), metadata
