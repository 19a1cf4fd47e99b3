"""Detector checkpoints: self-describing, atomic, read with weights_only=True.

Layout (kind "detector", role "downstream": a detector only ever scores data downstream):
    {"kind", "role", "build": build_detector arguments, "class_ids": train ids of the
     detector's labels 0..K-1, "state_dict", "step", "training": {seed, steps, batch_size,
     lr, hflip, threads, ...}, "metrics", "data": {root, format, count, ...}, "semguard_version"}
`load_detector` rebuilds the model from "build" alone, so no flag is repeated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from semguard import __version__
from semguard.checkpoints import load_checkpoint, plain_value, save_checkpoint
from semguard.detect.model import build_detector
from semguard.errors import ConfigError, SemguardError

DETECTOR = "detector"
DOWNSTREAM = "downstream"


def save_detector(path: str | Path, model: torch.nn.Module, class_ids, step: int, training: dict | None = None,
                  metrics: dict | None = None, data: dict | None = None) -> Path:
    """Write a detector checkpoint atomically; `model` must come from build_detector (it carries .build)."""
    build = getattr(model, "build", None)
    if build is None:
        raise ValueError("save_detector needs a model made by build_detector (it carries .build)")
    return save_checkpoint(Path(path), {
        "kind": DETECTOR,
        "role": DOWNSTREAM,
        "build": dict(build),
        "class_ids": [int(c) for c in class_ids],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "step": int(step),
        "training": plain_value(training or {}),
        "metrics": plain_value({k: v for k, v in (metrics or {}).items() if k != "training"}),
        "data": plain_value(data or {}),
        "semguard_version": __version__,
    })


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(detector in eval mode on `device`, metadata: the checkpoint without its weights, plus "path").

    Errors are SemguardErrors naming the file (missing, corrupt, another kind, inconsistent)."""
    path = Path(path)
    checkpoint = load_checkpoint(path, kind=DETECTOR)
    try:
        build = dict(checkpoint["build"])
        class_ids = [int(c) for c in checkpoint["class_ids"]]
        if build.get("num_classes") != len(class_ids):
            raise KeyError(f"build.num_classes {build.get('num_classes')} != {len(class_ids)} class_ids")
        model = build_detector(**build)
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError, ConfigError) as err:
        raise SemguardError(f"detector checkpoint {path} is inconsistent ({type(err).__name__}: {str(err)[:300]}); "
                            "retrain it with `semguard detector train`") from None
    metadata = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    metadata["path"] = str(path)
    return model.to(device).eval(), metadata
