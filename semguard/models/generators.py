"""The translators: a conditioned SPADE generator (semguard) and the unconditioned baseline.

Both map a source image float [B,3,H,W] in [-1,1] to a translated image of the same
shape in [-1,1], are fully convolutional (any H, W divisible by `size_multiple`), and
share one encoder layout so PatchNCE taps the same kinds of features in both:

    stem:  reflect-pad, conv7x7 3 -> base, instance norm, ReLU            (full resolution)
    down_i (i = 1..n_downsample): conv3x3 stride 2, channels x2, IN, ReLU  (1/2**i)
    blocks (n_blocks residual blocks at 1/2**n_downsample)
    decoder: n_downsample x (nearest upsample x2, halve channels), conv -> 3, tanh

`encode(image, condition, layers)` returns the feature maps at these taps:
layer 0 = stem output, layer i (1..n_downsample) = after down_i, layer n_downsample + j
(1..n_blocks) = after residual block j. PatchNCE (CUT) compares the source image's and
the translated image's features at the same taps; `translate_and_encode` returns the
translation and the source image's taps from one pass (they are the forward pass's own
intermediate maps). `stages()` gives the forward pass as stages for exact tiled inference
(semguard.models.staged, semguard.translate.tiling.staged_apply).

- `SpadeGenerator`: residual blocks and decoder blocks are SPADE residual blocks, so the
  conditioning (label map, box maps, boundaries) modulates every block at its resolution.
- `ResnetGenerator`: the CUT/CycleGAN resnet generator; sees only the image.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from semguard.models.conditioning import ConditioningSpec
from semguard.models.spade import (
    DEFAULT_SPADE_VERSION,
    ConditionEmbedding,
    SpadeResBlock,
    check_spade_version,
    embedding_layers,
    modulation_kernel,
    resize_condition,
)
from semguard.models.staged import Stage, chain_stages, residual_chain_stages


def _check_image(image: torch.Tensor, size_multiple: int, who: str) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"{who}: image must be float [B,3,H,W], got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if height % size_multiple or width % size_multiple:
        raise ValueError(
            f"{who}: image size {height}x{width} must be divisible by size_multiple={size_multiple} "
            "(pad or crop the image first)"
        )


class ImageEncoder(nn.Module):
    """Stem + strided downsampling: [B,3,H,W] -> list of taps (stem, down_1, ..., down_n)."""

    def __init__(self, base_channels: int, n_downsample: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, base_channels, 7),
            nn.InstanceNorm2d(base_channels),
            nn.ReLU(inplace=True),
        )
        self.tap_channels = [base_channels]
        downs = []
        channels = base_channels
        for _ in range(n_downsample):
            downs.append(nn.Sequential(
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1),
                nn.InstanceNorm2d(channels * 2),
                nn.ReLU(inplace=True),
            ))
            channels *= 2
            self.tap_channels.append(channels)
        self.downs = nn.ModuleList(downs)
        self.out_channels = channels

    def stages(self) -> list[nn.Module]:
        return [self.stem, *self.downs]


class ResnetBlock(nn.Module):
    """CycleGAN residual block: x + IN(conv3x3(ReLU(IN(conv3x3(x))))), reflect padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _check_layers(layers: Sequence[int], n_taps: int, who: str) -> list[int]:
    layers = [int(layer) for layer in layers]
    bad = [layer for layer in layers if not 0 <= layer < n_taps]
    if bad:
        raise ValueError(f"{who}: encode layers {bad} out of range; valid layers are 0..{n_taps - 1}")
    return layers


class SpadeGenerator(nn.Module):
    """Source image + conditioning -> translated image (semguard's translator).

    image: float [B,3,H,W] in [-1,1], H and W divisible by 2**n_downsample.
    condition: float [B,condition_channels,H,W] (see semguard.models.conditioning), or
    None when condition_channels == 0 (then SPADE blocks fall back to affine IN).
    Output: float [B,3,H,W] in [-1,1] (tanh).
    spade_version: SPADE architecture (semguard.models.spade.SPADE_VERSIONS); version 2
    embeds the conditioning once per resolution (`embeddings["scale<f>"]`, f = frame
    pixels per feature pixel) for all the norms there.
    """

    conditioned = True

    def __init__(self, condition_channels: int, base_channels: int = 32, n_blocks: int = 4,
                 n_downsample: int = 2, spade_hidden_channels: int | None = None,
                 spade_version: int = DEFAULT_SPADE_VERSION) -> None:
        super().__init__()
        if condition_channels < 0 or base_channels < 1 or n_blocks < 0 or n_downsample < 0:
            raise ValueError("SpadeGenerator: channel and block counts must be non-negative (base_channels >= 1)")
        self.condition_channels = condition_channels
        self.spade_version = check_spade_version(spade_version)
        self.size_multiple = 2 ** n_downsample
        hidden = spade_hidden_channels or min(128, 2 * base_channels)
        self.encoder = ImageEncoder(base_channels, n_downsample)
        channels = self.encoder.out_channels
        self.blocks = nn.ModuleList(
            [SpadeResBlock(channels, channels, condition_channels, hidden, spade_version) for _ in range(n_blocks)]
        )
        self.up_blocks = nn.ModuleList()
        for _ in range(n_downsample):
            self.up_blocks.append(SpadeResBlock(channels, channels // 2, condition_channels, hidden, spade_version))
            channels //= 2
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.to_image = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh())
        self._tap_channels = self.encoder.tap_channels + [self.encoder.out_channels] * n_blocks
        # the frame-pixels-per-pixel factor of every block's resolution, in forward order
        self._block_scales = [2 ** n_downsample] * n_blocks + [2 ** k for k in reversed(range(n_downsample))]
        if spade_version >= 2 and condition_channels > 0:
            self.embeddings = nn.ModuleDict({f"scale{scale}": ConditionEmbedding(condition_channels, hidden, embedding_layers(spade_version))
                                             for scale in dict.fromkeys(self._block_scales)})

    @classmethod
    def from_config(cls, model_cfg, spec: ConditioningSpec) -> "SpadeGenerator":
        """Build from a semguard.config.ModelConfig and the conditioning it implies."""
        return cls(condition_channels=spec.channels, base_channels=model_cfg.base_channels,
                   n_blocks=model_cfg.n_blocks, n_downsample=model_cfg.n_downsample,
                   spade_version=model_cfg.spade_version)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """nn.Module.load_state_dict, refusing weights of another SPADE version by name."""
        found = spade_layout_version(state_dict)
        if found is not None and found != self.spade_version and not (
                self.condition_channels == 0 and {found, self.spade_version} <= {2, 3}):
            raise RuntimeError(
                f"weights of SPADE architecture version {found}, this generator is version {self.spade_version} "
                f"(model.spade_version: {found} builds theirs; versions: semguard.models.spade.SPADE_VERSIONS)"
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _check(self, image: torch.Tensor, condition: torch.Tensor | None) -> None:
        _check_image(image, self.size_multiple, "SpadeGenerator")
        if self.condition_channels == 0:
            if condition is not None:
                raise ValueError("SpadeGenerator was built with condition_channels=0 but got a condition")
            return
        if condition is None:
            raise ValueError(f"SpadeGenerator expects a condition [B,{self.condition_channels},H,W], got None")
        expected = (image.shape[0], self.condition_channels, *image.shape[-2:])
        if tuple(condition.shape) != expected:
            raise ValueError(f"SpadeGenerator: condition must have shape {expected}, got {tuple(condition.shape)}")

    def _features(self, condition: torch.Tensor | None, size: tuple[int, int], scale: int) -> torch.Tensor | None:
        """What the SPADE norms at one resolution read: the shared embedding (version 2) or
        the conditioning resized once (version 1); None when unconditioned."""
        if condition is None or self.condition_channels == 0:
            return None
        if self.spade_version == 1:
            return resize_condition(condition, size)
        return self.embeddings[f"scale{scale}"](condition, size)

    def encode_channels(self, layers: Sequence[int]) -> list[int]:
        """Channel count of each tap in `layers` (for PatchNCE heads built up front)."""
        layers = _check_layers(layers, len(self._tap_channels), "SpadeGenerator")
        return [self._tap_channels[layer] for layer in layers]

    def encode(self, image: torch.Tensor, condition: torch.Tensor | None, layers: Sequence[int]) -> list[torch.Tensor]:
        """Feature maps at the taps `layers` (see the module docstring), in the order given.

        Runs the network only as deep as the deepest requested tap.
        """
        return self._run(image, condition, layers, translate=False)[1]

    def translate_and_encode(self, image: torch.Tensor, condition: torch.Tensor | None,
                             layers: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(forward(image, condition), encode(image, condition, layers)) from one pass: the
        taps are the forward pass's own intermediate maps (PatchNCE's source features)."""
        output, taps = self._run(image, condition, layers, translate=True)
        return output, taps

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return self._run(image, condition, (), translate=True)[0]

    def _run(self, image: torch.Tensor, condition: torch.Tensor | None, layers: Sequence[int],
             translate: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        self._check(image, condition)
        layers = _check_layers(layers, len(self._tap_channels), "SpadeGenerator")
        wanted, deepest = set(layers), max(layers, default=-1)
        taps: dict[int, torch.Tensor] = {}
        h = image
        stages = self.encoder.stages()
        for index, stage in enumerate(stages):
            if not translate and index > deepest:
                break
            h = stage(h)
            if index in wanted:
                taps[index] = h
        scale = self.size_multiple
        if len(self.blocks) and (translate or deepest >= len(stages)):
            features = self._features(condition, h.shape[-2:], scale)
            for index, block in enumerate(self.blocks, start=len(stages)):
                if not translate and index > deepest:
                    break
                h = block(h, features)
                if index in wanted:
                    taps[index] = h
        output = None
        if translate:
            for block in self.up_blocks:
                h = self.upsample(h)
                scale //= 2
                h = block(h, self._features(condition, h.shape[-2:], scale))
            output = self.to_image(h)
        return output, [taps[layer] for layer in layers]

    def stages(self) -> list[Stage]:
        """The forward pass as stages for tiled inference (semguard.models.staged).

        As in forward(), the blocks at the bottleneck read one shared conditioning embedding
        (versions 2 and 3): an "embed" stage computes it and the state carries it through those
        blocks, instead of every stage embedding its own region again (8 embeddings for 4
        blocks). Each upsampling block embeds its region itself: a full-resolution embedding
        held frame-wide between stages would cost more memory than its recomputation costs time.
        """
        encoder = [module for stage in self.encoder.stages() for module in stage]
        stages = chain_stages("encoder", encoder, 1)
        scale = self.size_multiple
        shared = self.spade_version >= 2 and self.condition_channels > 0 and len(self.blocks) > 0
        if shared:
            def embed(state, condition, _scale=scale):
                return (*state, self._features(condition, state[0].shape[-2:], _scale))

            stages.append(Stage("embed", embed, scale, scale, embedding_layers(self.spade_version) * scale))
        middle = len(self.blocks)
        for index, block in enumerate(self.blocks):
            if shared:
                # the embedding rides in the state: (x, e) -> (shortcut, h, e) -> (out, e), the last block drops it
                def first(state, condition, _block=block):
                    return (*_block.first_half(state[0], state[-1]), state[-1])

                def second(state, condition, _block=block, _keep=index < middle - 1):
                    out = _block.second_half(state[0], state[1], state[2])
                    return (out, state[2]) if _keep else (out,)

                # modulation conv (3x3 in version 2, 1x1 in 3) and conv1 (or conv2)
                radius = (modulation_kernel(self.spade_version) // 2 + 1) * scale
            else:
                first, second = self._embedding_stage_pair(block, False, scale)
                radius = 3 * scale
            stages.append(Stage(f"block{index}.first", first, scale, scale, radius,
                                tuple((norm, 0) for norm in block.input_norms())))
            stages.append(Stage(f"block{index}.second", second, scale, scale, radius, ((block.norm2.norm, 1),)))
        for index, block in enumerate(self.up_blocks, start=middle):
            scale_in, scale = scale, scale // 2
            first, second = self._embedding_stage_pair(block, True, scale)
            # embedding conv(s), modulation conv and conv1 (or conv2) at the block's resolution
            stages.append(Stage(f"block{index}.first", first, scale_in, scale, 3 * scale,
                                tuple((norm, 0) for norm in block.input_norms())))
            stages.append(Stage(f"block{index}.second", second, scale, scale, 3 * scale, ((block.norm2.norm, 1),)))
        stages += chain_stages("to_image", list(self.to_image), 1)
        return stages

    def _embedding_stage_pair(self, block: SpadeResBlock, upsample: bool, scale: int):
        """The (first, second) stage functions of a block whose stages each embed their own region."""
        def first(state, condition):
            x = self.upsample(state[0]) if upsample else state[0]
            return block.first_half(x, self._features(condition, x.shape[-2:], scale))

        def second(state, condition):
            shortcut, h = state
            return (block.second_half(shortcut, h, self._features(condition, h.shape[-2:], scale)),)

        return first, second


def spade_layout_version(state_dict) -> int | None:
    """The SPADE version whose parameter names a generator state dict has (None: no SPADE
    norms, or unconditioned norms, whose layout versions 2 and 3 share)."""
    keys = list(state_dict)
    if any(".shared.0." in key or key.endswith((".gamma.weight", ".norm.weight")) for key in keys):
        return 1
    if any(key.startswith("embeddings.") and ".body.2." in key for key in keys):
        return 3
    if any(key.startswith("embeddings.") for key in keys):
        return 2
    return None


class ResnetGenerator(nn.Module):
    """The unconditioned CUT/CycleGAN resnet generator (for baselines).

    image: float [B,3,H,W] in [-1,1], H and W divisible by 2**n_downsample; condition must
    be None. Output: float [B,3,H,W] in [-1,1]. Upsampling is nearest x2 + conv3x3
    (instead of transposed convs) to avoid checkerboard artefacts.
    """

    conditioned = False

    def __init__(self, base_channels: int = 64, n_blocks: int = 9, n_downsample: int = 2) -> None:
        super().__init__()
        if base_channels < 1 or n_blocks < 0 or n_downsample < 0:
            raise ValueError("ResnetGenerator: channel and block counts must be non-negative (base_channels >= 1)")
        self.condition_channels = 0
        self.size_multiple = 2 ** n_downsample
        self.encoder = ImageEncoder(base_channels, n_downsample)
        channels = self.encoder.out_channels
        self.blocks = nn.ModuleList([ResnetBlock(channels) for _ in range(n_blocks)])
        ups = []
        for _ in range(n_downsample):
            ups.append(nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(channels, channels // 2, 3, padding=1),
                nn.InstanceNorm2d(channels // 2),
                nn.ReLU(inplace=True),
            ))
            channels //= 2
        self.ups = nn.ModuleList(ups)
        self.to_image = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels, 3, 7), nn.Tanh())
        self._tap_channels = self.encoder.tap_channels + [self.encoder.out_channels] * n_blocks

    @classmethod
    def from_config(cls, model_cfg, spec: ConditioningSpec) -> "ResnetGenerator":
        """Build from a semguard.config.ModelConfig (the conditioning is ignored: unconditioned)."""
        return cls(base_channels=model_cfg.base_channels, n_blocks=model_cfg.n_blocks,
                   n_downsample=model_cfg.n_downsample)

    def _check(self, image: torch.Tensor, condition: torch.Tensor | None) -> None:
        _check_image(image, self.size_multiple, "ResnetGenerator")
        if condition is not None:
            raise ValueError("ResnetGenerator is unconditioned: pass condition=None")

    def encode_channels(self, layers: Sequence[int]) -> list[int]:
        """Channel count of each tap in `layers`."""
        layers = _check_layers(layers, len(self._tap_channels), "ResnetGenerator")
        return [self._tap_channels[layer] for layer in layers]

    def encode(self, image: torch.Tensor, condition: torch.Tensor | None, layers: Sequence[int]) -> list[torch.Tensor]:
        """Feature maps at the taps `layers` (see the module docstring), in the order given."""
        return self._run(image, condition, layers, translate=False)[1]

    def translate_and_encode(self, image: torch.Tensor, condition: torch.Tensor | None,
                             layers: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(forward(image), encode(image, None, layers)) from one pass (see SpadeGenerator)."""
        output, taps = self._run(image, condition, layers, translate=True)
        return output, taps

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(image, condition, (), translate=True)[0]

    def _run(self, image: torch.Tensor, condition: torch.Tensor | None, layers: Sequence[int],
             translate: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        self._check(image, condition)
        layers = _check_layers(layers, len(self._tap_channels), "ResnetGenerator")
        stages = [*self.encoder.stages(), *self.blocks]
        wanted, deepest = set(layers), max(layers, default=-1)
        taps: dict[int, torch.Tensor] = {}
        h = image
        for index, stage in enumerate(stages if translate else stages[:deepest + 1]):
            h = stage(h)
            if index in wanted:
                taps[index] = h
        output = None
        if translate:
            for stage in self.ups:
                h = stage(h)
            output = self.to_image(h)
        return output, [taps[layer] for layer in layers]

    def stages(self) -> list[Stage]:
        """The forward pass as stages for tiled inference (semguard.models.staged)."""
        encoder = [module for stage in self.encoder.stages() for module in stage]
        stages = chain_stages("encoder", encoder, 1)
        for index, block in enumerate(self.blocks):
            stages += residual_chain_stages(f"block{index}", list(block.body), self.size_multiple)
        decoder = [module for up in self.ups for module in up] + list(self.to_image)
        return stages + chain_stages("decoder", decoder, self.size_multiple)
