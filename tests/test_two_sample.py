"""The classifier two-sample test: chance on one distribution, near 1 on two, paired split, bootstrap."""

import numpy as np
import pytest
import torch

from semguard.data.folder import write_sample
from semguard.data.sample import Sample
from semguard.data.toyworld.world import VAL_INDEX_BASE, render_real_redraw, render_sample
from semguard.metrics.two_sample import (
    TextureCritic, as_image_tensor, bootstrap_interval, paired_split, two_sample_accuracy, two_sample_report,
)

SIZE = (32, 64)
FAST = {"steps": 150, "crop": 24}


def texture_frames(count: int, seed: int, noise: float = 0.12, cast=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """float [count,3,32,64] in [-1,1]: a smooth random field per channel, pixel noise of std
    `noise`, plus a colour cast; one generator, so two seeds are two samples of one distribution."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.standard_normal((count, 3, 5, 9)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=SIZE, mode="bilinear", align_corners=False)
    grain = torch.from_numpy(rng.standard_normal((count, 3, *SIZE)).astype(np.float32))
    image = 0.35 * smooth + noise * grain + torch.tensor(cast).view(1, 3, 1, 1)
    return image.clamp(-1, 1)


def test_critic_is_small_and_reads_any_size():
    critic = TextureCritic()
    assert 20_000 <= sum(p.numel() for p in critic.parameters()) <= 50_000
    assert critic(torch.zeros(2, 3, 24, 24)).shape == (2,)
    assert critic(torch.zeros(3, 3, 64, 128)).shape == (3,)


def test_one_distribution_scores_about_half():
    result = two_sample_accuracy(texture_frames(48, seed=1), texture_frames(48, seed=2), seed=0, **FAST)
    assert 0.3 <= result["accuracy"] <= 0.7 or result["interval"][0] <= 0.5 <= result["interval"][1]
    assert result["n_train"] == result["n_test"] == 48 and result["steps"] == 150
    assert "0.5 = indistinguishable" in result["meaning"]


@pytest.mark.parametrize("other", [
    {"noise": 0.0},                         # smooth against noisy: texture alone
    {"cast": (0.15, 0.0, -0.15)},           # a colour cast
])
def test_different_distributions_score_near_one(other):
    result = two_sample_accuracy(texture_frames(48, seed=1), texture_frames(48, seed=2, **other), seed=0, **FAST)
    assert result["accuracy"] >= 0.9
    assert result["interval"][0] >= 0.8


def test_deterministic_for_a_seed_and_leaves_torch_state_alone():
    a, b = texture_frames(16, seed=1), texture_frames(16, seed=2, noise=0.05)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    first = two_sample_accuracy(a, b, seed=3, steps=30, crop=16, threads=1)
    assert torch.equal(torch.rand(3), expected_next)          # the global RNG stream is untouched
    assert torch.get_num_threads() == threads
    assert two_sample_accuracy(a, b, seed=3, steps=30, crop=16, threads=1) == first
    assert two_sample_accuracy(a, b, seed=4, steps=30, crop=16)["held_out_pairs"] != first["held_out_pairs"]


def test_uint8_frames_read_like_tensors():
    frames = [np.full((8, 8, 3), value, np.uint8) for value in (0, 255)]
    tensor = as_image_tensor(frames, "a")
    assert tensor.shape == (2, 3, 8, 8) and tensor[0].eq(-1).all() and tensor[1].eq(1).all()
    with pytest.raises(ValueError, match=r"a\[0\] must be a uint8"):
        as_image_tensor([np.zeros((8, 8), np.uint8)], "a")
    with pytest.raises(ValueError, match="same shape"):
        two_sample_accuracy(torch.zeros(8, 3, 16, 16), torch.zeros(6, 3, 16, 16), crop=8)
    with pytest.raises(ValueError, match="crop"):
        two_sample_accuracy(torch.zeros(8, 3, 16, 16), torch.zeros(8, 3, 16, 16), crop=24)


@pytest.mark.parametrize("count", [4, 5, 17, 64])
def test_paired_split_keeps_pairs_together(count):
    train, test = paired_split(count, seed=9)
    # one index list per half, used for A and for B alike: pair i is wholly train or wholly held out
    assert set(train).isdisjoint(test) and sorted([*train, *test]) == list(range(count))
    assert len(train) >= 2 and len(test) >= 2
    np.testing.assert_array_equal(paired_split(count, seed=9)[1], test)
    result = two_sample_accuracy(torch.zeros(count, 3, 16, 16), torch.zeros(count, 3, 16, 16), seed=9, steps=1, crop=8)
    assert result["held_out_pairs"] == list(test) and result["n_test"] == 2 * len(test)
    with pytest.raises(ValueError, match="at least 4 pairs"):
        paired_split(3, seed=0)


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_frames():
    rng = np.random.default_rng(0)
    widths = []
    for pairs in (16, 256):
        correct = (rng.random((pairs, 2)) < 0.75).astype(float)
        low, high = bootstrap_interval(correct, resamples=1000, seed=0)
        assert low <= correct.mean() <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2                      # about 1/sqrt(16) as wide
    assert bootstrap_interval(np.ones((10, 2)), 1000, 0) == (1.0, 1.0)

    def half_smooth(count):                               # every other frame of B without grain: accuracy ~0.75
        frames = texture_frames(count, seed=2)
        frames[::2] = texture_frames(count, seed=3, noise=0.0)[::2]
        return frames

    small = two_sample_accuracy(texture_frames(16, seed=1), half_smooth(16), seed=0, **FAST)
    large = two_sample_accuracy(texture_frames(64, seed=1), half_smooth(64), seed=0, **FAST)
    for result in (small, large):
        assert result["interval"][0] <= result["accuracy"] <= result["interval"][1]
    assert large["interval"][1] - large["interval"][0] < small["interval"][1] - small["interval"][0]


def test_second_rendering_keeps_the_layout_and_changes_the_camera():
    first = render_sample(0, VAL_INDEX_BASE + 3, "sim", "real", (64, 128))
    np.testing.assert_array_equal(render_real_redraw(0, VAL_INDEX_BASE + 3, 0, "sim", (64, 128)).image, first.image)
    second = render_real_redraw(0, VAL_INDEX_BASE + 3, 1, "sim", (64, 128))
    np.testing.assert_array_equal(second.label, first.label)
    assert second.boxes == first.boxes and second.name == first.name
    assert np.abs(second.image.astype(int) - first.image.astype(int)).mean() > 2
    with pytest.raises(ValueError, match="draw"):
        render_real_redraw(0, 0, -1)


def test_toy_world_floor_and_ceiling():
    # paired/val of a 64x128 toy world, its second rendering (the floor) and sim/val (the ceiling)
    indices = [VAL_INDEX_BASE + j for j in range(64)]
    truth = [render_sample(0, i, "sim", "real", (64, 128)).image for i in indices]
    floor = two_sample_accuracy(truth, [render_real_redraw(0, i, 1, "sim", (64, 128)).image for i in indices], seed=0)
    ceiling = two_sample_accuracy(truth, [render_sample(0, i, "sim", "sim", (64, 128)).image for i in indices], seed=0)
    assert floor["interval"][0] <= 0.5 <= floor["interval"][1] and 0.3 <= floor["accuracy"] <= 0.7
    assert ceiling["accuracy"] >= 0.95


def _write_set(root, frames, names):
    for frame, name in zip(frames, names):
        image = np.ascontiguousarray(((frame.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8))
        write_sample(root, Sample(image=image, label=np.zeros(image.shape[:2], np.uint8), name=name))


def test_report_matches_folders_by_name(tmp_path):
    names = [f"{i:06d}" for i in range(16)]
    _write_set(tmp_path / "translated", texture_frames(16, seed=1, noise=0.0), names)
    # the reference holds one more frame (never translated) and is listed in another order on disk
    _write_set(tmp_path / "truth", texture_frames(17, seed=2), [*reversed(names), "000099"])
    report = two_sample_report(tmp_path / "translated", tmp_path / "truth", steps=100, crop=16, seed=0)
    assert report["frames"] == 16 and report["size"] == list(SIZE)
    assert report["accuracy"] >= 0.9 and report["n_test"] == 16
    assert report["reference_dir"] == str(tmp_path / "truth") and "TextureCritic" in report["critic"]
    limited = two_sample_report(tmp_path / "translated", tmp_path / "truth", steps=5, crop=16, limit=8)
    assert limited["frames"] == 8
    _write_set(tmp_path / "translated", texture_frames(1, seed=3), ["stray"])
    with pytest.raises(ValueError, match="no reference frame.*'stray'"):
        two_sample_report(tmp_path / "translated", tmp_path / "truth", steps=5, crop=16)
