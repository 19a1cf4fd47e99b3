"""SPADE versions: the fast norms against the reference formula, old weights, FLOP counts, stages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from semguard.config import config_from_dict, config_to_dict
from semguard.errors import SemguardError
from semguard.models.generators import ResnetGenerator, SpadeGenerator
from semguard.models.spade import ConditionEmbedding, LegacySpadeNorm, SpadeNorm, resize_condition
from semguard.models.staged import run_stages
from semguard.checkpoints import load_checkpoint, save_checkpoint
from semguard.translate import Translator


def _reference(x, condition, embed_conv, gamma_conv, beta_conv):
    """SPADE(x, m) = IN(x) * (1 + gamma(e)) + beta(e), e = ReLU(conv(m resized to x)), written out."""
    normalized = F.instance_norm(x, eps=1e-5)
    embedding = F.relu(embed_conv(F.adaptive_avg_pool2d(condition, x.shape[-2:])))
    return normalized * (1 + gamma_conv(embedding)) + beta_conv(embedding)


def _conv_from(weight, bias):
    conv = torch.nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[-1], padding=weight.shape[-1] // 2)
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias)
    return conv


@pytest.mark.parametrize("branches,kernel", [(1, 3), (2, 3), (1, 1)])
def test_fast_spade_equals_the_reference_formula(branches, kernel):
    torch.manual_seed(0)
    channels, hidden = 6, 8
    x = torch.randn(2, channels, 8, 16) * 3 + 1
    condition = torch.rand(2, 5, 32, 64)
    embedding = ConditionEmbedding(5, hidden)
    norm = SpadeNorm(channels, 5, hidden, branches=branches, kernel_size=kernel)
    torch.nn.init.normal_(norm.modulation.weight, std=0.2)
    torch.nn.init.normal_(norm.modulation.bias, std=0.2)
    outputs = norm(x, embedding(condition, x.shape[-2:]))
    outputs = outputs if branches > 1 else (outputs,)
    weight, bias = norm.modulation.weight, norm.modulation.bias
    for k, output in enumerate(outputs):   # fused conv rows: (gamma_1, beta_1, gamma_2, beta_2, ...)
        g, b = slice(2 * k * channels, (2 * k + 1) * channels), slice((2 * k + 1) * channels, (2 * k + 2) * channels)
        expected = _reference(x, condition, embedding.body[0], _conv_from(weight[g], bias[g]), _conv_from(weight[b], bias[b]))
        assert torch.allclose(output, expected, atol=1e-5), float((output - expected).abs().max())


def test_legacy_spade_norm_equals_the_reference_formula():
    torch.manual_seed(1)
    norm = LegacySpadeNorm(6, 5, 8)
    x, condition = torch.randn(2, 6, 8, 16), torch.rand(2, 5, 8, 16)
    expected = _reference(x, condition, norm.shared[0], norm.gamma, norm.beta)
    assert torch.allclose(norm(x, condition), expected, atol=1e-5)


def test_unconditioned_spade_norm_is_affine_instance_norm():
    torch.manual_seed(2)
    norm = SpadeNorm(6, 0)
    norm.affine.data.normal_()
    x = torch.randn(2, 6, 8, 16)
    gamma, beta = norm.affine.data.chunk(2)
    expected = F.instance_norm(x, weight=1 + gamma, bias=beta, eps=1e-5)
    assert torch.allclose(norm(x, None), expected, atol=1e-5)


# ---------------------------------------------------------------- version 1 checkpoints


def _old_spade_norm(norm, x, condition):
    """semguard's SPADE norm before versions (per-norm resize and embedding), verbatim."""
    normalized = norm.norm(x)
    hidden = norm.shared(resize_condition(condition, x.shape[-2:]))
    return normalized * (1 + norm.gamma(hidden)) + norm.beta(hidden)


def _old_generator_forward(generator, image, condition):
    def block_forward(block, x):
        shortcut = (block.conv_shortcut(_old_spade_norm(block.norm_shortcut, x, condition))
                    if block.learned_shortcut else x)
        h = block.conv1(block.act(_old_spade_norm(block.norm1, x, condition)))
        return shortcut + block.conv2(block.act(_old_spade_norm(block.norm2, h, condition)))

    h = image
    for stage in generator.encoder.stages():
        h = stage(h)
    for block in generator.blocks:
        h = block_forward(block, h)
    for block in generator.up_blocks:
        h = block_forward(block, generator.upsample(h))
    return generator.to_image(h)


def _tiny(version: int, condition_channels: int = 29) -> SpadeGenerator:
    torch.manual_seed(3)
    return SpadeGenerator(condition_channels, base_channels=4, n_blocks=2, n_downsample=2, spade_version=version).eval()


def test_version_1_keeps_the_old_parameter_names_and_function():
    generator = _tiny(1)
    names = set(generator.state_dict())
    assert {"blocks.0.norm1.shared.0.weight", "blocks.0.norm1.gamma.weight", "blocks.0.norm1.beta.bias",
            "up_blocks.0.norm_shortcut.shared.0.weight", "up_blocks.1.conv_shortcut.weight"} <= names
    image, condition = torch.rand(2, 3, 32, 64) * 2 - 1, torch.rand(2, 29, 32, 64)
    with torch.no_grad():
        assert torch.allclose(generator(image, condition), _old_generator_forward(generator, image, condition), atol=1e-6)


def _translator_checkpoint(path, state, model: dict, drop_version: bool):
    config = config_to_dict(config_from_dict({"model": model}))
    if drop_version:
        del config["model"]["spade_version"]   # as written before the version was recorded
    save_checkpoint(path, {"kind": "translator", "semguard_version": "0.old", "config": config,
                           "generator": state, "generator_ema": state, "step": 3})
    return path


def test_an_old_checkpoint_loads_as_version_1_with_the_same_output(tmp_path):
    old = _tiny(1)
    model = {"base_channels": 4, "n_blocks": 2, "n_downsample": 2}
    path = _translator_checkpoint(tmp_path / "old.pt", old.state_dict(), model, drop_version=True)
    assert load_checkpoint(path, kind="translator")["config"]["model"]["spade_version"] == 1
    translator = Translator.from_checkpoint(path, tile=None)
    assert translator.generator.spade_version == 1
    image, condition = torch.rand(1, 3, 32, 64) * 2 - 1, torch.rand(1, 29, 32, 64)
    with torch.no_grad():
        assert torch.allclose(translator.generator(image, condition), _old_generator_forward(old, image, condition),
                              atol=1e-6)


def test_weights_of_another_version_are_refused_naming_it(tmp_path):
    path = _translator_checkpoint(tmp_path / "mixed.pt", _tiny(1).state_dict(),
                                  {"base_channels": 4, "n_blocks": 2, "n_downsample": 2}, drop_version=False)
    with pytest.raises(SemguardError, match="SPADE architecture version 1, this generator is version 2 .model.spade_version: 1"):
        Translator.from_checkpoint(path)
    with pytest.raises(RuntimeError, match="version 2, this generator is version 1"):
        _tiny(1).load_state_dict(_tiny(2).state_dict())
    with pytest.raises(ValueError, match="known versions"):
        _tiny(7)


# ---------------------------------------------------------------- cost


def _flops(model, *inputs) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()


def test_version_2_saves_exactly_the_repeated_embeddings():
    """v1 - v2 FLOPs = the embedding convs v2 no longer repeats: at each resolution all
    but one of its SPADE norms' conv3x3 condition -> hidden (2 * 9 * C * hidden per pixel)."""
    condition_channels, hidden = 29, 8   # base 4 -> hidden min(128, 2 * 4)
    image, condition = torch.rand(1, 3, 32, 64), torch.rand(1, condition_channels, 32, 64)
    v1, v2 = _flops(_tiny(1), image, condition), _flops(_tiny(2), image, condition)
    per_pixel = 2 * 9 * condition_channels * hidden
    # bottleneck 8x16: 2 blocks x 2 norms share one; 16x32 and 32x64: 3 norms (shortcut, 1, 2) each share one
    repeated = (4 - 1) * 8 * 16 + (3 - 1) * 16 * 32 + (3 - 1) * 32 * 64
    assert v1 - v2 == per_pixel * repeated
    assert _flops(_tiny(3), image, condition) < v2 / 1.5


# ---------------------------------------------------------------- stages


@pytest.mark.parametrize("version,condition_channels", [(1, 29), (2, 29), (3, 29), (2, 0)])
def test_stages_compute_the_forward_pass(version, condition_channels):
    generator = _tiny(version, condition_channels)
    image = torch.rand(2, 3, 32, 64) * 2 - 1
    condition = torch.rand(2, condition_channels, 32, 64) if condition_channels else None
    with torch.no_grad():
        assert torch.allclose(run_stages(generator.stages(), image, condition), generator(image, condition), atol=1e-6)


def test_resnet_stages_compute_the_forward_pass():
    torch.manual_seed(4)
    generator = ResnetGenerator(base_channels=4, n_blocks=2, n_downsample=2).eval()
    image = torch.rand(2, 3, 32, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(run_stages(generator.stages(), image, None), generator(image), atol=1e-6)


def test_version_2_trains_every_parameter():
    generator = SpadeGenerator(5, base_channels=4, n_blocks=1, n_downsample=2).train()
    image, condition = torch.rand(2, 3, 32, 64) * 2 - 1, torch.rand(2, 5, 32, 64)
    generator(image, condition).square().mean().backward()
    missing = [n for n, p in generator.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("kind", ["spade", "resnet"])
def test_translate_and_encode_is_forward_and_encode_in_one_pass(kind):
    torch.manual_seed(7)
    generator = (_tiny(2) if kind == "spade" else ResnetGenerator(base_channels=4, n_blocks=2, n_downsample=2)).train()
    image = torch.rand(2, 3, 32, 64) * 2 - 1
    condition = torch.rand(2, 29, 32, 64) if kind == "spade" else None
    layers = (0, 2, 4, 3)
    output, taps = generator.translate_and_encode(image, condition, layers)
    assert torch.equal(output, generator(image, condition))
    for tap, separate in zip(taps, generator.encode(image, condition, layers)):
        assert torch.equal(tap, separate)


def test_patchnce_with_the_translation_taps_equals_a_second_encoder_pass():
    from semguard.config import LossConfig
    from semguard.losses.patchnce import PatchSampler
    from semguard.train.objective import GeneratorObjective

    generator = _tiny(2).train()
    loss = LossConfig(nce_layers=(0, 1, 2, 4), nce_patches=16)
    sampler = PatchSampler(generator.encode_channels(loss.nce_layers), mlp_channels=8)
    objective = GeneratorObjective(generator, sampler, loss, helpers=None)
    image, condition = torch.rand(2, 3, 32, 64) * 2 - 1, torch.rand(2, 29, 32, 64)
    translated, taps = generator.translate_and_encode(image, condition, loss.nce_layers)
    torch.manual_seed(8)
    reused = objective.patchnce(image, translated, condition, taps)
    torch.manual_seed(8)
    separate = objective.patchnce(image, translated, condition)
    assert torch.equal(reused, separate)


def test_layout_detection_tells_every_version_apart():
    from semguard.models.generators import spade_layout_version

    for version in (1, 2, 3):
        assert spade_layout_version(_tiny(version).state_dict()) == version
    assert spade_layout_version(_tiny(1, condition_channels=0).state_dict()) == 1
    _tiny(3, condition_channels=0).load_state_dict(_tiny(2, condition_channels=0).state_dict())   # same layout
    with pytest.raises(RuntimeError, match="version 3, this generator is version 2"):
        _tiny(2).load_state_dict(_tiny(3).state_dict())


def test_version_1_parameters_keep_their_old_order():
    """The optimizer state of a checkpoint is by parameter position: resuming a version-1
    run needs the old registration order."""
    block = _tiny(1).up_blocks[0]
    names = [name for name, _ in block.named_parameters()]
    norm = ["shared.0.weight", "shared.0.bias", "gamma.weight", "gamma.bias", "beta.weight", "beta.bias"]
    assert names == ([f"norm1.{n}" for n in norm] + ["conv1.weight", "conv1.bias"] + [f"norm2.{n}" for n in norm]
                     + ["conv2.weight", "conv2.bias"] + [f"norm_shortcut.{n}" for n in norm] + ["conv_shortcut.weight"])
