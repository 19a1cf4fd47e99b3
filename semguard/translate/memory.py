"""How much memory an inference pass needs, measured, and how much the machine has.

`semguard translate --tile auto` runs a frame whole whenever its estimated peak memory
fits a budget, and tiles it only when it does not. The estimate is not a rule of thumb:
`measure_whole` / `measure_staged` run the model once on a small probe frame and record the
peak bytes per frame pixel (activations of a fully convolutional model scale with the pixel
count), for a whole-frame pass and for a staged tiled pass (semguard.models.staged:
full-frame state between stages + one tile's activations, measured stage by stage, so that
`stage_tile_sizes` can give each stage the largest tile its own activations allow).

Measuring: on CUDA, torch.cuda.max_memory_allocated (every allocation, workspaces
included). On CPU there is no allocator counter, so a TorchDispatchMode adds up the
storages that tensors created inside the probe hold and drops them when they are freed
(weak references), plus, at each convolution, the one copy of its input and output that
oneDNN makes in its blocked layout (kernel-internal, so not seen as tensors).

What the process really holds on CPU is more than the tensors: glibc's heap. `semguard
translate` keeps freed memory for reuse (`reuse_freed_memory`; 957x526 whole frames: 3.4 s a
pass against 4.4-6.4 s without, benchmarks/results/memory_estimate.md), and a heap that is
reused but never returned fragments: the peak resident set grows over the first two or three
passes of a frame size and then stays. So the estimate is the tracked bytes times a measured
allocator overhead (`CPU_ALLOCATOR_OVERHEAD`, from benchmarks/bench_memory_estimate.py:
steady-state peak RSS growth over the tracked bytes, SPADE generator base 32, a fresh process
per row; five runs, results/memory_estimate*.md). With heap reuse, whole frames measured
1.18-1.43x (256x512 to 2048x1024), staged tiled passes 1.10-1.50x in uniform tiles and up to
1.64x with each stage in its own tile (more allocation sizes, more fragments); with glibc's default heap
(eval, or the Translator API without reuse) whole frames 0.89-1.12x, staged passes
1.06-1.24x. The ratio moves between runs of the same row by up to a third (2048x1024 tiled
under a 1600 MiB budget: 1.20, 1.11, 1.14, 1.50): the allocation sequence decides how the heap
fragments. The factors are the largest ratios measured with a small margin, so a
--memory-budget is an estimate good to about that spread, not a hard limit. Without any
factor a budget was exceeded by up to 50%.
On CUDA the factor is 1 (max_memory_allocated is exact; the budget's 80% share leaves the
caching allocator room). Building the conditioning in one tensor (no int64 one-hot, no
concatenation) took the 957x526 first-pass peak from 1419 to 1305 MiB.

Budgets (`parse_memory_size`: "auto", "3GiB", "512MB", "2e9"): "auto" is half of the
available RAM (MemAvailable) on CPU and 80% of the free device memory on CUDA, shared
among the processes torchrun starts on the machine (LOCAL_WORLD_SIZE).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import re
import sys
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from semguard.translate.tiling import staged_apply
from semguard.validate import available_memory as available_host_memory

CPU_BUDGET_SHARE = 0.5
CUDA_BUDGET_SHARE = 0.8
PROBE_SIZE = (32, 64)   # activation bytes scale with pixels: a small probe measures them
# Peak resident memory over the tracked bytes on CPU (module docstring): the largest ratio
# measured by benchmarks/bench_memory_estimate.py (five runs) with a margin; keyed by whether
# freed memory is kept for reuse (reuse_freed_memory), then by pass kind.
CPU_ALLOCATOR_OVERHEAD = {True: {"whole": 1.50, "staged": 1.70}, False: {"whole": 1.15, "staged": 1.30}}
_heap_reuse = False   # set by reuse_freed_memory
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory_size(text: str | int | float | None) -> int | None:
    """'auto'/None -> None; '3GiB', '512MB', '2e9', 2000000000 -> bytes (int > 0)."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "auto"):
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", text.lower())
        if not match or match.group(2) not in _UNITS:
            raise ValueError(f"memory size {text!r} is not a size like 3GiB, 512MB or 2e9 bytes (or 'auto')")
        value = float(match.group(1)) * _UNITS[match.group(2)]
    if not value > 0:
        raise ValueError(f"memory size {text!r} must be positive")
    return int(value)


def format_bytes(count: float) -> str:
    return f"{count / 2**30:.2f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def available_memory(device: torch.device) -> int:
    """Bytes this process could still use: free device memory plus what torch's caching
    allocator holds unused (CUDA), or MemAvailable (CPU, Linux; free pages elsewhere)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return available_host_memory()


def heap_reuse_active() -> bool:
    """Whether this process keeps freed memory for reuse (reuse_freed_memory succeeded)."""
    return _heap_reuse


def allocator_overhead(device: torch.device) -> tuple[float, float]:
    """(whole, staged): the factors from tracked bytes to the memory the process really holds
    on `device` (module docstring); (1, 1) on CUDA."""
    if device.type != "cpu":
        return 1.0, 1.0
    factors = CPU_ALLOCATOR_OVERHEAD[heap_reuse_active()]
    return factors["whole"], factors["staged"]


def default_budget(device: torch.device) -> int:
    """The 'auto' memory budget of one inference process on `device` (module docstring)."""
    share = CUDA_BUDGET_SHARE if device.type == "cuda" else CPU_BUDGET_SHARE
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1))) if device.type == "cpu" else 1
    return int(available_memory(device) * share / processes)


_CONVOLUTIONS = {torch.ops.aten.convolution.default, torch.ops.aten.conv2d.default}


def _nbytes(tensor) -> int:
    return tensor.numel() * tensor.element_size() if isinstance(tensor, torch.Tensor) else 0


class _LiveTensorBytes(TorchDispatchMode):
    """Bytes of the tensor storages created while active and still alive; `peak` their maximum."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False   # nothing is compiled inside the probe; wrapping would import torch._dynamo (seconds)

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[int, weakref.ref] = {}

    def _freed(self, key: int, size: int) -> None:
        if self._live.pop(key, None) is not None:
            self.current -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # views and in-place results share an input's storage: only new storages are allocations
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                storage = tensor.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self._live and key not in inputs:
                    self._live[key] = weakref.ref(storage, lambda _, k=key, n=size: self._freed(k, n))
                    self.current += size
                    self.peak = max(self.peak, self.current)
        if func in _CONVOLUTIONS and isinstance(out, torch.Tensor) and out.device.type == "cpu":
            # oneDNN reorders a convolution's input and output to its blocked layout: one
            # transient copy of each (measured: peak RSS of a lone conv = output x 2 + input)
            self.peak = max(self.peak, self.current + _nbytes(args[0]) + _nbytes(out))
        return out

    def reset_peak(self) -> None:
        self.peak = self.current


class _CudaBytes:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        torch.cuda.synchronize(device)
        self.base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        torch.cuda.synchronize(self.device)

    @property
    def current(self) -> int:
        return torch.cuda.memory_allocated(self.device) - self.base

    @property
    def peak(self) -> int:
        return torch.cuda.max_memory_allocated(self.device) - self.base

    def reset_peak(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)


def _tracker(device: torch.device):
    return _CudaBytes(device) if device.type == "cuda" else _LiveTensorBytes()


def _probe_size(size_multiple: int) -> tuple[int, int]:
    return tuple(max(size_multiple, math.ceil(side / size_multiple) * size_multiple) for side in PROBE_SIZE)


def measure_whole(make_inputs: Callable[[int, int], tuple], whole: Callable[..., torch.Tensor],
                  device: torch.device, size_multiple: int = 1) -> float:
    """Peak bytes per frame pixel of `whole(*make_inputs(h, w))` on a probe frame (inputs and
    output included; the model's weights, which exist already, are not)."""
    height, width = _probe_size(size_multiple)
    with torch.inference_mode(), _tracker(device) as tracker:
        inputs = make_inputs(height, width)
        output = whole(*inputs)
        del output, inputs
        return tracker.peak / (height * width)


def measure_staged(make_inputs: Callable[[int, int], tuple], stages: Sequence, device: torch.device,
                   size_multiple: int = 1) -> tuple[float, tuple[float, ...], tuple[int, ...]]:
    """(frame, stage_tiles, stage_radii) of a staged pass (semguard.translate.tiling.staged_apply) on a
    probe frame, see MemoryProfile: frame = the most held at full-frame size (inputs, their resized
    copies, a stage's input and output states); stage_tiles[k] = the most stage k adds while it runs
    (its output included, so a tiled pass is slightly overestimated), per frame pixel; stage_radii[k]
    = its halo (frame pixels)."""
    height, width = _probe_size(size_multiple)
    peaks = {"frame": 0, "entry": 0}
    added: dict[int, int] = {}

    def observe(stage, state, result) -> None:
        if result is None:
            peaks["entry"] = tracker.current
            tracker.reset_peak()
            return
        peaks["frame"] = max(peaks["frame"], tracker.current)
        added[id(stage)] = max(added.get(id(stage), 0), tracker.peak - peaks["entry"])

    with torch.inference_mode(), _tracker(device) as tracker:
        image, condition = make_inputs(height, width)
        staged_apply(stages, image, condition, None, size_multiple, observe=observe)
        del image, condition
    pixels = height * width
    return (peaks["frame"] / pixels, tuple(added.get(id(stage), 0) / pixels for stage in stages),
            tuple(int(stage.radius) for stage in stages))


@dataclass(frozen=True)
class MemoryProfile:
    """Measured peak bytes per frame pixel (per image of a batch) of one model.

    whole: a whole-frame pass (inputs, conditioning and output included).
    staged_frame: what a staged tiled pass keeps at full-frame size (two consecutive
      states, inputs); stage_tiles[k]: the activations stage k adds while it runs, per pixel of
      the region it runs on (a tile plus its halo, or the whole frame); stage_radii[k]: that
      stage's halo in frame pixels. Empty: not measured, or the model has no stages.
    overhead: (whole, staged) factors from these tracked bytes to what the process holds
      (allocator_overhead); the *_bytes estimates include them.
    """

    whole: float
    staged_frame: float | None = None
    stage_tiles: tuple[float, ...] = ()
    stage_radii: tuple[int, ...] = ()
    overhead: tuple[float, float] = (1.0, 1.0)

    @property
    def staged_tile(self) -> float:
        """The largest stage's activations per pixel (the cost a uniform tile is planned with)."""
        return max(self.stage_tiles)

    @property
    def halo(self) -> int:
        return max(self.stage_radii, default=0)

    @property
    def whole_per_pixel(self) -> float:
        """Estimated bytes per frame pixel of a whole-frame pass, allocator overhead included."""
        return self.whole * self.overhead[0]

    def whole_bytes(self, batch: int, height: int, width: int) -> float:
        return self.whole_per_pixel * batch * height * width

    def staged_bytes(self, batch: int, height: int, width: int, tile: tuple[int, int],
                     stage_tiles: Sequence[tuple[int, int] | None] | None = None) -> float:
        """Estimated peak of a staged pass in `tile`s, or with each stage in its own tile
        (`stage_tiles`, one per stage, None = that stage on the whole frame)."""
        self._check_staged()
        if stage_tiles is None:
            stage_tiles = [tile] * len(self.stage_tiles)
        if len(stage_tiles) != len(self.stage_tiles):
            raise ValueError(f"{len(stage_tiles)} stage tiles for {len(self.stage_tiles)} stages")
        regions = [height * width if each is None else
                   (min(height, each[0]) + 2 * radius) * (min(width, each[1]) + 2 * radius)
                   for each, radius in zip(stage_tiles, self.stage_radii)]
        busiest = max(cost * region for cost, region in zip(self.stage_tiles, regions))
        return self.overhead[1] * batch * (self.staged_frame * height * width + busiest)

    def _check_staged(self) -> None:
        if self.staged_frame is None or not self.stage_tiles:
            raise ValueError("no staged measurement in this profile")
        if len(self.stage_radii) != len(self.stage_tiles):
            raise ValueError(f"{len(self.stage_radii)} stage radii for {len(self.stage_tiles)} stages")


def _largest_tile(area: float, halo: int, height: int, width: int, multiple: int,
                  smallest: int) -> tuple[int, int]:
    """The largest tile (h, w), multiples of `multiple`, as square as the frame allows, whose region
    (tile plus `halo` on each side) has at most `area` pixels; `smallest` a side when none has."""
    side = int(math.sqrt(area)) - 2 * halo
    tile_w = min(width, max(smallest, side // multiple * multiple))
    tile_h = int(area / (tile_w + 2 * halo)) - 2 * halo
    return min(height, max(smallest, tile_h // multiple * multiple)), tile_w


def _tile_room(profile: MemoryProfile, batch: int, height: int, width: int, budget: float) -> float:
    """Bytes per image that one stage's tile may take within `budget` (tracked bytes, no overhead)."""
    profile._check_staged()
    return budget / profile.overhead[1] / batch - profile.staged_frame * height * width


STARVED_TILE = 128   # frame pixels a side when no tile fits the budget (see staged_tile_size)


def staged_tile_size(profile: MemoryProfile, batch: int, height: int, width: int, budget: float,
                     multiple: int, minimum: int = 16) -> tuple[int, int]:
    """The largest tile (h, w), multiples of `multiple`, as square as the frame allows, whose
    staged pass over a [batch, ., height, width] frame, every stage in that tile, fits `budget`
    bytes; `minimum` pixels a side at the least. When not even that fits (the full-frame state
    alone is over the budget), STARVED_TILE pixels a side: smaller tiles would save little of what
    is over and cost many times the time (2048x1024, kept heap: 16-px tiles 120 s a pass, 128-px
    tiles 22-28 s, whole frames 14-17 s after the first pass; benchmarks/results/memory_estimate.md
    and its first run in git at 0f35b1c); check with profile.staged_bytes and warn."""
    room = _tile_room(profile, batch, height, width, budget)
    area = room / profile.staged_tile if room > 0 else 0.0   # tile pixels, halo included
    smallest = max(multiple, minimum // multiple * multiple)
    if area < (smallest + 2 * profile.halo) ** 2:
        starved = max(multiple, STARVED_TILE // multiple * multiple)
        return min(height, starved), min(width, starved)
    return _largest_tile(area, profile.halo, height, width, multiple, smallest)


def stage_tile_sizes(profile: MemoryProfile, batch: int, height: int, width: int, budget: float,
                     multiple: int, minimum: int = 16) -> list[tuple[int, int] | None]:
    """Each stage's own tile within `budget`: None (the whole frame) for a stage whose activations
    fit it whole, else the largest tile its own activations and halo allow, never smaller than the
    uniform tile (staged_tile_size). A stage at a quarter of the resolution holds far fewer bytes
    per frame pixel than one at full resolution, so it runs in fewer, larger tiles: fewer halo
    pixels computed twice and fewer small convolutions (benchmarks/results/translate.md)."""
    uniform = staged_tile_size(profile, batch, height, width, budget, multiple, minimum)
    room = _tile_room(profile, batch, height, width, budget)
    smallest = max(multiple, minimum // multiple * multiple)
    tiles: list[tuple[int, int] | None] = []
    for cost, radius in zip(profile.stage_tiles, profile.stage_radii):
        if cost * height * width <= room:   # (a stage that adds nothing runs whole)
            tiles.append(None)
            continue
        own = _largest_tile(max(room, 0.0) / cost, radius, height, width, multiple, smallest)
        tiles.append(own if own[0] * own[1] > uniform[0] * uniform[1] else uniform)
    return tiles


def describe_stage_tiles(tile: tuple[int, int], stage_tiles: Sequence | None) -> str:
    """'tiles WxH' of a staged plan, with how many stages run whole and how many in larger tiles."""
    text = f"tiles {tile[1]}x{tile[0]}"
    if not stage_tiles:
        return text
    whole = sum(each is None for each in stage_tiles)
    larger = sum(each is not None and each[0] * each[1] > tile[0] * tile[1] for each in stage_tiles)
    return f"{text}; {whole} of {len(stage_tiles)} stages whole, {larger} in larger tiles"


def network_tile_size(bytes_per_pixel: float, batch: int, tiles_per_call: int, budget: float,
                      multiple: int, minimum: int = 16) -> int:
    """Side of square tiles whose network-level tiled pass (semguard.translate.tiling.tiled_apply,
    `tiles_per_call` tiles of `batch` frames per call) fits `budget` bytes."""
    side = int(math.sqrt(budget / (bytes_per_pixel * batch * max(1, tiles_per_call))))
    return max(max(multiple, minimum // multiple * multiple), side // multiple * multiple)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the system.

    By default glibc serves every allocation above 32 MiB (and smaller ones, by its
    dynamic threshold) with a fresh mmap and unmaps it on free, so each large activation
    of an inference pass is page-faulted in again, 4 KiB at a time: a whole-frame pass at
    256x512 took 176 000 minor faults, a tiled 957x526 run 111 million (243 s of system
    time for 8 frames). With mmap off and trimming off (M_TRIM_THRESHOLD -1), the second and
    later passes reuse the heap (2 000 faults). Trimming only above 2 GiB, as before, still
    returned a 2048x1024 frame's heap after every pass: 1.77 million faults and 11-13 s of
    system time a pass, 18-19 s a pass against 14-15 s with trimming off
    (benchmarks/results/memory_estimate*.md). Process-wide; the cost is that the process
    keeps its peak heap until it exits, and that the reused heap fragments
    (CPU_ALLOCATOR_OVERHEAD accounts for it). Returns False where there is no glibc.
    """
    global _heap_reuse
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has no mallopt semantics to rely on)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1)):
        _heap_reuse = True
    return _heap_reuse
