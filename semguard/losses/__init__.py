"""Losses of the translator: each a named term, weighted from the config and summed in total.py.

- adversarial: generator_loss / discriminator_loss (hinge, lsgan, nonsaturating)
- patchnce: PatchSampler, patchnce_loss, multilayer_patchnce_loss (CUT)
- seg_consistency: seg_consistency_loss (guide segmenter vs source labels)
- box_perceptual: BoxPerceptualLoss, lpips_feature_extractor, guide_feature_extractor
- total: weighted_sum (the one place terms are summed)
"""

from semguard.losses.adversarial import GAN_MODES, discriminator_loss, generator_loss
from semguard.losses.box_perceptual import (
    LPIPS_WEIGHT_FILES, BoxPerceptualLoss, guide_feature_extractor, lpips_feature_extractor,
)
from semguard.losses.class_weights import class_weight_vector, resolve_class_weights
from semguard.losses.patchnce import PatchSampler, multilayer_patchnce_loss, patchnce_loss
from semguard.losses.seg_consistency import seg_consistency_loss
from semguard.losses.total import weighted_sum

__all__ = [
    "GAN_MODES", "generator_loss", "discriminator_loss",
    "PatchSampler", "patchnce_loss", "multilayer_patchnce_loss",
    "seg_consistency_loss", "BoxPerceptualLoss", "lpips_feature_extractor", "guide_feature_extractor",
    "LPIPS_WEIGHT_FILES", "class_weight_vector", "resolve_class_weights", "weighted_sum",
]
