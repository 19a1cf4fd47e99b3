"""SPADE: normalisation whose scale and shift are predicted, per pixel, from the conditioning.

Park et al., "Semantic Image Synthesis with Spatially-Adaptive Normalization" (2019).
A parameter-free normalisation would wash the label layout out of the features; SPADE
puts it back at every block, at that block's resolution:

    SPADE(x, m) = norm(x) * (1 + gamma(e)) + beta(e),   e = ReLU(conv3x3(m'))

where norm is instance normalisation without affine parameters, m' is the conditioning
m resized to x's spatial size, e its embedding and gamma, beta conv3x3s on e.

Architecture versions (recorded as `model.spade_version` in every run's config):

- 2 (default): the embedding e is computed once per resolution and forward pass
  (`ConditionEmbedding`) and shared by every SPADE norm at that resolution; gamma and
  beta come from one fused conv (hidden -> 2C); two SPADE norms of the same input
  (a residual block's shortcut and main branch) share one instance norm and one fused
  conv (hidden -> 4C, run one branch at a time). Same formula and kernel sizes as
  version 1; quick-start generator at 64x128: 8.5 GFLOP a frame (version 1: 9.3).
- 3 (opt-in): the shared embedding has two conv3x3 layers and gamma/beta a 1x1 conv,
  so every norm still reads a 5x5 neighbourhood of m', but the per-norm work at full
  resolution is 9x smaller: 4.2 GFLOP a frame. A capacity change: not the default until
  the benchmark's flip figures show it loses nothing.
- 1 (legacy, checkpoints written before versions were recorded): every norm has its own
  embedding conv (`LegacySpadeNorm`, parameter names as they were), so old weights load
  unchanged; the conditioning is still resized once per resolution and gamma/beta run as
  one conv of the concatenated weights (the same function as before).

Every parameter-free normalisation is an `nn.InstanceNorm2d` module: semguard.translate.tiling
finds them by type to give tiles frame-wide statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SPADE_VERSIONS = {
    1: "per-norm conditioning embedding (checkpoints written before model.spade_version existed)",
    2: "one conditioning embedding per resolution shared by its norms, fused gamma/beta conv",
    3: "two-layer conditioning embedding per resolution shared by its norms, fused 1x1 gamma/beta conv",
}
DEFAULT_SPADE_VERSION = 2


def check_spade_version(version: int) -> int:
    if version not in SPADE_VERSIONS:
        raise ValueError(f"unknown SPADE architecture version {version!r}; known versions: "
                         + "; ".join(f"{k} = {v}" for k, v in SPADE_VERSIONS.items()))
    return int(version)


def embedding_layers(version: int) -> int:
    """Conv layers of the shared ConditionEmbedding of a SPADE version (>= 2)."""
    return 2 if version >= 3 else 1


def modulation_kernel(version: int) -> int:
    """Kernel size of the fused gamma/beta conv of a SPADE version (>= 2)."""
    return 1 if version >= 3 else 3


def resize_condition(condition: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a conditioning tensor [B,C,H,W] to `size` (h, w).

    Downsampling averages ("area"), so a box one pixel wide still leaves a fractional
    trace at coarse resolutions instead of being skipped by nearest sampling.
    """
    if tuple(condition.shape[-2:]) == tuple(size):
        return condition
    if condition.shape[-2] >= size[0] and condition.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(condition, size)
    return F.interpolate(condition, size=size, mode="nearest")


class ConditionEmbedding(nn.Module):
    """e = ReLU(conv3x3(m')) (layers=1) or ReLU(conv3x3(ReLU(conv3x3(m')))) (layers=2): the
    conditioning m [B,C,H,W] resized to `size` (h, w) and embedded, float
    [B,hidden_channels,h,w]; shared by the SPADE norms at that resolution."""

    def __init__(self, condition_channels: int, hidden_channels: int, layers: int = 1) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        for index in range(layers):
            modules += [nn.Conv2d(condition_channels if index == 0 else hidden_channels, hidden_channels, 3, padding=1),
                        nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*modules)

    def forward(self, condition: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.body(resize_condition(condition, size))


class SpadeNorm(nn.Module):
    """SPADE normalisation (versions 2 and 3) of a feature map, for `branches` modulations of it.

    x: float [B, norm_channels, h, w]; embedding: the shared ConditionEmbedding output at
    x's resolution, float [B, hidden_channels, h, w]. Returns, for k = 1..branches,

        out_k = norm(x) * (1 + gamma_k) + beta_k,   (gamma_1, beta_1, ...) = conv(embedding)

    with one instance norm and one fused conv (kernel_size x kernel_size, rows gamma_1,
    beta_1, gamma_2, ...) for all branches, run one branch at a time (`modulate`): a tensor
    of x's shape, or a tuple of `branches` of them. With condition_channels == 0 gamma_k, beta_k are learned
    per-channel constants (instance norm with affine parameters, the unconditioned
    ablation) and embedding must be None.
    """

    def __init__(self, norm_channels: int, condition_channels: int, hidden_channels: int = 64,
                 branches: int = 1, kernel_size: int = 3) -> None:
        super().__init__()
        self.condition_channels = condition_channels
        self.norm_channels = norm_channels
        self.branches = branches
        self.norm = nn.InstanceNorm2d(norm_channels, affine=False)
        if condition_channels > 0:
            self.modulation = nn.Conv2d(hidden_channels, 2 * branches * norm_channels, kernel_size,
                                        padding=kernel_size // 2)
        else:
            self.affine = nn.Parameter(torch.zeros(2 * branches * norm_channels))
        # the conv predicts (gamma, beta); adding 1 to gamma's bias gives (1 + gamma, beta) with no extra pass
        unit = torch.zeros(branches, 2, norm_channels)
        unit[:, 0] = 1.0
        self.register_buffer("_unit_scale", unit.flatten(), persistent=False)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        normalized = self.norm(x)
        outputs = tuple(self.modulate(normalized, embedding, k) for k in range(self.branches))
        return outputs[0] if self.branches == 1 else outputs

    def modulate(self, normalized: torch.Tensor, embedding: torch.Tensor | None, branch: int = 0) -> torch.Tensor:
        """out_branch = normalized * (1 + gamma_branch) + beta_branch (normalized = self.norm(x))."""
        part = slice(2 * self.norm_channels * branch, 2 * self.norm_channels * (branch + 1))
        if self.condition_channels == 0:
            if embedding is not None:
                raise ValueError("SpadeNorm was built with condition_channels=0 but got an embedding")
            scale_shift = (self.affine[part] + self._unit_scale[part])[None, :, None, None]
        else:
            if embedding is None:
                raise ValueError(f"SpadeNorm expects an embedding of the {self.condition_channels}-channel "
                                 "condition, got None")
            # one branch at a time: peak memory holds one (scale, shift) pair, not all of them
            scale_shift = F.conv2d(embedding, self.modulation.weight[part],
                                   self.modulation.bias[part] + self._unit_scale[part], padding=self.modulation.padding)
        scale, shift = scale_shift.chunk(2, dim=1)
        return torch.addcmul(shift, normalized, scale)


class LegacySpadeNorm(nn.Module):
    """SPADE normalisation of version 1: each norm embeds the conditioning itself.

    x: float [B, norm_channels, h, w]; condition: float [B, condition_channels, H, W]
    (resized to x's size unless it has it already). Returns norm(x) * (1 + gamma(e)) + beta(e) with
    e = shared(condition). Parameter names are those of version-1 checkpoints.
    """

    def __init__(self, norm_channels: int, condition_channels: int, hidden_channels: int = 64) -> None:
        super().__init__()
        self.condition_channels = condition_channels
        self.norm = nn.InstanceNorm2d(norm_channels, affine=condition_channels == 0)
        if condition_channels > 0:
            self.shared = nn.Sequential(nn.Conv2d(condition_channels, hidden_channels, 3, padding=1), nn.ReLU(inplace=True))
            self.gamma = nn.Conv2d(hidden_channels, norm_channels, 3, padding=1)
            self.beta = nn.Conv2d(hidden_channels, norm_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        normalized = self.norm(x)
        if self.condition_channels == 0:
            return normalized
        if condition is None:
            raise ValueError(f"SpadeNorm expects a condition with {self.condition_channels} channels, got None")
        hidden = self.shared(resize_condition(condition, x.shape[-2:]))
        # one conv of the concatenated weights: the same function as two, one pass over `hidden`
        weight = torch.cat([self.gamma.weight, self.beta.weight])
        bias = torch.cat([self.gamma.bias, self.beta.bias])
        gamma, beta = F.conv2d(hidden, weight, bias, padding=1).chunk(2, dim=1)
        return torch.addcmul(beta, normalized, 1 + gamma)


class SpadeResBlock(nn.Module):
    """SPADE residual block (Park et al.): two SPADE-act-conv3x3 stages plus a shortcut.

    out = conv2(act(SPADE2(conv1(act(SPADE1(x, m))), m))) + shortcut(x, m)
    where shortcut = conv1x1(SPADE_s(x, m)) when in_channels != out_channels, else x.
    x: float [B, in_channels, h, w] -> [B, out_channels, h, w].
    features: what the norms read at x's resolution: the shared ConditionEmbedding output
    [B, hidden, h, w] (spade_version >= 2) or the resized conditioning [B, C, h, w] (version 1);
    None when condition_channels == 0.

    The block runs as two halves, each starting with the instance norm of its input (so
    tiled inference can give both frame statistics, see semguard.models.staged):
    `first_half(x, f) -> (shortcut, h)` and `second_half(shortcut, h, f) -> out`.
    """

    def __init__(self, in_channels: int, out_channels: int, condition_channels: int, hidden_channels: int = 64,
                 spade_version: int = DEFAULT_SPADE_VERSION) -> None:
        super().__init__()
        self.spade_version = check_spade_version(spade_version)
        middle = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels
        # registration order = parameter order = the optimizer state's order: version 1 keeps
        # the order of version-1 checkpoints (norm1, conv1, norm2, conv2, shortcut), so does 2
        if spade_version == 1:
            self.norm1 = LegacySpadeNorm(in_channels, condition_channels, hidden_channels)
        else:
            # shortcut and main branch normalise the same x: one norm, one fused conv (shortcut first)
            self.norm1 = SpadeNorm(in_channels, condition_channels, hidden_channels,
                                   branches=2 if self.learned_shortcut else 1, kernel_size=modulation_kernel(spade_version))
        self.conv1 = nn.Conv2d(in_channels, middle, 3, padding=1)
        if spade_version == 1:
            self.norm2 = LegacySpadeNorm(middle, condition_channels, hidden_channels)
        else:
            self.norm2 = SpadeNorm(middle, condition_channels, hidden_channels, kernel_size=modulation_kernel(spade_version))
        self.conv2 = nn.Conv2d(middle, out_channels, 3, padding=1)
        if self.learned_shortcut:
            if spade_version == 1:
                self.norm_shortcut = LegacySpadeNorm(in_channels, condition_channels, hidden_channels)
            self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.act = nn.LeakyReLU(0.2)

    def input_norms(self) -> list[nn.InstanceNorm2d]:
        """The instance norms that normalise the block's input x (first_half's entry)."""
        if self.spade_version == 1 and self.learned_shortcut:
            return [self.norm_shortcut.norm, self.norm1.norm]
        return [self.norm1.norm]

    def first_half(self, x: torch.Tensor, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.spade_version == 1:
            shortcut = self.conv_shortcut(self.norm_shortcut(x, features)) if self.learned_shortcut else x
            main = self.norm1(x, features)
        elif self.learned_shortcut:
            # the shortcut branch first and done, so its full-resolution temporaries are freed early
            normalized = self.norm1.norm(x)
            shortcut = self.conv_shortcut(self.norm1.modulate(normalized, features, 0))
            main = self.norm1.modulate(normalized, features, 1)
            del normalized
        else:
            shortcut, main = x, self.norm1(x, features)
        main = self.act(main)
        return shortcut, self.conv1(main)

    def second_half(self, shortcut: torch.Tensor, h: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        return shortcut + self.conv2(self.act(self.norm2(h, features)))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        shortcut, h = self.first_half(x, features)
        return self.second_half(shortcut, h, features)
