"""Networks and conditioning: shapes, gradients, hand-made conditioning, registries."""

from __future__ import annotations

import pytest
import torch

from semguard.config import ConditioningConfig, DiscriminatorConfig, ModelConfig
from semguard.data.sample import Box
from semguard.errors import ConfigError
from semguard.labels import IGNORE_ID
from semguard.losses.adversary import DISCRIMINATOR_KINDS, build_discriminator
from semguard.models import GENERATORS, build_generator
from semguard.models.conditioning import (
    LABEL_CHANNELS, ConditioningSpec, box_pixel_bounds, build_conditioning,
)
from semguard.models.discriminators import MultiScalePatchDiscriminator
from semguard.models.generators import ResnetGenerator, SpadeGenerator

H, W = 32, 64


def tiny_cfg(generator: str = "spade", **conditioning) -> ModelConfig:
    return ModelConfig(
        generator=generator, base_channels=4, n_blocks=2, n_downsample=2,
        conditioning=ConditioningConfig(**conditioning) if conditioning else ConditioningConfig(),
        discriminator=DiscriminatorConfig(n_scales=2, base_channels=4, n_layers=3, spectral_norm=True),
    )


def random_batch(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, H, W, generator=g) * 2 - 1
    label = torch.randint(0, 19, (batch, H, W), generator=g)
    label[:, :2, :] = IGNORE_ID
    instances = torch.zeros(batch, H, W, dtype=torch.int64)
    instances[:, 10:20, 10:30] = 1
    boxes = [[Box((10, 10, 30, 20), 13, 1), Box((40, 2, 43, 9), 7)], [Box((1, 1, 5, 5), 6)]][:batch]
    return image, label, instances, boxes


def assert_all_params_have_grad(module: torch.nn.Module) -> None:
    missing = [n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"parameters without gradient: {missing}"


# ---------------------------------------------------------------- conditioning


def test_conditioning_channel_counts():
    assert ConditioningSpec().channels == LABEL_CHANNELS + 2 * 4 + 1 == 29
    assert ConditioningSpec(labels=True, boxes=False, boundaries=False).channels == 20
    assert ConditioningSpec(False, True, False, box_classes=(7,)).channels == 2
    assert ConditioningSpec(False, False, False).channels == 0
    spec = ConditioningSpec()
    assert len(spec.channel_names()) == spec.channels


def test_conditioning_hand_made_case():
    label = torch.zeros(1, 6, 8, dtype=torch.int64)
    label[0, 0, 0] = IGNORE_ID
    label[0, 5, 7] = 18
    instances = torch.zeros(1, 6, 8, dtype=torch.int64)
    instances[0, 2:4, 2:5] = 3
    boxes = [[Box((3, 1, 6, 4), 7), Box((0, 0, 2, 2), 0)]]  # a sign, and a road box (not a box class)
    spec = ConditioningSpec(box_classes=(6, 7))
    cond = build_conditioning(label, instances, boxes, spec)
    assert cond.shape == (1, 20 + 4 + 1, 6, 8) and cond.dtype == torch.float32
    # one-hot labels: exactly one hot channel per pixel; ignore is channel 19
    assert torch.equal(cond[0, :20].sum(0), torch.ones(6, 8))
    assert cond[0, 19, 0, 0] == 1 and cond[0, 0, 0, 0] == 0
    assert cond[0, 18, 5, 7] == 1 and cond[0, 0, 1, 1] == 1
    # light (6): nothing. sign (7): filled columns 3..5, rows 1..3 (half-open)
    assert cond[0, 20].sum() == 0 and cond[0, 21].sum() == 0
    fill = torch.zeros(6, 8)
    fill[1:4, 3:6] = 1
    assert torch.equal(cond[0, 22], fill)
    edge = fill.clone()
    edge[2, 4] = 0  # the single interior pixel of a 3x3 box
    assert torch.equal(cond[0, 23], edge)
    # instance boundaries: both sides of the 3 / 0 border
    inside = torch.zeros(6, 8, dtype=torch.bool)
    inside[2:4, 2:5] = True
    boundary = cond[0, 24].bool()
    assert boundary[2, 2] and boundary[1, 2] and boundary[2, 1] and boundary[3, 4] and boundary[3, 5]
    assert not boundary[0, 7] and not boundary[5, 0]
    assert boundary.sum() == 16  # the 6 pixels inside (all on the border) + 10 outside neighbours


def test_light_state_channels_hand_made_case():
    label = torch.zeros(1, 8, 8, dtype=torch.long)
    boxes = [[Box((1.0, 1.0, 3.0, 4.0), 6, 1, {"state": "red"}), Box((4.0, 0.0, 5.0, 2.0), 6, 2, {"state": "Yellow"}),
              Box((6.0, 5.0, 8.0, 8.0), 6, 3, {"state": "off"}), Box((0.0, 6.0, 2.0, 8.0), 6, 4),
              Box((5.0, 5.0, 6.0, 6.0), 7, 5, {"state": "green"})]]       # a sign's 'state' is not a light's
    spec = ConditioningSpec(labels=False, boxes=False, boundaries=False, light_states=True)
    assert spec.channels == 3 and spec.channel_names() == ["light_state:red", "light_state:amber", "light_state:green"]
    cond = build_conditioning(label, None, boxes, spec)[0]
    expected = torch.zeros(3, 8, 8)
    expected[0, 1:4, 1:3] = 1        # red: rows 1..3, columns 1..2
    expected[1, 0:2, 4:5] = 1        # "Yellow" reads as amber
    assert torch.equal(cond, expected)   # "off", no state, and the sign are in no channel
    full = ConditioningSpec(light_states=True)
    assert full.channels == 29 + 3 and full.channel_names()[-4:] == ["instance_boundary", *spec.channel_names()]
    assert torch.equal(build_conditioning(label, None, boxes, full)[0, -3:], expected)
    assert torch.equal(build_conditioning(label, None, boxes, full)[:, :29],
                       build_conditioning(label, None, boxes, ConditioningSpec()))


def test_box_image_channels_hand_made_case():
    """The source image in [0,1] inside light and sign boxes, 0 elsewhere (a car's box too)."""
    label = torch.zeros(1, 8, 8, dtype=torch.long)
    image = torch.linspace(-1, 1, 3 * 64).reshape(1, 3, 8, 8)
    boxes = [[Box((1.0, 1.0, 3.0, 4.0), 6, 1, {"state": "red"}), Box((4.5, 5.2, 4.6, 5.4), 7, 2),   # sub-pixel sign
              Box((5.0, 0.0, 8.0, 3.0), 13, 3)]]
    spec = ConditioningSpec(labels=False, boxes=False, boundaries=False, box_image=True)
    assert spec.channels == 3 and spec.channel_names() == ["box_image:R", "box_image:G", "box_image:B"]
    cond = build_conditioning(label, None, boxes, spec, image)[0]
    expected = torch.zeros(3, 8, 8)
    expected[:, 1:4, 1:3] = (image[0, :, 1:4, 1:3] + 1) / 2
    expected[:, 5, 4] = (image[0, :, 5, 4] + 1) / 2           # the pixel holding the sub-pixel sign's centre
    assert torch.allclose(cond, expected, atol=1e-7) and cond.min() >= 0 and cond.max() <= 1
    full = ConditioningSpec(light_states=True, box_image=True)
    assert full.channels == 29 + 3 + 3 and full.channel_names()[-3:] == spec.channel_names()
    assert torch.equal(build_conditioning(label, None, boxes, full, image)[0, -3:], cond)
    with pytest.raises(ValueError, match="box_image"):
        build_conditioning(label, None, boxes, spec)


def test_conditioning_written_in_place_equals_its_parts_concatenated():
    """build_conditioning writes every part into one tensor; the reference is torch's one_hot
    and the part builders' own tensors, concatenated (the formula before the in-place build)."""
    from semguard.models.conditioning import box_maps, instance_boundaries

    _, label, instances, boxes = random_batch()
    for spec in (ConditioningSpec(), ConditioningSpec(boxes=False), ConditioningSpec(labels=False),
                 ConditioningSpec(boundaries=False, box_classes=(7, 13))):
        for inst in (instances, None):
            parts = []
            if spec.labels:
                index = torch.where(label == IGNORE_ID, torch.full_like(label, 19), label)
                parts.append(torch.nn.functional.one_hot(index, LABEL_CHANNELS).permute(0, 3, 1, 2).float())
            if spec.boxes:
                parts.append(box_maps(boxes, spec.box_classes, H, W))
            if spec.boundaries:
                parts.append(instance_boundaries(inst) if inst is not None else torch.zeros(2, 1, H, W))
            cond = build_conditioning(label, inst, boxes, spec)
            assert cond.is_contiguous() and torch.equal(cond, torch.cat(parts, dim=1))
    # out= writes into a view and leaves the rest of the tensor alone
    target = torch.full((2, 30, H, W), 7.0)
    box_maps(boxes, (13,), H, W, out=target[:, 3:5])
    assert torch.equal(target[:, 3:5], box_maps(boxes, (13,), H, W)) and (target[:, 5:] == 7).all()


def test_conditioning_all_off_is_none_and_bad_labels_raise():
    image, label, instances, boxes = random_batch()
    assert build_conditioning(label, instances, boxes, ConditioningSpec(False, False, False)) is None
    label[0, 0, 0] = 40
    with pytest.raises(ValueError, match="40"):
        build_conditioning(label, instances, boxes, ConditioningSpec())
    with pytest.raises(ValueError, match="one list per image"):
        build_conditioning(label[:1], instances[:1], boxes, ConditioningSpec())


def test_box_pixel_bounds_half_open_and_tiny_boxes():
    assert box_pixel_bounds((3, 1, 6, 4), 10, 10) == (3, 1, 6, 4)
    assert box_pixel_bounds((2.7, 1.2, 5.4, 3.6), 10, 10) == (3, 1, 5, 4)
    assert box_pixel_bounds((4.1, 4.1, 4.3, 4.3), 10, 10) == (4, 4, 5, 5)  # sub-pixel: its pixel
    assert box_pixel_bounds((-5, -5, 2, 2), 10, 10) == (0, 0, 2, 2)
    assert box_pixel_bounds((12, 0, 15, 3), 10, 10) is None
    assert box_pixel_bounds((3, 3, 3, 5), 10, 10) is None


# ---------------------------------------------------------------- generators


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_forward_backward_reaches_all_params(name):
    torch.manual_seed(0)
    generator, spec = build_generator(tiny_cfg(name))
    image, label, instances, boxes = random_batch()
    condition = build_conditioning(label, instances, boxes, spec)
    out = generator(image, condition)
    assert out.shape == image.shape and out.abs().max() <= 1
    out.square().mean().backward()
    assert_all_params_have_grad(generator)
    assert generator.size_multiple == 4


def test_resnet_is_unconditioned_and_spade_is_not():
    generator, spec = build_generator(tiny_cfg("resnet"))
    assert spec.channels == 0 and isinstance(generator, ResnetGenerator)
    generator, spec = build_generator(tiny_cfg("spade"))
    assert spec.channels == 29 and generator.condition_channels == 29
    _, spec = build_generator(tiny_cfg("spade", labels=True, boxes=False, boundaries=False))
    assert spec.channels == 20


def test_spade_output_depends_on_the_label_map():
    torch.manual_seed(0)
    generator = SpadeGenerator(condition_channels=20, base_channels=4, n_blocks=1, n_downsample=2)
    spec = ConditioningSpec(labels=True, boxes=False, boundaries=False)
    image, label, instances, boxes = random_batch(1)
    other = label.clone()
    other[:, 8:24, 16:48] = 10  # paint a sky patch into the layout
    with torch.no_grad():
        a = generator(image, build_conditioning(label, instances, boxes, spec))
        b = generator(image, build_conditioning(other, instances, boxes, spec))
    assert (a - b).abs().max() > 1e-3
    changed = (a - b).abs().sum(1)[0]
    assert changed[8:24, 16:48].mean() > changed[:4, :8].mean()  # mostly where the labels changed


def test_spade_unconditioned_ablation_and_shape_checks():
    generator = SpadeGenerator(condition_channels=0, base_channels=4, n_blocks=1, n_downsample=1)
    image = torch.rand(1, 3, H, W) * 2 - 1
    assert generator(image, None).shape == image.shape
    conditioned = SpadeGenerator(condition_channels=3, base_channels=4, n_blocks=1, n_downsample=2)
    with pytest.raises(ValueError, match="condition"):
        conditioned(image, None)
    with pytest.raises(ValueError, match="divisible by size_multiple=4"):
        conditioned(torch.zeros(1, 3, 30, 64), torch.zeros(1, 3, 30, 64))
    with pytest.raises(ValueError, match="shape"):
        conditioned(image, torch.zeros(1, 5, H, W))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_fully_convolutional_and_encode(name):
    generator, spec = build_generator(tiny_cfg(name))
    layers = (0, 1, 2, 3, 4)
    for height, width in [(32, 64), (16, 40)]:
        image = torch.rand(1, 3, height, width) * 2 - 1
        label = torch.zeros(1, height, width, dtype=torch.int64)
        condition = build_conditioning(label, label, [[]], spec)
        assert generator(image, condition).shape == image.shape
        features = generator.encode(image, condition, layers)
        assert [f.shape[1] for f in features] == generator.encode_channels(layers) == [4, 8, 16, 16, 16]
        assert features[0].shape[-2:] == (height, width)
        assert features[2].shape[-2:] == (height // 4, width // 4)
    with pytest.raises(ValueError, match="valid layers are 0..4"):
        generator.encode_channels((5,))


# ---------------------------------------------------------------- discriminators


@pytest.mark.parametrize("spectral_norm", [True, False])
def test_discriminator_forward_backward(spectral_norm):
    torch.manual_seed(0)
    discriminator = MultiScalePatchDiscriminator(base_channels=4, n_layers=3, n_scales=3, spectral_norm=spectral_norm)
    image = (torch.rand(2, 3, H, W) * 2 - 1).requires_grad_(True)
    logits = discriminator(image)
    assert len(logits) == 3 and all(l.shape[:2] == (2, 1) and l.numel() > 0 for l in logits)
    sum(l.mean() for l in logits).backward()
    assert_all_params_have_grad(discriminator)
    assert image.grad is not None


def test_build_discriminator_from_config():
    discriminator = build_discriminator(tiny_cfg())
    assert isinstance(discriminator, MultiScalePatchDiscriminator) and len(discriminator.scales) == 2
    assert set(DISCRIMINATOR_KINDS) == {"patch", "projection", "segmentation"}


def test_unknown_names_list_valid_ones():
    with pytest.raises(ConfigError, match="resnet, spade"):
        build_generator(tiny_cfg("pix2pix"))
    with pytest.raises(ConfigError, match="patch"):
        build_discriminator(tiny_cfg(), kind="stylegan")


def test_the_conditioning_spec_is_built_from_every_config_field():
    import dataclasses

    from semguard.config import ConditioningConfig
    from semguard.models.conditioning import ConditioningSpec

    config_fields = {f.name for f in dataclasses.fields(ConditioningConfig)}
    assert config_fields <= {f.name for f in dataclasses.fields(ConditioningSpec)}
    config = ConditioningConfig(labels=False, boxes=True, boundaries=False, light_states=True, box_image=True)
    spec = ConditioningSpec.from_config(config)
    assert all(getattr(spec, name) == getattr(config, name) for name in config_fields)
