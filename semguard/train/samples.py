"""Sample grids written during training: can a person see the translation work?

One PNG per call, one row per preview image:  source | translated | label overlay
(the source label map coloured with semguard.labels.colorize and blended over the
translated image, so semantic flips show as colour sitting on the wrong content).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from semguard.data.batch import collate_samples, tensor_to_image
from semguard.data.folder import write_png
from semguard.data.resize import resize_sample
from semguard.data.sample import Sample
from semguard.labels import IGNORE_ID, colorize


def label_overlay(image: np.ndarray, label: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 [H,W,3] image with the coloured label map blended in (ignore pixels untouched)."""
    colours = colorize(label).astype(np.float32)
    blended = image.astype(np.float32) * (1 - alpha) + colours * alpha
    blended[label == IGNORE_ID] = image[label == IGNORE_ID]
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def sample_grid(source: torch.Tensor, translated: torch.Tensor, label: torch.Tensor, gap: int = 2) -> np.ndarray:
    """source, translated: float [B,3,H,W] in [-1,1]; label: int64 [B,H,W] -> uint8 grid [B*(H+gap)-gap, 3W+2gap, 3]."""
    rows = []
    for index in range(source.shape[0]):
        source_image = tensor_to_image(source[index])
        translated_image = tensor_to_image(translated[index])
        label_map = label[index].cpu().numpy().astype(np.uint8)
        panels = [source_image, translated_image, label_overlay(translated_image, label_map)]
        height = source_image.shape[0]
        spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([panels[0], spacer, panels[1], spacer, panels[2]], axis=1))
    width = rows[0].shape[1]
    spaced = []
    for index, row in enumerate(rows):
        if index:
            spaced.append(np.full((gap, width, 3), 255, dtype=np.uint8))
        spaced.append(row)
    return np.concatenate(spaced, axis=0)


def write_sample_grid(path: str | Path, source: torch.Tensor, translated: torch.Tensor, label: torch.Tensor) -> Path:
    path = Path(path)
    write_png(path, sample_grid(source, translated, label))
    return path


def _center_crop_sample(sample, crop: tuple[int, int]):
    height, width = sample.size
    crop_height, crop_width = min(crop[0], height), min(crop[1], width)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    window = (slice(top, top + crop_height), slice(left, left + crop_width))
    boxes = []
    for box in sample.boxes:
        x1, y1, x2, y2 = box.xyxy
        x1, x2 = max(x1 - left, 0.0), min(x2 - left, float(crop_width))
        y1, y2 = max(y1 - top, 0.0), min(y2 - top, float(crop_height))
        if x2 > x1 and y2 > y1:
            boxes.append(box.with_xyxy((x1, y1, x2, y2)))
    return Sample(image=sample.image[window].copy(), label=sample.label[window].copy(),
                  instances=None if sample.instances is None else sample.instances[window].copy(),
                  boxes=boxes, name=sample.name, source_path=sample.source_path)


def preview_batch(dataset, count: int, crop: tuple[int, int], resize: tuple[int, int] | None = None):
    """A fixed Batch of the first `count` frames of `dataset` (resized, then centre-cropped to `crop`).

    The same frames at every sample step, so the grids of a run show its progress.
    """
    samples = []
    for index in range(min(count, len(dataset))):
        sample = dataset[index]
        if resize is not None:
            sample = resize_sample(sample, tuple(resize))
        samples.append(_center_crop_sample(sample, tuple(crop)))
    return collate_samples(samples)
