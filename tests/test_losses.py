"""Losses: closed-form minima, masking, PatchNCE preference, weight-file errors, summing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semguard.data.sample import Box
from semguard.errors import ConfigError, WeightsMissingError
from semguard.labels import IGNORE_ID
from semguard.losses import (
    BoxPerceptualLoss, PatchSampler, discriminator_loss, generator_loss, guide_feature_extractor,
    lpips_feature_extractor, multilayer_patchnce_loss, patchnce_loss,
    seg_consistency_loss, weighted_sum,
)
from semguard.losses.box_perceptual import LPIPS_WEIGHT_FILES
from semguard.models.generators import SpadeGenerator

H, W = 32, 64


class TinyFeatures(nn.Module):
    """A two-level conv feature extractor standing in for LPIPS / the guide encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, image):
        a = torch.relu(self.conv1(image))
        return [a, torch.relu(self.conv2(a))]


def images(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(2, 3, H, W, generator=g) * 2 - 1
    translated = (source + 0.5 * torch.randn(2, 3, H, W, generator=g)).clamp(-1, 1)
    return source, translated


BOXES = [[Box((10, 4, 20, 12), 13), Box((40.0, 3.0, 42.0, 9.0), 7)], [Box((0, 0, 4, 5), 6), Box((30, 20, 50, 30), 0)]]


def box_mask(boxes, classes=(6, 7, 11, 13)):
    mask = torch.zeros(len(boxes), 1, H, W, dtype=torch.bool)
    for b, image_boxes in enumerate(boxes):
        for box in image_boxes:
            if box.class_id in classes:
                x1, y1, x2, y2 = (int(v) for v in box.xyxy)
                mask[b, :, y1:y2, x1:x2] = True
    return mask.expand(-1, 3, -1, -1)


# ---------------------------------------------------------------- adversarial


@pytest.mark.parametrize("mode", ["hinge", "lsgan", "nonsaturating"])
def test_adversarial_losses_order_real_and_fake(mode):
    good = [torch.full((2, 1, 4, 8), 3.0), torch.full((2, 1, 2, 4), 3.0)]
    bad = [-x for x in good]
    # A discriminator that separates real from fake has the lower loss ...
    assert discriminator_loss(good, bad, mode) < discriminator_loss(bad, good, mode)
    # ... and a generator whose fakes are taken as real has the lower loss.
    assert generator_loss(good, mode) < generator_loss(bad, mode)


def test_hinge_closed_forms():
    real, fake = [torch.tensor([1.0, 2.0, 5.0])], [torch.tensor([-1.0, -3.0])]
    assert discriminator_loss(real, fake, "hinge") == 0  # separated by the margin
    assert discriminator_loss([torch.zeros(3)], [torch.zeros(3)], "hinge") == pytest.approx(2.0)
    assert generator_loss([torch.tensor([0.5, 1.5])], "hinge") == pytest.approx(-1.0)
    assert generator_loss(torch.ones(2), "lsgan") == 0
    assert discriminator_loss(torch.ones(2), torch.zeros(2), "lsgan") == 0
    assert discriminator_loss([torch.zeros(1)], [torch.zeros(1)], "nonsaturating") == pytest.approx(2 * math.log(2))
    with pytest.raises(ValueError, match="hinge, lsgan, nonsaturating"):
        generator_loss([torch.zeros(1)], "wgan")


# ---------------------------------------------------------------- seg consistency


def test_seg_loss_of_perfect_logits_is_near_zero_and_ignores_255():
    label = torch.randint(0, 19, (2, H, W))
    label[:, :4] = IGNORE_ID
    logits = torch.nn.functional.one_hot(torch.where(label == IGNORE_ID, 0, label), 19).permute(0, 3, 1, 2).float() * 50
    logits[:, :, :4] = torch.randn(2, 19, 4, W) * 10  # garbage where the label is ignore
    assert seg_consistency_loss(logits, label) < 1e-6
    wrong = logits.roll(1, dims=1)
    assert seg_consistency_loss(wrong, label) > 10


def test_seg_loss_matches_cross_entropy_with_weights_and_resizes():
    torch.manual_seed(0)
    logits = torch.randn(2, 19, H, W, requires_grad=True)
    label = torch.randint(0, 19, (2, H, W))
    label[0, 0] = IGNORE_ID
    weights = torch.rand(19) + 0.1
    expected = torch.nn.functional.cross_entropy(logits, label, weight=weights, ignore_index=IGNORE_ID)
    assert seg_consistency_loss(logits, label, weights).item() == pytest.approx(expected.item(), rel=1e-5)
    by_name = seg_consistency_loss(logits, label, {"car": 3.0, "7": 2.0})
    vector = torch.ones(19)
    vector[13], vector[7] = 3.0, 2.0
    assert by_name.item() == pytest.approx(seg_consistency_loss(logits, label, vector).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="valid names"):
        seg_consistency_loss(logits, label, {"spaceship": 1.0})
    small = seg_consistency_loss(torch.randn(2, 19, H // 4, W // 4), label)
    assert torch.isfinite(small)
    all_ignored = seg_consistency_loss(logits, torch.full((2, H, W), IGNORE_ID))
    assert all_ignored == 0
    all_ignored.backward()


# ---------------------------------------------------------------- PatchNCE


def test_patchnce_prefers_matching_patches():
    torch.manual_seed(0)
    key = torch.nn.functional.normalize(torch.randn(2, 64, 16), dim=-1)
    matching = patchnce_loss(key.clone(), key, temperature=0.07)
    shuffled = patchnce_loss(key[:, torch.randperm(64)], key, temperature=0.07)
    assert matching < shuffled
    assert matching < 0.5 and shuffled > 2.0


def test_patchnce_through_generator_features_and_sampler():
    torch.manual_seed(0)
    generator = SpadeGenerator(condition_channels=0, base_channels=4, n_blocks=1, n_downsample=2)
    layers = (0, 1, 2, 3)
    sampler = PatchSampler(generator.encode_channels(layers), mlp_channels=16)
    assert len(list(sampler.parameters())) == 4 * len(layers)  # heads exist before any forward
    source = torch.rand(2, 3, H, W) * 2 - 1
    translated = generator(source, None)
    src = generator.encode(source, None, layers)
    fake = generator.encode(translated, None, layers)
    loss = multilayer_patchnce_loss(sampler, src, fake, num_patches=32, temperature=0.07)
    loss.backward()
    assert all(p.grad is not None for p in sampler.parameters())
    assert all(p.grad is not None for p in generator.parameters() if p.requires_grad)
    # The same features as source and translation: lower than a translation of other content.
    same = multilayer_patchnce_loss(sampler, src, [f.detach() for f in src], num_patches=32)
    other = generator.encode(torch.rand(2, 3, H, W) * 2 - 1, None, layers)
    assert same < multilayer_patchnce_loss(sampler, src, other, num_patches=32)


def test_patch_sampler_lazy_heads_and_shared_ids():
    sampler = PatchSampler(None, mlp_channels=8)
    features = [torch.randn(2, 5, 8, 16), torch.randn(2, 7, 4, 8)]
    samples, ids = sampler(features, num_patches=10, generator=torch.Generator().manual_seed(1))
    assert [s.shape for s in samples] == [(2, 10, 8), (2, 10, 8)]
    assert torch.allclose(samples[0].norm(dim=-1), torch.ones(2, 10), atol=1e-4)
    again, _ = sampler(features, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(samples, again))
    all_positions, _ = sampler(features, num_patches=0)
    assert all_positions[1].shape == (2, 32, 8)


# ---------------------------------------------------------------- box perceptual


def test_box_loss_is_zero_for_identical_images():
    source, _ = images()
    loss = BoxPerceptualLoss(TinyFeatures())
    assert loss(source, source.clone(), BOXES) == 0


def test_box_loss_has_exactly_zero_gradient_outside_boxes():
    source, translated = images()
    translated.requires_grad_(True)
    loss = BoxPerceptualLoss(TinyFeatures(), {"car": 2.0})
    value = loss(source, translated, BOXES)
    assert value > 0
    value.backward()
    inside = box_mask(BOXES)
    assert torch.count_nonzero(translated.grad[~inside]) == 0
    assert torch.count_nonzero(translated.grad[inside]) > 0


def test_box_loss_ignores_changes_outside_boxes_and_weights_classes():
    source, translated = images()
    inside = box_mask(BOXES)
    outside_only = torch.where(inside, source, translated)
    loss = BoxPerceptualLoss(TinyFeatures())
    assert loss(source, outside_only, BOXES) == 0
    car_only = [[BOXES[0][0]], []]
    base = loss(source, translated, car_only)
    doubled = BoxPerceptualLoss(TinyFeatures(), {"car": 2.0})
    doubled.feature_extractor.load_state_dict(loss.feature_extractor.state_dict())
    assert doubled(source, translated, car_only).item() == pytest.approx(2 * base.item(), rel=1e-5)
    assert loss(source, translated, [[], []]) == 0  # no boxes: zero
    with pytest.raises(ConfigError, match="not box classes"):
        BoxPerceptualLoss(TinyFeatures(), {"road": 1.0})


# ---------------------------------------------------------------- attribute consistency

LIGHT_TASKS = [{"class_id": 6, "attribute": "state", "values": ["amber", "green", "red"]},
               {"class_id": 7, "attribute": "pictogram", "values": ["arrow", "stop"]}]


def _crop_classifier():
    from semguard.models.crop_classifier import CropClassifier

    torch.manual_seed(0)
    return CropClassifier(LIGHT_TASKS, crop_size=12, channels=4).eval().requires_grad_(False)


def test_attribute_loss_is_the_mean_cross_entropy_of_each_read():
    from semguard.losses.attribute_consistency import AttributeConsistencyLoss
    from semguard.models.crop_classifier import extract_crops

    classifier = _crop_classifier()
    source, translated = images()
    boxes = [[Box((4.0, 2.0, 9.0, 12.0), 6, 0, {"state": "red"}), Box((20.0, 2.0, 28.0, 10.0), 7, 0, {"pictogram": "stop"}),
              Box((30.0, 4.0, 40.0, 14.0), 13, 1)],                                      # a car: no task
             [Box((10.0, 10.0, 14.0, 20.0), 6, 0, {"state": "amber"}),
              Box((40.0, 3.0, 44.0, 9.0), 6, 0, {"state": "blue"}),                        # unknown value: skipped
              Box((0.0, 0.0, 6.0, 6.0), 6, 0)]]                                            # no attribute: skipped
    value = AttributeConsistencyLoss(classifier)(translated, boxes)
    # reference: each read on its own
    reads = [(0, boxes[0][0], 0, 2), (0, boxes[0][1], 1, 1), (1, boxes[1][0], 0, 0)]
    expected = []
    for b, box, task, target in reads:
        crop = extract_crops(translated[b], torch.tensor([box.xyxy]), classifier.crop_size, classifier.margin)
        expected.append(F.cross_entropy(classifier(crop)[task], torch.tensor([target])))
    assert value.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    assert AttributeConsistencyLoss(classifier)(translated, [[boxes[0][2]], [boxes[1][2]]]) == 0


def test_attribute_loss_reaches_the_image_inside_the_grown_box_only():
    from semguard.losses.attribute_consistency import AttributeConsistencyLoss

    classifier = _crop_classifier()
    _, translated = images()
    translated.requires_grad_(True)
    light = Box((8.0, 4.0, 16.0, 20.0), 6, 0, {"state": "green"})     # grown by 0.25: x 6..18, y 0..24
    AttributeConsistencyLoss(classifier)(translated, [[light], []]).backward()
    grad = translated.grad.abs().sum(1)
    assert grad[0, :24, 5:19].sum() > 0
    outside = grad.clone()
    outside[0, :25, 5:19] = 0
    assert torch.count_nonzero(outside) == 0
    assert all(p.grad is None for p in classifier.parameters())


def test_guide_features_do_not_train_the_guide():
    source, translated = images()
    translated.requires_grad_(True)
    guide = nn.Conv2d(3, 4, 3, padding=1)  # requires_grad True, as a co-trained guide would
    extractor = guide_feature_extractor(guide, lambda model, image: [model(image)])
    value = BoxPerceptualLoss(extractor)(source, translated, BOXES)
    value.backward()
    assert guide.weight.grad is None and translated.grad is not None
    assert list(extractor.state_dict()) == []  # the guide belongs to the trainer


def test_missing_lpips_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for net, filename in LPIPS_WEIGHT_FILES.items():
        with pytest.raises(WeightsMissingError) as info:
            lpips_feature_extractor(net)
        message = str(info.value)
        assert str(tmp_path / "hub" / "checkpoints" / filename) in message
        assert "never downloads" in message
    with pytest.raises(ConfigError, match="alex, vgg"):
        lpips_feature_extractor("squeeze")


def test_lpips_weights_load_from_the_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    reference = torchvision.models.alexnet(weights=None).features.eval()
    # Only the conv part is needed by LPIPS (keeps the test file small).
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()}, checkpoints / LPIPS_WEIGHT_FILES["alex"])
    extractor = lpips_feature_extractor("alex")
    assert not any(p.requires_grad for p in extractor.parameters())
    image = torch.rand(1, 3, H, W) * 2 - 1
    features = extractor(image)
    assert len(features) == 5
    scaled = (image - extractor.shift) / extractor.scale
    assert torch.allclose(features[0], reference[:2](scaled), atol=1e-5)
    assert torch.allclose(features[4], reference[:12](scaled), atol=1e-4)
    (checkpoints / LPIPS_WEIGHT_FILES["alex"]).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMissingError, match="could not be read"):
        lpips_feature_extractor("alex")


# ---------------------------------------------------------------- total


def test_weighted_sum_weights_terms_and_skips_switched_off_ones():
    a = torch.tensor(2.0, requires_grad=True)
    terms = {"gan": a * 1.0, "nce": torch.tensor(3.0), "box": torch.tensor(float("nan"))}
    total = weighted_sum(terms, {"gan": 0.5, "nce": 2.0, "box": 0.0, "seg": 1.0})
    assert total.item() == pytest.approx(7.0)          # the NaN of a weight-0 term is not added
    total.backward()
    assert a.grad == pytest.approx(0.5)
    with pytest.raises(ValueError, match="without a weight"):
        weighted_sum({"gan": a}, {"nce": 1.0})
