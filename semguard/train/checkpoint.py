"""Checkpoint files: written atomically, read without running pickled code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (no
classes), saved with `torch.save` and read with `torch.load(weights_only=True)`, so
loading a file from someone else never executes code. `save_checkpoint` writes a
temporary file beside the target and renames it over the target (`os.replace`), so a
kill mid-write leaves the previous checkpoint intact. `rotate_checkpoints` keeps the
last K step checkpoints of a run.

Translator checkpoint layout (see CONTRACTS.md and semguard.train.trainer):
    {"kind": "translator", "semguard_version", "config": config_to_dict(RunConfig),
     "generator", "generator_ema", "discriminator", "patch_sampler", "guide"?,
     "optimizers": {"generator", "discriminator", "guide"?}, "step", "rng", "loader", ...}
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from semguard.errors import DataError

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

    Raises DataError naming the file when it is missing, truncated/corrupt, holds
    something other than a dict, or (when `kind` is given) holds another kind of
    checkpoint (e.g. a segmenter where a translator is expected).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist; check the path (runs write OUT/final.pt and OUT/checkpoints/step_*.pt)")
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
    if checkpoint.get("kind") == "translator":
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
