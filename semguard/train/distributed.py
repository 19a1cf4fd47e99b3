"""Process-group set-up for `torchrun` (DistributedDataParallel), and the one-process case.

`torchrun --nproc_per_node N -m semguard.cli train ...` sets RANK, WORLD_SIZE and
LOCAL_RANK; `init_distributed` reads them, picks the backend (NCCL on CUDA, gloo on
CPU) and the device of this process (cuda:LOCAL_RANK). Without those variables it is a
plain single process and every helper below is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from semguard.common import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False   # this module created the process group (so it destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str) -> DistributedContext:
    """Join the process group described by RANK/WORLD_SIZE/LOCAL_RANK when present."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, what="train.device")
    if world_size <= 1:
        return DistributedContext(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        created = True
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank,
                              device=device, initialised_here=created)


def shutdown_distributed(context: DistributedContext) -> None:
    if context.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is untouched)."""
    if not context.distributed:
        return values.clone()
    reduced = values.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / context.world_size


def all_gather_objects(value, context: DistributedContext) -> list:
    """[value of rank 0, value of rank 1, ...] (a one-element list without a process group)."""
    if not context.distributed:
        return [value]
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(context: DistributedContext) -> None:
    if context.distributed:
        dist.barrier()
