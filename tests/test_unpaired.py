"""Unpaired training stream and ordered eval batches."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
import torch

from semguard.data.sample import Box, Sample
from semguard.data.unpaired import build_eval_loader, build_unpaired_loader

H, W = 32, 64


class MemorySet:
    """A tiny in-memory data set of Samples (picklable, for workers)."""

    def __init__(self, n: int, offset: int = 0, labelled: bool = True, size=(H, W)):
        self.n, self.offset, self.labelled, self.size = n, offset, labelled, size
        self.names = [f"s{offset + i}" for i in range(n)]

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        h, w = self.size
        rng = np.random.default_rng(self.offset + index)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        label = np.full((h, w), (self.offset + index) % 19 if self.labelled else 255, np.uint8)
        instances = np.zeros((h, w), np.int32)
        instances[4:9, 10:14] = 1
        label[4:9, 10:14] = 7
        boxes = [Box((10, 4, 14, 9), 7, 1, {"pictogram": "arrow_left"})]
        return Sample(image, label, instances, boxes, name=self.names[index])


def names_of(loader, n):
    return [(tuple(s.names), tuple(t.names)) for s, t in islice(loader, n)]


def test_batch_shapes_and_content():
    loader = build_unpaired_loader(MemorySet(5), MemorySet(3, offset=100, labelled=False), crop=(16, 32),
                                   batch_size=2, workers=0, seed=0, small_box_crop_prob=0.5, hflip=True)
    source, target = next(iter(loader))
    assert source.image.shape == (2, 3, 16, 32) and source.image.dtype == torch.float32
    assert source.label.shape == (2, 16, 32) and source.label.dtype == torch.int64
    assert source.instances.shape == (2, 16, 32)
    assert -1.0 <= source.image.min() and source.image.max() <= 1.0
    assert target.image.shape == (2, 3, 16, 32) and (target.label != 7).logical_and(target.label != 255).sum() == 0
    assert len(source.boxes) == 2 and all(n.startswith("s1") for n in target.names)
    assert loader.batches_per_epoch == 3


def test_reproducible_from_seed_and_independent_shuffles():
    source, target = MemorySet(6), MemorySet(4, offset=100)

    def stream(seed, workers=0):
        loader = build_unpaired_loader(source, target, crop=(16, 32), batch_size=3, workers=workers, seed=seed,
                                       small_box_crop_prob=0.5, hflip=True, color_jitter=0.2)
        return [(s.image, s.names, t.names, s.boxes) for s, t in islice(loader, 4)]

    a, b, c = stream(1), stream(1), stream(2)
    assert all(torch.equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b))
    assert [x[1] for x in a] != [x[1] for x in c]
    # one epoch = max(6, 4) pairs: every source once; the target wraps through a fresh permutation
    epoch_sources = [n for x in a[:2] for n in x[1]]
    assert sorted(epoch_sources) == sorted(source.names)
    pairs = [(s, t) for x in a for s, t in zip(x[1], x[2])]
    assert len({t for _, t in pairs}) == 4
    # shuffles are independent: the pairing is not a fixed function of the source
    assert len({(s, t) for s, t in pairs}) > len(source.names)


def test_workers_and_resume_give_the_same_stream():
    source, target = MemorySet(5), MemorySet(3, offset=100)
    kwargs = dict(crop=(16, 32), batch_size=2, seed=3, small_box_crop_prob=0.5, hflip=True)
    plain = build_unpaired_loader(source, target, workers=0, **kwargs)
    threaded = build_unpaired_loader(source, target, workers=2, **kwargs)
    first = [(s.image, s.names) for s, _ in islice(plain, 5)]
    second = [(s.image, s.names) for s, _ in islice(threaded, 5)]
    assert all(torch.equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(first, second))
    resumed = [(s.image, s.names) for s, _ in islice(plain.iterate(start_batch=3), 2)]
    assert all(torch.equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(first[3:], resumed))


def test_distributed_ranks_take_disjoint_pairs():
    source, target = MemorySet(8), MemorySet(8, offset=100)
    seen = []
    for rank in range(2):
        loader = build_unpaired_loader(source, target, crop=(16, 32), batch_size=2, workers=0, seed=0,
                                       small_box_crop_prob=0.0, hflip=False, distributed=True, rank=rank, world_size=2)
        assert loader.batches_per_epoch == 2
        seen.append([n for s, _ in islice(loader, 2) for n in s.names])
    assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == sorted(source.names)


def test_eval_loader_is_ordered_full_frames():
    loader = build_eval_loader(MemorySet(5), batch_size=2, workers=0)
    batches = list(loader)
    assert [n for b in batches for n in b.names] == [f"s{i}" for i in range(5)]
    assert batches[0].image.shape == (2, 3, H, W) and len(batches) == 3
    resized = next(iter(build_eval_loader(MemorySet(2), batch_size=2, resize=(16, 24))))
    assert resized.image.shape == (2, 3, 16, 24)
    assert set(resized.label.unique().tolist()) <= {0, 1, 7}


def test_eval_loader_refuses_mixed_sizes_clearly():
    from semguard.errors import DataError

    class Mixed(MemorySet):
        def __getitem__(self, index):
            self.size = (H, W) if index == 0 else (H, W + 2)
            return super().__getitem__(index)

    with pytest.raises(DataError, match="batch_size=1"):
        list(build_eval_loader(Mixed(2), batch_size=2))
