"""Unpaired training batches (source frames with labels and boxes, target images) and eval batches.

`build_unpaired_loader` gives an *infinite* stream of (source: Batch, target: Batch):
epoch after epoch, the source and the target are shuffled independently (an epoch is
max(len(source), len(target)) pairs; the shorter set wraps through fresh permutations).
Everything random (orders, crops, flips, colour) derives from `seed`, the epoch and the
position, so the stream is the same for any number of workers, and `iterate(start_batch)`
resumes it exactly after a restart. With `distributed=True` each rank takes every
world_size-th pair of each epoch (DistributedSampler-style), so ranks see disjoint pairs.

Pairing (PAIRINGS): "random" gives each source crop the target crop of the independent
target shuffle. "layout_matched" draws `candidates` target crops for each source crop (the
shuffle's own first, then candidates - 1 more frames and crops drawn from the pair's seed),
and keeps the one whose labels agree best with the source crop's on a `grid` x `grid`
coarse grid (semguard.data.layout); the target Batch then carries `layout_agreement`.
It decodes `candidates` target frames per pair (use workers) and needs target labels.
The choice derives from the pair's seed, so the stream stays reproducible and resumable.

`build_eval_loader` gives the frames of one data set in order, full frame (optionally
resized), as Batches: a torch DataLoader (len = number of batches).
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from semguard.data.batch import Batch, collate_samples
from semguard.data.layout import best_layout_match
from semguard.data.transforms import PairedTransform
from semguard.errors import ConfigError, DataError


def distributed_rank_world(distributed: bool, rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): explicit values, else torch.distributed, else RANK/WORLD_SIZE; (0, 1) when not distributed."""
    if not distributed:
        return 0, 1
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return int(rank), int(world_size)


def _seed_of(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


class _PairSampler(Sampler):
    """Infinite keys (source index, target index, item seed) for one rank, from a start item."""

    def __init__(self, n_source: int, n_target: int, seed: int, rank: int, world_size: int, start_item: int = 0):
        self.n_source, self.n_target, self.seed = n_source, n_target, seed
        self.rank, self.world_size, self.start_item = rank, world_size, start_item
        self.epoch_pairs = math.ceil(max(n_source, n_target) / world_size) * world_size
        self.per_rank = self.epoch_pairs // world_size

    def _order(self, n: int, epoch: int, stream: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch, stream])
        rounds = math.ceil(self.epoch_pairs / n)
        return np.concatenate([rng.permutation(n) for _ in range(rounds)])[: self.epoch_pairs]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        item = self.start_item
        epoch, cached = -1, None
        while True:
            item_epoch, local = divmod(item, self.per_rank)
            if item_epoch != epoch:
                epoch = item_epoch
                cached = (self._order(self.n_source, epoch, 0), self._order(self.n_target, epoch, 1))
            position = self.rank + local * self.world_size
            yield int(cached[0][position]), int(cached[1][position]), _seed_of(self.seed, epoch, position)
            item += 1


class RandomPairing:
    """The target crop of the independent target shuffle (no agreement measured)."""

    @classmethod
    def from_options(cls, candidates: int, grid: int) -> "RandomPairing":
        return cls()

    def pair(self, source_label, target_index: int, target_seed: np.random.SeedSequence, n_target: int, view):
        return view(target_index, target_seed), None


class LayoutMatchedPairing:
    """The best-agreeing of `candidates` target crops (module docstring); agreement in [0, 1]."""

    def __init__(self, candidates: int = 8, grid: int = 16) -> None:
        if candidates < 1 or grid < 1:
            raise ValueError(f"layout-matched pairing needs candidates >= 1 and grid >= 1, got {candidates}, {grid}")
        self.candidates, self.grid = int(candidates), int(grid)

    @classmethod
    def from_options(cls, candidates: int, grid: int) -> "LayoutMatchedPairing":
        return cls(candidates, grid)

    def pair(self, source_label, target_index: int, target_seed: np.random.SeedSequence, n_target: int, view):
        children = target_seed.spawn(self.candidates)
        indices = [target_index] + [int(i) for i in
                                    np.random.default_rng(children[0]).integers(n_target, size=self.candidates - 1)]
        seeds = [target_seed] + list(children[1:])
        views = [view(index, seed) for index, seed in zip(indices, seeds)]
        best, agreement = best_layout_match(source_label, [v.label for v in views], self.grid)
        return views[best], agreement


PAIRINGS: dict[str, type] = {"random": RandomPairing, "layout_matched": LayoutMatchedPairing}


def build_pairing(name: str, candidates: int = 8, grid: int = 16):
    """A pairing of PAIRINGS by name (data.pairing); an unknown name lists the valid ones."""
    if name not in PAIRINGS:
        raise ConfigError(f"unknown data.pairing '{name}'; valid names: {', '.join(sorted(PAIRINGS))}")
    return PAIRINGS[name].from_options(candidates, grid)


class _PairDataset(Dataset):
    def __init__(self, source_ds, target_ds, source_transform: PairedTransform, target_transform: PairedTransform,
                 pairing=None):
        self.source_ds, self.target_ds = source_ds, target_ds
        self.source_transform, self.target_transform = source_transform, target_transform
        self.pairing = pairing if pairing is not None else RandomPairing()

    def __len__(self) -> int:
        return max(len(self.source_ds), len(self.target_ds))

    def _target_view(self, index: int, seed: np.random.SeedSequence):
        return self.target_transform(self.target_ds[index], np.random.default_rng(seed))

    def __getitem__(self, key: tuple[int, int, int]):
        source_index, target_index, seed = key
        source_seed, target_seed = np.random.SeedSequence(seed).spawn(2)
        source = self.source_transform(self.source_ds[source_index], np.random.default_rng(source_seed))
        target, agreement = self.pairing.pair(source.label, target_index, target_seed, len(self.target_ds),
                                              self._target_view)
        return source, target, agreement


def _collate_pairs(items) -> tuple[Batch, Batch]:
    source = collate_samples([s for s, _, _ in items])
    target = collate_samples([t for _, t, _ in items])
    agreements = [a for _, _, a in items]
    if all(a is not None for a in agreements):
        target.layout_agreement = torch.tensor(agreements, dtype=torch.float32)
    return source, target


def _worker_init(_worker_id: int) -> None:
    # one thread per worker: workers are the parallelism; nested thread pools only fight over cores
    torch.set_num_threads(1)
    try:
        import cv2   # lazy: OpenCV costs seconds at import, only this step needs it

        cv2.setNumThreads(0)
    except ImportError:  # pragma: no cover
        pass


class UnpairedLoader:
    """Infinite, reproducible stream of (source Batch, target Batch); see the module docstring.

    batches_per_epoch: batches one rank takes to see one epoch of pairs.
    iterate(start_batch=0): the stream from batch number `start_batch` (for resuming).
    """

    def __init__(self, source_ds, target_ds, crop: tuple[int, int], batch_size: int, workers: int, seed: int,
                 small_box_crop_prob: float, hflip: bool, resize: tuple[int, int] | None = None,
                 rank: int = 0, world_size: int = 1, color_jitter: float = 0.0, pin_memory: bool = False,
                 pairing=None):
        if len(source_ds) == 0 or len(target_ds) == 0:
            raise DataError("unpaired loader: the source or the target data set is empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.source_ds, self.target_ds = source_ds, target_ds
        self.batch_size, self.workers, self.seed = int(batch_size), int(workers), int(seed)
        self.rank, self.world_size = rank, world_size
        self.pin_memory = pin_memory
        self.dataset = _PairDataset(
            source_ds, target_ds,
            PairedTransform(crop=crop, resize=resize, hflip=hflip, small_box_crop_prob=small_box_crop_prob,
                            color_jitter=color_jitter),
            # target boxes (if any) do not matter for training: no small-box bias there
            PairedTransform(crop=crop, resize=resize, hflip=hflip, small_box_crop_prob=0.0, color_jitter=color_jitter),
            pairing=pairing,
        )
        per_rank = _PairSampler(len(source_ds), len(target_ds), self.seed, rank, world_size).per_rank
        self.batches_per_epoch = math.ceil(per_rank / self.batch_size)

    def iterate(self, start_batch: int = 0) -> Iterator[tuple[Batch, Batch]]:
        sampler = _PairSampler(len(self.source_ds), len(self.target_ds), self.seed, self.rank, self.world_size,
                               start_item=int(start_batch) * self.batch_size)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.workers,
                            collate_fn=_collate_pairs, worker_init_fn=_worker_init if self.workers else None,
                            pin_memory=self.pin_memory, persistent_workers=False,
                            prefetch_factor=4 if self.workers else None)
        yield from loader

    def __iter__(self) -> Iterator[tuple[Batch, Batch]]:
        return self.iterate(0)


def build_unpaired_loader(source_ds, target_ds, crop: tuple[int, int], batch_size: int, workers: int, seed: int,
                          small_box_crop_prob: float, hflip: bool, resize: tuple[int, int] | None = None,
                          distributed: bool = False, rank: int | None = None, world_size: int | None = None,
                          color_jitter: float = 0.0, pin_memory: bool = False, pairing: str = "random",
                          pairing_candidates: int = 8, pairing_grid: int = 16) -> UnpairedLoader:
    """An infinite, seed-reproducible stream of (source: Batch, target: Batch) training crops.

    source_ds / target_ds: map-style data sets of `Sample` (e.g. open_dataset(...); the
    target may be unlabelled: labels all 255). crop: (H, W); resize: (H, W) before
    cropping or None. Batches: image float [B,3,H,W] in [-1,1], label int64 [B,H,W],
    instances int64 [B,H,W], boxes (pixel xyxy, half-open) per sample. distributed: split
    each epoch across ranks (rank/world_size from torch.distributed or RANK/WORLD_SIZE
    unless given). pairing: a name in PAIRINGS ("random" or "layout_matched", the latter
    with pairing_candidates target crops per source crop compared on a pairing_grid grid).
    """
    rank, world_size = distributed_rank_world(distributed, rank, world_size)
    return UnpairedLoader(source_ds, target_ds, crop=tuple(crop), batch_size=batch_size, workers=workers, seed=seed,
                          small_box_crop_prob=small_box_crop_prob, hflip=hflip,
                          resize=tuple(resize) if resize is not None else None, rank=rank, world_size=world_size,
                          color_jitter=color_jitter, pin_memory=pin_memory,
                          pairing=build_pairing(pairing, pairing_candidates, pairing_grid))


class _EvalCollate:
    def __init__(self, resize: tuple[int, int] | None):
        self.transform = PairedTransform(resize=resize) if resize is not None else None

    def __call__(self, samples) -> Batch:
        if self.transform is not None:
            rng = np.random.default_rng(0)  # resize draws nothing; a generator is still required
            samples = [self.transform(s, rng) for s in samples]
        try:
            return collate_samples(samples)
        except ValueError as err:
            raise DataError(f"eval batch of {[s.name for s in samples]}: {err}; use batch_size=1 or a resize "
                            "for data sets whose frames differ in size") from None


def build_eval_loader(ds, batch_size: int = 1, workers: int = 0, resize: tuple[int, int] | None = None) -> DataLoader:
    """Ordered Batches of full frames of `ds` (resized to (H, W) when given; labels nearest).

    Frames of different sizes cannot share a batch: use batch_size=1 or a resize.
    """
    return DataLoader(ds, batch_size=int(batch_size), shuffle=False, num_workers=int(workers),
                      collate_fn=_EvalCollate(tuple(resize) if resize is not None else None),
                      worker_init_fn=_worker_init if workers else None)
