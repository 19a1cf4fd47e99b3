"""Small rules every part of semguard shares, written once.

- `resolve_device`: which torch device a "--device"/"train.device" value means.
- `file_sha256`: the content hash recorded in manifests and reports.
- `torch_hub_checkpoints`: where torch keeps downloaded weight files.
- `parse_hw`: "HxW" text (sizes, crops, tiles) to (H, W).

This module imports nothing of semguard but its errors, so any module may use it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from semguard.errors import ConfigError


def resolve_device(device: str | torch.device | None, what: str = "--device") -> torch.device:
    """The device a setting names, one rule for every command.

    "auto" or None: CUDA when available, else the CPU. "cuda" (bare, or from "auto"): the
    process's own GPU, cuda:LOCAL_RANK under torchrun (cuda:0 otherwise). "cuda:N" and "cpu"
    as written. A CUDA device asked for where none is available is a ConfigError naming WHAT.
    """
    text = "auto" if device is None else str(device)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{what} {text!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} {text} asked for, but no CUDA device is available here; use cpu or auto")
        if resolved.index is None:
            resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    elif resolved.type != "cpu":
        raise ConfigError(f"{what} {text!r} is not one of auto, cpu, cuda, cuda:N")
    return resolved


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def torch_hub_checkpoints() -> Path:
    """Where torch caches downloaded weights: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


_HW = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_hw(text: str, what: str, minimum: int = 1) -> tuple[int, int]:
    """'HxW' (e.g. '128x256') -> (H, W); a ConfigError naming WHAT otherwise."""
    match = _HW.fullmatch(str(text))
    if not match:
        raise ConfigError(f"{what} {text!r} is not HxW (height x width in pixels), e.g. {what} 128x256")
    height, width = int(match.group(1)), int(match.group(2))
    if height < minimum or width < minimum:
        raise ConfigError(f"{what} {text}: both sides must be at least {minimum} pixels")
    return height, width


def cpu_description() -> str:
    """'AMD EPYC, AVX2, 2 logical CPUs': the CPU's model name (Linux /proc/cpuinfo; else
    platform's), the vector instructions torch's CPU kernels use, and the logical CPU count,
    for benchmark reports (timings differ between CPUs far more than between runs)."""
    import platform

    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} logical CPUs"
