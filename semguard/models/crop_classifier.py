"""The crop classifier network: a small CNN that reads box attributes from crops: traffic light state, sign pictogram.

Box preservation (docs/DESIGN.md, "Evaluation protocol") asks whether the fine detail inside
lights and signs survives translation. This classifier is trained on labelled
*target-domain* crops (toy real), so a correct reading on a translated image means the
detail looks right in the target style. Each (box class, attribute key) pair found in the
training boxes is one task with its own head on a shared trunk, e.g. traffic light ->
"state" in {amber, green, red}; the task list and value names are collected from the data
at training time and stored in the checkpoint.

Crops: the box grown by `margin` times its size on each side, resampled to
crop_size x crop_size with bilinear RoIAlign (aspect ratio not kept: boxes of one class
have similar shapes). No horizontal flips in training: they would swap left/right arrows.
Training: semguard.train.crop_classifier; checkpoints: semguard.checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from semguard.data.sample import Box
from semguard.labels import TRAIN_ID_NAMES

CHECKPOINT_KIND = "crop_classifier"
ATTRIBUTE_CLASSES = (6, 7)  # traffic light, traffic sign


def task_name(class_id: int, attribute: str) -> str:
    """'traffic_light.state' for (6, 'state')."""
    return f"{TRAIN_ID_NAMES[class_id].replace(' ', '_')}.{attribute}"


class CropClassifier(nn.Module):
    """Shared conv trunk + one linear head per task.

    tasks: list of {"class_id": int, "attribute": str, "values": [str, ...]};
    forward(crops: float [N,3,S,S] in [-1,1]) -> list (one per task) of logits [N, len(values)].
    """

    def __init__(self, tasks: list[dict], crop_size: int = 24, channels: int = 32, margin: float = 0.25):
        super().__init__()
        if not tasks:
            raise ValueError("a crop classifier needs at least one task")
        self.tasks = [{"class_id": int(t["class_id"]), "attribute": str(t["attribute"]),
                       "values": [str(v) for v in t["values"]]} for t in tasks]
        self.crop_size = int(crop_size)
        self.channels = int(channels)
        self.margin = float(margin)

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        c = self.channels
        self.trunk = nn.Sequential(
            *block(3, c), *block(c, c), nn.MaxPool2d(2),
            *block(c, 2 * c), *block(2 * c, 2 * c), nn.MaxPool2d(2),
            *block(2 * c, 4 * c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1),
        )
        self.heads = nn.ModuleList(nn.Linear(4 * c, len(t["values"])) for t in self.tasks)

    @property
    def build(self) -> dict:
        return {"tasks": [dict(t) for t in self.tasks], "crop_size": self.crop_size,
                "channels": self.channels, "margin": self.margin}

    def tasks_for_class(self, class_id: int) -> list[int]:
        return [i for i, t in enumerate(self.tasks) if t["class_id"] == class_id]

    def forward(self, crops: torch.Tensor) -> list[torch.Tensor]:
        if crops.ndim != 4 or crops.shape[1] != 3:
            raise ValueError(f"crops must be float [N,3,S,S] in [-1,1], got {tuple(crops.shape)}")
        features = self.trunk(crops)
        return [head(features) for head in self.heads]


def extract_crops(image: torch.Tensor, boxes_xyxy: torch.Tensor, crop_size: int, margin: float) -> torch.Tensor:
    """Crops of `image` (float [3,H,W] or [1,3,H,W]) at `boxes_xyxy` (float [N,4] pixels,
    half-open), each grown by `margin` x its size per side, resampled to
    [N,3,crop_size,crop_size]. Areas outside the frame read as 0 (mid grey)."""
    from torchvision.ops import roi_align   # lazy: torchvision costs seconds at import

    if image.ndim == 3:
        image = image[None]
    if boxes_xyxy.numel() == 0:
        return image.new_zeros((0, 3, crop_size, crop_size))
    boxes = boxes_xyxy.to(image.dtype).to(image.device)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must be float [N,4], got {tuple(boxes.shape)}")
    if not torch.isfinite(boxes).all():  # roi_align reads out of bounds (and may crash the process) on NaN/inf
        raise ValueError("boxes_xyxy holds non-finite coordinates; load boxes through semguard's loaders, "
                         "which refuse them (semguard.data.sample.fit_boxes)")
    width = (boxes[:, 2] - boxes[:, 0]).clamp(min=1.0)
    height = (boxes[:, 3] - boxes[:, 1]).clamp(min=1.0)
    grown = torch.stack([boxes[:, 0] - margin * width, boxes[:, 1] - margin * height,
                         boxes[:, 0] + (1 + margin) * width, boxes[:, 1] + (1 + margin) * height], dim=1)
    rois = torch.cat([grown.new_zeros((len(grown), 1)), grown], dim=1)
    # aligned=True: pixel centres at +0.5, matching half-open pixel boxes
    return roi_align(image.float(), rois.float(), output_size=(crop_size, crop_size), spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)


@torch.no_grad()
def classify_boxes(model: CropClassifier, image: torch.Tensor, boxes: Sequence[Box]) -> list[dict[str, str] | None]:
    """Read the attributes of `boxes` off `image` (float [3,H,W] in [-1,1]).

    Returns one entry per box: {attribute: predicted value} for every task of the box's
    class (e.g. {"state": "red"}), or None for boxes of classes the model does not read
    (or empty boxes). The model is used as given (call .eval() first; load_* does).
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be float [3,H,W] in [-1,1], got {tuple(image.shape)}")
    results: list[dict[str, str] | None] = [None] * len(boxes)
    readable = [i for i, box in enumerate(boxes)
                if model.tasks_for_class(box.class_id) and box.width > 0 and box.height > 0]
    if not readable:
        return results
    device = next(model.parameters()).device
    xyxy = torch.tensor([boxes[i].xyxy for i in readable], dtype=torch.float32)
    crops = extract_crops(image.to(device), xyxy.to(device), model.crop_size, model.margin)
    logits = model(crops)
    for row, box_index in enumerate(readable):
        predicted = {}
        for task_index in model.tasks_for_class(boxes[box_index].class_id):
            task = model.tasks[task_index]
            predicted[task["attribute"]] = task["values"][int(logits[task_index][row].argmax())]
        results[box_index] = predicted
    return results
