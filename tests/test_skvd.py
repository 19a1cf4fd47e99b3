"""sKVD (semantically aligned KID): crops, descriptors, matching and KID against hand cases and torchmetrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semguard.metrics.skvd import (
    NO_PAIRS_REASON,
    SemanticKID,
    crop_box,
    kid_unbiased,
    label_agreement,
    label_descriptor,
    semantic_kid,
)

ROAD, VEGETATION, SKY, CAR, IGNORE = 0, 8, 10, 13, 255


class Identity(nn.Module):
    """Feeds precomputed features [N,D] to torchmetrics' KID unchanged."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def mean_colour(crops: torch.Tensor) -> torch.Tensor:
    """A known extractor: per-channel mean and std of each crop, [B,3,h,w] -> [B,6]."""
    return torch.cat([crops.mean(dim=(2, 3)), crops.std(dim=(2, 3))], dim=1)


def flat_colour(crops: torch.Tensor) -> torch.Tensor:
    """Per-channel mean only, [B,3,h,w] -> [B,3] (constant-colour frames: exact features)."""
    return crops.mean(dim=(2, 3))


def _on_8bit_grid(values) -> torch.Tensor:
    """Image values the uint8 crop store keeps exactly: q / 127.5 - 1 for integer q."""
    return torch.as_tensor(values, dtype=torch.float32).div(127.5).sub(1.0)


def _constant_frames(colours, size=16) -> torch.Tensor:
    """float [B,3,size,size]: frame b filled with colour b (3 ints in 0..255)."""
    return _on_8bit_grid(colours)[:, :, None, None].expand(-1, -1, size, size).contiguous()


def _hand_labels():
    """16x16 layouts (the descriptor of a whole-frame crop is the layout itself).

    generated: g0 road over car; g1 road over (ignore | car); g2 all vegetation; g3 = g0.
    target:    t0 all road; t1 12 rows road over 4 rows car; t2 = g0 with a 4x4 road block in the car.
    """
    g0 = np.full((16, 16), ROAD, np.uint8)
    g0[8:] = CAR
    g1 = np.full((16, 16), ROAD, np.uint8)
    g1[12:, :8] = IGNORE
    g1[12:, 8:] = CAR
    g2 = np.full((16, 16), VEGETATION, np.uint8)
    t0 = np.full((16, 16), ROAD, np.uint8)
    t1 = np.full((16, 16), ROAD, np.uint8)
    t1[12:] = CAR
    t2 = g0.copy()
    t2[8:12, :4] = ROAD
    return np.stack([g0, g1, g2, g0]), np.stack([t0, t1, t2])


# agreement[g, t] by hand: valid cells are those != 255 in both (g1 has 32 ignore cells -> 224 valid)
HAND_AGREEMENT = np.array([
    [128 / 256, 192 / 256, 240 / 256],   # g0: half road; road+car rows; all but the 4x4 block
    [192 / 224, 224 / 224, 176 / 224],   # g1: its road; everything valid; road rows 0-7 + block + car
    [0.0, 0.0, 0.0],                     # g2: vegetation appears nowhere
    [128 / 256, 192 / 256, 240 / 256],   # g3 = g0
])


def test_crop_box_area_is_an_eighth_within_rounding():
    rng = np.random.default_rng(0)
    for height, width in [(32, 64), (1024, 2048), (33, 47), (720, 1280), (5, 3), (1, 1)]:
        y0, x0, crop_h, crop_w = crop_box(height, width, rng)
        assert (crop_h, crop_w) == (max(1, round(height / math.sqrt(8))), max(1, round(width / math.sqrt(8))))
        assert 0 <= y0 <= height - crop_h and 0 <= x0 <= width - crop_w
        exact_h, exact_w = height / math.sqrt(8), width / math.sqrt(8)
        if exact_h >= 1 and exact_w >= 1:  # rounding each side by <= 0.5 px bounds the area error
            assert abs(crop_h * crop_w - height * width / 8) <= 0.5 * (exact_h + exact_w) + 0.25
    assert crop_box(1024, 2048, rng)[2:] == (362, 724)  # 2048 / sqrt(8) = 724.08
    corners = np.array([crop_box(32, 64, rng)[:2] for _ in range(400)])
    assert corners[:, 0].min() == 0 and corners[:, 0].max() == 32 - 11  # every position reachable
    assert corners[:, 1].min() == 0 and corners[:, 1].max() == 64 - 23


def test_label_descriptor_is_nearest_sampling_by_hand_and_as_torch():
    label = np.arange(16, dtype=np.uint8).reshape(4, 4)
    np.testing.assert_array_equal(label_descriptor(label, grid=2), [[0, 2], [8, 10]])
    small = np.array([[1, 2, 3], [4, 5, 255]], dtype=np.uint8)  # upsampling repeats rows/cols
    np.testing.assert_array_equal(label_descriptor(small, grid=4),
                                  [[1, 1, 2, 3], [1, 1, 2, 3], [4, 4, 5, 255], [4, 4, 5, 255]])
    rng = np.random.default_rng(1)
    for height, width in [(23, 37), (128, 256), (5, 7), (16, 16)]:
        label = rng.integers(0, 19, size=(height, width)).astype(np.uint8)
        reference = F.interpolate(torch.from_numpy(label)[None, None].float(), size=(16, 16), mode="nearest")
        np.testing.assert_array_equal(label_descriptor(label), reference[0, 0].numpy().astype(np.uint8))
    assert label_descriptor(label).shape == (16, 16) and label_descriptor(label).dtype == np.uint8


def test_label_agreement_counts_only_cells_valid_in_both():
    a = np.array([[[ROAD, IGNORE], [CAR, CAR]]], dtype=np.uint8)
    b = np.array([[[ROAD, ROAD], [IGNORE, SKY]], [[IGNORE, IGNORE], [IGNORE, IGNORE]],
                  [[ROAD, ROAD], [CAR, CAR]]], dtype=np.uint8)
    # vs b0: valid in both (0,0) and (1,1) -> 1 of 2; vs all-ignore b1: no valid cell -> 0; vs b2: 3 of 3
    np.testing.assert_allclose(label_agreement(a, b), [[0.5, 0.0, 1.0]])
    generated, target = _hand_labels()
    np.testing.assert_allclose(label_agreement(generated, target), HAND_AGREEMENT, rtol=0, atol=1e-12)


def test_matching_picks_the_best_agreeing_target_and_counts_the_match_rate():
    generated_labels, target_labels = _hand_labels()
    generated = _constant_frames([[200, 10, 10], [10, 200, 10], [10, 10, 200], [150, 150, 20]])
    target = _constant_frames([[90, 90, 90], [30, 180, 40], [190, 30, 20]])
    metric = SemanticKID(area_fraction=1.0, kid_subsets=7, kid_subset_size=1000, seed=5)
    metric.update_generated(generated, torch.from_numpy(generated_labels))
    metric.update_target(target, target_labels)

    match = metric.match()
    np.testing.assert_array_equal(match.target_index, [2, 1, 0, 2])  # g2 agrees with nothing: index 0, dropped
    np.testing.assert_array_equal(match.kept, [True, True, False, True])
    np.testing.assert_allclose(match.agreement, [240 / 256, 1.0, 0.0, 240 / 256])

    result = metric.compute(flat_colour)
    assert result["pairs"] == 3 and result["generated_crops"] == 4 and result["target_crops"] == 3
    assert result["match_rate"] == pytest.approx(3 / 4)
    assert result["matched_target_crops"] == 2
    assert result["mean_agreement"] == pytest.approx((240 / 256 * 2 + 1.0) / 3)
    assert result["mean_best_agreement"] == pytest.approx((240 / 256 * 2 + 1.0) / 4)
    assert result["reason"] is None and result["num_features"] == 3
    # KID of kept generated crops vs their matches (t2 twice): 3 pairs < 1000 -> subsets of 2
    assert result["kid_subset_size"] == 2
    expected = kid_unbiased(flat_colour(generated[[0, 1, 3]]), flat_colour(target[[2, 1, 2]]),
                            subsets=7, subset_size=2, seed=5)
    assert (result["kid_mean"], result["kid_std"]) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert result["kid_std"] > 0


def _random_layout_frames(count, seed, height=32, width=64):
    """Random images in [-1,1] and labels of random 4x8-px blocks (some ignore): distinct layouts per frame."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 19, size=(count, height // 4, width // 8))
    blocks[rng.random(blocks.shape) < 0.1] = IGNORE
    labels = blocks.repeat(4, axis=1).repeat(8, axis=2).astype(np.uint8)
    images = torch.from_numpy(rng.uniform(-1, 1, size=(count, 3, height, width))).float()
    return images, labels


def test_identical_sets_give_the_unbiased_self_kid_floor():
    images, labels = _random_layout_frames(8, seed=2)
    kwargs = dict(kid_subsets=1, kid_subset_size=8, seed=4)  # one subset of all 8 pairs: exact
    result = semantic_kid(images, labels, images, labels, mean_colour, **kwargs)
    assert result["pairs"] == 8 and result["match_rate"] == 1.0 and result["mean_agreement"] == 1.0
    assert result["matched_target_crops"] == 8  # every crop found itself
    # the same seed crops identical frames identically; for X = Y the unbiased estimator is exactly
    # -(2/n) (mean_i k(x_i,x_i) - mean_{i!=j} k(x_i,x_j)): O(1/n), not 0
    rng = np.random.default_rng(4)
    crops = []
    for frame in images:
        y0, x0, crop_h, crop_w = crop_box(32, 64, rng)
        crops.append(frame[:, y0:y0 + crop_h, x0:x0 + crop_w].add(1).mul(127.5).round().div(127.5).sub(1))
    x = mean_colour(torch.stack(crops)).double()
    kernel = (x @ x.T / x.shape[1] + 1) ** 3
    n = x.shape[0]
    diagonal, off_diagonal = kernel.diagonal().mean(), (kernel.sum() - kernel.diagonal().sum()) / (n * (n - 1))
    floor = float(-2.0 / n * (diagonal - off_diagonal))
    assert result["kid_mean"] == pytest.approx(floor, rel=1e-6, abs=1e-12)
    assert result["kid_std"] == 0.0
    # and far below a brightened translation of the same layouts
    brighter = semantic_kid((images + 0.6).clamp(-1, 1), labels, images, labels, mean_colour, **kwargs)
    assert brighter["pairs"] == 8
    assert abs(result["kid_mean"]) < 0.05 * brighter["kid_mean"]


def test_no_pair_above_threshold_is_reported_not_nan():
    calls = []

    def counting(crops):
        calls.append(crops.shape[0])
        return flat_colour(crops)

    road = np.full((2, 32, 64), ROAD, np.uint8)
    sky = np.full((3, 32, 64), SKY, np.uint8)
    result = semantic_kid(torch.zeros(2, 3, 32, 64), road, torch.zeros(3, 3, 32, 64), sky, counting)
    assert result["kid_mean"] is None and result["kid_std"] is None and result["pairs"] == 0
    assert result["reason"] == NO_PAIRS_REASON.format(threshold=0.5) and "50%" in result["reason"]
    assert result["match_rate"] == 0.0 and result["mean_agreement"] is None
    assert all(math.isfinite(value) for value in result.values() if isinstance(value, float))
    assert calls == []  # no features extracted for nothing
    # agreement exactly at the threshold is not above it
    generated_labels, target_labels = _hand_labels()
    exactly_half = semantic_kid(_constant_frames([[1, 2, 3]]), generated_labels[:1], _constant_frames([[1, 2, 3]]),
                                target_labels[:1], counting, area_fraction=1.0)
    assert exactly_half["pairs"] == 0 and exactly_half["mean_best_agreement"] == 0.5
    # one pair: no KID either, and the reason says why
    single = semantic_kid(torch.zeros(1, 3, 32, 64), road[:1], torch.zeros(1, 3, 32, 64), road[:1], counting)
    assert single["pairs"] == 1 and single["kid_mean"] is None and "at least 2" in single["reason"]


def test_kid_unbiased_matches_a_hand_value():
    # d = 1: k(a,b) = (ab + 1)^3; K_xx off-diag 1+1, K_yy off-diag 27+27, K_xy 1+1+8+27
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    assert kid_unbiased(x, y, subsets=3, subset_size=2) == pytest.approx((2 / 2 + 54 / 2 - 2 * 37 / 4, 0.0))


def test_kid_unbiased_matches_torchmetrics_on_random_features():
    from torchmetrics.image.kid import KernelInceptionDistance  # the import is most of this test's time

    generator = torch.Generator().manual_seed(0)
    real = torch.randn(30, 6, generator=generator, dtype=torch.float64)
    fake = torch.randn(30, 6, generator=generator, dtype=torch.float64) * 1.3 + 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = KernelInceptionDistance(feature=Identity(), subsets=3, subset_size=30)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    reference_mean, _ = (float(v) for v in reference.compute())
    mean, std = kid_unbiased(fake, real, subsets=3, subset_size=30, seed=0)
    assert mean == pytest.approx(reference_mean, rel=1e-9) and mean > 0 and std == 0.0
    # proper subsets: seeded, spread over subsets
    assert kid_unbiased(fake, real, 10, 12, seed=1) == kid_unbiased(fake, real, 10, 12, seed=1)
    assert kid_unbiased(fake, real, 10, 12, seed=1) != kid_unbiased(fake, real, 10, 12, seed=2)
    assert kid_unbiased(fake, real, 10, 12, seed=1)[1] > 0
    with pytest.raises(ValueError, match="subset_size"):
        kid_unbiased(fake, real, subsets=2, subset_size=31)


def test_crops_and_result_are_deterministic_and_batch_size_independent():
    rng_a, rng_b, rng_c = (np.random.default_rng(seed) for seed in (3, 3, 4))
    boxes_a = [crop_box(48, 80, rng_a) for _ in range(10)]
    assert boxes_a == [crop_box(48, 80, rng_b) for _ in range(10)]
    assert boxes_a != [crop_box(48, 80, rng_c) for _ in range(10)]

    generated, generated_labels = _random_layout_frames(6, seed=7)
    target, target_labels = generated.flip(1), generated_labels  # same layouts, other colours
    kwargs = dict(kid_subsets=5, kid_subset_size=4, seed=3)
    whole = SemanticKID(**kwargs)
    whole.update_generated(generated, generated_labels)
    whole.update_target(target, target_labels)
    piecewise = SemanticKID(**kwargs)
    for frame in range(6):  # one frame at a time, sides interleaved
        piecewise.update_target(target[frame:frame + 1], target_labels[frame:frame + 1])
        piecewise.update_generated(generated[frame:frame + 1], generated_labels[frame:frame + 1])
    first = whole.compute(mean_colour)
    assert first == piecewise.compute(mean_colour, batch_size=2) == whole.compute(mean_colour)
    assert first["pairs"] == 6 and first["kid_subset_size"] == 4
    whole.reset()
    whole.update_generated(generated, generated_labels)
    whole.update_target(target, target_labels)
    assert whole.compute(mean_colour) == first
    other_seed = semantic_kid(generated, generated_labels, target, target_labels, mean_colour,
                              **{**kwargs, "seed": 11})
    assert other_seed["kid_mean"] != first["kid_mean"]


def test_shapes_and_values_are_checked_with_the_tensor_named():
    metric = SemanticKID()
    labels = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="generated images must be a float tensor"):
        metric.update_generated(torch.zeros(2, 1, 8, 8), labels)
    with pytest.raises(ValueError, match="target labels must be int"):
        metric.update_target(torch.zeros(2, 3, 8, 8), labels[:, :4])
    with pytest.raises(ValueError, match="generated labels must be an integer label map"):
        metric.update_generated(torch.zeros(2, 3, 8, 8), labels.astype(np.float32))
    with pytest.raises(ValueError, match="target labels must hold train ids"):
        metric.update_target(torch.zeros(2, 3, 8, 8), labels + 19)
    with pytest.raises(ValueError, match=r"generated images must be in \[-1,1\]"):
        metric.update_generated(torch.full((2, 3, 8, 8), 255.0), labels)
    metric.update_generated(torch.zeros(2, 3, 8, 8), labels)
    with pytest.raises(ValueError, match="update_target"):
        metric.compute(flat_colour)
    metric.update_target(torch.zeros(2, 3, 8, 8), torch.from_numpy(labels).long())
    with pytest.raises(ValueError, match=r"features\(crops\) must return float \[B,D\]"):
        metric.compute(lambda crops: crops.mean(dim=(1, 2, 3)))
