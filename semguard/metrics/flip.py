"""Per-class flip rates: how often the judge reads a pixel as another class than its source label.

Semantic flipping (sky painted as trees, road painted as building) makes a translated
image disagree with the simulator's label map it is meant to carry. The judge segmenter
(trained on target-domain labels, never a training loss) reads the translated image;
among the pixels whose source label is c, the share it reads as some c' != c is the
flip rate of c:

    flip_rate[c]  = (N[c, :].sum() - N[c, c]) / N[c, :].sum()
    flip_table[c, c'] = N[c, c'] / N[c, :].sum()          (c' != c; the c -> c' flips)
    mean_flip_rate = mean of flip_rate[c] over classes present in the source labels

with N the confusion counts (reference = source label, prediction = judge). Pixels whose
source label is 255 (ignore) are excluded. All state is counts reduced by sum, so the
result is exact under any batch size and across processes (`FlipRate.compute` sums the
counts of all ranks when torch.distributed is initialised). Per-image flipped / valid
pixel counts are kept for the worst-images list.

`FlipRate` is the update / compute / reset metric; `flip_rates` its one-shot twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from semguard.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID_NAMES
from semguard.metrics.confusion import confusion_matrix


@dataclass(frozen=True)
class ImageFlip:
    """One image's flip count: `flipped` of its `valid` (non-ignore) pixels changed class."""

    name: str
    flipped: int
    valid: int

    @property
    def flip_rate(self) -> float:
        return self.flipped / self.valid if self.valid else float("nan")


@dataclass(frozen=True)
class FlipResult:
    """What `FlipRate.compute` returns.

    confusion: int64 [K,K], [c, c'] = pixels with source label c read as c'.
    per_class_flip_rate: float64 [K] in [0,1]; NaN for classes absent from the source labels.
    present: bool [K], classes with at least one source-label pixel.
    images: per-image counts in update order (ranks concatenated in rank order).
    image_class_counts: int64 [N,K,2] per image and source class (pixels, flipped pixels), in the
    order of `images` (the frames a bootstrap resamples); None when images were not tracked.
    """

    confusion: torch.Tensor
    per_class_flip_rate: torch.Tensor
    present: torch.Tensor
    images: tuple[ImageFlip, ...] = field(default_factory=tuple)
    image_class_counts: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return int(self.confusion.shape[0])

    @property
    def mean_flip_rate(self) -> float:
        """Mean of the per-class flip rates over classes present in the source labels (NaN if none)."""
        if not bool(self.present.any()):
            return float("nan")
        return float(self.per_class_flip_rate[self.present].mean())

    @property
    def pixel_flip_rate(self) -> float:
        """Share of all valid pixels that flipped (dominated by large classes)."""
        total = int(self.confusion.sum())
        return (total - int(self.confusion.diag().sum())) / total if total else float("nan")

    @property
    def flip_table(self) -> torch.Tensor:
        """float64 [K,K]: row c holds the share of c's pixels read as each c' (diagonal = 0)."""
        counts = self.confusion.double()
        rows = counts.sum(1, keepdim=True)
        table = torch.where(rows > 0, counts / rows.clamp(min=1), torch.zeros_like(counts))
        table.fill_diagonal_(0.0)
        return table

    def top_flips(self, k: int = 10, min_pixels: int = 1) -> list[dict]:
        """The k largest c -> c' flips by share of c's pixels (ties: more pixels first).

        Each entry: {"from", "to" (class names), "from_id", "to_id", "rate", "pixels"}.
        """
        table = self.flip_table
        entries = []
        for source_class in range(self.num_classes):
            for read_class in range(self.num_classes):
                pixels = int(self.confusion[source_class, read_class])
                if source_class == read_class or pixels < max(min_pixels, 1):
                    continue
                entries.append({
                    "from": _name(source_class), "to": _name(read_class),
                    "from_id": source_class, "to_id": read_class,
                    "rate": float(table[source_class, read_class]), "pixels": pixels,
                })
        entries.sort(key=lambda e: (-e["rate"], -e["pixels"], e["from_id"], e["to_id"]))
        return entries[:k]

    def worst_images(self, k: int = 8) -> list[ImageFlip]:
        """The k images with the highest flip rate (ties: earlier first; images without valid pixels skipped)."""
        ranked = [image for image in self.images if image.valid > 0]
        ranked.sort(key=lambda image: -image.flip_rate)
        return ranked[:k]

    def to_dict(self, top_k: int = 10, worst_k: int = 8) -> dict:
        """Plain data for report.json (NaN rates of absent classes become None)."""
        per_class = {}
        for class_id in range(self.num_classes):
            present = bool(self.present[class_id])
            per_class[_name(class_id)] = {
                "rate": float(self.per_class_flip_rate[class_id]) if present else None,
                "pixels": int(self.confusion[class_id].sum()),
                "flipped": int(self.confusion[class_id].sum() - self.confusion[class_id, class_id]),
            }
        return {
            "mean_flip_rate": _none_if_nan(self.mean_flip_rate),
            "pixel_flip_rate": _none_if_nan(self.pixel_flip_rate),
            "per_class": per_class,
            "flip_table": self.confusion.tolist(),
            "top_flips": self.top_flips(top_k),
            "worst_images": [
                {"name": image.name, "flip_rate": image.flip_rate, "flipped": image.flipped, "valid": image.valid}
                for image in self.worst_images(worst_k)
            ],
            "image_count": len(self.images),
        }


def _name(class_id: int) -> str:
    return TRAIN_ID_NAMES[class_id] if class_id < len(TRAIN_ID_NAMES) else f"class {class_id}"


def _none_if_nan(value: float) -> float | None:
    return None if value != value else float(value)


def _check_pair(source_label: torch.Tensor, judge_prediction: torch.Tensor) -> None:
    if source_label.ndim != 3:
        raise ValueError(f"source_label must be [B,H,W], got {tuple(source_label.shape)}")
    if judge_prediction.shape != source_label.shape:
        raise ValueError(
            f"judge_prediction {tuple(judge_prediction.shape)} and source_label {tuple(source_label.shape)} differ in shape"
        )
    if source_label.is_floating_point() or judge_prediction.is_floating_point():
        raise ValueError("source_label and judge_prediction must be integer class maps (use logits.argmax(1))")


class FlipRate:
    """Per-class flip rates, the c -> c' flip table and per-image counts, over any number of batches.

    update(source_label: int64 [B,H,W] train ids, 255 = ignore; judge_prediction: int64 [B,H,W]
    in 0..K-1; names: optional list of B image names) accumulates counts; compute() ->
    `FlipResult`; reset() clears. `track_images=False` skips the per-image list.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_ID, track_images: bool = True):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.track_images = track_images
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.images: list[ImageFlip] = []
        self.class_counts: list[torch.Tensor] = []   # int64 [B,K,2] per update

    @torch.no_grad()
    def update(self, source_label: torch.Tensor, judge_prediction: torch.Tensor,
               names: list[str] | None = None) -> None:
        _check_pair(source_label, judge_prediction)
        source_label = source_label.detach().cpu().long()
        judge_prediction = judge_prediction.detach().cpu().long()
        if names is not None and len(names) != source_label.shape[0]:
            raise ValueError(f"got {len(names)} names for a batch of {source_label.shape[0]} label maps")
        self.confusion += confusion_matrix(source_label, judge_prediction, self.num_classes, self.ignore_index)
        if not self.track_images:
            return
        valid = (source_label != self.ignore_index) & (source_label >= 0) & (source_label < self.num_classes)
        flipped = valid & (judge_prediction != source_label)
        valid_counts = valid.flatten(1).sum(1).tolist()
        flipped_counts = flipped.flatten(1).sum(1).tolist()
        batch, k = source_label.shape[0], self.num_classes
        slot = (torch.arange(batch).view(batch, 1, 1) * k + source_label.clamp(0, k - 1))
        pixels = torch.bincount(slot[valid], minlength=batch * k).view(batch, k)
        flipped_per_class = torch.bincount(slot[flipped], minlength=batch * k).view(batch, k)
        self.class_counts.append(torch.stack([pixels, flipped_per_class], dim=2))
        start = len(self.images)
        for index, (flip_count, valid_count) in enumerate(zip(flipped_counts, valid_counts)):
            name = names[index] if names is not None else f"image_{start + index:06d}"
            self.images.append(ImageFlip(name=str(name), flipped=int(flip_count), valid=int(valid_count)))

    def compute(self) -> FlipResult:
        """Counts of every rank summed (when torch.distributed is initialised), then the rates."""
        class_counts = torch.cat(self.class_counts) if self.class_counts else None
        confusion, images, class_counts = _synced(self.confusion, self.images, class_counts)
        return result_from_confusion(confusion, images, class_counts if self.track_images else None)


def result_from_confusion(confusion: torch.Tensor, images: list[ImageFlip] | tuple = (),
                          image_class_counts: torch.Tensor | None = None) -> FlipResult:
    """Rates from summed confusion counts (int64 [K,K])."""
    counts = confusion.double()
    totals = counts.sum(1)
    present = totals > 0
    rates = torch.where(present, 1.0 - counts.diag() / totals.clamp(min=1), torch.full_like(totals, float("nan")))
    return FlipResult(confusion=confusion.clone(), per_class_flip_rate=rates, present=present, images=tuple(images),
                      image_class_counts=image_class_counts)


def _synced(confusion: torch.Tensor, images: list[ImageFlip], class_counts: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, list[ImageFlip], torch.Tensor | None]:
    """Sum counts over ranks and gather per-image records; the local state is left unchanged."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return confusion, list(images), class_counts
    # the process group's backend decides the device (gloo: CPU; NCCL: this rank's GPU)
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    summed = confusion.to(device).clone()
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, [(i.name, i.flipped, i.valid) for i in images])
    all_images = [ImageFlip(name, flipped, valid) for part in gathered for (name, flipped, valid) in part]
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, None if class_counts is None else class_counts.numpy())
    all_counts = None if any(part is None for part in parts) else torch.from_numpy(np.concatenate(parts))
    return summed.cpu(), all_images, all_counts


def flip_rates(source_label: torch.Tensor, judge_prediction: torch.Tensor, num_classes: int = NUM_CLASSES,
               ignore_index: int = IGNORE_ID, names: list[str] | None = None) -> FlipResult:
    """One-shot `FlipRate`: source_label, judge_prediction int64 [B,H,W] (or [H,W]) -> `FlipResult`."""
    if source_label.ndim == 2:
        source_label, judge_prediction = source_label[None], judge_prediction[None]
    metric = FlipRate(num_classes=num_classes, ignore_index=ignore_index)
    metric.update(source_label, judge_prediction, names)
    return result_from_confusion(metric.confusion, metric.images, torch.cat(metric.class_counts))
