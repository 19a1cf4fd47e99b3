"""Each discriminator kind's adversarial objective, behind one interface the trainer calls.

DISCRIMINATOR_KINDS is the one registry of model.discriminator.kind: each entry names the
network (semguard.models) and its adversarial objective, so a new kind is one entry here
(`build_discriminator` and `build_adversary` read it). An adversary splits the discriminator's output on cat([real, fake]) and gives:

    generator_term(logits, source_label, weight)                         the generator's "gan" term
    discriminator_term(real, real_label, fake, fake_label, weight)      the discriminator's loss

(real_label: the target images' labels; fake_label: the source labels the translations keep.)

- patch: hinge / lsgan / non-saturating on PatchGAN logit maps (semguard.losses.adversarial);
  `weight` (float [B,H,W] or None) restricts it to pixels where paired labels agree.
- segmentation: the OASIS N+1 loss (semguard.losses.segmentation_adversarial); it reads
  labels itself, so `weight` is not used; it needs target labels (`needs_target_labels`).
- projection: the patch losses on a projection discriminator's value at each patch's label
  (`condition_on_label`): real patches of a class against translated patches labelled that
  class; patches without a label do not count. Needs target labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from semguard.errors import ConfigError
from semguard.losses.adversarial import discriminator_loss, generator_loss, weight_like
from semguard.losses.segmentation_adversarial import segmentation_discriminator_loss, segmentation_generator_loss
from semguard.models.discriminators import MultiScalePatchDiscriminator, ProjectionPatchDiscriminator
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
                           fake_label: torch.Tensor | None = None, weight: torch.Tensor | None = None):
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
                           fake_label: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
        if real_label is None:
            raise ValueError("the segmentation discriminator needs the real images' target labels")
        return segmentation_discriminator_loss(real_logits, real_label, fake_logits, self.class_balance)


def condition_on_label(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A projection discriminator's value at each patch's label, and the patch's labelled share.

    logits: float [B,K,h,w] (D(patch, k) for every class k); label: int64 [B,H,W] train ids, ignore
    (255, any id >= K) not counted. Each class's share of a patch's pixels is the one-hot label
    area-resized to h x w (p_k, summing to the labelled share s <= 1), and the patch's value is
    sum_k p_k D(patch, k) / s: the projection on the patch's label histogram (a one-class patch
    reads D(patch, k) exactly). Returns (float [B,1,h,w], share float [B,h,w]); a patch with s = 0
    reads 0 and is weighted 0 by the losses.
    """
    if logits.ndim != 4 or label.ndim != 3 or logits.shape[0] != label.shape[0]:
        raise ValueError(f"condition_on_label: logits must be float [B,K,h,w] and label int64 [B,H,W] with the same "
                         f"B, got {tuple(logits.shape)} and {tuple(label.shape)}")
    return _project(logits, _one_hot(label, logits.shape[1]))


def _one_hot(label: torch.Tensor, classes: int) -> torch.Tensor:
    """label int64 [B,H,W] -> float [B,classes,H,W]; ignore (and ids >= classes) all zero."""
    valid = (label >= 0) & (label < classes)
    onehot = F.one_hot(torch.where(valid, label, torch.zeros_like(label)).long(), classes)
    return (onehot * valid[..., None]).permute(0, 3, 1, 2).to(torch.float32)


def _project(logits: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shares = F.interpolate(onehot, size=logits.shape[-2:], mode="area")
    share = shares.sum(1)
    value = (shares * logits.float()).sum(1, keepdim=True) / share[:, None].clamp_min(1e-6)
    return value, share


class ProjectionAdversary(PatchAdversary):
    """The patch losses (gan_mode) on ProjectionPatchDiscriminator's value at each patch's label,
    each patch weighted by its labelled share (times the agreement weight where one is given)."""

    needs_target_labels = True

    @staticmethod
    def _conditioned(logits: list[torch.Tensor], label: torch.Tensor, weight: torch.Tensor | None):
        values, weights = [], []
        onehot = _one_hot(label, logits[0].shape[1])   # once per label map, pooled to every scale
        for scale in logits:
            value, share = _project(scale, onehot)
            if weight is not None:
                share = share * weight_like(weight, value)[:, 0]
            values.append(value)
            weights.append(share)
        return values, weights

    def generator_term(self, logits: list[torch.Tensor], source_label: torch.Tensor,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
        values, weights = self._conditioned(logits, source_label, weight)
        return torch.stack([generator_loss(v, self.mode, weight=w) for v, w in zip(values, weights)]).mean()

    def discriminator_term(self, real_logits: list[torch.Tensor], real_label: torch.Tensor,
                           fake_logits: list[torch.Tensor], fake_label: torch.Tensor,
                           weight: torch.Tensor | None = None) -> torch.Tensor:
        if real_label is None or fake_label is None:
            raise ValueError("the projection discriminator needs the target images' labels and the source labels")
        reals, real_weights = self._conditioned(real_logits, real_label, weight)
        fakes, fake_weights = self._conditioned(fake_logits, fake_label, weight)
        return torch.stack([discriminator_loss(r, f, self.mode, weight=wr, fake_weight=wf)
                            for r, f, wr, wf in zip(reals, fakes, real_weights, fake_weights)]).mean()


@dataclass(frozen=True)
class DiscriminatorKind:
    """One model.discriminator.kind: its network (built with `network.from_config(model_cfg)`) and the
    adversarial objective that trains it and the generator against it."""

    network: type[nn.Module]
    adversary: type


DISCRIMINATOR_KINDS: dict[str, DiscriminatorKind] = {
    "patch": DiscriminatorKind(MultiScalePatchDiscriminator, PatchAdversary),
    "segmentation": DiscriminatorKind(SegmentationDiscriminator, SegmentationAdversary),
    "projection": DiscriminatorKind(ProjectionPatchDiscriminator, ProjectionAdversary),
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
    logits [B,20,H,W] (19 train ids + fake); projection: forward(image) -> list of maps
    [B,19,h,w] (one value per train id).
    """
    kind = model_cfg.discriminator.kind if kind is None else kind
    return discriminator_kind(kind).network.from_config(model_cfg)


def build_adversary(loss_cfg, discriminator_cfg, kind: str | None = None):
    """The adversary of `kind` (default discriminator_cfg.kind); an unknown kind lists the valid ones."""
    kind = discriminator_cfg.kind if kind is None else kind
    return discriminator_kind(kind).adversary.from_config(loss_cfg, discriminator_cfg)
