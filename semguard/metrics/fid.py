"""FID and KID through torchmetrics, with a named feature extractor that is never mixed up.

FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)) of Gaussian fits to the features
of real (target) and generated images; KID = the unbiased squared MMD with the cubic
polynomial kernel, averaged over random subsets (mean and standard deviation reported).
Both numbers depend entirely on the feature extractor, so the extractor's name is part
of every figure's name ("fid_judge", "kid_inception_mean") and of the report:

- "inception": the standard Inception-v3 pool features (torchmetrics / torch-fidelity).
  The weight file `weights-inception-2015-12-05-6726825d.pth` must already be in the torch
  hub cache ($TORCH_HOME/hub/checkpoints or ~/.cache/torch/hub/checkpoints); it is never
  downloaded and nothing falls back to another extractor when it is missing.
- "judge": global-average-pooled deepest encoder features of the judge segmenter
  (available offline). Not comparable with Inception FID and never labelled as such.

Features are computed once per image and fed to both torchmetrics metrics through an
identity module (`FeatureInput`), so FID and KID see exactly the same features.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from semguard.common import torch_hub_checkpoints
from semguard.errors import SemguardError, WeightsMissingError
from semguard.models.segmenter import segmenter_features

FEATURE_EXTRACTORS: tuple[str, ...] = ("judge", "inception")
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path() -> Path:
    """The FID Inception weight file in the torch hub cache; WeightsMissingError when absent."""
    path = torch_hub_checkpoints() / INCEPTION_WEIGHTS_FILE
    if not path.is_file():
        raise WeightsMissingError(
            f"FID Inception weights not found: put the file {INCEPTION_WEIGHTS_FILE} (torch-fidelity's pt_inception "
            f"weights) into {path.parent} (set TORCH_HOME to use another cache), or use --features judge"
        )
    return path


class FeatureInput(nn.Module):
    """Identity on precomputed features float [N,D]: lets torchmetrics take features we computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"features must be [N,{self.num_features}], got {tuple(features.shape)}")
        return features


class InceptionFeatures(nn.Module):
    """Inception-v3 pool features (2048) of images float [B,3,H,W] in [-1,1] (quantised to uint8 first,
    as the reference implementation expects); needs torch-fidelity and the cached weight file."""

    num_features = 2048

    def __init__(self):
        super().__init__()
        weights = inception_weights_path()
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3   # lazy: torchmetrics.image pulls in torchvision (seconds)
            self.inception = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                                feature_extractor_weights_path=str(weights))
        except ModuleNotFoundError as err:
            raise SemguardError(
                f"--features inception needs the torch-fidelity package ({err}); install it "
                "(pip install torch-fidelity) or use --features judge"
            ) from None

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        quantised = images.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        return self.inception(quantised).reshape(images.shape[0], -1).float()


class JudgeFeatures(nn.Module):
    """Global-average-pooled deepest encoder feature map of the judge segmenter.

    judge: the segmenter (input float [B,3,H,W] in [-1,1], any size); feature_maps: (judge, image)
    -> encoder maps, shallow to deep (default semguard.models.segmenter.segmenter_features).
    """

    def __init__(self, judge: nn.Module, feature_maps: Callable | None = None):
        super().__init__()
        if feature_maps is None:
            feature_maps = segmenter_features
        self.judge = judge.eval()
        self.feature_maps = feature_maps

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        deepest = self.feature_maps(self.judge, images)[-1]
        return deepest.float().mean(dim=(2, 3))


def build_feature_extractor(name: str, judge: nn.Module | None = None) -> nn.Module:
    """FEATURE_EXTRACTORS[name] as a module: images float [B,3,H,W] in [-1,1] -> float [B,D]."""
    if name == "inception":
        return InceptionFeatures()
    if name == "judge":
        if judge is None:
            raise SemguardError("--features judge needs a judge segmenter (--judge PATH)")
        return JudgeFeatures(judge)
    raise SemguardError(f"unknown feature extractor {name!r}; choose one of {', '.join(FEATURE_EXTRACTORS)}")


class ImageDistance:
    """FID and KID between real (target) images and generated ones, for one named extractor.

    Single-process: a plain accumulator, not a torchmetrics Metric (its state is not summed across
    processes); `semguard eval` runs in one process, so every figure sees every frame.

    extractor_name: the name written into every figure ("fid_<name>", "kid_<name>_mean");
    extractor: images -> features [B,D], or None when update_features is used directly.
    kid_subsets / kid_subset_size: KID's random subsets (with fewer images than kid_subset_size on a
    side, the subset size becomes half the smaller set; the size used is recorded); seed: the
    subsets' RNG seed.
    """

    def __init__(self, extractor_name: str, extractor: nn.Module | None = None, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, seed: int = 0):
        self.extractor_name = extractor_name
        self.extractor = extractor
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.seed = seed
        self._fid = None
        self._kid = None
        self.num_features: int | None = None

    def _metrics(self, num_features: int):
        if self._fid is None:
            from torchmetrics.image.fid import FrechetInceptionDistance   # lazy: torchmetrics.image pulls in torchvision (seconds)
            from torchmetrics.image.kid import KernelInceptionDistance

            self.num_features = num_features
            self._fid = FrechetInceptionDistance(feature=FeatureInput(num_features), reset_real_features=True)
            with warnings.catch_warnings():  # "KID stores all features": intended, they are small
                warnings.simplefilter("ignore")
                self._kid = KernelInceptionDistance(feature=FeatureInput(num_features), subsets=self.kid_subsets,
                                                    subset_size=self.kid_subset_size, reset_real_features=True)
        elif num_features != self.num_features:
            raise ValueError(f"features changed width: {num_features} after {self.num_features}")
        return self._fid, self._kid

    @torch.no_grad()
    def update(self, images: torch.Tensor, real: bool) -> None:
        """images: float [B,3,H,W] in [-1,1]; real: target-domain images (True) or generated (False)."""
        if self.extractor is None:
            raise ValueError("ImageDistance was built without an extractor; use update_features")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B,3,H,W], got {tuple(images.shape)}")
        self.update_features(self.extractor(images), real)

    @torch.no_grad()
    def update_features(self, features: torch.Tensor, real: bool) -> None:
        """features: float [B,D] from this object's extractor."""
        features = features.detach().double().cpu()
        fid, kid = self._metrics(int(features.shape[1]))
        fid.update(features, real=real)
        kid.update(features, real=real)

    def reset(self, real: bool = False) -> None:
        """Forget the generated features (and the real ones too when `real`)."""
        if self._fid is None:
            return
        for metric in (self._fid, self._kid):
            metric.reset_real_features = real
            metric.reset()
            metric.reset_real_features = True

    def effective_subset_size(self, real_count: int, fake_count: int) -> int:
        """kid_subset_size, or half the smaller set when that is smaller (whole-set subsets would all
        be the same set, and KID's spread would read 0)."""
        smaller = min(real_count, fake_count)
        return self.kid_subset_size if smaller >= self.kid_subset_size else max(2, smaller // 2)

    def compute(self) -> dict:
        """{"feature_extractor", "fid_<name>", "kid_<name>_mean", "kid_<name>_std", "kid_subset_size",
        "kid_subsets", "real_count", "fake_count", "num_features", "fid_unavailable"}; needs >= 2 images
        on each side.

        FID fits a D x D covariance per side, which is rank-deficient (and FID unstable, unable to
        rank) unless each side has more than D images: below that, fid_<name> is None and
        "fid_unavailable" says why. KID (unbiased at any n) is the primary distance."""
        if self._fid is None:
            raise ValueError("no features were given to ImageDistance")
        real_count = int(self._fid.real_features_num_samples)
        fake_count = int(self._fid.fake_features_num_samples)
        if real_count < 2 or fake_count < 2:
            raise SemguardError(f"FID/KID need at least 2 real and 2 generated images, got {real_count} and {fake_count}")
        fid, fid_unavailable = None, None
        if min(real_count, fake_count) > int(self.num_features):
            fid = float(self._fid.compute())
        else:
            fid_unavailable = (f"FID needs more images than feature dimensions ({self.num_features}) on each side, "
                               f"got {real_count} and {fake_count}; KID is given instead")
        subset_size = self.effective_subset_size(real_count, fake_count)
        self._kid.subset_size = subset_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = (float(v) for v in self._kid.compute())
        self._kid.subset_size = self.kid_subset_size
        name = self.extractor_name
        return {
            "feature_extractor": name,
            f"fid_{name}": fid,
            f"kid_{name}_mean": kid_mean,
            f"kid_{name}_std": kid_std,
            "kid_subset_size": subset_size,
            "kid_subsets": self.kid_subsets,
            "real_count": real_count,
            "fake_count": fake_count,
            "num_features": self.num_features,
            "fid_unavailable": fid_unavailable,
        }


def frechet_distance_closed_form(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor,
                                 cov_b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) via scipy's sqrtm (a reference for tests)."""
    from scipy import linalg   # lazy: only this test reference needs scipy

    a = cov_a.double().numpy()
    b = cov_b.double().numpy()
    root = linalg.sqrtm(a @ b)
    root = np.real(root)
    diff = (mean_a - mean_b).double().numpy()
    return float(diff @ diff + np.trace(a) + np.trace(b) - 2 * np.trace(root))

