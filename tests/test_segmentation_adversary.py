"""The label-aware adversary: segmentation discriminator, its N+1 loss and class weights, the
adversary registry, agreement-weighted patch losses and the guide perturbation."""

from __future__ import annotations

import math

import pytest
import torch

from semguard.config import DiscriminatorConfig, ModelConfig
from semguard.errors import ConfigError
from semguard.losses.adversarial import discriminator_loss, generator_loss
from semguard.losses.adversary import (
    DISCRIMINATOR_KINDS, PatchAdversary, SegmentationAdversary, build_adversary, build_discriminator,
)
from semguard.losses.segmentation_adversarial import (
    balanced_class_weights, balanced_cross_entropy, fake_cross_entropy, segmentation_discriminator_loss,
    segmentation_generator_loss,
)
from semguard.models import build_texture_discriminator
from semguard.models.segmentation_discriminator import SegmentationDiscriminator


def _ce(logits: list[float], target: int) -> float:
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


def test_class_weights_match_the_closed_form():
    # 2 x 5 pixels: class 0 x 6, class 1 x 3, class 4 x 0, ignore x 1 -> N = 9, K_present = 2
    label = torch.tensor([[[0, 0, 0, 0, 1], [0, 0, 1, 1, 255]]])
    weights = balanced_class_weights(label, num_classes=5)
    expected = torch.tensor([9 / (2 * 6), 9 / (2 * 3), 0.0, 0.0, 0.0])
    assert torch.allclose(weights, expected)
    # every labelled pixel's weights sum to N
    assert float(weights[label[label != 255]].sum()) == pytest.approx(9.0)
    assert torch.equal(balanced_class_weights(torch.full((1, 2, 2), 255), 3), torch.zeros(3))


def test_the_two_class_loss_against_a_hand_computation():
    # K = 2 classes + "fake" (index 2); one image of 1 x 4 pixels, labels [0, 0, 1, 255]
    pixel_logits = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 1.0, 1.0], [3.0, 3.0, 3.0]]
    logits = torch.tensor(pixel_logits).T.reshape(1, 3, 1, 4)
    label = torch.tensor([[[0, 0, 1, 255]]])
    ce = [_ce(pixel_logits[p], t) for p, t in enumerate([0, 0, 1])]
    # N = 3, K_present = 2: w0 = 3 / (2 * 2), w1 = 3 / (2 * 1)
    balanced = (0.75 * ce[0] + 0.75 * ce[1] + 1.5 * ce[2]) / 3
    assert float(balanced_cross_entropy(logits, label)) == pytest.approx(balanced, rel=1e-6)
    # the same as the mean over classes of each class's mean CE
    assert balanced == pytest.approx(((ce[0] + ce[1]) / 2 + ce[2]) / 2)
    assert float(balanced_cross_entropy(logits, label, class_balance=False)) == pytest.approx(sum(ce) / 3, rel=1e-6)
    fake = sum(_ce(pixel_logits[p], 2) for p in range(4)) / 4       # every pixel, ignore included
    assert float(fake_cross_entropy(logits)) == pytest.approx(fake, rel=1e-6)
    assert float(segmentation_generator_loss(logits, label)) == pytest.approx(balanced, rel=1e-6)
    assert float(segmentation_discriminator_loss(logits, label, logits)) == pytest.approx(balanced + fake, rel=1e-6)


def test_loss_direction_and_an_all_ignore_batch():
    label = torch.tensor([[[0, 1], [1, 0]]])
    reads_labels = torch.zeros(1, 3, 2, 2)
    reads_labels[0, 0][label[0] == 0] = 5.0
    reads_labels[0, 1][label[0] == 1] = 5.0
    reads_fake = torch.zeros(1, 3, 2, 2)
    reads_fake[0, 2] = 5.0
    # D is right when it reads the labels on real and "fake" on translated images
    assert segmentation_discriminator_loss(reads_labels, label, reads_fake) < \
        segmentation_discriminator_loss(reads_fake, label, reads_labels)
    # the generator wins when D reads the source label on its image
    assert segmentation_generator_loss(reads_labels, label) < segmentation_generator_loss(reads_fake, label)
    logits = torch.zeros(1, 3, 2, 2, requires_grad=True)
    loss = balanced_cross_entropy(logits, torch.full((1, 2, 2), 255))
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_logits_are_resized_to_the_label():
    logits = torch.zeros(2, 20, 8, 16)
    assert float(balanced_cross_entropy(logits, torch.zeros(2, 32, 64, dtype=torch.int64))) == pytest.approx(math.log(20))
    with pytest.raises(ValueError, match="logits"):
        balanced_cross_entropy(torch.zeros(2, 20, 8), torch.zeros(2, 8, 8, dtype=torch.int64))


def _cfg(**discriminator) -> ModelConfig:
    settings = dict(n_scales=1, base_channels=4, n_layers=2, seg_base_channels=4, seg_levels=3)
    settings.update(discriminator)
    return ModelConfig(discriminator=DiscriminatorConfig(**settings))


def test_segmentation_discriminator_shapes_and_gradients():
    discriminator = build_discriminator(_cfg(kind="segmentation"))
    assert isinstance(discriminator, SegmentationDiscriminator)
    image = (torch.rand(2, 3, 30, 50) * 2 - 1).requires_grad_(True)   # not a multiple of 8: padded inside
    logits = discriminator(image)
    assert logits.shape == (2, 20, 30, 50)
    segmentation_generator_loss(logits, torch.randint(0, 19, (2, 30, 50))).backward()
    assert image.grad is not None and all(p.grad is not None for p in discriminator.parameters())
    assert build_texture_discriminator(_cfg(kind="segmentation")) is None
    texture = build_texture_discriminator(_cfg(kind="segmentation", texture_patch=True))
    assert len(texture(torch.zeros(1, 3, 32, 64))) == 1


def test_one_registry_names_each_kinds_network_and_adversary_and_unknown_kinds_list_the_valid_ones():
    assert set(DISCRIMINATOR_KINDS) == {"patch", "projection", "segmentation"}
    assert DISCRIMINATOR_KINDS["segmentation"].network is SegmentationDiscriminator
    assert isinstance(build_adversary(None, DiscriminatorConfig(kind="segmentation")), SegmentationAdversary)
    from semguard.config import LossConfig

    patch = build_adversary(LossConfig(gan_mode="lsgan"), DiscriminatorConfig())
    assert isinstance(patch, PatchAdversary) and patch.mode == "lsgan"
    assert DISCRIMINATOR_KINDS["segmentation"].adversary.needs_target_labels
    assert not DISCRIMINATOR_KINDS["patch"].adversary.needs_target_labels
    with pytest.raises(ConfigError, match="patch, projection, segmentation"):
        build_discriminator(_cfg(kind="oasis"))
    with pytest.raises(ConfigError, match="patch, projection, segmentation"):
        build_adversary(None, DiscriminatorConfig(kind="oasis"))


def test_agreement_weights_restrict_the_patch_loss():
    fake = torch.tensor([[[[1.0, -3.0]]]])            # two patches of a [1,1,1,2] logit map
    weight = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])   # a 1 x 4 image: only the left patch's pixels agree
    assert float(generator_loss(fake, "hinge", weight=weight)) == pytest.approx(-1.0)
    assert float(generator_loss(fake, "hinge")) == pytest.approx(1.0)
    real = torch.tensor([[[[0.0, 5.0]]]])
    # hinge: real left relu(1 - 0) = 1, fake left relu(1 + 1) = 2
    assert float(discriminator_loss(real, fake, "hinge", weight=weight)) == pytest.approx(3.0)
    half = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])     # the left patch carries half weight, the right none
    assert float(generator_loss(fake, "lsgan", weight=half)) == pytest.approx(0.0)
    nothing = torch.zeros(1, 1, 4)
    assert float(generator_loss(fake, "hinge", weight=nothing)) == 0.0


def test_guide_perturbation_is_random_bounded_and_differentiable():
    from semguard.losses.guide_perturbation import perturb_for_guide

    image = (torch.rand(4, 3, 16, 32) * 2 - 1).requires_grad_(True)
    assert perturb_for_guide(image, 0.0) is image
    torch.manual_seed(0)
    first = perturb_for_guide(image, 0.3)
    torch.manual_seed(0)
    again = perturb_for_guide(image, 0.3)
    assert torch.equal(first, again) and not torch.equal(first, image)   # reproducible from the torch seed
    assert first.shape == image.shape and float(first.detach().abs().max()) <= 1.0
    first.sum().backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0
