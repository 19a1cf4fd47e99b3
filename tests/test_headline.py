"""The flip report's headline: excess over the floor, reliable classes, bootstrap intervals;
the judge's own split of the toy world; FID only where the sample count allows it."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from semguard.metrics.fid import ImageDistance
from semguard.metrics.flip import flip_rates
from semguard.metrics.headline import headline_figures, select_reliable

NAN = float("nan")


def _counts(per_frame: list[dict[int, tuple[int, int]]], classes: int = 19) -> np.ndarray:
    counts = np.zeros((len(per_frame), classes, 2), dtype=np.int64)
    for index, frame in enumerate(per_frame):
        for class_id, (pixels, flipped) in frame.items():
            counts[index, class_id] = (pixels, flipped)
    return counts


def test_reliable_classes_follow_the_floor_and_iou_rules():
    present = torch.zeros(19, dtype=torch.bool)
    present[[0, 2, 5, 10, 11]] = True
    iou = torch.full((19,), NAN, dtype=torch.float64)
    iou[[0, 2, 5, 10]] = torch.tensor([0.9, 0.8, 0.3, 0.95], dtype=torch.float64)   # person absent from target val
    floor = torch.full((19,), NAN, dtype=torch.float64)
    floor[[0, 2, 5, 10, 11]] = torch.tensor([0.02, 0.40, 0.10, 0.15, 0.05], dtype=torch.float64)
    reliability = select_reliable(present, iou, floor)
    assert reliability.reliable == (0, 10)              # 0.15 is at the threshold: kept
    assert set(reliability.unreliable) == {2, 5, 11}
    assert "floor 0.40 > 0.15" in reliability.unreliable[2]
    assert "judge IoU 0.30 < 0.50" in reliability.unreliable[5]
    assert "absent from the target validation set" in reliability.unreliable[11]
    without_floor = select_reliable(present, iou, None)
    assert without_floor.reliable == (0, 2, 10) and not without_floor.floor_known


def test_excess_and_reliable_mean_against_a_hand_made_confusion():
    # two frames, classes road (0), building (2), sky (10)
    translated = _counts([{0: (100, 10), 2: (50, 25), 10: (50, 20)}, {0: (100, 30), 10: (50, 0)}])
    floor = _counts([{0: (100, 2), 2: (50, 20), 10: (50, 1)}, {0: (100, 4), 10: (50, 1)}])
    present = torch.zeros(19, dtype=torch.bool)
    present[[0, 2, 10]] = True
    iou = torch.full((19,), 0.9, dtype=torch.float64)
    floor_rates = torch.full((19,), NAN, dtype=torch.float64)
    floor_rates[[0, 2, 10]] = torch.tensor([6 / 200, 20 / 50, 2 / 100], dtype=torch.float64)
    reliability = select_reliable(present, iou, floor_rates)
    assert reliability.reliable == (0, 10)              # building's floor 0.40 is too high
    result = headline_figures(translated, reliability, floor, resamples=200, seed=1)
    pixel = (10 + 25 + 20 + 30 + 0) / 350
    floor_pixel = (2 + 20 + 1 + 4 + 1) / 350
    assert result["pixel_flip_rate"]["value"] == pytest.approx(pixel)
    assert result["excess_pixel_flip_rate"]["value"] == pytest.approx(pixel - floor_pixel)
    reliable_mean = (40 / 200 + 20 / 100) / 2
    floor_reliable = (6 / 200 + 2 / 100) / 2
    assert result["reliable_mean_flip_rate"]["value"] == pytest.approx(reliable_mean)
    assert result["excess_reliable_mean_flip_rate"]["value"] == pytest.approx(reliable_mean - floor_reliable)
    low, high = result["pixel_flip_rate"]["ci"]
    assert low <= pixel <= high and low < high
    assert result["image_count"] == 2 and result["bootstrap"]["resamples"] == 200


def test_bootstrap_interval_is_exact_for_identical_frames_and_paired_for_the_excess():
    frames = _counts([{0: (40, 8), 10: (60, 6)}] * 12)
    reliability = select_reliable(torch.tensor([True] + [False] * 9 + [True] + [False] * 8),
                                  torch.full((19,), 0.9, dtype=torch.float64), None)
    result = headline_figures(frames, reliability, frames.copy(), resamples=100)
    assert result["pixel_flip_rate"]["ci"] == pytest.approx([0.14, 0.14])
    # a variant equal to its floor frame by frame: excess exactly 0 in every resample
    assert result["excess_pixel_flip_rate"] == {"value": 0.0, "ci": [0.0, 0.0]}


def test_headline_from_flip_rate_per_image_counts():
    label = torch.zeros(3, 4, 4, dtype=torch.long)
    label[:, :2] = 10
    label[0, 0, 0] = 255
    prediction = label.clone().clamp(max=18)
    prediction[1, :2] = 8                                  # frame 1: its 8 sky pixels read as vegetation
    result = flip_rates(label, prediction)
    counts = result.image_class_counts.numpy()
    assert counts.shape == (3, 19, 2)
    assert counts[:, 10].tolist() == [[7, 0], [8, 8], [8, 0]] and counts[:, 0].tolist() == [[8, 0]] * 3
    assert counts.sum(0)[:, 0].tolist() == result.confusion.sum(1).tolist()
    present = result.present
    reliability = select_reliable(present, torch.full((19,), 0.9, dtype=torch.float64), None)
    headline = headline_figures(counts, reliability, resamples=0)
    assert headline["pixel_flip_rate"]["value"] == pytest.approx(result.pixel_flip_rate)
    assert headline["pixel_flip_rate"]["ci"] is None and headline["excess_pixel_flip_rate"] is None


def test_counts_of_another_frame_count_are_refused():
    reliability = select_reliable(torch.ones(19, dtype=torch.bool), torch.ones(19, dtype=torch.float64), None)
    with pytest.raises(ValueError, match="same frames"):
        headline_figures(np.zeros((3, 19, 2)), reliability, np.zeros((2, 19, 2)))


def test_fid_only_where_the_sample_count_exceeds_the_feature_dimension():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(40, 8, generator=generator)
    few = ImageDistance("judge", kid_subsets=10, kid_subset_size=20)
    few.update_features(features[:8], real=True)
    few.update_features(features[8:16], real=False)
    result = few.compute()
    assert result["fid_judge"] is None and "more images than feature dimensions (8)" in result["fid_unavailable"]
    assert math.isfinite(result["kid_judge_mean"])
    same = ImageDistance("judge", kid_subsets=10, kid_subset_size=20)
    same.update_features(features, real=True)
    same.update_features(features, real=False)
    result = same.compute()
    assert result["fid_unavailable"] is None and abs(result["fid_judge"]) < 1e-4   # a set against itself


def _tree_hashes(root) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in root.glob("images/*.png")}


def test_toy_judge_split_shares_no_frame_with_any_other_split(tmp_path):
    from semguard.data.folder import FolderDataset, read_dataset_info
    from semguard.data.toyworld import make_toy_world, render_sample
    from semguard.data.toyworld.world import JUDGE_INDEX_BASE

    make_toy_world(tmp_path, train=3, val=2, size=(32, 64), seed=4, judge=3)
    judge = FolderDataset(tmp_path / "judge" / "train")
    assert sorted(judge.names) == [f"{kind}_{i:06d}" for kind in ("paired", "real") for i in range(3)]
    info = read_dataset_info(tmp_path / "judge" / "train")
    assert info["index_base"] == JUDGE_INDEX_BASE and info["layout"] == "real+sim" and info["style"] == "real"
    judge_images = set(_tree_hashes(tmp_path / "judge" / "train").values())
    for folder in ("sim/train", "sim/val", "real/train", "real/val", "paired/train", "paired/val"):
        assert not judge_images & set(_tree_hashes(tmp_path / folder).values()), folder
    # paired/train: the sim/train layouts in the real style, same names and labels
    paired = FolderDataset(tmp_path / "paired" / "train")
    sim = FolderDataset(tmp_path / "sim" / "train")
    assert paired.names == sim.names
    assert np.array_equal(paired[1].label, sim[1].label) and not np.array_equal(paired[1].image, sim[1].image)
    # judge frames are the renderer's frames at the judge's index base
    expected = render_sample(4, JUDGE_INDEX_BASE + 2, "sim", "real", (32, 64))
    assert np.array_equal(judge[judge.names.index("paired_000002")].image, expected.image)
