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


# ---------------------------------------------------------------------- layout-matched pairing


def test_layout_agreement_on_a_coarse_grid():
    from semguard.data.layout import coarse_layout, layout_agreement

    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 1
    assert coarse_layout(label, 2).tolist() == [[0, 1], [0, 1]]
    assert coarse_layout(np.arange(12, dtype=np.uint8).reshape(3, 4), 2).tolist() == [[1, 3], [9, 11]]   # rows 0, 2; cols 1, 3
    other = np.ones((16, 16), np.uint8)          # another size: compared cell by cell
    assert layout_agreement(label, other, 4) == pytest.approx(0.5)
    other[:8] = 255                               # the top half unlabelled: 4 of the 8 remaining cells agree
    assert layout_agreement(label, other, 4) == pytest.approx(0.5)
    other[:] = 255
    assert layout_agreement(label, other, 4) == 0.0


class LayoutSet(MemorySet):
    """Frame i: sky (10) above row (i % 8) * 4, road (0) below: layouts that agree more or less."""

    def __getitem__(self, index):
        sample = super().__getitem__(index)
        label = np.zeros(self.size, np.uint8)
        label[: (self.offset + index) % 8 * 4] = 10
        return Sample(sample.image, label, sample.instances, [], name=sample.name)


def test_matched_pairing_keeps_the_best_agreeing_candidate():
    from semguard.data.layout import layout_agreement
    from semguard.data.unpaired import LayoutMatchedPairing

    source_label = LayoutSet(1, offset=5)[0].label           # sky above row 20
    targets = LayoutSet(16, offset=100)
    seen = []

    def view(index, seed):
        sample = targets[index]
        seen.append((index, sample.label))
        return sample

    pairing = LayoutMatchedPairing(candidates=6, grid=16)
    chosen, agreement = pairing.pair(source_label, 3, np.random.SeedSequence(7), len(targets), view)
    assert len(seen) == 6 and seen[0][0] == 3                  # the shuffle's own target is a candidate
    scores = [layout_agreement(source_label, label, 16) for _, label in seen]
    assert agreement == max(scores) and np.array_equal(chosen.label, seen[int(np.argmax(scores))][1])
    # the choice is a function of the seed alone
    again = pairing.pair(source_label, 3, np.random.SeedSequence(7), len(targets), lambda i, s: targets[i])
    assert again[1] == agreement and np.array_equal(again[0].label, chosen.label)


def test_matched_stream_reports_agreement_beats_random_and_resumes():
    from semguard.data.layout import layout_agreement

    source, target = LayoutSet(8), LayoutSet(8, offset=3)
    kwargs = dict(crop=(H, W), batch_size=2, seed=4, small_box_crop_prob=0.0, hflip=False)
    matched = build_unpaired_loader(source, target, workers=0, pairing="layout_matched", pairing_candidates=8,
                                    pairing_grid=8, **kwargs)
    random_pairs = build_unpaired_loader(source, target, workers=0, **kwargs)
    batches = list(islice(matched, 4))
    for s, t in batches:
        assert t.layout_agreement.shape == (2,)
        for i in range(2):
            expected = layout_agreement(s.label[i].numpy().astype(np.uint8), t.label[i].numpy().astype(np.uint8), 8)
            assert float(t.layout_agreement[i]) == pytest.approx(expected)
    matched_mean = float(torch.cat([t.layout_agreement for _, t in batches]).mean())
    random_mean = np.mean([layout_agreement(s.label[i].numpy().astype(np.uint8), t.label[i].numpy().astype(np.uint8), 8)
                           for s, t in islice(random_pairs, 4) for i in range(2)])
    assert next(iter(random_pairs))[1].layout_agreement is None
    assert matched_mean > random_mean
    # the same source stream as random pairing, and exactly resumable
    assert [s.names for s, _ in batches] == [s.names for s, _ in islice(random_pairs, 4)]
    resumed = list(islice(matched.iterate(start_batch=2), 2))
    assert all(a[1].names == b[1].names and torch.equal(a[1].image, b[1].image) for a, b in zip(batches[2:], resumed))
    threaded = build_unpaired_loader(source, target, workers=2, pairing="layout_matched", pairing_candidates=8,
                                     pairing_grid=8, **kwargs)
    assert [t.names for _, t in islice(threaded, 4)] == [t.names for _, t in batches]


def test_unknown_pairing_lists_the_valid_ones():
    from semguard.errors import ConfigError

    with pytest.raises(ConfigError, match="layout_matched, random"):
        build_unpaired_loader(MemorySet(2), MemorySet(2), crop=(H, W), batch_size=1, workers=0, seed=0,
                              small_box_crop_prob=0.0, hflip=False, pairing="nearest")
