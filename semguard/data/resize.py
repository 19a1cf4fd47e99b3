"""Resizing a Sample: the one rule training, previews and evaluation share.

Image: bilinear with antialiasing (torch `interpolate`, so downscaling averages instead of
aliasing); label and instance maps: nearest (no interpolated ids); boxes: scaled with the
frame (then fitted by the usual box rule where the caller reads them).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from semguard.data.batch import image_to_tensor, tensor_to_image
from semguard.data.sample import Sample


def resize_sample(sample: Sample, size: tuple[int, int] | None) -> Sample:
    """Resize a sample to (H, W): image bilinear (antialiased), label/instances nearest, boxes scaled."""
    if size is None or tuple(sample.size) == tuple(size):
        return sample
    height, width = size
    scale_y, scale_x = height / sample.size[0], width / sample.size[1]
    image = F.interpolate(image_to_tensor(sample.image)[None], size=size, mode="bilinear", antialias=True,
                          align_corners=False)[0]
    label = F.interpolate(torch.from_numpy(sample.label.astype(np.float32))[None, None], size=size, mode="nearest")[0, 0]
    instances = None
    if sample.instances is not None:
        instances = F.interpolate(torch.from_numpy(sample.instances.astype(np.float32))[None, None], size=size,
                                  mode="nearest")[0, 0].numpy().astype(np.int32)
    boxes = [box.with_xyxy((box.xyxy[0] * scale_x, box.xyxy[1] * scale_y, box.xyxy[2] * scale_x, box.xyxy[3] * scale_y))
             for box in sample.boxes]
    return Sample(image=tensor_to_image(image), label=label.numpy().astype(np.uint8), instances=instances, boxes=boxes,
                  name=sample.name, source_path=sample.source_path)
