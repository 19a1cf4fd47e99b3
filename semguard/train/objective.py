"""The translator's objective as modules: which named loss terms a step computes, and how.

`GeneratorObjective` holds what the generator step trains (the generator and the
PatchNCE heads) so that one DistributedDataParallel wrapper covers both and sees one
forward per backward. The discriminator and the guide segmenter are *used* by the
generator step but not trained by it: they are held outside the module tree (frozen
references) and called unwrapped.

Terms (names are the keys of LossConfig; a weight of 0 skips the term entirely):
    gan           adversarial generator loss on D(translated) (patch: real/fake; segmentation:
                  D should read the source label on each translated pixel)
    gan_patch     the texture patch discriminator's term, beside a segmentation one
    nce           PatchNCE between source and translated encoder features (CUT)
    nce_identity  PatchNCE between a target image and its own translation
    seg           guide segmenter's cross-entropy of the source labels on the translated image
                  (mean over the guide ensemble; each guide reads a perturbed copy when guide.perturb > 0)
    box           box-region perceptual distance between source and translated
    attr          guide crop classifier's cross-entropy of each box's source attribute (light state, sign
                  pictogram) on (a perturbed copy of) the translation
The discriminator step gives term "d" and a co-trained guide "guide_seg".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from semguard.config import GENERATOR_TERMS, LossConfig
from semguard.losses.guide_perturbation import perturb_for_guide
from semguard.losses.patchnce import multilayer_patchnce_loss
from semguard.losses.seg_consistency import seg_consistency_pixels, weighted_pixel_mean


def term_weights(loss: LossConfig) -> dict[str, float]:
    """The weight of every generator term, from the config."""
    return {name: float(getattr(loss, name)) for name in GENERATOR_TERMS}


@dataclass
class FrozenHelpers:
    """Modules the generator step calls but does not train (never registered as submodules)."""

    discriminator: nn.Module | None = None
    guide: nn.Module | None = None
    box_loss: Any = None
    attr_loss: Any = None                          # semguard.losses.attribute_consistency
    seg_class_weights: torch.Tensor | None = None
    adversary: Any = None                          # semguard.losses.adversary (build_adversary); needed when gan > 0
    texture_discriminator: nn.Module | None = None
    texture_adversary: Any = None
    extra_guides: tuple = ()                       # guide.ensemble: more frozen guides, same role
    guide_perturb: float = 0.0
    ensemble_reduce: str = "mean"                  # guide.ensemble_reduce: mean | max


class GeneratorObjective(nn.Module):
    """generator + PatchNCE heads; forward -> (translated image, {term: scalar}).

    forward(source_image float [B,3,H,W] in [-1,1], condition float [B,C,H,W] | None,
            source_label int64 [B,H,W], source_boxes, target_image, target_condition,
            agreement float [B,H,W] | None: where paired source and target labels agree, for
            a patch adversary restricted to those pixels)
    """

    def __init__(self, generator: nn.Module, patch_sampler: nn.Module | None, loss: LossConfig,
                 helpers: FrozenHelpers) -> None:
        super().__init__()
        self.generator = generator
        self.patch_sampler = patch_sampler
        self.loss = loss
        self.weights = term_weights(loss)
        self._helpers = (helpers,)   # a tuple hides the helpers from nn.Module registration

    @property
    def helpers(self) -> FrozenHelpers:
        return self._helpers[0]

    def patchnce(self, image: torch.Tensor, translated: torch.Tensor, condition: torch.Tensor | None,
                 source_features: list[torch.Tensor] | None = None) -> torch.Tensor:
        """PatchNCE of `translated` against `image` in the generator's encoder features (mean over layers).

        source_features: encode(image, condition, nce_layers) when the caller has them already
        (the translation pass's own taps, see translate_and_encode).
        """
        layers = tuple(self.loss.nce_layers)
        if source_features is None:
            source_features = self.generator.encode(image, condition, layers)
        translated_features = self.generator.encode(translated, condition, layers)
        return multilayer_patchnce_loss(self.patch_sampler, source_features, translated_features,
                                        num_patches=self.loss.nce_patches, temperature=self.loss.nce_temperature)

    def seg_term(self, translated: torch.Tensor, source_label: torch.Tensor) -> torch.Tensor:
        """The "seg" term: the guides' cross-entropy of the source labels on (a perturbed copy of) the
        translation; with an ensemble, the mean of each guide's CE (ensemble_reduce mean) or the per-pixel
        worst guide's CE (max)."""
        helpers = self.helpers
        guides = (helpers.guide, *helpers.extra_guides)
        readings = [seg_consistency_pixels(guide(perturb_for_guide(translated, helpers.guide_perturb)).float(),
                                           source_label, helpers.seg_class_weights) for guide in guides]
        if len(readings) == 1:
            return weighted_pixel_mean(*readings[0])
        if helpers.ensemble_reduce == "max":
            worst = torch.stack([per_pixel for per_pixel, _ in readings]).amax(dim=0)
            return weighted_pixel_mean(worst, readings[0][1])   # the pixel weights depend on the labels only
        return torch.stack([weighted_pixel_mean(*reading) for reading in readings]).mean()

    def forward(self, source_image: torch.Tensor, condition: torch.Tensor | None, source_label: torch.Tensor,
                source_boxes: list, target_image: torch.Tensor, target_condition: torch.Tensor | None,
                agreement: torch.Tensor | None = None):
        # PatchNCE's source features are the translation pass's own taps: one generator pass fewer
        source_features = None
        if self.weights["nce"] > 0:
            translated, source_features = self.generator.translate_and_encode(source_image, condition,
                                                                              tuple(self.loss.nce_layers))
        else:
            translated = self.generator(source_image, condition)
        terms: dict[str, torch.Tensor] = {}
        helpers = self.helpers
        if self.weights["gan"] > 0:
            terms["gan"] = helpers.adversary.generator_term(helpers.discriminator(translated), source_label, agreement)
        if helpers.texture_discriminator is not None and self.weights["gan_patch"] > 0:
            terms["gan_patch"] = helpers.texture_adversary.generator_term(
                helpers.texture_discriminator(translated), source_label, agreement)
        if self.weights["nce"] > 0:
            terms["nce"] = self.patchnce(source_image, translated, condition, source_features)
        if self.weights["nce_identity"] > 0:
            identity, target_features = self.generator.translate_and_encode(target_image, target_condition,
                                                                            tuple(self.loss.nce_layers))
            terms["nce_identity"] = self.patchnce(target_image, identity, target_condition, target_features)
        if self.weights["seg"] > 0:
            terms["seg"] = self.seg_term(translated, source_label)
        if self.weights["box"] > 0:
            terms["box"] = helpers.box_loss(source_image, translated, source_boxes)
        if self.weights["attr"] > 0:
            terms["attr"] = helpers.attr_loss(perturb_for_guide(translated, helpers.guide_perturb), source_boxes)
        return translated, terms
