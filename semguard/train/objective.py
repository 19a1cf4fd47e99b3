"""The translator's objective as modules: which named loss terms a step computes, and how.

`GeneratorObjective` holds what the generator step trains (the generator and the
PatchNCE heads) so that one DistributedDataParallel wrapper covers both and sees one
forward per backward. The discriminator and the guide segmenter are *used* by the
generator step but not trained by it: they are held outside the module tree (frozen
references) and called unwrapped.

Terms (names are the keys of LossConfig; a weight of 0 skips the term entirely):
    gan           adversarial generator loss on D(translated)
    nce           PatchNCE between source and translated encoder features (CUT)
    nce_identity  PatchNCE between a target image and its own translation
    seg           guide segmenter's cross-entropy of the source labels on the translated image
    box           box-region perceptual distance between source and translated
The discriminator step gives term "d" and a co-trained guide "guide_seg".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from semguard.config import LossConfig

GENERATOR_TERMS = ("gan", "nce", "nce_identity", "seg", "box")


def term_weights(loss: LossConfig) -> dict[str, float]:
    """The weight of every generator term, from the config."""
    return {name: float(getattr(loss, name)) for name in GENERATOR_TERMS}


@dataclass
class FrozenHelpers:
    """Modules the generator step calls but does not train (never registered as submodules)."""

    discriminator: nn.Module | None = None
    guide: nn.Module | None = None
    box_loss: Any = None
    seg_class_weights: torch.Tensor | None = None


class GeneratorObjective(nn.Module):
    """generator + PatchNCE heads; forward -> (translated image, {term: scalar}).

    forward(source_image float [B,3,H,W] in [-1,1], condition float [B,C,H,W] | None,
            source_label int64 [B,H,W], source_boxes, target_image, target_condition)
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

    def patchnce(self, image: torch.Tensor, translated: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """PatchNCE of `translated` against `image` in the generator's encoder features (mean over layers)."""
        from semguard.losses.patchnce import multilayer_patchnce_loss

        layers = tuple(self.loss.nce_layers)
        source_features = self.generator.encode(image, condition, layers)
        translated_features = self.generator.encode(translated, condition, layers)
        return multilayer_patchnce_loss(self.patch_sampler, source_features, translated_features,
                                        num_patches=self.loss.nce_patches, temperature=self.loss.nce_temperature)

    def forward(self, source_image: torch.Tensor, condition: torch.Tensor | None, source_label: torch.Tensor,
                source_boxes: list, target_image: torch.Tensor, target_condition: torch.Tensor | None):
        from semguard.losses.adversarial import generator_loss

        translated = self.generator(source_image, condition)
        terms: dict[str, torch.Tensor] = {}
        helpers = self.helpers
        if self.weights["gan"] > 0:
            terms["gan"] = generator_loss(helpers.discriminator(translated), self.loss.gan_mode)
        if self.weights["nce"] > 0:
            terms["nce"] = self.patchnce(source_image, translated, condition)
        if self.weights["nce_identity"] > 0:
            identity = self.generator(target_image, target_condition)
            terms["nce_identity"] = self.patchnce(target_image, identity, target_condition)
        if self.weights["seg"] > 0:
            from semguard.losses.seg_consistency import seg_consistency_loss

            logits = helpers.guide(translated)
            terms["seg"] = seg_consistency_loss(logits.float(), source_label, helpers.seg_class_weights)
        if self.weights["box"] > 0:
            terms["box"] = helpers.box_loss(source_image, translated, source_boxes)
        return translated, terms
