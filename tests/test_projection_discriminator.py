"""The projection discriminator (model.discriminator.kind: projection): the label projection in
closed form, and a hand-made two-class world where only a discriminator that knows each patch's
class can tell real from translated."""

from __future__ import annotations

import pytest
import torch

from semguard.config import config_from_dict
from semguard.losses.adversarial import discriminator_loss
from semguard.losses.adversary import (
    DISCRIMINATOR_KINDS,
    PatchAdversary,
    ProjectionAdversary,
    build_adversary,
    build_discriminator,
    condition_on_label,
)
from semguard.models.discriminators import (
    MultiScalePatchDiscriminator,
    PatchDiscriminator,
    ProjectionPatchDiscriminator,
    patch_receptive_field,
)


def test_a_one_class_patch_reads_its_class_and_a_mixed_patch_its_label_histogram():
    logits = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(1, 6, 2, 2) / 7   # B=1, K=6, 2x2 patches
    label = torch.full((1, 4, 4), 255)
    label[0, :2, :2] = 4                      # top-left patch: all class 4
    label[0, :2, 2:] = 1                      # top-right: class 1 on the left half, 5 on the right
    label[0, :2, 3] = 5
    label[0, 2:, :2] = 0                      # bottom-left: class 0 on 2 of its 4 pixels, the rest ignore
    label[0, 2, 0] = label[0, 2, 1] = 255
    value, share = condition_on_label(logits, label)
    assert value.shape == (1, 1, 2, 2) and share.shape == (1, 2, 2)
    assert value[0, 0, 0, 0] == pytest.approx(float(logits[0, 4, 0, 0]))
    assert value[0, 0, 0, 1] == pytest.approx(float(0.5 * logits[0, 1, 0, 1] + 0.5 * logits[0, 5, 0, 1]))
    assert value[0, 0, 1, 0] == pytest.approx(float(logits[0, 0, 1, 0]))
    assert share.tolist() == [[[1.0, 1.0], [0.5, 0.0]]]   # the unlabelled patch does not count
    assert float(value[0, 0, 1, 1]) == 0.0


def test_projection_is_psi_plus_the_class_embedding():
    torch.manual_seed(0)
    network = ProjectionPatchDiscriminator(base_channels=4, n_layers=2, n_scales=1, spectral_norm=False,
                                           num_classes=3, feature_channels=5).eval()
    image = torch.randn(2, 3, 16, 16)
    phi = torch.nn.functional.leaky_relu(network.features[0](image), 0.2)
    psi = torch.einsum("bchw,c->bhw", phi, network.read_out[0].weight[0, :, 0, 0]) + network.read_out[0].bias[0]
    out = network(image)[0]
    for k in range(3):
        expected = psi + torch.einsum("bchw,c->bhw", phi, network.embedding[0].weight[k, :, 0, 0])
        torch.testing.assert_close(out[:, k], expected, rtol=1e-5, atol=1e-5)


def _two_class_world(count: int, seed: int):
    """Frames of one class each (A = 0 or B = 1, half and half). Real: A frames red, B frames blue.
    Translated: A frames blue, B frames red. Both sets hold the same images, so only the label tells
    them apart."""
    generator = torch.Generator().manual_seed(seed)
    classes = torch.arange(count) % 2
    red = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    blue = torch.tensor([-1.0, -1.0, 1.0])[:, None, None]
    noise = lambda: 0.1 * torch.randn(count, 3, 16, 16, generator=generator)   # noqa: E731
    real = torch.stack([red if c == 0 else blue for c in classes]).expand(count, 3, 16, 16) + noise()
    fake = torch.stack([blue if c == 0 else red for c in classes]).expand(count, 3, 16, 16) + noise()
    label = classes[:, None, None].expand(count, 16, 16).clone()
    return real, fake, label


def _train(network, adversary, steps: int = 150):
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3, betas=(0.5, 0.999))
    for step in range(steps):
        real, fake, label = _two_class_world(8, seed=step)
        real_logits, fake_logits = adversary.split(network(torch.cat([real, fake])), real.shape[0])
        loss = adversary.discriminator_term(real_logits, label, fake_logits, label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    real, fake, label = _two_class_world(64, seed=10_000)   # held out
    with torch.no_grad():
        real_logits, fake_logits = adversary.split(network(torch.cat([real, fake])), real.shape[0])
    return real_logits, fake_logits, label


def test_only_the_projection_discriminator_tells_a_real_sky_patch_from_a_translated_one():
    """Real and translated sets hold the same images with swapped labels: a patch discriminator sees
    two identical distributions, the projection discriminator separates them per class."""
    torch.manual_seed(0)
    projection = ProjectionPatchDiscriminator(base_channels=8, n_layers=2, n_scales=1, num_classes=2,
                                              feature_channels=16)
    real_logits, fake_logits, label = _train(projection, ProjectionAdversary("hinge"))
    real_value = condition_on_label(real_logits[0], label)[0].mean(dim=(1, 2, 3))
    fake_value = condition_on_label(fake_logits[0], label)[0].mean(dim=(1, 2, 3))
    assert float((real_value > 0).float().mean()) == 1.0 and float((fake_value < 0).float().mean()) == 1.0
    assert float(ProjectionAdversary("hinge").discriminator_term(real_logits, label, fake_logits, label)) < 0.5

    torch.manual_seed(0)
    patch = MultiScalePatchDiscriminator(base_channels=8, n_layers=2, n_scales=1)
    real_logits, fake_logits, _ = _train(patch, PatchAdversary("hinge"))
    real_mean, fake_mean = real_logits[0].mean(dim=(1, 2, 3)), fake_logits[0].mean(dim=(1, 2, 3))
    accuracy = 0.5 * (float((real_mean > 0).float().mean()) + float((fake_mean <= 0).float().mean()))
    assert abs(accuracy - 0.5) <= 0.1   # chance: it cannot know which label a red frame carries
    assert float(discriminator_loss(real_logits, fake_logits, "hinge")) > 1.5   # hinge at chance is 2


def test_the_kind_is_registered_needs_target_labels_and_counts_only_labelled_patches():
    config = config_from_dict({"model": {"discriminator": {"kind": "projection", "n_scales": 2, "n_layers": 2,
                                                           "base_channels": 4}}})
    network = build_discriminator(config.model)
    adversary = build_adversary(config.loss, config.model.discriminator)
    assert isinstance(network, ProjectionPatchDiscriminator) and isinstance(adversary, ProjectionAdversary)
    assert DISCRIMINATOR_KINDS["projection"].adversary.needs_target_labels
    image = torch.randn(4, 3, 32, 32)
    out = network(image)
    assert [tuple(scale.shape[:2]) for scale in out] == [(4, 19), (4, 19)]
    label = torch.randint(0, 19, (2, 32, 32))
    unlabelled = torch.full((2, 32, 32), 255)
    real, fake = adversary.split(out, 2)
    # fake frames without a label count nothing: the loss is the real half's alone
    only_real = adversary.discriminator_term(real, label, fake, unlabelled)
    values, weights = ProjectionAdversary._conditioned(real, label, None)
    expected = torch.stack([(torch.relu(1 - v[:, 0]) * w).sum() / w.sum() for v, w in zip(values, weights)]).mean()
    torch.testing.assert_close(only_real, expected)
    loss = adversary.generator_term(fake, label)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in network.embedding.parameters())


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
def test_patch_receptive_field_matches_the_gradient_support(n_layers):
    """The closed form 9 * 2^n - 2 against the support of one logit's input gradient (float64; with spectral
    norm there is no instance norm, which would mix every position)."""
    torch.manual_seed(0)
    network = PatchDiscriminator(3, base_channels=4, n_layers=n_layers, spectral_norm=True).double()
    probe = 4 * patch_receptive_field(n_layers)
    image = torch.randn(1, 3, probe, probe, dtype=torch.float64, requires_grad=True)
    logits = network(image)
    centre = logits.shape[-1] // 2
    logits[0, 0, centre, centre].backward()
    support = image.grad.abs().sum(dim=(0, 1)) > 0
    rows = torch.nonzero(support.any(dim=1)).flatten()
    assert int(rows[-1] - rows[0] + 1) == patch_receptive_field(n_layers)
