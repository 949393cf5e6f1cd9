"""torchrun support: gloo process group on CPU, DDP wrapping, and a check that ranks agree on weights."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Context", "setup", "wrap", "sync_buffers", "weight_agreement", "teardown"]


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(threads: int = 0) -> Context:
    """Joins the torchrun process group when WORLD_SIZE > 1; splits the cores among ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    ctx = Context(rank=dist.get_rank() if world > 1 else 0, world_size=world)
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // world))
    return ctx


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    return nn.parallel.DistributedDataParallel(model) if ctx.distributed else model


@torch.no_grad()
def sync_buffers(model: nn.Module, ctx: Context) -> None:
    """Average BatchNorm running statistics over ranks. DDP broadcasts rank 0's buffers at the start
    of every forward, so after the last step each rank holds stats of its own last batch; averaging
    them at epoch end makes every rank evaluate and save the same model."""
    if not ctx.distributed:
        return
    for b in model.buffers():
        if b.dtype.is_floating_point:
            dist.all_reduce(b, op=dist.ReduceOp.SUM)
            b.div_(ctx.world_size)
        else:
            dist.broadcast(b, src=0)


def _checksum(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def weight_agreement(model: nn.Module, ctx: Context) -> dict:
    """Every rank's checksum of its own weights and buffers, gathered (one entry when single-process)."""
    mine = _checksum(model)
    if not ctx.distributed:
        return {"world_size": 1, "weight_checksums": [mine]}
    gathered: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, mine)
    return {"world_size": ctx.world_size, "weight_checksums": gathered}


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
