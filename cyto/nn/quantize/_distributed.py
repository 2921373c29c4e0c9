"""Collective helpers that are no-ops outside an initialised ``torch.distributed`` group."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_reduce_sum", "broadcast_from_rank0", "is_distributed", "rank", "sample_rows_rank0"]


def is_distributed() -> bool:
    """True when a default process group is initialised (DDP training)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Rank of this process, 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over all ranks in place (no-op when not distributed) and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_from_rank0(tensor: Tensor) -> Tensor:
    """Overwrite ``tensor`` with rank 0's copy in place (no-op when not distributed)."""
    if is_distributed():
        dist.broadcast(tensor, src=0)
    return tensor


@torch.no_grad()
def sample_rows_rank0(x: Tensor, count: int) -> Tensor:
    """``count`` rows drawn from rank 0's ``x`` and broadcast, so every rank gets the same rows.

    Rows are drawn without replacement when ``x`` has enough of them, with replacement
    otherwise. All ranks draw from the global RNG so that their RNG streams stay in step.
    """
    n = x.shape[0]
    if n == 0:
        rows = torch.zeros(count, *x.shape[1:], dtype=x.dtype, device=x.device)
        return broadcast_from_rank0(rows)
    if n >= count:
        pick = torch.randperm(n, device=x.device)[:count]
    else:
        pick = torch.randint(n, (count,), device=x.device)
    rows = x.index_select(0, pick).contiguous()
    return broadcast_from_rank0(rows)
