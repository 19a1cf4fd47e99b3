"""Training and evaluating the crop classifier (network in semguard.models.crop_classifier).

Tasks (box class, attribute) are collected from the training boxes; crops are gathered once,
photometrically augmented each epoch (no flips: they would swap left/right arrows).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from semguard.checkpoints import save_crop_classifier
from semguard.common import resolve_device
from semguard.data.batch import image_to_tensor
from semguard.data.sample import Sample
from semguard.errors import ConfigError, DataError
from semguard.labels import TRAIN_ID_NAMES
from semguard.models.crop_classifier import ATTRIBUTE_CLASSES, CropClassifier, extract_crops, task_name
from semguard.train.segmenter import _log_line, _progress


def collect_tasks(dataset: Sequence[Sample], classes: Sequence[int] = ATTRIBUTE_CLASSES) -> list[dict]:
    """Tasks (class id, attribute key, sorted values) from the boxes of `dataset`."""
    values: dict[tuple[int, str], set[str]] = {}
    for index in range(len(dataset)):
        for box in dataset[index].boxes:
            if box.class_id in classes:
                for key, value in box.attributes.items():
                    values.setdefault((box.class_id, key), set()).add(str(value))
    return [{"class_id": c, "attribute": a, "values": sorted(v)} for (c, a), v in sorted(values.items())]


class _CropSet:
    """Crops (uint8 [N,3,S,S]), task index and target value index of every attributed box."""

    def __init__(self, crops: torch.Tensor, task: torch.Tensor, target: torch.Tensor):
        self.crops, self.task, self.target = crops, task, target

    def __len__(self) -> int:
        return int(self.task.shape[0])


def _gather_crops(samples: Sequence[Sample], indices: Sequence[int], tasks: list[dict], crop_size: int,
                  margin: float, jitter_copies: int, jitter: float, rng: np.random.Generator) -> _CropSet:
    lookup = {(t["class_id"], t["attribute"]): (i, {v: j for j, v in enumerate(t["values"])})
              for i, t in enumerate(tasks)}
    crops, task_ids, targets = [], [], []
    for index in indices:
        sample = samples[index]
        wanted = []
        for box in sample.boxes:
            if box.width <= 0 or box.height <= 0:
                continue
            for key, value in box.attributes.items():
                entry = lookup.get((box.class_id, key))
                if entry is not None and str(value) in entry[1]:
                    wanted.append((box, entry[0], entry[1][str(value)]))
        if not wanted:
            continue
        image = image_to_tensor(sample.image)
        xyxy = torch.tensor([b.xyxy for b, _, _ in wanted], dtype=torch.float32)
        versions = [xyxy]
        for _ in range(jitter_copies):
            size = torch.stack([xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], 1).repeat(1, 2)
            shift = torch.from_numpy(rng.uniform(-jitter, jitter, size=xyxy.shape).astype(np.float32))
            versions.append(xyxy + shift * size)
        for version in versions:
            crop = extract_crops(image, version, crop_size, margin)
            crops.append(crop.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8))
            task_ids.extend(t for _, t, _ in wanted)
            targets.extend(v for _, _, v in wanted)
    if not crops:
        return _CropSet(torch.zeros((0, 3, crop_size, crop_size), dtype=torch.uint8),
                        torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    return _CropSet(torch.cat(crops), torch.tensor(task_ids), torch.tensor(targets))


def _photometric(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """uint8 crops -> float [-1,1] with random brightness, contrast, colour gain and noise."""
    x = crops.float().div(127.5).sub(1.0)
    n = x.shape[0]

    def uniform(low, high, *shape):
        return torch.rand(*shape, generator=generator) * (high - low) + low

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(0.7, 1.3, n, 1, 1, 1) + mean + uniform(-0.15, 0.15, n, 1, 1, 1)
    x = x * uniform(0.9, 1.1, n, 3, 1, 1)
    x = x + torch.randn(x.shape, generator=generator) * uniform(0.0, 0.06, n, 1, 1, 1)
    return x.clamp(-1, 1)


def _loss(model: CropClassifier, logits: list[torch.Tensor], task: torch.Tensor, target: torch.Tensor):
    total = logits[0].new_zeros(())
    for index, task_logits in enumerate(logits):
        mask = task == index
        if mask.any():
            total = total + F.cross_entropy(task_logits[mask], target[mask], reduction="sum")
    return total / max(1, int(task.shape[0]))


@torch.no_grad()
def _accuracy(model: CropClassifier, crop_set: _CropSet, device: torch.device, batch_size: int = 512) -> dict:
    was_training = model.training
    model.eval()
    correct = torch.zeros(len(model.tasks), dtype=torch.int64)
    counts = torch.zeros(len(model.tasks), dtype=torch.int64)
    for start in range(0, len(crop_set), batch_size):
        crops = crop_set.crops[start: start + batch_size].to(device).float().div(127.5).sub(1.0)
        task = crop_set.task[start: start + batch_size]
        target = crop_set.target[start: start + batch_size]
        logits = model(crops)
        for index, task_logits in enumerate(logits):
            mask = task == index
            predicted = task_logits.argmax(1).cpu()[mask]
            correct[index] += int((predicted == target[mask]).sum())
            counts[index] += int(mask.sum())
    model.train(was_training)
    names = [task_name(t["class_id"], t["attribute"]) for t in model.tasks]
    return {
        "accuracy": {n: (float(correct[i]) / int(counts[i]) if counts[i] else float("nan")) for i, n in enumerate(names)},
        "counts": {n: int(counts[i]) for i, n in enumerate(names)},
        "crops": len(crop_set),
        "overall": float(correct.sum()) / max(1, int(counts.sum())),
    }


def evaluate_crop_classifier(model: CropClassifier, dataset: Sequence[Sample], device: str | torch.device = "cpu") -> dict:
    """Per-task accuracy of `model` on the attributed boxes of `dataset` (exact boxes, no jitter).

    Returns {"accuracy": {task: float}, "counts": {task: int}, "crops": int, "overall": float}.
    """
    crop_set = _gather_crops(dataset, range(len(dataset)), model.tasks, model.crop_size, model.margin,
                             0, 0.0, np.random.default_rng(0))
    return _accuracy(model, crop_set, torch.device(device))


def train_crop_classifier(
    dataset: Sequence[Sample],
    val_dataset: Sequence[Sample] | None = None,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 2e-3,
    crop_size: int = 24,
    margin: float = 0.25,
    channels: int = 32,
    val_fraction: float = 0.2,
    jitter_copies: int = 4,
    jitter: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    workers: int = 0,
    out_path: str | Path | None = None,
    classes: Sequence[int] = ATTRIBUTE_CLASSES,
    progress: bool = True,
    data_info: dict | None = None,
) -> tuple[CropClassifier, dict[str, Any]]:
    """Train a `CropClassifier` on the attributed boxes (of `classes`) in `dataset`.

    Held-out accuracy comes from `val_dataset` when given, else from a `val_fraction`
    share of the frames of `dataset` (chosen from `seed`, never trained on). Training
    crops are the exact boxes plus `jitter_copies` copies with corners moved by up to
    `jitter` x the box size, with photometric jitter per batch. Writes the checkpoint to
    `out_path` when given. Returns (model in eval mode, metrics) with metrics["val"] as
    in `evaluate_crop_classifier`. `workers` is accepted for CLI symmetry (crops are
    gathered in-process).
    """

    del workers
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch size must be positive, got epochs={epochs}, batch_size={batch_size}")
    if len(dataset) == 0:
        raise DataError("the crop classifier training set is empty")
    device = resolve_device(device)
    tasks = collect_tasks(dataset, classes)
    if not tasks:
        names = ", ".join(TRAIN_ID_NAMES[c] for c in classes)
        raise DataError(f"no {names} boxes with attributes in the training set "
                        f"{getattr(dataset, 'root', '')}; the crop classifier needs boxes with e.g. a 'state' "
                        "or 'pictogram' attribute (the toy world writes them)")
    rng = np.random.default_rng(seed)
    if val_dataset is None:
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must lie in (0, 1) when no validation set is given, got {val_fraction}")
        order = rng.permutation(len(dataset))
        held = max(1, int(round(val_fraction * len(dataset)))) if len(dataset) > 1 else 0
        val_indices, train_indices = sorted(order[:held].tolist()), sorted(order[held:].tolist())
        val_source, val_samples = f"{held} frames held out of the training set", dataset
    else:
        train_indices, val_indices = list(range(len(dataset))), list(range(len(val_dataset)))
        val_source, val_samples = f"validation set {getattr(val_dataset, 'root', '')}".strip(), val_dataset
    train_set = _gather_crops(dataset, train_indices, tasks, crop_size, margin, jitter_copies, jitter, rng)
    val_set = _gather_crops(val_samples, val_indices, tasks, crop_size, margin, 0, 0.0, rng)
    if len(train_set) == 0:
        raise DataError("no attributed boxes left for training after holding out validation frames; "
                        "give more frames or a separate --val set")

    torch.manual_seed(seed)
    model = CropClassifier(tasks, crop_size=crop_size, channels=channels, margin=margin).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(train_set) / batch_size)
    total_steps = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)

    start = time.perf_counter()
    model.train()
    last_loss = float("nan")
    with _progress(progress) as bar:
        job = bar.add_task("crop classifier", total=total_steps, loss=float("nan"), rate=0.0)
        done = 0
        for _ in range(epochs):
            order = torch.randperm(len(train_set), generator=generator)
            for begin in range(0, len(order), batch_size):
                pick = order[begin: begin + batch_size]
                if len(pick) < 2:
                    continue  # batch norm needs two crops
                crops = _photometric(train_set.crops[pick], generator).to(device)
                loss = _loss(model, model(crops), train_set.task[pick].to(device), train_set.target[pick].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if schedule.last_epoch + 1 < total_steps:
                    schedule.step()
                done += len(pick)
                last_loss = loss.item()
                bar.update(job, advance=1, loss=last_loss, rate=done / max(time.perf_counter() - start, 1e-9))
                _log_line(bar, progress, int(bar.tasks[0].completed), total_steps,
                          f"crop classifier step {int(bar.tasks[0].completed)}/{total_steps} loss {last_loss:.3f}")
    model.eval()
    metrics: dict[str, Any] = {
        "train_loss": last_loss, "seconds": time.perf_counter() - start, "epochs": epochs,
        "train_crops": len(train_set), "train": _accuracy(model, train_set, device),
        "val": _accuracy(model, val_set, device), "val_source": val_source, "seed": seed,
    }
    if out_path is not None:
        data = dict(data_info or {})
        data.setdefault("root", str(getattr(dataset, "root", "")) or None)
        data.setdefault("count", len(dataset))
        save_crop_classifier(out_path, model, metrics=metrics, data=data)
    return model, metrics
