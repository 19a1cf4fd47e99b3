"""Networks: registries and the one place a ModelConfig becomes modules.

GENERATORS is a plain dict name -> class; every class has `from_config(...)`, so building
never dispatches on name strings. An unknown name is a ConfigError that lists the valid
names. Discriminator kinds, which pair a network of this package with its adversarial
objective, are registered once in semguard.losses.adversary.DISCRIMINATOR_KINDS.
"""

from __future__ import annotations

from torch import nn

from semguard.errors import ConfigError
from semguard.models.conditioning import UNCONDITIONED, ConditioningSpec, build_conditioning
from semguard.models.discriminators import MultiScalePatchDiscriminator
from semguard.models.generators import ResnetGenerator, SpadeGenerator
from semguard.models.segmentation_discriminator import SegmentationDiscriminator

GENERATORS: dict[str, type[nn.Module]] = {"spade": SpadeGenerator, "resnet": ResnetGenerator}

__all__ = [
    "GENERATORS", "ConditioningSpec", "UNCONDITIONED", "build_conditioning",
    "SpadeGenerator", "ResnetGenerator", "MultiScalePatchDiscriminator", "SegmentationDiscriminator",
    "conditioning_spec", "build_generator", "build_texture_discriminator",
]


def _lookup(registry: dict[str, type], name: str, key: str) -> type:
    if name not in registry:
        raise ConfigError(f"unknown {key} '{name}'; valid names: {', '.join(sorted(registry))}")
    return registry[name]


def conditioning_spec(model_cfg) -> ConditioningSpec:
    """The ConditioningSpec a ModelConfig implies (unconditioned generators get no channels)."""
    generator_cls = _lookup(GENERATORS, model_cfg.generator, "model.generator")
    if not getattr(generator_cls, "conditioned", False):
        return UNCONDITIONED
    return ConditioningSpec.from_config(model_cfg.conditioning)


def build_generator(model_cfg) -> tuple[nn.Module, ConditioningSpec]:
    """ModelConfig -> (generator, its ConditioningSpec).

    "resnet" (unconditioned) forces an all-off spec (channels 0): its conditioning
    section is ignored, so the CUT baseline config need not switch each part off.
    """
    spec = conditioning_spec(model_cfg)
    generator_cls = GENERATORS[model_cfg.generator]
    return generator_cls.from_config(model_cfg, spec), spec


def build_texture_discriminator(model_cfg) -> nn.Module | None:
    """The patch discriminator beside a segmentation one (model.discriminator.texture_patch), else None."""
    d = model_cfg.discriminator
    if not d.texture_patch or d.kind == "patch":
        return None
    return MultiScalePatchDiscriminator.from_config(model_cfg)
