"""DistributedDataParallel for the training loop (``torchrun --nproc_per_node N``): NCCL on CUDA,
gloo on CPU. Every process trains on its share of each global batch
(:class:`symnb.data.SeededBatchSampler` with its rank); rank 0 alone writes files."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    """The process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and evaluations."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE / RANK / LOCAL_RANK), if any.

    Returns the context and the device of this process (cuda:LOCAL_RANK on CUDA machines).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    started = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    return Context(rank, world, local, started), device


def wrap(model: torch.nn.Module, ctx: Context, device: torch.device,
         partial: bool = False) -> torch.nn.Module:
    """The module to call in the training loop: DDP around the model when distributed (the model
    itself, its config, templates and symmetry maps stay reachable as usual). ``partial``: some steps
    leave parameters without a gradient (the camera steps), so DDP searches the graph for them."""
    if not ctx.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=partial)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context) -> None:
    if ctx.started_here:
        dist.destroy_process_group()
