"""Issue 28's options on their own: the seg constraint's multiplier, the worst guide's reading, the
segmentation discriminator's receptive field."""

import math

import pytest
import torch
import torch.nn.functional as F

from semguard.losses.constraint import ConstraintMultiplier
from semguard.losses.seg_consistency import seg_consistency_loss
from semguard.models.segmentation_discriminator import SegmentationDiscriminator, receptive_field
from semguard.train.objective import FrozenHelpers, GeneratorObjective
from semguard.config import LossConfig


def test_the_multiplier_rises_above_target_and_falls_below_it():
    multiplier = ConstraintMultiplier(1.0, target=0.5, rate=0.1, smoothing=0.0, low=0.01, high=1000.0)
    values = [multiplier.update(0.9) for _ in range(10)]          # above target: rises every step
    assert all(b > a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(math.exp(10 * 0.1 * 0.4))   # closed form with no smoothing
    peak = values[-1]
    values = [multiplier.update(0.1) for _ in range(10)]          # below target: falls every step
    assert all(b < a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(peak * math.exp(-10 * 0.1 * 0.4))
    assert multiplier.update(0.5) == pytest.approx(values[-1])     # at target: stays


def test_the_multiplier_smooths_clamps_and_round_trips():
    multiplier = ConstraintMultiplier(1.0, target=0.0, rate=1.0, smoothing=0.5, low=0.5, high=4.0)
    multiplier.update(1.0)                                        # average 1.0
    assert multiplier.average == 1.0 and multiplier.value == pytest.approx(math.e)
    multiplier.update(0.0)                                        # average 0.5
    assert multiplier.average == 0.5 and multiplier.value == 4.0  # e * e**0.5 > 4: clamped
    copy = ConstraintMultiplier(1.0, target=0.0, rate=1.0, smoothing=0.5, low=0.5, high=4.0)
    copy.load_state_dict(multiplier.state_dict())
    assert copy.update(3.0) == multiplier.update(3.0) and copy.average == multiplier.average
    falling = ConstraintMultiplier(1.0, target=10.0, rate=1.0, smoothing=0.0, low=0.5, high=4.0)
    assert falling.update(0.0) == 0.5
    with pytest.raises(ValueError, match="nan"):
        falling.update(float("nan"))
    with pytest.raises(ValueError, match="outside"):
        ConstraintMultiplier(5.0, target=0.0, low=0.5, high=4.0)


class _FixedGuide(torch.nn.Module):
    """A 'guide' that returns fixed logits whatever the image (plus 0 * image, to stay in the graph)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, image):
        return self.logits + 0.0 * image.mean()


def _objective(ensemble_reduce: str, guides: list[torch.nn.Module]) -> GeneratorObjective:
    helpers = FrozenHelpers(guide=guides[0], extra_guides=tuple(guides[1:]), ensemble_reduce=ensemble_reduce)
    return GeneratorObjective(torch.nn.Identity(), None, LossConfig(seg=1.0, nce=0.0), helpers)


def test_the_worst_guide_counts_per_pixel():
    # two classes, a 1x2 frame labelled [0, 1]; guide A reads pixel 0 right and pixel 1 wrong, guide B the reverse
    label = torch.tensor([[[0, 1]]])
    right, wrong = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    logits_a = torch.stack([right, right], dim=-1).view(1, 2, 1, 2)   # reads class 0 at both pixels
    logits_b = torch.stack([wrong, wrong], dim=-1).view(1, 2, 1, 2)   # reads class 1 at both pixels
    ce_right = F.cross_entropy(right.view(1, 2), torch.tensor([0])).item()
    ce_wrong = F.cross_entropy(right.view(1, 2), torch.tensor([1])).item()
    translated = torch.zeros(1, 3, 1, 2)
    worst = _objective("max", [_FixedGuide(logits_a), _FixedGuide(logits_b)]).seg_term(translated, label)
    assert worst.item() == pytest.approx(ce_wrong)            # each pixel: one guide reads it wrong
    mean = _objective("mean", [_FixedGuide(logits_a), _FixedGuide(logits_b)]).seg_term(translated, label)
    assert mean.item() == pytest.approx((ce_right + ce_wrong) / 2)
    single = _objective("mean", [_FixedGuide(logits_a)]).seg_term(translated, label)
    assert single.item() == pytest.approx(seg_consistency_loss(logits_a, label).item())
    ignored = torch.tensor([[[0, 255]]])                        # the ignored pixel counts for neither reduction
    worst = _objective("max", [_FixedGuide(logits_a), _FixedGuide(logits_b)]).seg_term(translated, ignored)
    assert worst.item() == pytest.approx(ce_wrong)


@pytest.mark.parametrize("levels,expected", [(1, 10), (2, 28), (3, 60)])
def test_the_receptive_field_doubles_per_level_and_bounds_what_an_output_sees(levels, expected):
    assert receptive_field(levels, probe=128) == (expected, expected)
    # a pixel outside the field cannot change the output at the centre; one inside does
    torch.manual_seed(0)
    network = SegmentationDiscriminator(num_classes=2, base_channels=4, n_levels=levels, spectral_norm=False).double()
    image = torch.rand(1, 3, 128, 128, dtype=torch.float64)
    centre = 65
    before = network(image)[0, :, centre, centre]
    far, near = image.clone(), image.clone()
    far[0, :, centre + expected, centre] += 1.0
    near[0, :, centre + 2, centre] += 1.0
    assert torch.equal(network(far)[0, :, centre, centre], before)
    assert not torch.equal(network(near)[0, :, centre, centre], before)
