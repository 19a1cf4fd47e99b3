"""Batches of samples as tensors, and the image <-> tensor conventions.

Batch tensors (all of semguard's models and losses take these):
- image: float32 [B,3,H,W] in [-1,1]
- label: int64 [B,H,W], train ids, 255 = ignore
- instances: int64 [B,H,W], 0 = no instance
- boxes: list (length B) of lists of `Box` (pixel xyxy, half-open)
- layout_agreement: float32 [B] or None: on a layout-matched target batch, the label
  agreement of each target crop with its source crop (semguard.data.layout)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from semguard.data.sample import Box, Sample


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H,W,3] -> float32 [3,H,W] in [-1,1]."""
    image = np.ascontiguousarray(image)
    if not image.flags.writeable:  # torch cannot wrap read-only arrays (decoded or transformed frames)
        image = image.copy()
    return torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """float [3,H,W] in [-1,1] -> uint8 [H,W,3] (rounded, clipped)."""
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"image tensor must be [3,H,W], got {tuple(tensor.shape)}")
    array = tensor.detach().float().add(1.0).mul(127.5).round().clamp(0, 255)
    return array.to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@dataclass
class Batch:
    image: torch.Tensor
    label: torch.Tensor
    instances: torch.Tensor
    boxes: list[list[Box]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    layout_agreement: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return Batch(
            image=self.image.to(device, non_blocking=non_blocking),
            label=self.label.to(device, non_blocking=non_blocking),
            instances=self.instances.to(device, non_blocking=non_blocking),
            boxes=self.boxes,
            names=self.names,
            layout_agreement=self.layout_agreement,   # stays on the CPU: it is only logged
        )

    def __len__(self) -> int:
        return int(self.image.shape[0])


def collate_samples(samples: list[Sample]) -> Batch:
    """Stack equally sized samples into a `Batch` (instances default to zeros)."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    sizes = {s.size for s in samples}
    if len(sizes) != 1:
        raise ValueError(f"samples in one batch must share a size, got {sorted(sizes)}")
    images = torch.stack([image_to_tensor(s.image) for s in samples])
    labels = torch.stack([torch.from_numpy(s.label.astype(np.int64)) for s in samples])  # astype copies
    instances = torch.stack([
        torch.from_numpy(s.instances.astype(np.int64)) if s.instances is not None
        else torch.zeros(s.size, dtype=torch.int64)
        for s in samples
    ])
    return Batch(image=images, label=labels, instances=instances,
                 boxes=[list(s.boxes) for s in samples], names=[s.name for s in samples])
