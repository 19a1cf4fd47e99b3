"""Semantically aligned KID (sKVD): realism of translated crops against target crops of the same layout.

FID and KID against the target set compare whole-image feature distributions, so a
translator is rewarded for painting the *target's* layout (Cityscapes' sky and road
where the simulator had buildings) -- exactly the semantic flipping semguard exists to
prevent. sKVD ("Enhancing Photorealism Enhancement", Richter et al.; FeaMGAN's
SkvdMetric) compares only crops whose label layouts agree, so a translation can score
well only by looking real *for the layout it was given*:

1. Per frame, one crop of `area_fraction` (1/8) of the frame, same aspect ratio as the
   frame: side = round(frame side * sqrt(area_fraction)), at least 1 px; its position is
   drawn uniformly from a numpy Generator seeded with `seed` (`crop_box`).
2. A crop's descriptor is its label map (train ids 0..18, 255 = ignore) resized to
   grid x grid (16 x 16) cells by nearest-neighbour sampling: cell (i, j) takes the label
   at row floor(i * h / grid), column floor(j * w / grid) (`label_descriptor`; the same
   samples as torch's `interpolate(mode="nearest")`).
3. Agreement of two descriptors a, b = share of equal labels among the cells where
   *neither* is 255:  agree(a, b) = #{c : a_c = b_c, a_c != 255, b_c != 255} / #{c : a_c != 255, b_c != 255},
   and 0 when no cell is valid in both (`label_agreement`). Each generated crop is matched
   to the target crop of highest agreement (the lowest target index on ties); the pair is
   kept when that agreement is > `threshold` (0.5).
4. sKVD = KID between the features of the kept generated crops and the features of their
   matched target crops (a target crop matched by several generated crops appears once per
   match): the unbiased squared MMD with the cubic kernel k(x, y) = (x.y / D + 1)^3,
   averaged over random subsets (`kid_unbiased`). With fewer pairs than
   `kid_subset_size` the subsets hold half the pairs (at least 2), as `ImageDistance` does,
   so the spread over subsets stays meaningful.

Differences from FeaMGAN's SkvdMetric, on purpose:
- FeaMGAN cuts a *square* crop of side ~floor(sqrt(H*W/8)) (made even); here the crop keeps
  the frame's aspect ratio, as our protocol says. Both are 1/8 of the area up to rounding.
- FeaMGAN counts 255 == 255 cells as agreeing (two all-ignore crops match at 100%); here
  ignore cells do not vote. Caveat of this choice: a pair with few cells valid in both is
  judged on those few cells; the mean agreement over kept pairs is reported to watch it.
- FeaMGAN uses one subset of the whole set (its numbers: `kid_subsets=1,
  kid_subset_size=<pairs>`); the defaults here (100 subsets of 1000 or half the pairs)
  follow the project's KID.

When no pair clears the threshold (or fewer than 2 do) the result says so in "reason" and
carries `kid_mean = kid_std = None`: never NaN, never an exception.

`SemanticKID` stores crops and descriptors in `update_*` and matches / extracts features in
`compute`; `semantic_kid` is its one-shot twin. Crops are stored as uint8 (the 8-bit image
they came from: round((x + 1) * 127.5), as `InceptionFeatures` quantises anyway), a
quarter of float32's memory, and turned back into float [-1,1] for the feature extractor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from semguard.labels import IGNORE_ID, NUM_CLASSES

NO_PAIRS_REASON = "no crop pairs above the {threshold:.0%} label agreement threshold"
TOO_FEW_PAIRS_REASON = "only 1 crop pair above the {threshold:.0%} label agreement threshold; KID needs at least 2"
_AGREEMENT_CHUNK = 1024  # generated descriptors per agreement matmul: bounds memory to chunk x targets


def crop_box(height: int, width: int, rng: np.random.Generator,
             area_fraction: float = 1.0 / 8.0) -> tuple[int, int, int, int]:
    """One crop of `area_fraction` of a height x width frame, with the frame's aspect ratio.

    crop_h = clip(round(height * sqrt(area_fraction)), 1, height), crop_w likewise; the top-left
    corner is uniform over all positions that keep the crop inside the frame, drawn from `rng`
    (row first, then column). Returns (y0, x0, crop_h, crop_w).
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame must be at least 1x1, got {height}x{width}")
    if not 0.0 < area_fraction <= 1.0:
        raise ValueError(f"area_fraction must be in (0, 1], got {area_fraction}")
    scale = math.sqrt(area_fraction)
    crop_h = min(height, max(1, round(height * scale)))
    crop_w = min(width, max(1, round(width * scale)))
    y0 = int(rng.integers(0, height - crop_h + 1))
    x0 = int(rng.integers(0, width - crop_w + 1))
    return y0, x0, crop_h, crop_w


def label_descriptor(label: np.ndarray, grid: int = 16) -> np.ndarray:
    """A crop's label map int [h,w] (train ids, 255 = ignore) resized to uint8 [grid,grid] by nearest sampling.

    Cell (i, j) = label[floor(i * h / grid), floor(j * w / grid)] (integer arithmetic, the samples
    torch's interpolate(mode="nearest") takes); crops smaller than the grid are repeated.
    """
    label = np.asarray(label)
    if label.ndim != 2 or label.shape[0] < 1 or label.shape[1] < 1:
        raise ValueError(f"label must be a non-empty int [h,w] label map, got shape {label.shape}")
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    rows = np.arange(grid) * label.shape[0] // grid
    cols = np.arange(grid) * label.shape[1] // grid
    return label[np.ix_(rows, cols)].astype(np.uint8)


def label_agreement(generated: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Agreement float64 [G,T] in [0,1] of descriptors generated uint8 [G,g,g] and target uint8 [T,g,g].

    agreement[i, j] = #{cells equal and != 255 in both} / #{cells != 255 in both}, 0 where no cell
    is valid in both. Counts come from one-hot matmuls (exact integers in float32).
    """
    generated, target = np.asarray(generated), np.asarray(target)
    if generated.ndim != 3 or target.ndim != 3 or generated.shape[1:] != target.shape[1:]:
        raise ValueError(f"descriptors must be [G,g,g] and [T,g,g] with the same grid, "
                         f"got generated {generated.shape} and target {target.shape}")
    target_onehot, target_valid = _onehot(target)
    agreement = np.empty((generated.shape[0], target.shape[0]), dtype=np.float64)
    for start in range(0, generated.shape[0], _AGREEMENT_CHUNK):
        chunk_onehot, chunk_valid = _onehot(generated[start:start + _AGREEMENT_CHUNK])
        equal = (chunk_onehot @ target_onehot.T).astype(np.float64)
        valid = (chunk_valid @ target_valid.T).astype(np.float64)
        agreement[start:start + len(chunk_onehot)] = np.divide(equal, valid, out=np.zeros_like(equal),
                                                               where=valid > 0)
    return agreement


def _onehot(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N,g,g] -> (float32 [N, g*g*K] one-hot with ignore cells all zero, float32 [N, g*g] valid cells)."""
    flat = descriptors.reshape(descriptors.shape[0], -1).astype(np.int64)
    valid = flat != IGNORE_ID
    onehot = np.zeros((flat.shape[0], flat.shape[1], NUM_CLASSES), dtype=np.float32)
    rows, cells = np.nonzero(valid)
    onehot[rows, cells, flat[rows, cells]] = 1.0
    return onehot.reshape(flat.shape[0], -1), valid.astype(np.float32)


@dataclass(frozen=True)
class CropMatch:
    """Best target crop of each generated crop.

    target_index: int64 [G], the best-agreeing target crop (lowest index on ties);
    agreement: float64 [G] in [0,1], its agreement; kept: bool [G], agreement > threshold.
    """

    target_index: np.ndarray
    agreement: np.ndarray
    kept: np.ndarray

    @property
    def pairs(self) -> int:
        return int(self.kept.sum())


def match_crops(generated: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> CropMatch:
    """Match descriptors generated [G,g,g] to target [T,g,g] (T >= 1): argmax agreement, kept when > threshold."""
    agreement = label_agreement(generated, target)
    target_index = agreement.argmax(axis=1)
    best = agreement[np.arange(agreement.shape[0]), target_index]
    return CropMatch(target_index=target_index.astype(np.int64), agreement=best, kept=best > threshold)


def _cubic_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid_unbiased(x: torch.Tensor, y: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """KID of features x [N,D] and y [M,D]: mean and (population) std over `subsets` random subsets.

    Each subset draws `subset_size` rows of x and, independently, of y without replacement
    (numpy Generator seeded with `seed`) and takes the unbiased squared MMD with
    k(a, b) = (a.b / D + 1)^3, in float64:

        MMD^2_u = sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2

    (m = subset_size; torchmetrics' KernelInceptionDistance computes the same). The kernel
    matrices of the whole sets are computed once (8 * (N^2 + M^2 + N*M) bytes) and each subset
    indexes them. With subset_size = N = M every subset is the whole set and std = 0.
    Needs 2 <= subset_size <= min(N, M).
    """
    for name, features in (("x", x), ("y", y)):
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            raise ValueError(f"{name} must be a float tensor [N,D], got "
                             f"{tuple(features.shape) if hasattr(features, 'shape') else type(features).__name__}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same feature width, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if not 2 <= subset_size <= min(x.shape[0], y.shape[0]):
        raise ValueError(f"subset_size must be in [2, min(N, M)] = [2, {min(x.shape[0], y.shape[0])}], "
                         f"got {subset_size} (x {tuple(x.shape)}, y {tuple(y.shape)})")
    x, y = x.detach().double().cpu(), y.detach().double().cpu()
    k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
    rng = np.random.default_rng(seed)
    m = subset_size
    scores = np.empty(subsets, dtype=np.float64)
    for s in range(subsets):
        ix = torch.from_numpy(rng.choice(x.shape[0], size=m, replace=False))
        iy = torch.from_numpy(rng.choice(y.shape[0], size=m, replace=False))
        sub_xx, sub_yy, sub_xy = k_xx[ix][:, ix], k_yy[iy][:, iy], k_xy[ix][:, iy]
        within = (sub_xx.sum() - sub_xx.diagonal().sum() + sub_yy.sum() - sub_yy.diagonal().sum()) / (m * (m - 1))
        scores[s] = float(within - 2.0 * sub_xy.sum() / (m * m))
    return float(scores.mean()), float(scores.std())


def effective_subset_size(pairs: int, kid_subset_size: int) -> int:
    """kid_subset_size, or half the pairs (at least 2) when there are fewer pairs than that."""
    return kid_subset_size if pairs >= kid_subset_size else max(2, pairs // 2)


def _quantise(images: torch.Tensor) -> torch.Tensor:
    return images.detach().float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8).cpu()


def _dequantise(crops: torch.Tensor) -> torch.Tensor:
    return crops.float().div(127.5).sub(1.0)


class SemanticKID:
    """sKVD between generated (translated) frames and target-domain frames; see the module header.

    Single-process: a plain accumulator, not a torchmetrics Metric (its state is not summed across
    processes); `semguard eval` runs in one process, so every figure sees every frame.

    threshold: a pair is kept when its label agreement is > threshold (in [0,1));
    grid: descriptor cells per side; area_fraction: crop area / frame area;
    seed: seeds the crop positions (one numpy Generator per side, both seeded with `seed`, so
    frames given in the same order get the same crops whatever the batching, and identical
    generated and target frames get identical crops) and the KID subsets;
    kid_subsets / kid_subset_size: KID's random subsets (see `effective_subset_size`).
    """

    def __init__(self, threshold: float = 0.5, grid: int = 16, area_fraction: float = 1.0 / 8.0, seed: int = 0,
                 kid_subsets: int = 100, kid_subset_size: int = 1000):
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        if not 0.0 < area_fraction <= 1.0:
            raise ValueError(f"area_fraction must be in (0, 1], got {area_fraction}")
        if kid_subsets < 1 or kid_subset_size < 2:
            raise ValueError(f"kid_subsets must be >= 1 and kid_subset_size >= 2, "
                             f"got {kid_subsets} and {kid_subset_size}")
        self.threshold = float(threshold)
        self.grid = int(grid)
        self.area_fraction = float(area_fraction)
        self.seed = int(seed)
        self.kid_subsets = int(kid_subsets)
        self.kid_subset_size = int(kid_subset_size)
        self.reset()

    def reset(self) -> None:
        """Forget all crops and restart the crop positions' random streams from `seed`."""
        self._crops: dict[str, list[torch.Tensor]] = {"generated": [], "target": []}
        self._descriptors: dict[str, list[np.ndarray]] = {"generated": [], "target": []}
        self._rngs = {side: np.random.default_rng(self.seed) for side in ("generated", "target")}

    @property
    def generated_count(self) -> int:
        return len(self._crops["generated"])

    @property
    def target_count(self) -> int:
        return len(self._crops["target"])

    def update_generated(self, images: torch.Tensor, labels) -> None:
        """Translated frames. images: float [B,3,H,W] in [-1,1]; labels: int [B,H,W] (tensor or array),
        train ids 0..18 with 255 = ignore: the layout the frames were translated from."""
        self._update("generated", images, labels)

    def update_target(self, images: torch.Tensor, labels) -> None:
        """Target-domain (real) frames. images: float [B,3,H,W] in [-1,1]; labels: int [B,H,W], 255 = ignore."""
        self._update("target", images, labels)

    def _update(self, side: str, images: torch.Tensor, labels) -> None:
        image_name, label_name = f"{side} images", f"{side} labels"
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
            raise ValueError(f"{image_name} must be a float tensor [B,3,H,W] in [-1,1], got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"{image_name} must be floating point in [-1,1], got {images.dtype}")
        label_map = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        batch, _, height, width = images.shape
        if label_map.shape != (batch, height, width):
            raise ValueError(f"{label_name} must be int [B,H,W] = {[batch, height, width]} to match {image_name} "
                             f"{tuple(images.shape)}, got {tuple(label_map.shape)}")
        if not np.issubdtype(label_map.dtype, np.integer):
            raise ValueError(f"{label_name} must be an integer label map (train ids, 255 = ignore), "
                             f"got {label_map.dtype}")
        if batch == 0:
            return
        low, high = float(images.min()), float(images.max())
        if low < -1.001 or high > 1.001:
            raise ValueError(f"{image_name} must be in [-1,1], got values in [{low:.3g}, {high:.3g}]")
        bad = ~(((label_map >= 0) & (label_map < NUM_CLASSES)) | (label_map == IGNORE_ID))
        if bad.any():
            raise ValueError(f"{label_name} must hold train ids 0..{NUM_CLASSES - 1} or {IGNORE_ID} (ignore), "
                             f"found {sorted(set(np.unique(label_map[bad]).tolist()))[:5]}")
        rng = self._rngs[side]
        for frame in range(batch):
            y0, x0, crop_h, crop_w = crop_box(height, width, rng, self.area_fraction)
            self._crops[side].append(_quantise(images[frame, :, y0:y0 + crop_h, x0:x0 + crop_w]))
            self._descriptors[side].append(label_descriptor(label_map[frame, y0:y0 + crop_h, x0:x0 + crop_w],
                                                            self.grid))

    def match(self) -> CropMatch:
        """Each generated crop's best target crop so far (needs at least one crop on each side)."""
        for side, method in (("generated", "update_generated"), ("target", "update_target")):
            if not self._crops[side]:
                raise ValueError(f"no {side} frames were given to SemanticKID (call {method} first)")
        return match_crops(np.stack(self._descriptors["generated"]), np.stack(self._descriptors["target"]),
                           self.threshold)

    @torch.no_grad()
    def compute(self, features: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 32,
                device: torch.device | str | None = None) -> dict:
        """Match the crops, extract features of the matched ones and take their KID.

        features: crops float [b,3,h,w] in [-1,1] -> float [b,D] (e.g. `JudgeFeatures`); crops of one
        size go through it together, `batch_size` at a time, on `device` (default: the device of
        `features`' first parameter when it is an nn.Module with parameters, else CPU). Only the kept
        generated crops and the target crops they matched are passed through it.

        Returns {"kid_mean", "kid_std": float or None, "pairs", "generated_crops", "target_crops",
        "matched_target_crops": distinct target crops used, "match_rate": pairs / generated_crops,
        "mean_agreement": over kept pairs (None without pairs), "mean_best_agreement": over all
        generated crops, "num_features", "reason": None or why no KID, and the protocol: "threshold",
        "grid", "area_fraction", "seed", "kid_subsets", "kid_subset_size" (the size used, or None)}.
        """
        crop_match = self.match()
        pairs = crop_match.pairs
        generated_index = np.flatnonzero(crop_match.kept)
        matched_target_index = crop_match.target_index[generated_index]
        result = {
            "kid_mean": None,
            "kid_std": None,
            "pairs": pairs,
            "generated_crops": self.generated_count,
            "target_crops": self.target_count,
            "matched_target_crops": int(np.unique(matched_target_index).size),
            "match_rate": pairs / self.generated_count,
            "mean_agreement": float(crop_match.agreement[generated_index].mean()) if pairs else None,
            "mean_best_agreement": float(crop_match.agreement.mean()),
            "num_features": None,
            "reason": None,
            "threshold": self.threshold,
            "grid": self.grid,
            "area_fraction": self.area_fraction,
            "seed": self.seed,
            "kid_subsets": self.kid_subsets,
            "kid_subset_size": None,
        }
        if pairs < 2:
            template = NO_PAIRS_REASON if pairs == 0 else TOO_FEW_PAIRS_REASON
            result["reason"] = template.format(threshold=self.threshold)
            return result
        if device is None:
            first = next(features.parameters(), None) if isinstance(features, nn.Module) else None
            device = first.device if first is not None else torch.device("cpu")
        distinct_targets, target_position = np.unique(matched_target_index, return_inverse=True)
        generated_features = self._features("generated", generated_index, features, batch_size, device)
        target_features = self._features("target", distinct_targets, features, batch_size, device)
        target_features = target_features[torch.from_numpy(target_position.reshape(-1))]
        if generated_features.shape[1] != target_features.shape[1]:
            raise ValueError(f"features(crops) changed width: {generated_features.shape[1]} for generated crops, "
                             f"{target_features.shape[1]} for target crops")
        subset_size = effective_subset_size(pairs, self.kid_subset_size)
        kid_mean, kid_std = kid_unbiased(generated_features, target_features, self.kid_subsets, subset_size, self.seed)
        result.update(kid_mean=kid_mean, kid_std=kid_std, num_features=int(generated_features.shape[1]),
                      kid_subset_size=subset_size)
        return result

    def _features(self, side: str, indices: np.ndarray, features: Callable, batch_size: int,
                  device: torch.device | str) -> torch.Tensor:
        """float64 [len(indices), D] on CPU: features of the stored crops `indices` of `side`, in that order."""
        crops = [self._crops[side][i] for i in indices]
        by_size: dict[tuple[int, int], list[int]] = {}
        for position, crop in enumerate(crops):
            by_size.setdefault(tuple(crop.shape[1:]), []).append(position)
        rows: list[torch.Tensor | None] = [None] * len(crops)
        for positions in by_size.values():
            for start in range(0, len(positions), batch_size):
                chunk = positions[start:start + batch_size]
                batch = _dequantise(torch.stack([crops[p] for p in chunk])).to(device)
                output = features(batch)
                if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != len(chunk):
                    shape = tuple(output.shape) if hasattr(output, "shape") else type(output).__name__
                    raise ValueError(f"features(crops) must return float [B,D] with B = {len(chunk)} for crops "
                                     f"{tuple(batch.shape)}, got {shape}")
                output = output.detach().double().cpu()
                for row, p in enumerate(chunk):
                    rows[p] = output[row]
        return torch.stack(rows)


def semantic_kid(generated_images: torch.Tensor, generated_labels, target_images: torch.Tensor, target_labels,
                 features: Callable[[torch.Tensor], torch.Tensor], *, threshold: float = 0.5, grid: int = 16,
                 area_fraction: float = 1.0 / 8.0, seed: int = 0, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, batch_size: int = 32,
                 device: torch.device | str | None = None) -> dict:
    """One-shot `SemanticKID`: images float [B,3,H,W] in [-1,1], labels int [B,H,W] (255 = ignore) per side;
    returns `SemanticKID.compute`'s dict."""
    metric = SemanticKID(threshold=threshold, grid=grid, area_fraction=area_fraction, seed=seed,
                         kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    metric.update_generated(generated_images, generated_labels)
    metric.update_target(target_images, target_labels)
    return metric.compute(features, batch_size=batch_size, device=device)
