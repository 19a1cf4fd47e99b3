"""Each discriminator kind's adversarial objective, behind one interface the trainer calls.

DISCRIMINATOR_KINDS is the one registry of model.discriminator.kind: each entry names the
network (semguard.models) and its adversarial objective, so a new kind is one entry here
(`build_discriminator` and `build_adversary` read it). An adversary splits the discriminator's output on cat([real, fake]) and gives:

    generator_term(logits, source_label, weight)                 the generator's "gan" term
    discriminator_term(real, real_label, fake, weight)          the discriminator's loss

- patch: hinge / lsgan / non-saturating on PatchGAN logit maps (semguard.losses.adversarial);
  `weight` (float [B,H,W] or None) restricts it to pixels where paired labels agree.
- segmentation: the OASIS N+1 loss (semguard.losses.segmentation_adversarial); it reads
  labels itself, so `weight` is not used; it needs target labels (`needs_target_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semguard.errors import ConfigError
from semguard.losses.adversarial import discriminator_loss, generator_loss
from semguard.losses.segmentation_adversarial import segmentation_discriminator_loss, segmentation_generator_loss
from semguard.models.discriminators import MultiScalePatchDiscriminator
from semguard.models.segmentation_discriminator import SegmentationDiscriminator


class PatchAdversary:
    needs_target_labels = False

    def __init__(self, mode: str = "hinge") -> None:
        self.mode = mode

    @classmethod
    def from_config(cls, loss_cfg, discriminator_cfg) -> "PatchAdversary":
        return cls(mode=loss_cfg.gan_mode)

    @staticmethod
    def split(output: list[torch.Tensor], real_count: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [scale[:real_count] for scale in output], [scale[real_count:] for scale in output]

    def generator_term(self, logits, source_label: torch.Tensor | None, weight: torch.Tensor | None = None):
        return generator_loss(logits, self.mode, weight=weight)

    def discriminator_term(self, real_logits, real_label: torch.Tensor | None, fake_logits,
                           weight: torch.Tensor | None = None):
        return discriminator_loss(real_logits, fake_logits, self.mode, weight=weight)


class SegmentationAdversary:
    needs_target_labels = True

    def __init__(self, class_balance: bool = True) -> None:
        self.class_balance = class_balance

    @classmethod
    def from_config(cls, loss_cfg, discriminator_cfg) -> "SegmentationAdversary":
        return cls(class_balance=discriminator_cfg.seg_class_balance)

    @staticmethod
    def split(output: torch.Tensor, real_count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return output[:real_count], output[real_count:]

    def generator_term(self, logits: torch.Tensor, source_label: torch.Tensor,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
        return segmentation_generator_loss(logits, source_label, self.class_balance)

    def discriminator_term(self, real_logits: torch.Tensor, real_label: torch.Tensor, fake_logits: torch.Tensor,
                           weight: torch.Tensor | None = None) -> torch.Tensor:
        if real_label is None:
            raise ValueError("the segmentation discriminator needs the real images' target labels")
        return segmentation_discriminator_loss(real_logits, real_label, fake_logits, self.class_balance)


@dataclass(frozen=True)
class DiscriminatorKind:
    """One model.discriminator.kind: its network (built with `network.from_config(model_cfg)`) and the
    adversarial objective that trains it and the generator against it."""

    network: type[nn.Module]
    adversary: type


DISCRIMINATOR_KINDS: dict[str, DiscriminatorKind] = {
    "patch": DiscriminatorKind(MultiScalePatchDiscriminator, PatchAdversary),
    "segmentation": DiscriminatorKind(SegmentationDiscriminator, SegmentationAdversary),
}


def discriminator_kind(kind: str) -> DiscriminatorKind:
    """The registry entry of `kind`; an unknown kind is a ConfigError listing the valid ones."""
    if kind not in DISCRIMINATOR_KINDS:
        raise ConfigError(f"unknown model.discriminator.kind '{kind}'; valid names: "
                          f"{', '.join(sorted(DISCRIMINATOR_KINDS))}")
    return DISCRIMINATOR_KINDS[kind]


def build_discriminator(model_cfg, kind: str | None = None) -> nn.Module:
    """ModelConfig -> the discriminator network of `kind` (default model_cfg.discriminator.kind).

    patch: forward(image) -> list of logit maps [B,1,h,w]; segmentation: forward(image) ->
    logits [B,20,H,W] (19 train ids + fake).
    """
    kind = model_cfg.discriminator.kind if kind is None else kind
    return discriminator_kind(kind).network.from_config(model_cfg)


def build_adversary(loss_cfg, discriminator_cfg, kind: str | None = None):
    """The adversary of `kind` (default discriminator_cfg.kind); an unknown kind lists the valid ones."""
    kind = discriminator_cfg.kind if kind is None else kind
    return discriminator_kind(kind).adversary.from_config(loss_cfg, discriminator_cfg)
