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
result is exact under any batch size and across processes. Per image and source class,
(pixels, flipped pixels) counts are kept too: the worst-images list and the headline's
bootstrap over frames (headline.py) read them.

`FlipRate` is the update / compute / reset metric, a torchmetrics.Metric (torchmetrics
syncs its states across processes on compute); `flip_rates` its one-shot twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from semguard.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID_NAMES
from semguard.metrics.confusion import confusion_matrix


# ImageFlip and FlipResult are not frozen: torchmetrics copies what compute() returns field by field.
@dataclass
class ImageFlip:
    """One image's flip count: `flipped` of its `valid` (non-ignore) pixels changed class."""

    name: str
    flipped: int
    valid: int

    @property
    def flip_rate(self) -> float:
        return self.flipped / self.valid if self.valid else float("nan")


@dataclass
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


def _frame_names(names: Sequence[str] | None, batch: int, start: int) -> list[str]:
    """The batch's image names; `image_000123`-style names counted from `start` when none are given."""
    if names is None:
        return [f"image_{start + index:06d}" for index in range(batch)]
    if len(names) != batch:
        raise ValueError(f"got {len(names)} names for a batch of {batch} label maps")
    return [str(name) for name in names]


def per_image_class_counts(source_label: torch.Tensor, judge_prediction: torch.Tensor,
                           num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_ID) -> torch.Tensor:
    """int64 [B,K,2]: per image and source class c, (pixels with source label c, of which the judge reads c' != c).

    source_label, judge_prediction: integer [B,H,W]; ignore pixels (and labels outside 0..K-1) are not counted.
    Summed over K, the two columns are an image's valid and flipped pixel counts.
    """
    source_label, judge_prediction = source_label.long(), judge_prediction.long()
    valid = (source_label != ignore_index) & (source_label >= 0) & (source_label < num_classes)
    flipped = valid & (judge_prediction != source_label)
    batch = source_label.shape[0]
    slot = (torch.arange(batch, device=source_label.device).view(batch, 1, 1) * num_classes
            + source_label.clamp(0, num_classes - 1))
    pixels = torch.bincount(slot[valid], minlength=batch * num_classes).view(batch, num_classes)
    flipped_per_class = torch.bincount(slot[flipped], minlength=batch * num_classes).view(batch, num_classes)
    return torch.stack([pixels, flipped_per_class], dim=2)


def _image_flips(names: Sequence[str], image_class_counts: torch.Tensor) -> list[ImageFlip]:
    totals = image_class_counts.sum(1).tolist()   # [N,2]: valid, flipped
    if len(names) != len(totals):
        raise ValueError(f"{len(names)} image names for {len(totals)} images' counts")
    return [ImageFlip(name=name, flipped=int(flipped), valid=int(valid)) for name, (valid, flipped) in zip(names, totals)]


# Image names travel between processes as tensors (torchmetrics syncs tensors only): the
# UTF-8 bytes of a batch's names back to back, and each name's byte length.
def _encode_names(names: Sequence[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [name.encode("utf-8") for name in names]
    name_bytes = torch.from_numpy(np.frombuffer(b"".join(encoded), dtype=np.uint8).copy())
    lengths = torch.tensor([len(item) for item in encoded], dtype=torch.int64)
    return name_bytes.to(device), lengths.to(device)


def _decode_names(name_bytes: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    data = name_bytes.cpu().numpy().tobytes()
    ends = np.cumsum(lengths.cpu().numpy()).tolist()
    return [data[end - length:end].decode("utf-8") for end, length in zip(ends, lengths.tolist())]


def _concatenated(state: torch.Tensor | list[torch.Tensor], empty: torch.Tensor) -> torch.Tensor:
    """A "cat" state as one tensor: a list before syncing, already one tensor after; `empty` when nothing was added."""
    if isinstance(state, list) and not state:
        return empty
    return dim_zero_cat(state)


class FlipRate(Metric):
    """Per-class flip rates, the c -> c' flip table and per-image counts, over any number of batches.

    update(source_label: int64 [B,H,W] train ids, 255 = ignore; judge_prediction: int64 [B,H,W]
    in 0..K-1; names: optional list of B image names) accumulates counts; compute() ->
    `FlipResult`; reset() clears. `track_images=False` skips the per-image counts and names.

    A torchmetrics Metric: `confusion` is a "sum" state, the per-image counts and names are
    "cat" states (frames in update order, ranks concatenated in rank order), so compute()
    under an initialised process group syncs them on the states' device (NCCL: move the
    metric to the GPU with `.to(device)`; gloo: CPU). Inputs are moved to the states' device.
    Under a process group every rank must have updated at least once before compute().
    `kwargs` are torchmetrics.Metric options (process_group, sync_on_compute, ...).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_ID, track_images: bool = True,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.track_images = track_images
        self.add_state("confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.int64),
                       dist_reduce_fx="sum")
        if track_images:
            self.add_state("image_class_counts", default=[], dist_reduce_fx="cat")   # int64 [B,K,2] per update
            self.add_state("name_bytes", default=[], dist_reduce_fx="cat")           # uint8, see _encode_names
            self.add_state("name_lengths", default=[], dist_reduce_fx="cat")         # int64 [B] per update

    @torch.no_grad()
    def update(self, source_label: torch.Tensor, judge_prediction: torch.Tensor,
               names: Sequence[str] | None = None) -> None:
        _check_pair(source_label, judge_prediction)
        source_label = source_label.detach().to(self.device).long()
        judge_prediction = judge_prediction.detach().to(self.device).long()
        batch_names = _frame_names(names, source_label.shape[0], start=self._local_image_count())
        self.confusion += confusion_matrix(source_label, judge_prediction, self.num_classes, self.ignore_index)
        if not self.track_images:
            return
        self.image_class_counts.append(
            per_image_class_counts(source_label, judge_prediction, self.num_classes, self.ignore_index))
        name_bytes, lengths = _encode_names(batch_names, self.device)
        self.name_bytes.append(name_bytes)
        self.name_lengths.append(lengths)

    def compute(self) -> FlipResult:
        """Rates from the counts of every rank (torchmetrics syncs the states when torch.distributed is initialised)."""
        if not self.track_images:
            return result_from_confusion(self.confusion.cpu())
        counts = self._image_counts()
        return result_from_confusion(self.confusion.cpu(), _image_flips(self._names(), counts), counts)

    @property
    def images(self) -> list[ImageFlip]:
        """This process's per-image counts in update order ([] with track_images=False); compute().images has all ranks'."""
        if not self.track_images:
            return []
        return _image_flips(self._names(), self._image_counts())

    @property
    def latest_images(self) -> list[ImageFlip]:
        """The per-image counts of the latest update() only, in batch order ([] before any update or with
        track_images=False). Costs one batch, where `images` rebuilds every image seen so far."""
        if not self.track_images or not isinstance(self.name_lengths, list) or not self.name_lengths:
            return []
        names = _decode_names(self.name_bytes[-1], self.name_lengths[-1])
        return _image_flips(names, self.image_class_counts[-1].cpu())

    def _image_counts(self) -> torch.Tensor:
        empty = torch.zeros(0, self.num_classes, 2, dtype=torch.int64)
        return _concatenated(self.image_class_counts, empty).cpu()

    def _names(self) -> list[str]:
        name_bytes = _concatenated(self.name_bytes, torch.zeros(0, dtype=torch.uint8))
        lengths = _concatenated(self.name_lengths, torch.zeros(0, dtype=torch.int64))
        return _decode_names(name_bytes, lengths)

    def _local_image_count(self) -> int:
        if not self.track_images:
            return 0
        return sum(int(lengths.numel()) for lengths in self.name_lengths)


def result_from_confusion(confusion: torch.Tensor, images: Sequence[ImageFlip] = (),
                          image_class_counts: torch.Tensor | None = None) -> FlipResult:
    """Rates from summed confusion counts (int64 [K,K])."""
    counts = confusion.double()
    totals = counts.sum(1)
    present = totals > 0
    rates = torch.where(present, 1.0 - counts.diag() / totals.clamp(min=1), torch.full_like(totals, float("nan")))
    return FlipResult(confusion=confusion.clone(), per_class_flip_rate=rates, present=present, images=tuple(images),
                      image_class_counts=image_class_counts)


def flip_rates(source_label: torch.Tensor, judge_prediction: torch.Tensor, num_classes: int = NUM_CLASSES,
               ignore_index: int = IGNORE_ID, names: Sequence[str] | None = None) -> FlipResult:
    """One-shot `FlipRate` (this process's data only, no sync): source_label, judge_prediction int64 [B,H,W]
    (or [H,W]) -> `FlipResult`."""
    if source_label.ndim == 2:
        source_label, judge_prediction = source_label[None], judge_prediction[None]
    _check_pair(source_label, judge_prediction)
    source_label, judge_prediction = source_label.detach().long(), judge_prediction.detach().long()
    batch_names = _frame_names(names, source_label.shape[0], start=0)
    counts = per_image_class_counts(source_label, judge_prediction, num_classes, ignore_index).cpu()
    confusion = confusion_matrix(source_label, judge_prediction, num_classes, ignore_index).cpu()
    return result_from_confusion(confusion, _image_flips(batch_names, counts), counts)
