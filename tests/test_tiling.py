"""Tiled inference against whole-frame inference (semguard.translate.tiling)."""

import pytest
import torch
from torch import nn

from semguard.translate.tiling import ramp, seam_error, tile_starts, tiled_apply


class LocalNet(nn.Module):
    """Fully convolutional, receptive field radius 2 + 2*3 + 2 = 10 px at most, one stride-2 stage."""

    size_multiple = 2

    def __init__(self, norm: bool = False):
        super().__init__()
        layers = [nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2, padding=1)]
        if norm:
            layers.append(nn.InstanceNorm2d(6))
        layers += [nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
                   nn.Conv2d(6, 3, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, image, condition=None):
        return self.net(image if condition is None else image + condition)


@pytest.fixture
def frame():
    torch.manual_seed(0)
    return torch.rand(2, 3, 70, 134) * 2 - 1


@pytest.mark.parametrize("length,tile,overlap,multiple", [(128, 32, 8, 2), (134, 48, 16, 4), (30, 64, 8, 2), (2048, 512, 64, 4)])
def test_tiles_cover_the_axis_with_the_overlap(length, tile, overlap, multiple):
    starts = tile_starts(length, min(tile, length), overlap, multiple)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(s % multiple == 0 for s in starts[:-1])
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_cosine_ramps_of_neighbours_sum_to_one():
    left, right = ramp(32, 8, False, True), ramp(32, 8, True, False)
    assert torch.allclose(left[-8:] + right[:8], torch.ones(8))
    assert float(left.min()) > 0


def test_tiled_matches_whole_frame_within_tolerance(frame):
    model = LocalNet().eval()
    condition = torch.rand_like(frame) * 0.1
    whole = tiled_apply(model, [frame, condition], tile=None, size_multiple=2)
    tiled = tiled_apply(model, [frame, condition], tile=32, overlap=16, size_multiple=2, tile_batch=3)
    error = seam_error(tiled, whole, tile=32, overlap=16, size_multiple=2)
    print("seam error (LocalNet, tile 32, overlap 16):", error)
    # stated tolerance: the receptive field (10 px) is inside the overlap's low-weight part
    assert error["max_abs"] < 1e-2 and error["mean_abs"] < 3e-4
    # far from every cut edge tiles are exact
    assert torch.allclose(tiled[..., :6, :6], whole[..., :6, :6], atol=1e-6)


def test_wider_overlap_lowers_the_seam_error(frame):
    model = LocalNet().eval()
    whole = tiled_apply(model, [frame], tile=None, size_multiple=2)
    narrow = seam_error(tiled_apply(model, [frame], tile=32, overlap=4, size_multiple=2), whole, 32, 4, 2)
    wide = seam_error(tiled_apply(model, [frame], tile=32, overlap=16, size_multiple=2), whole, 32, 16, 2)
    assert wide["seam_mean_abs"] < narrow["seam_mean_abs"]


def test_frame_smaller_than_a_tile_and_odd_sizes_are_one_pass(frame):
    model = LocalNet().eval()
    small = frame[..., :31, :45]  # not a multiple of 2: padded, cropped back
    out = tiled_apply(model, [small], tile=64, overlap=8, size_multiple=2)
    assert out.shape == (2, 3, 31, 45)
    assert torch.allclose(out, tiled_apply(model, [small], tile=None, size_multiple=2))


def test_frame_statistics_make_instance_norm_tiles_match_the_whole_frame(frame):
    model = LocalNet(norm=True).eval()
    whole = tiled_apply(model, [frame], tile=None, size_multiple=2)
    per_tile = tiled_apply(model, [frame], tile=48, overlap=24, size_multiple=2, frame_norm=False)
    shared = tiled_apply(model, [frame], tile=48, overlap=24, size_multiple=2, frame_norm=True)
    bad, good = seam_error(per_tile, whole, 48, 24, 2), seam_error(shared, whole, 48, 24, 2)
    print("instance norm: per-tile", bad, "frame statistics", good)
    assert good["mean_abs"] < 6e-4 and good["mean_abs"] < bad["mean_abs"] / 5
    # the model's own forward is restored afterwards
    assert "forward" not in vars(model.net[3])


def test_model_that_changes_the_size_is_refused(frame):
    with pytest.raises(ValueError, match="fully convolutional"):
        tiled_apply(lambda x: x[..., :-1, :], [frame], tile=32, overlap=8)


# ---------------------------------------------------------------- staged tiles (generators)


def _spade(version=2):
    from semguard.models.generators import SpadeGenerator

    torch.manual_seed(5)
    return SpadeGenerator(7, base_channels=4, n_blocks=2, n_downsample=2, spade_version=version).eval()


@pytest.mark.parametrize("tile", [32, (16, 48), 40])
@pytest.mark.parametrize("version", [1, 2, 3])
def test_staged_tiles_equal_the_whole_frame(frame, tile, version):
    """Per-stage halos and frame statistics: exact, no seams (tolerance: float rounding)."""
    from semguard.translate.tiling import pad_to_multiple, staged_apply

    generator = _spade(version)
    condition = torch.rand(2, 7, *frame.shape[-2:])
    with torch.no_grad():
        whole = generator(pad_to_multiple(frame, 4), pad_to_multiple(condition, 4))[..., :70, :134]
    tiled = staged_apply(generator.stages(), frame, condition, tile, 4, model=generator)
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().max()) < 1e-5
    assert not any("forward" in vars(m) for m in generator.modules())   # norms restored


@pytest.mark.parametrize("version", [2, 3])
def test_each_stage_in_its_own_tile_equals_the_whole_frame(frame, version):
    """stage_tiles: some stages whole, others in tiles of different sizes (as --tile auto plans
    them); the output is still the whole-frame pass (tolerance: float rounding)."""
    from semguard.translate.tiling import pad_to_multiple, staged_apply

    generator = _spade(version)
    condition = torch.rand(2, 7, *frame.shape[-2:])
    stages = generator.stages()
    assert [stage.name for stage in stages].count("embed") == 1   # one shared bottleneck embedding
    cycle = [None, 24, (16, 48), (40, 32)]
    stage_tiles = [cycle[index % len(cycle)] for index in range(len(stages))]
    with torch.no_grad():
        whole = generator(pad_to_multiple(frame, 4), pad_to_multiple(condition, 4))[..., :70, :134]
    tiled = staged_apply(stages, frame, condition, 8, 4, model=generator, stage_tiles=stage_tiles)
    assert float((tiled - whole).abs().max()) < 1e-5
    with pytest.raises(ValueError, match="stage_tiles has 2 entries"):
        staged_apply(stages, frame, condition, 8, 4, model=generator, stage_tiles=[None, 8])


def test_staged_tiles_of_the_resnet_baseline_equal_the_whole_frame(frame):
    from semguard.models.generators import ResnetGenerator
    from semguard.translate.tiling import pad_to_multiple, staged_apply

    torch.manual_seed(6)
    generator = ResnetGenerator(base_channels=4, n_blocks=2, n_downsample=2).eval()
    with torch.no_grad():
        whole = generator(pad_to_multiple(frame, 4))[..., :70, :134]
    assert float((staged_apply(generator.stages(), frame, None, 24, 4, model=generator) - whole).abs().max()) < 1e-5


def test_a_stage_running_an_unlisted_norm_is_refused(frame):
    import dataclasses

    from semguard.translate.tiling import staged_apply

    generator = _spade()
    stages = [dataclasses.replace(stage, norms=()) if stage.name == "block0.second" else stage
              for stage in generator.stages()]
    with pytest.raises(RuntimeError, match="without frame statistics"):
        staged_apply(stages, frame, torch.rand(2, 7, 70, 134), 32, 4, model=generator)
