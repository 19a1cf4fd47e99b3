"""Flip rates and the flip table against hand-computed cases, across batches and processes."""

from __future__ import annotations

import math

import pytest
import torch

from semguard.metrics.flip import FlipRate, flip_rates

IGNORE = 255

# 2x4 frame, 4 classes; one ignore pixel (its prediction must not count), class 3 absent
LABEL = torch.tensor([[0, 0, 1, IGNORE],
                      [2, 2, 2, 1]])
PREDICTION = torch.tensor([[0, 1, 1, 3],
                           [2, 0, 3, 1]])


def test_hand_computed_case():
    result = flip_rates(LABEL, PREDICTION, num_classes=4)
    rates = result.per_class_flip_rate
    assert rates[0].item() == pytest.approx(0.5)       # 0 -> 1 once of 2
    assert rates[1].item() == pytest.approx(0.0)       # both 1s kept
    assert rates[2].item() == pytest.approx(2 / 3)     # 2 -> 0 and 2 -> 3 of 3
    assert math.isnan(rates[3].item())                 # absent class
    assert result.present.tolist() == [True, True, True, False]
    assert result.mean_flip_rate == pytest.approx((0.5 + 0 + 2 / 3) / 3)
    assert result.pixel_flip_rate == pytest.approx(3 / 7)
    expected_counts = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]])
    assert torch.equal(result.confusion, expected_counts)
    table = result.flip_table
    assert table[0, 1] == pytest.approx(0.5) and table[2, 0] == pytest.approx(1 / 3) and table[2, 3] == pytest.approx(1 / 3)
    assert table.diagonal().abs().sum() == 0
    top = result.top_flips(3)
    assert [(t["from_id"], t["to_id"]) for t in top] == [(0, 1), (2, 0), (2, 3)]
    assert [t["pixels"] for t in top] == [1, 1, 1]
    (image,) = result.images
    assert (image.flipped, image.valid) == (3, 7)


def test_all_ignore_and_absent_classes():
    label = torch.full((1, 3, 3), IGNORE)
    result = flip_rates(label, torch.zeros_like(label), num_classes=19)
    assert not result.present.any()
    assert math.isnan(result.mean_flip_rate) and math.isnan(result.pixel_flip_rate)
    assert result.worst_images() == []           # no valid pixel: never a "worst" image
    data = result.to_dict()
    assert data["mean_flip_rate"] is None and all(v["rate"] is None for v in data["per_class"].values())


def test_several_batches_accumulate_and_reset():
    metric = FlipRate(num_classes=4)
    metric.update(LABEL[None], PREDICTION[None], names=["a"])
    perfect = torch.tensor([[[3, 3], [3, 0]]])
    metric.update(perfect, perfect.clone(), names=["b"])
    result = metric.compute()
    assert result.per_class_flip_rate[3].item() == 0.0              # now present, never flipped
    assert result.per_class_flip_rate[0].item() == pytest.approx(1 / 3)  # 1 flipped of 3 zeros
    assert result.mean_flip_rate == pytest.approx((1 / 3 + 0 + 2 / 3 + 0) / 4)
    assert [(i.name, i.flipped, i.valid) for i in result.images] == [("a", 3, 7), ("b", 0, 4)]
    assert [i.name for i in result.worst_images(1)] == ["a"]
    metric.reset()
    assert metric.confusion.sum() == 0 and metric.images == []


def _random_pair(seed: int, count: int = 8, num_classes: int = 6):
    generator = torch.Generator().manual_seed(seed)
    label = torch.randint(0, num_classes, (count, 5, 7), generator=generator)
    label[torch.rand(label.shape, generator=generator) < 0.1] = IGNORE
    label[:, :, 0] = 0   # class 5 is absent from column 0; keep some structure
    prediction = torch.where(torch.rand(label.shape, generator=generator) < 0.7, label.clamp(max=num_classes - 1),
                             torch.randint(0, num_classes, label.shape, generator=generator))
    return label, prediction


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batch_size_independence(batch_size):
    label, prediction = _random_pair(0)
    names = [f"n{i}" for i in range(len(label))]
    whole = flip_rates(label, prediction, num_classes=6, names=names)
    metric = FlipRate(num_classes=6)
    assert metric.latest_images == []
    for start in range(0, len(label), batch_size):
        metric.update(label[start:start + batch_size], prediction[start:start + batch_size], names[start:start + batch_size])
        assert metric.latest_images == list(whole.images[start:start + batch_size])   # this batch's only
    result = metric.compute()
    assert torch.equal(result.confusion, whole.confusion)
    assert torch.allclose(result.per_class_flip_rate, whole.per_class_flip_rate, equal_nan=True)
    assert result.images == whole.images


def test_shape_and_dtype_errors():
    metric = FlipRate(num_classes=4)
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(LABEL[None], PREDICTION[None, :, :2])
    with pytest.raises(ValueError, match="integer"):
        metric.update(LABEL[None], PREDICTION[None].float())
    with pytest.raises(ValueError, match=r"\[B,H,W\]"):
        metric.update(LABEL, PREDICTION)


def _ddp_worker(rank: int, world_size: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        label, prediction = _random_pair(1)
        names = [f"n{i}" for i in range(len(label))]
        metric = FlipRate(num_classes=6)
        # uneven shards (rank 0: 3 frames, rank 1: 5) in uneven batches
        shard = slice(0, 3) if rank == 0 else slice(3, 8)
        for index in range(shard.start, shard.stop, 2):
            stop = min(index + 2, shard.stop)
            metric.update(label[index:stop], prediction[index:stop], names[index:stop])
        local_before = metric.confusion.clone()
        result = metric.compute()
        assert torch.equal(metric.confusion, local_before)  # compute leaves the local state alone
        if rank == 0:
            torch.save({"confusion": result.confusion, "images": [(i.name, i.flipped, i.valid) for i in result.images]},
                       out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_two_processes_match_one(tmp_path):
    import torch.multiprocessing as mp

    out_file = tmp_path / "result.pt"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(out_file)), nprocs=2, join=True)
    label, prediction = _random_pair(1)
    single = flip_rates(label, prediction, num_classes=6, names=[f"n{i}" for i in range(len(label))])
    synced = torch.load(out_file)
    assert torch.equal(synced["confusion"], single.confusion)
    assert synced["images"] == [(i.name, i.flipped, i.valid) for i in single.images]
