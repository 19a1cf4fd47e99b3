"""A generator's forward pass as a chain of stages, so tiles can get exact frame statistics.

A generator with instance norms cannot simply be run tile by tile: every norm needs the
mean and variance of its input over the whole frame, and that input depends on the
frame statistics of every earlier norm. Cut the forward pass before each instance norm
and keep the (small) full-frame state between the cuts: each stage's entry norms then
read their exact statistics off the stored state, and the stage itself runs tile by tile
with a halo of its receptive radius (semguard.translate.tiling.staged_apply). The result equals a
whole-frame pass up to float rounding, for one pass plus the halos.

A `Stage` maps a state (a tuple of float tensors [B, C_i, H / scale_in, W / scale_in],
H x W the frame) and the conditioning of the same region (or None; at full resolution or
already resized to the stage's output resolution: the stage resizes what it gets with
semguard.models.spade.resize_condition) to the next state at H / scale_out. `radius` (frame pixels) bounds how far an output pixel
reads its inputs; `norms` lists the instance norms that normalise state[i] on entry
(possibly after a nearest x2 upsample, which leaves mean and variance unchanged).
Every instance norm a stage runs is in its `norms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[State, torch.Tensor | None], State]
    scale_in: int
    scale_out: int
    radius: int
    norms: tuple[tuple[nn.InstanceNorm2d, int], ...] = ()


_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Identity, nn.InstanceNorm2d)


def _receptive(module: nn.Module, radius: int, scale: int) -> tuple[int, int]:
    """(radius, scale) after `module`: radius in frame pixels, scale = frame pixels per pixel."""
    if isinstance(module, nn.Conv2d):
        reach = (module.kernel_size[0] - 1) // 2 * module.dilation[0], (module.kernel_size[1] - 1) // 2 * module.dilation[1]
        if module.stride[0] != module.stride[1]:
            raise ValueError(f"staged inference needs equal strides, got {module}")
        return radius + max(reach) * scale, scale * module.stride[0]
    if isinstance(module, nn.Upsample):
        factor = module.scale_factor
        if module.mode != "nearest" or factor not in (2, 2.0, (2.0, 2.0), (2, 2)):
            raise ValueError(f"staged inference supports nearest x2 upsampling only, got {module}")
        return radius, scale // 2
    if isinstance(module, (nn.ReflectionPad2d, nn.ZeroPad2d, nn.ReplicationPad2d, *_POINTWISE)):
        return radius, scale   # a pad before an unpadded conv: the conv's kernel already counts
    raise ValueError(f"staged inference does not know the receptive field of {type(module).__name__}")


def chain_stages(name: str, modules: Sequence[nn.Module], scale: int) -> list[Stage]:
    """Stages of a chain of single-input modules (x -> m_k(...m_1(x))), cut before every
    nn.InstanceNorm2d; the input is at `scale` frame pixels per pixel. State: (x,)."""
    groups: list[list[nn.Module]] = [[]]
    for module in modules:
        if isinstance(module, nn.InstanceNorm2d) and groups[-1]:
            groups.append([])
        groups[-1].append(module)
    stages = []
    for index, group in enumerate(groups):
        radius, out_scale = 0, scale
        for module in group:
            radius, out_scale = _receptive(module, radius, out_scale)
        sequential = nn.Sequential(*group)

        def run(state: State, condition: torch.Tensor | None, _body=sequential) -> State:
            return (_body(state[0]),)

        norms = ((group[0], 0),) if isinstance(group[0], nn.InstanceNorm2d) else ()
        stages.append(Stage(f"{name}.{index}", run, scale, out_scale, radius, norms))
        scale = out_scale
    return stages


def residual_chain_stages(name: str, body: Sequence[nn.Module], scale: int) -> list[Stage]:
    """Stages of x -> x + body(x) for a chain `body` at a fixed scale. State: (x,) on entry,
    (x, partial body output) between stages, (x + body(x),) on exit."""
    inner = chain_stages(name, body, scale)
    if any(stage.scale_out != scale for stage in inner):
        raise ValueError(f"{name}: a residual body must keep its resolution")
    stages = []
    for index, stage in enumerate(inner):
        first, last = index == 0, index == len(inner) - 1

        def run(state: State, condition: torch.Tensor | None, _stage=stage, _first=first, _last=last) -> State:
            x = state[0]
            (y,) = _stage.run((x if _first else state[1],), condition)
            return (x + y,) if _last else (x, y)

        norms = tuple((module, 0 if first else 1) for module, _ in stage.norms)
        stages.append(Stage(stage.name, run, scale, scale, stage.radius, norms))
    return stages


def run_stages(stages: Sequence[Stage], image: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    """The whole-frame forward pass through `stages` (equals the generator's forward)."""
    state: State = (image,)
    for stage in stages:
        state = stage.run(state, condition)
    if len(state) != 1:
        raise ValueError(f"the last stage must leave one tensor, left {len(state)}")
    return state[0]
