"""FID/KID through torchmetrics with known feature extractors, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from semguard.errors import WeightsMissingError
from semguard.metrics.fid import (
    INCEPTION_WEIGHTS_FILE,
    ImageDistance,
    JudgeFeatures,
    build_feature_extractor,
    frechet_distance_closed_form,
    inception_weights_path,
)


class Flatten(nn.Module):
    """A known extractor: the identity on a flattened low-dimensional input [B,3,1,1] -> [B,3]."""

    def forward(self, images):
        return images.flatten(1)


def _gaussian(mean, cov, count, seed):
    generator = np.random.default_rng(seed)
    return torch.from_numpy(generator.multivariate_normal(mean, cov, size=count))


def test_fid_matches_closed_form_on_two_gaussians():
    mean_a, mean_b = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, -1.0])
    cov_a = np.array([[1.0, 0.3, 0.0], [0.3, 2.0, 0.1], [0.0, 0.1, 0.5]])
    cov_b = np.array([[0.5, 0.0, 0.1], [0.0, 1.0, 0.2], [0.1, 0.2, 1.5]])
    real, fake = _gaussian(mean_a, cov_a, 4000, 0), _gaussian(mean_b, cov_b, 4000, 1)
    meter = ImageDistance("flat", Flatten(), kid_subsets=5, kid_subset_size=200)
    for start in range(0, 4000, 1000):  # several updates, like batches
        meter.update(real[start:start + 1000].reshape(-1, 3, 1, 1).float(), real=True)
        meter.update(fake[start:start + 1000].reshape(-1, 3, 1, 1).float(), real=False)
    result = meter.compute()
    # exact: the closed form on the sample moments of the very features torchmetrics saw
    features_real, features_fake = real.float().double(), fake.float().double()
    exact = frechet_distance_closed_form(features_real.mean(0), torch.cov(features_real.T),
                                         features_fake.mean(0), torch.cov(features_fake.T))
    assert result["fid_flat"] == pytest.approx(exact, rel=1e-4, abs=1e-6)
    # and near the population value
    population = frechet_distance_closed_form(torch.tensor(mean_a), torch.tensor(cov_a), torch.tensor(mean_b),
                                              torch.tensor(cov_b))
    assert result["fid_flat"] == pytest.approx(population, rel=0.1)
    assert result["feature_extractor"] == "flat" and result["real_count"] == result["fake_count"] == 4000
    assert result["kid_flat_mean"] > 0.01


def test_fid_of_identical_moments_is_zero_and_names_carry_the_extractor():
    features = _gaussian(np.zeros(4), np.eye(4), 1000, 2).float()
    meter = ImageDistance("judge", kid_subsets=10, kid_subset_size=500, seed=3)
    meter.update_features(features, real=True)
    meter.update_features(features, real=False)
    result = meter.compute()
    assert set(result) >= {"fid_judge", "kid_judge_mean", "kid_judge_std"}
    assert not any(key.startswith(("fid_inception", "kid_inception")) for key in result)
    assert abs(result["fid_judge"]) < 1e-3
    shifted = ImageDistance("judge", kid_subsets=10, kid_subset_size=500, seed=3)
    shifted.update_features(features, real=True)
    shifted.update_features(features + 0.5, real=False)
    kid_shifted = shifted.compute()["kid_judge_mean"]
    # KID of a set with itself is ~0 (up to the subsets' sampling noise), far below a shifted copy's
    assert abs(result["kid_judge_mean"]) < 0.05 < kid_shifted
    assert abs(result["kid_judge_mean"]) < 0.05 * kid_shifted
    again = ImageDistance("judge", kid_subsets=10, kid_subset_size=500, seed=3)
    again.update_features(features, real=True)
    again.update_features(features, real=False)
    assert again.compute()["kid_judge_mean"] == result["kid_judge_mean"]  # seeded subsets


def test_kid_subset_size_shrinks_to_small_sets():
    meter = ImageDistance("judge", kid_subsets=4, kid_subset_size=1000)
    meter.update_features(torch.randn(6, 5), real=True)
    meter.update_features(torch.randn(9, 5), real=False)
    result = meter.compute()
    assert result["kid_subset_size"] == 3 and result["kid_judge_std"] > 0


def test_missing_inception_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsMissingError) as error:
        inception_weights_path()
    message = str(error.value)
    assert INCEPTION_WEIGHTS_FILE in message and str(tmp_path / "hub" / "checkpoints") in message
    with pytest.raises(WeightsMissingError):
        build_feature_extractor("inception")
    assert not list(tmp_path.rglob("*.pth"))  # nothing was downloaded


def test_judge_features_pool_the_deepest_map():
    class Encoder(nn.Module):
        def forward(self, images):
            return images

    extractor = JudgeFeatures(Encoder(), feature_maps=lambda model, x: [x[:, :1], x * 2])
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.allclose(extractor(images), (images * 2).mean(dim=(2, 3)))


def test_unknown_extractor_lists_the_valid_ones():
    from semguard.errors import SemguardError

    with pytest.raises(SemguardError, match="judge, inception"):
        build_feature_extractor("vgg")
