"""FlipRate and BoxPreservation as torchmetrics Metrics: equal to their functional twins and to
loop-by-pixel references, reset, and summed by torchmetrics across two gloo processes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics import Metric

from semguard.data.sample import Box
from semguard.labels import BOX_CLASSES, TRAIN_ID_NAMES
from semguard.metrics.boxes import BoxPreservation, box_preservation
from semguard.metrics.flip import FlipRate, flip_rates

IGNORE = 255
NUM_CLASSES = 5
FRAMES = 8
# names with non-ASCII characters: they travel between processes as UTF-8 bytes
NAMES = [f"straße_{index}" if index % 3 == 0 else f"frame_{index}" for index in range(FRAMES)]


def _flip_data(seed: int, count: int = FRAMES, height: int = 6, width: int = 8):
    generator = torch.Generator().manual_seed(seed)
    label = torch.randint(0, NUM_CLASSES, (count, height, width), generator=generator)
    label[torch.rand(label.shape, generator=generator) < 0.15] = IGNORE
    label[1] = IGNORE   # one frame without a valid pixel
    prediction = torch.where(torch.rand(label.shape, generator=generator) < 0.6, label.clamp(max=NUM_CLASSES - 1),
                             torch.randint(0, NUM_CLASSES, label.shape, generator=generator))
    return label, prediction


def _box_data(seed: int, count: int = FRAMES, height: int = 12, width: int = 16):
    """Label maps of box classes and background, a prediction that flips some pixels, and random boxes."""
    generator = torch.Generator().manual_seed(seed)
    palette = torch.tensor((0, 10) + BOX_CLASSES + (2,))   # 2: a class no box is measured for
    label = palette[torch.randint(0, len(palette), (count, height, width), generator=generator)]
    prediction = torch.where(torch.rand(label.shape, generator=generator) < 0.7, label,
                             palette[torch.randint(0, len(palette), label.shape, generator=generator)])
    boxes = []
    for _ in range(count):
        image_boxes = []
        for _ in range(int(torch.randint(0, 5, (1,), generator=generator))):
            x1, y1 = (int(v) for v in torch.randint(0, 12, (2,), generator=generator))
            w, h = (int(v) for v in torch.randint(1, 6, (2,), generator=generator))
            class_id = int(palette[torch.randint(1, len(palette), (1,), generator=generator)])
            image_boxes.append(Box((x1, y1, x1 + w, y1 + h), class_id))
        boxes.append(image_boxes)
    return label, prediction, boxes


def _reference_flips(label: torch.Tensor, prediction: torch.Tensor, names: list[str]):
    """Confusion, per-class rates, per-image (name, flipped, valid) and per-image class counts, pixel by pixel."""
    confusion = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    images, class_counts = [], []
    for index in range(label.shape[0]):
        counts = [[0, 0] for _ in range(NUM_CLASSES)]
        for source, read in zip(label[index].flatten().tolist(), prediction[index].flatten().tolist()):
            if source == IGNORE:
                continue
            confusion[source][read] += 1
            counts[source][0] += 1
            counts[source][1] += int(read != source)
        class_counts.append(counts)
        images.append((names[index], sum(c[1] for c in counts), sum(c[0] for c in counts)))
    rates = [1 - row[c] / sum(row) if sum(row) else math.nan for c, row in enumerate(confusion)]
    return torch.tensor(confusion), rates, images, torch.tensor(class_counts)


def _reference_boxes(label: torch.Tensor, prediction: torch.Tensor, boxes) -> dict[str, dict]:
    """The box figures from integer boxes cut straight out of the maps."""
    per_class = {class_id: {"rates": [], "skipped": 0, "pixels": 0, "flipped": 0} for class_id in BOX_CLASSES}
    for index, image_boxes in enumerate(boxes):
        for box in image_boxes:
            if box.class_id not in per_class:   # not a box class: not measured
                continue
            x1, y1, x2, y2 = (int(v) for v in box.xyxy)   # slicing clips to the frame
            own = label[index, y1:y2, x1:x2] == box.class_id
            pixels = int(own.sum())
            flipped = int((own & (prediction[index, y1:y2, x1:x2] != box.class_id)).sum())
            if pixels == 0:
                per_class[box.class_id]["skipped"] += 1
                continue
            per_class[box.class_id]["rates"].append(flipped / pixels)
            per_class[box.class_id]["pixels"] += pixels
            per_class[box.class_id]["flipped"] += flipped
    result = {}
    for class_id, entry in per_class.items():
        rates = entry["rates"]
        result[TRAIN_ID_NAMES[class_id]] = {
            "boxes": len(rates), "skipped": entry["skipped"],
            "mean_flip_rate": sum(rates) / len(rates) if rates else None,
            "pixel_flip_rate": entry["flipped"] / entry["pixels"] if entry["pixels"] else None,
            "lost_share": sum(rate > 0.5 for rate in rates) / len(rates) if rates else None,
        }
    return result


def _assert_boxes_equal(result: dict, expected: dict) -> None:
    assert result.keys() == expected.keys()
    for name, figures in expected.items():
        for key, value in figures.items():
            assert result[name][key] == (value if value is None else pytest.approx(value)), (name, key)


def _flip_metric_over(label, prediction, names, batch_size: int, frames: range) -> FlipRate:
    metric = FlipRate(num_classes=NUM_CLASSES)
    for start in range(frames.start, frames.stop, batch_size):
        stop = min(start + batch_size, frames.stop)
        metric.update(label[start:stop], prediction[start:stop], names[start:stop])
    return metric


def _box_metric_over(label, prediction, boxes, batch_size: int, frames: range) -> BoxPreservation:
    metric = BoxPreservation()
    for start in range(frames.start, frames.stop, batch_size):
        stop = min(start + batch_size, frames.stop)
        metric.update(label[start:stop], prediction[start:stop], boxes[start:stop])
    return metric


def _flip_summary(result) -> dict:
    return {"confusion": result.confusion, "rates": result.per_class_flip_rate,
            "images": [(i.name, i.flipped, i.valid) for i in result.images], "class_counts": result.image_class_counts}


# ---------------------------------------------------------------- Metric = functional twin = reference


def test_metrics_are_torchmetrics_with_summable_states():
    flips, boxes = FlipRate(num_classes=NUM_CLASSES), BoxPreservation()
    assert isinstance(flips, Metric) and isinstance(boxes, Metric)
    assert set(flips.metric_state) == {"confusion", "image_class_counts", "name_bytes", "name_lengths"}
    assert set(boxes.metric_state) == {"counts", "rate_sums"}
    assert set(FlipRate(track_images=False).metric_state) == {"confusion"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flip_rate_matches_twin_and_reference(seed):
    label, prediction = _flip_data(seed)
    confusion, rates, images, class_counts = _reference_flips(label, prediction, NAMES)
    metric = _flip_metric_over(label, prediction, NAMES, batch_size=3, frames=range(FRAMES))
    result, twin = metric.compute(), flip_rates(label, prediction, num_classes=NUM_CLASSES, names=NAMES)
    for figures in (result, twin):
        assert torch.equal(figures.confusion, confusion)
        assert torch.allclose(figures.per_class_flip_rate, torch.tensor(rates, dtype=torch.float64), equal_nan=True)
        assert [(i.name, i.flipped, i.valid) for i in figures.images] == images
        assert torch.equal(figures.image_class_counts, class_counts)   # frame order of `images`
    assert result.to_dict() == twin.to_dict()
    assert [(i.name, i.flipped, i.valid) for i in metric.images] == images   # the local list evaluate.py reads


def test_flip_rate_without_image_tracking_and_default_names():
    label, prediction = _flip_data(0)
    untracked = FlipRate(num_classes=NUM_CLASSES, track_images=False)
    untracked.update(label, prediction)
    result = untracked.compute()
    assert result.images == () and result.image_class_counts is None and untracked.images == []
    assert torch.equal(result.confusion, flip_rates(label, prediction, num_classes=NUM_CLASSES).confusion)
    unnamed = FlipRate(num_classes=NUM_CLASSES)
    unnamed.update(label[:2], prediction[:2])
    unnamed.update(label[2:3], prediction[2:3])
    assert [i.name for i in unnamed.compute().images] == ["image_000000", "image_000001", "image_000002"]


@pytest.mark.parametrize("seed", [0, 1])
def test_box_preservation_matches_twin_and_reference(seed):
    label, prediction, boxes = _box_data(seed)
    expected = _reference_boxes(label, prediction, boxes)
    metric = _box_metric_over(label, prediction, boxes, batch_size=3, frames=range(FRAMES))
    _assert_boxes_equal(metric.compute(), expected)
    _assert_boxes_equal(box_preservation(label, prediction, boxes), expected)


# ---------------------------------------------------------------- reset


def test_reset_returns_to_a_fresh_metric():
    label, prediction = _flip_data(0)
    flips = _flip_metric_over(label, prediction, NAMES, batch_size=4, frames=range(FRAMES))
    flips.compute()
    flips.reset()
    assert flips.confusion.sum() == 0 and flips.images == []
    flips.update(label[:2], prediction[:2], NAMES[:2])
    again = flips.compute()
    twin = flip_rates(label[:2], prediction[:2], num_classes=NUM_CLASSES, names=NAMES[:2])
    assert torch.equal(again.confusion, twin.confusion) and again.images == twin.images
    assert torch.equal(again.image_class_counts, twin.image_class_counts)

    label, prediction, boxes = _box_data(0)
    meter = _box_metric_over(label, prediction, boxes, batch_size=4, frames=range(FRAMES))
    meter.compute()
    meter.reset()
    assert meter.counts.sum() == 0 and meter.rate_sums.sum() == 0
    with pytest.warns(UserWarning, match="before the ``update`` method"):   # torchmetrics' own warning
        emptied = meter.compute()
    assert all(figures["boxes"] == 0 and figures["mean_flip_rate"] is None for figures in emptied.values())
    meter.update(label[:2], prediction[:2], boxes[:2])
    _assert_boxes_equal(meter.compute(), _reference_boxes(label[:2], prediction[:2], boxes[:2]))


# ---------------------------------------------------------------- two processes (gloo)


def _ddp_worker(rank: int, world_size: int, init_file: str, out_prefix: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        half = range(0, FRAMES // 2) if rank == 0 else range(FRAMES // 2, FRAMES)
        label, prediction = _flip_data(3)
        flips = _flip_metric_over(label, prediction, NAMES, batch_size=3, frames=half)
        local_confusion, local_images = flips.confusion.clone(), list(flips.images)
        flip_result = flips.compute()
        # torchmetrics restores this rank's own states after syncing
        local_kept = torch.equal(flips.confusion, local_confusion) and flips.images == local_images
        box_label, box_prediction, boxes = _box_data(3)
        meter = _box_metric_over(box_label, box_prediction, boxes, batch_size=3, frames=half)
        local_counts = meter.counts.clone()
        box_result = meter.compute()
        local_kept = local_kept and torch.equal(meter.counts, local_counts)
        torch.save({"flips": _flip_summary(flip_result), "boxes": box_result, "local_kept": local_kept},
                   f"{out_prefix}{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_two_processes_sum_to_the_single_process_result(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "rank")), nprocs=2, join=True)
    label, prediction = _flip_data(3)
    single_flips = _flip_summary(flip_rates(label, prediction, num_classes=NUM_CLASSES, names=NAMES))
    box_label, box_prediction, boxes = _box_data(3)
    single_boxes = box_preservation(box_label, box_prediction, boxes)
    for rank in range(2):
        synced = torch.load(tmp_path / f"rank{rank}.pt")
        assert synced["local_kept"]
        assert torch.equal(synced["flips"]["confusion"], single_flips["confusion"])
        assert torch.allclose(synced["flips"]["rates"], single_flips["rates"], equal_nan=True)
        assert synced["flips"]["images"] == single_flips["images"]            # rank 0's frames, then rank 1's
        assert torch.equal(synced["flips"]["class_counts"], single_flips["class_counts"])
        _assert_boxes_equal(synced["boxes"], single_boxes)
