"""Training and evaluating the segmenters (networks in semguard.models.segmenter).

`train_segmenter` fits a guide, judge or downstream segmenter on random crops of a labelled
data set; `evaluate_segmenter` reads a validation set (mIoU, per-class IoU, pixel flip);
`floor_from_evaluation` turns a judge's reading of paired truth into its floor.
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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from semguard.checkpoints import save_segmenter
from semguard.common import resolve_device
from semguard.data.batch import collate_samples
from semguard.data.sample import Sample
from semguard.data.transforms import PairedTransform
from semguard.errors import ConfigError, DataError, SemguardError
from semguard.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID_NAMES
from semguard.metrics.confusion import confusion_matrix, iou_from_confusion, mean_iou
from semguard.models.segmenter import ROLES, Segmenter, build_segmenter

# ---------------------------------------------------------------- training data


class _RandomCrops(torch.utils.data.Dataset):
    """Training views of samples (semguard.data.transforms.PairedTransform: random crop,
    padded with ignore when a frame is smaller, optional crops around small boxes, hflip),
    driven by (index, seed) draws so the stream does not depend on the number of workers."""

    def __init__(self, dataset: Sequence[Sample], crop: tuple[int, int] | None, hflip: bool,
                 small_box_crop_prob: float = 0.0):
        self.dataset = dataset
        self.transform = PairedTransform(crop=crop, hflip=hflip, small_box_crop_prob=small_box_crop_prob)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, draw: tuple[int, int]) -> Sample:
        index, seed = draw
        sample = self.dataset[index]
        # instances are not needed to learn labels: drop them before the geometry
        sample = Sample(image=sample.image, label=sample.label, boxes=sample.boxes, name=sample.name)
        view = self.transform(sample, np.random.default_rng(seed))
        return Sample(image=np.ascontiguousarray(view.image), label=np.ascontiguousarray(view.label), name=view.name)


class _DrawSampler(torch.utils.data.Sampler):
    def __init__(self, draws: list[tuple[int, int]]):
        self.draws = draws

    def __iter__(self):
        return iter(self.draws)

    def __len__(self) -> int:
        return len(self.draws)


def _training_loader(dataset, crop, batch_size, steps, seed, workers, hflip=True, small_box_crop_prob=0.0):
    rng = np.random.default_rng(seed)
    count = steps * batch_size
    indices = np.concatenate([rng.permutation(len(dataset)) for _ in range(math.ceil(count / len(dataset)))])[:count]
    draws = [(int(i), int(s)) for i, s in zip(indices, rng.integers(0, 2**31 - 1, size=count))]
    return torch.utils.data.DataLoader(
        _RandomCrops(dataset, crop, hflip, small_box_crop_prob), batch_size=batch_size, sampler=_DrawSampler(draws),
        num_workers=workers, collate_fn=collate_samples, drop_last=False,
        persistent_workers=False,
    )


def _dataset_root(dataset) -> str | None:
    root = getattr(dataset, "root", None)
    return str(root) if root is not None else None


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_segmenter(model: Segmenter, dataset: Sequence[Sample], batch_size: int = 4,
                       device: str | torch.device | None = None) -> dict[str, Any]:
    """mIoU of `model` on labelled full frames of `dataset`.

    Returns {"miou": float (mean over classes present in the reference labels),
    "per_class_iou": {class name: IoU} for those classes, "pixel_accuracy": float,
    "images": int, "confusion": int [19,19] nested list}. Ignore (255) pixels are excluded.
    """
    if len(dataset) == 0:
        raise DataError("cannot evaluate a segmenter on an empty data set")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    confusion = torch.zeros(model.num_classes, model.num_classes, dtype=torch.int64)
    pending: list[Sample] = []

    def flush():
        batch = collate_samples(pending)
        prediction = model(batch.image.to(device)).argmax(1).cpu()
        confusion.add_(confusion_matrix(batch.label, prediction, num_classes=model.num_classes))
        pending.clear()

    for index in range(len(dataset)):
        sample = dataset[index]
        if pending and (len(pending) == batch_size or pending[0].size != sample.size):
            flush()
        pending.append(sample)
    flush()
    model.train(was_training)
    iou, present = iou_from_confusion(confusion)
    names = TRAIN_ID_NAMES if model.num_classes == NUM_CLASSES else [str(i) for i in range(model.num_classes)]
    total = int(confusion.sum())
    return {
        "miou": mean_iou(confusion),
        "per_class_iou": {names[c]: float(iou[c]) for c in range(model.num_classes) if present[c]},
        "pixel_accuracy": float(confusion.diag().sum()) / total if total else float("nan"),
        "images": len(dataset),
        "confusion": confusion.tolist(),
    }


def floor_from_evaluation(result: dict[str, Any], data: str | None) -> dict[str, Any]:
    """A judge's floor from its evaluation on a paired truth: per class c, the share of c's
    pixels it reads as another class, 1 - N[c,c] / N[c,:] (the flip rate of a perfect translation)."""
    confusion = torch.tensor(result["confusion"], dtype=torch.float64)
    totals = confusion.sum(1)
    names = TRAIN_ID_NAMES if confusion.shape[0] == NUM_CLASSES else [str(i) for i in range(confusion.shape[0])]
    per_class = {names[c]: float(1.0 - confusion[c, c] / totals[c]) for c in range(confusion.shape[0]) if totals[c] > 0}
    return {"data": data, "images": result["images"], "pixel_flip_rate": 1.0 - result["pixel_accuracy"],
            "per_class": per_class}


# ---------------------------------------------------------------- training


def class_balance_weights(dataset: Sequence[Sample], exponent: float, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """float [num_classes]: (f_c / median f)^-exponent over the classes present in the labels
    of `dataset` (pixel frequencies f_c, ignore excluded), clipped to [0.1, 10]; absent
    classes get 1 (they never appear in the loss)."""
    counts = np.zeros(num_classes, np.int64)
    for index in range(len(dataset)):
        label = dataset[index].label
        counts += np.bincount(label[label < num_classes].ravel(), minlength=num_classes)[:num_classes]
    weights = np.ones(num_classes)
    present = counts > 0
    if present.any():
        frequency = counts[present] / counts[present].sum()
        weights[present] = np.clip((frequency / np.median(frequency)) ** -float(exponent), 0.1, 10.0)
    return torch.tensor(weights, dtype=torch.float32)


def train_segmenter(
    train_dataset: Sequence[Sample],
    val_dataset: Sequence[Sample] | None,
    role: str,
    steps: int = 500,
    batch_size: int = 8,
    crop: tuple[int, int] | None = (128, 128),
    lr: float = 1e-3,
    seed: int = 0,
    workers: int = 0,
    device: str | torch.device | None = "cpu",
    out_path: str | Path | None = None,
    arch: str = "unet",
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    encoder_depth: int = 5,
    decoder_channels: Sequence[int] | None = None,
    hflip: bool = True,
    small_box_crop_prob: float = 0.2,
    class_balance: float = 0.5,
    weight_decay: float = 0.0,
    eval_batch_size: int = 4,
    progress: bool = True,
    data_info: dict | None = None,
    model: Segmenter | None = None,
    floor_dataset: Sequence[Sample] | None = None,
) -> tuple[Segmenter, dict[str, Any]]:
    """Train a segmenter with cross-entropy (255 ignored), Adam and cosine decay.

    train_dataset, val_dataset: sequences of labelled `Sample`s; role: "guide" (source
    labels) or "judge" (target labels), recorded in the checkpoint; crop: (H, W) random
    crops (padded with ignore when a frame is smaller) or None for full frames (all of one
    size); small_box_crop_prob: share of crops placed around a traffic light or sign box
    (small, rare classes); hflip: random horizontal flips; class_balance: exponent a of
    the cross-entropy class weights w_c = (f_c / median f)^-a from the training pixel
    frequencies f_c (0 = unweighted, 0.5 = inverse square root; clipped to [0.1, 10]); `model`:
    a prebuilt Segmenter (else built from arch/encoder/...); floor_dataset (judges): a paired
    truth (source layouts in the target style) on which the judge's own flip rates, its floor,
    are measured and recorded under metrics["floor"]. Writes the checkpoint to
    `out_path` when given. Returns (model in eval mode, metrics) where metrics holds
    "train_loss" (mean of the last 10% of steps), "seconds", "steps" and, with a
    validation set, the `evaluate_segmenter` figures under "val".
    """
    if role not in ROLES:
        raise ConfigError(f"segmenter role must be one of {ROLES}, got {role!r}")
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"steps and batch size must be positive, got steps={steps}, batch_size={batch_size}")
    if len(train_dataset) == 0:
        raise DataError("the segmenter training set is empty")
    device = resolve_device(device)
    torch.manual_seed(seed)
    if model is None:
        model = build_segmenter(arch=arch, encoder=encoder, encoder_weights=encoder_weights,
                                encoder_depth=encoder_depth, decoder_channels=decoder_channels)
    model.to(device).train()
    class_weights = None
    if class_balance:
        class_weights = class_balance_weights(train_dataset, class_balance, model.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps)) * 0.95 + 0.05)
    loader = _training_loader(train_dataset, tuple(crop) if crop else None, batch_size, steps, seed, workers, hflip,
                              small_box_crop_prob)

    losses: list[float] = []
    start = time.perf_counter()
    bar = _progress(progress)
    with bar:
        task = bar.add_task(f"segmenter ({role})", total=steps, loss=float("nan"), rate=0.0)
        for step, batch in enumerate(loader, start=1):
            image, label = batch.image.to(device), batch.label.to(device)
            logits = model(image)
            loss = F.cross_entropy(logits, label, weight=class_weights, ignore_index=IGNORE_ID)
            if not torch.isfinite(loss):
                if bool((label == IGNORE_ID).all()):
                    continue  # a crop of pure ignore: nothing to learn
                raise SemguardError(f"segmenter loss became {loss.item()} at step {step}; lower --lr (now {lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            elapsed = time.perf_counter() - start
            bar.update(task, advance=1, loss=losses[-1], rate=step * batch_size / max(elapsed, 1e-9))
            _log_line(bar, progress, step, steps, f"segmenter ({role}) step {step}/{steps} loss {losses[-1]:.3f} "
                      f"{step * batch_size / max(elapsed, 1e-9):.1f} img/s")
    seconds = time.perf_counter() - start
    model.eval()
    tail = losses[-max(1, len(losses) // 10):] if losses else [float("nan")]
    metrics: dict[str, Any] = {"train_loss": float(np.mean(tail)), "steps": steps, "seconds": seconds,
                               "batch_size": batch_size, "crop": list(crop) if crop else None, "lr": lr, "seed": seed,
                               "hflip": hflip, "small_box_crop_prob": small_box_crop_prob,
                               "class_balance": class_balance,
                               "class_weights": class_weights.tolist() if class_weights is not None else None}
    if val_dataset is not None:
        metrics["val"] = evaluate_segmenter(model, val_dataset, batch_size=eval_batch_size, device=device)
    if floor_dataset is not None:
        metrics["floor"] = floor_from_evaluation(
            evaluate_segmenter(model, floor_dataset, batch_size=eval_batch_size, device=device),
            _dataset_root(floor_dataset))
    if out_path is not None:
        data = dict(data_info or {})
        data.setdefault("root", _dataset_root(train_dataset))
        data.setdefault("count", len(train_dataset))
        if val_dataset is not None:
            data.setdefault("val_root", _dataset_root(val_dataset))
            data.setdefault("val_count", len(val_dataset))
        save_segmenter(out_path, model, role=role, metrics=metrics, data=data)
    return model, metrics


def _progress(enabled: bool):
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[rate]:.1f} img/s"),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False,
    )


def _log_line(bar, enabled: bool, step: int, total: int, text: str) -> None:
    """Without a terminal (logs, CI) the live bar is not drawn: print ~10 plain lines instead."""
    if enabled and not bar.console.is_terminal and (step % max(1, total // 10) == 0 or step == total):
        bar.console.print(text)
