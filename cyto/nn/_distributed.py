"""torch.distributed plumbing for training under ``torchrun`` (DDP).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`setup_distributed` reads them, initialises the default
process group (NCCL on CUDA, gloo on CPU) and picks this rank's device. Outside
``torchrun`` everything here degrades to a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_reduce_sum",
    "broadcast_buffers",
    "broadcast_object",
    "replica_divergence",
    "resolve_device",
    "setup_distributed",
    "teardown_distributed",
]


_CPU = torch.device("cpu")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) training job.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Global rank, number of processes and rank on this node.
    device : torch.device
        Device this rank computes on.
    initialized_here : bool
        Whether :func:`setup_distributed` created the process group (and must destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = _CPU
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def resolve_device(device: str | torch.device = "auto", *, local_rank: int = 0) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` into a device.

    ``"auto"`` means CUDA when available, else CPU. Under DDP a bare ``"cuda"``
    becomes ``cuda:<local_rank>``.

    Raises
    ------
    ValueError
        If the device string is unknown or the device is not available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device).strip().lower()
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(
                f"`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}"
            ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"`device` {device!r} requested but CUDA is not available here")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        if dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"`device` {str(dev)!r} does not exist: {torch.cuda.device_count()} CUDA devices"
            )
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"`device` {device!r} requested but MPS is not available here")
    elif dev.type != "cpu":
        raise ValueError(f"`device` must be 'auto', 'cpu', 'cuda[:N]' or 'mps'; got {device!r}")
    return dev


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` job described by the environment, if any.

    Parameters
    ----------
    device : str, default "auto"
        Requested device (see :func:`resolve_device`).

    Returns
    -------
    info : DistInfo
        Rank, world size and device of this process.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank=local_rank)
    if world <= 1:
        return DistInfo(device=dev)
    rank = int(os.environ["RANK"])
    created = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        created = True
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=dev,
        initialized_here=created,
    )


def teardown_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op for one process); returns it."""
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every rank.

    DDP re-broadcasts buffers at the start of each forward pass only, so after an
    epoch the ranks' last local updates differ; call this before evaluating or
    checkpointing so every rank holds exactly the model rank 0 saves.
    """
    if info.distributed:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every rank (no-op for one process)."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def replica_divergence(module: torch.nn.Module, info: DistInfo) -> dict[str, float]:
    """Largest absolute difference of each parameter and buffer from rank 0's copy.

    Used as a cheap once-per-epoch health check of DDP training (all values
    should be exactly 0). Returns an empty dict for a single process.
    """
    if not info.distributed:
        return {}
    out: dict[str, float] = {}
    tensors = list(module.state_dict().items())
    diffs = torch.zeros(len(tensors), dtype=torch.float64, device=info.device)
    for i, (_, t) in enumerate(tensors):
        ref = t.detach().clone()
        dist.broadcast(ref, src=0)
        if t.is_floating_point():
            diffs[i] = (t.detach() - ref).abs().max().double() if t.numel() else 0.0
        elif t.dtype == torch.bool:
            diffs[i] = float((t.detach() ^ ref).any())
        else:
            diffs[i] = float((t.detach() != ref).any())
    dist.all_reduce(diffs, op=dist.ReduceOp.MAX)
    for i, (name, _) in enumerate(tensors):
        out[name] = float(diffs[i])
    return out


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``model`` in DistributedDataParallel under torchrun, else itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    cuda = info.device.type == "cuda"
    return DistributedDataParallel(model, device_ids=[info.device.index] if cuda else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (``model`` itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def same_on_all_ranks(flag: bool, info: DistInfo) -> bool:
    """Rank 0's ``flag`` on every rank (unchanged without DDP)."""
    if not info.distributed:
        return bool(flag)
    t = torch.tensor([int(flag)], device=info.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def gather_objects(obj: object, info: DistInfo) -> list[object]:
    """``obj`` of every rank, in rank order (``[obj]`` without DDP)."""
    if not info.distributed:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(
    names: list[str],
    total: torch.Tensor | None,
    count: int,
    device: torch.device,
    info: DistInfo | None,
) -> dict[str, float]:
    """Per-item means ``total / count`` by name, with the sums and counts of every rank
    added under DDP (ranks with nothing to add take part too); empty when no item."""
    if info is not None and info.distributed:
        width = torch.tensor([0 if total is None else total.numel()], device=device)
        dist.all_reduce(width, op=dist.ReduceOp.MAX)
        if total is None:
            total = torch.zeros(int(width), dtype=torch.float64, device=device)
        packed = torch.cat([total, total.new_tensor([count])])
        all_reduce_sum(packed, info)
        if not names:
            box = [names]
            dist.broadcast_object_list(box, src=0)
            names = list(box[0])
        total, count = packed[:-1], int(packed[-1])
    if total is None or count == 0:
        return {}
    return dict(zip(names, (total / count).tolist()))
