"""Training the downstream detector on the boxes of a labelled data set.

Why a module of its own: the detection stage trains one detector per variant (the real
oracle, untranslated sim, each translated set) with the same recipe and seeds, so that the
only difference between two detectors is the frames they learnt from.

Recipe: FCOS (semguard.detect.model) from random weights; AdamW, linear warm-up then cosine
decay; batches drawn from the seed alone (frame order and horizontal flips), so two runs
with one seed on one CPU thread give the same weights bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from semguard.common import resolve_device
from semguard.data.sample import Sample
from semguard.detect.checkpoint import save_detector
from semguard.detect.model import DEFAULT_BUILD, build_detector
from semguard.detect.targets import DETECTOR_CLASSES, DetectionFrames, hflip_target
from semguard.errors import ConfigError, SemguardError

DEFAULT_STEPS = 1200
DEFAULT_BATCH_SIZE = 8
DEFAULT_LR = 2e-3
WARMUP_FRACTION = 0.1
MAX_WARMUP_STEPS = 100
GRAD_CLIP = 10.0


def learning_rate(step: int, steps: int, lr: float) -> float:
    """lr at optimisation step `step` (0-based) of `steps`: linear warm-up over
    min(MAX_WARMUP_STEPS, WARMUP_FRACTION * steps) steps, then cosine decay to 0."""
    warmup = max(1, min(MAX_WARMUP_STEPS, int(WARMUP_FRACTION * steps)))
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def batch_draws(count: int, steps: int, batch_size: int, seed: int, hflip: bool) -> list[list[tuple[int, bool]]]:
    """(frame index, mirror?) for every step's batch: whole shuffled passes over the frames in turn."""
    rng = np.random.default_rng(seed)
    needed = steps * batch_size
    order = np.concatenate([rng.permutation(count) for _ in range(math.ceil(needed / count))])[:needed]
    flips = rng.random(needed) < 0.5 if hflip else np.zeros(needed, dtype=bool)
    pairs = [(int(i), bool(f)) for i, f in zip(order, flips)]
    return [pairs[k:k + batch_size] for k in range(0, needed, batch_size)]


def train_detector(dataset: Sequence[Sample], *, steps: int = DEFAULT_STEPS, batch_size: int = DEFAULT_BATCH_SIZE,
                   lr: float = DEFAULT_LR, seed: int = 0, size: tuple[int, int] | None = None, hflip: bool = True,
                   class_ids: Sequence[int] = DETECTOR_CLASSES, build: dict | None = None,
                   device: str | torch.device = "cpu", out_path: str | None = None, data_info: dict | None = None,
                   log: Callable[[int, dict[str, float]], None] | None = None) -> tuple[torch.nn.Module, dict]:
    """Train a detector on `dataset`'s boxes of `class_ids`; returns (model in eval mode, metrics).

    dataset: Samples (image uint8 [H,W,3], boxes in pixel xyxy, train ids). size: (H, W) the
    detector sees (default: the first frame's size; other frames are resized to fit it, aspect
    kept). build: build_detector arguments other than num_classes and size (default
    DEFAULT_BUILD). out_path: write the checkpoint there (semguard.detect.checkpoint).
    log(step, losses): called after every step with the named loss terms and their sum "loss".
    metrics: {"steps", "frames", "seconds", "seconds_per_step", "cpu_seconds", "train_loss" (mean of the last
    10% of steps), "losses" {term: the same mean}, "dropped_boxes" {class name: count},
    "training": the recipe (seed, steps, batch_size, lr, hflip, threads, device)}.
    """
    if len(dataset) == 0:
        raise SemguardError("the detector's training set has no frames")
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ConfigError(f"steps and batch_size must be >= 1 and lr > 0, got {steps}, {batch_size}, {lr}")
    start, cpu_start = time.perf_counter(), time.process_time()
    device = resolve_device(device)
    size = tuple(int(s) for s in (size or dataset[0].size))
    options = {**DEFAULT_BUILD, **(build or {})}
    unknown = sorted(set(options) - set(DEFAULT_BUILD))
    if unknown:
        raise ConfigError(f"unknown detector build option(s) {', '.join(unknown)}; valid: {', '.join(DEFAULT_BUILD)}")
    with torch.random.fork_rng(devices=[]):  # the weights depend on the seed alone; the caller's RNG is untouched
        torch.manual_seed(seed)
        model = build_detector(num_classes=len(class_ids), size=size, **options).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    frames = DetectionFrames(dataset, class_ids)
    model.train()
    history: list[dict[str, float]] = []
    for step, draws in enumerate(batch_draws(len(frames), steps, batch_size, seed, hflip)):
        images, targets = [], []
        for index, mirror in draws:
            image, target = frames[index]
            if mirror:
                image, target = image.flip(-1), hflip_target(target, image.shape[-1])
            images.append(image.to(device))
            targets.append({k: v.to(device) for k, v in target.items()})
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr)
        losses = model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise SemguardError(f"the detector's loss became {float(loss)} at step {step + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        terms = {name: float(value.detach()) for name, value in losses.items()}
        terms["loss"] = float(loss.detach())
        history.append(terms)
        if log is not None:
            log(step + 1, terms)
    model.eval()
    tail = history[-max(1, steps // 10):]
    seconds = time.perf_counter() - start
    metrics = {"steps": steps, "frames": len(frames), "seconds": round(seconds, 3),
               "seconds_per_step": round(seconds / steps, 4),
               # this process's CPU time: the figure to compare on a shared machine
               "cpu_seconds": round(time.process_time() - cpu_start, 3),
               "train_loss": round(float(np.mean([t["loss"] for t in tail])), 6),
               "losses": {name: round(float(np.mean([t[name] for t in tail])), 6)
                          for name in tail[-1] if name != "loss"},
               "dropped_boxes": dict(frames.dropped),
               "training": {"seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr, "hflip": hflip,
                            "optimizer": "adamw", "schedule": "linear warm-up, cosine",
                            "threads": torch.get_num_threads(), "device": str(device)}}
    if out_path is not None:
        save_detector(out_path, model, class_ids, step=steps, training=metrics["training"], metrics=metrics,
                      data=data_info)
    return model, metrics
