"""The loops of one epoch: a training step, :func:`train_one_epoch` and the
validation pass (:func:`validation_metrics`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cyto._health import HealthAccumulator

from ._dataset import check_finite_crops
from ._distributed import (
    DistInfo,
    all_reduce_sum,
    mean_over_ranks,
    unwrap,
)
from ._train_config import NonFiniteLossError

__all__ = ["train_one_epoch", "validation_metrics"]


def _stack(values: Mapping[str, torch.Tensor | float], device: torch.device) -> torch.Tensor:
    return torch.stack(
        [
            torch.as_tensor(v, dtype=torch.float32, device=device).reshape(())
            for v in values.values()
        ]
    ).float()


# --------------------------------------------------------------------------- loops
@dataclass
class _EpochProgress:
    """Running sums of one training epoch (saved in mid-epoch checkpoints)."""

    names: list[str] = field(default_factory=list)
    sums: torch.Tensor | None = None
    count: int = 0
    batches: int = 0
    seconds: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "sums": self.sums.detach().cpu() if self.sums is not None else torch.zeros(0),
            "count": self.count,
            "batches": self.batches,
            "seconds": self.seconds,
        }

    def add(self, names: list[str], values: torch.Tensor, n: int) -> None:
        """Add one batch's per-crop means ``values`` (tensor, same order as ``names``)."""
        if self.sums is None:
            self.names = list(names)
            self.sums = torch.zeros(len(names), dtype=torch.float64, device=values.device)
        self.sums += values.double() * n
        self.count += n
        self.batches += 1

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, device: torch.device) -> _EpochProgress:
        if not state:
            return cls()
        sums = state["sums"].to(device) if len(state["names"]) else None
        return cls(
            list(state["names"]),
            sums,
            int(state["count"]),
            int(state["batches"]),
            float(state["seconds"]),
        )


def _autocast(device: torch.device, amp: str) -> Any:
    if device.type != "cuda" or amp == "off":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _step_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    device: torch.device,
    amp: str,
    channels_last: bool,
    reconstruction_scale: float,
) -> tuple[Any, Any, list[str], torch.Tensor]:
    """One forward pass and its loss, shared by training and validation.

    Returns the model output, the :class:`CytoselfLoss`, the metric names and their
    values as one float32 tensor on ``device`` (nothing is read back to the host).
    """
    core = unwrap(model)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = x.to(device, non_blocking=True, memory_format=memory_format)
    y = y.to(device, non_blocking=True)
    with _autocast(device, amp):
        output = model(x)
        loss = core.loss(x, y, output, reconstruction_scale=reconstruction_scale)
    values = loss.values()
    return output, loss, list(values), _stack(values, device)


def _optimizer_step(
    model: nn.Module, loss: Any, optimizer: Any, scaler: Any, grad_clip: float
) -> None:
    """Backward pass, optional gradient clipping and one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss.total).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return
    loss.total.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def _check_pending(
    pending: list[tuple[int, torch.Tensor]], epoch: int, dist_info: DistInfo | None
) -> None:
    """Raise at the first non-finite loss among the steps not checked yet (one sync)."""
    if not pending:
        return
    totals = torch.stack([t for _, t in pending])
    steps = torch.tensor([s for s, _ in pending], device=totals.device)
    big = torch.iinfo(torch.int64).max
    first_bad = torch.where(torch.isfinite(totals), big, steps).min().reshape(1)
    if dist_info is not None and dist_info.distributed:
        # all ranks stop together, at the first bad step of any rank
        torch.distributed.all_reduce(first_bad, op=torch.distributed.ReduceOp.MIN)
    at = int(first_bad)
    if at != big:
        local = totals[steps == at]
        value = float(local[0]) if local.numel() else math.nan
        raise NonFiniteLossError(
            f"the training loss became {value} at step {at} (epoch {epoch}); training stopped",
            step=at,
        )
    pending.clear()


def train_one_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    reconstruction_scale: float,
    epoch: int = 0,
    step: int = 0,
    amp: str = "off",
    channels_last: bool = False,
    scaler: Any = None,
    grad_clip: float = 0.0,
    log_every: int = 10,
    log: Callable[[dict[str, Any]], None] | None = None,
    progress: Any = None,
    state: _EpochProgress | None = None,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[int, _EpochProgress], None] | None = None,
    dist_info: DistInfo | None = None,
    max_steps: int = 0,
    lr_at: Callable[[int], float] | None = None,
) -> tuple[dict[str, float], int]:
    """Train ``model`` for one pass over ``loader`` (or its first ``max_steps`` batches).

    Parameters
    ----------
    model : nn.Module
        A :class:`~cyto.nn.Cytoself`, possibly wrapped in ``DistributedDataParallel``;
        ``model(x)`` gives the output and ``loss(x, y, output, reconstruction_scale=)``
        of the unwrapped module gives the loss.
    loader : iterable of (x, y)
        Training batches.
    optimizer : torch.optim.Optimizer
    device : torch.device
    reconstruction_scale : float
        Training-set pixel variance (divides the reconstruction MSE).
    epoch, step : int
        Epoch number and global step count before this epoch (for logging).
    amp : {"bf16", "fp16", "off"}
        Autocast precision (CUDA only).
    channels_last : bool
        Feed channels-last inputs.
    scaler : torch.amp.GradScaler, optional
        Loss scaler for fp16.
    grad_clip : float
        Gradient-norm clip (0: off).
    log_every : int
        Steps between metric records given to ``log``.
    log : callable, optional
        Receives one dict per logged step.
    progress : tqdm, optional
        Progress bar to advance.
    state : _EpochProgress, optional
        Running sums to continue (resume mid-epoch).
    checkpoint_every : int
        Call ``on_checkpoint(step, state)`` every this many steps (0: never).
    on_checkpoint : callable, optional
    dist_info : DistInfo, optional
        Under DDP: epoch means are reduced over ranks and all ranks stop together
        on a non-finite loss.
    max_steps : int, default 0
        Stop once the epoch holds this many batches (those of ``state`` included, so a
        resumed epoch stops where the uninterrupted one would); 0: the whole loader.
    lr_at : callable, optional
        Learning rate of each step from the global step count before it (e.g.
        :func:`cosine_lr`), set on every parameter group before the step; None keeps
        the optimizer's.

    Returns
    -------
    metrics : dict of str to float
        Means over the epoch of the loss, each term, perplexities and accuracies,
        plus ``images_per_s``; summed over ranks under DDP.
    step : int
        Global step count after the epoch.

    Raises
    ------
    NonFiniteLossError
        If the loss becomes NaN or infinite; the message names the step.
    """
    model.train()
    state = state if state is not None else _EpochProgress()
    pending: list[tuple[int, torch.Tensor]] = []
    window = [0, time.perf_counter()]  # images and start of the current log window
    epoch_start = time.perf_counter() - state.seconds
    for x, y in loader:
        if max_steps and state.batches >= max_steps:
            break
        _, loss, names, vec = _step_loss(
            model,
            x,
            y,
            device=device,
            amp=amp,
            channels_last=channels_last,
            reconstruction_scale=reconstruction_scale,
        )
        if lr_at is not None:
            _set_lr(optimizer, lr_at(step))
        _optimizer_step(model, loss, optimizer, scaler, grad_clip)
        step += 1
        state.add(names, vec, int(x.shape[0]))
        window[0] += int(x.shape[0])
        pending.append((step, vec[0]))
        if progress is not None:
            progress.update(1)
        if step % log_every == 0:
            _check_pending(pending, epoch, dist_info)
            _log_step(log, progress, window, names, vec, epoch, step, optimizer)
        if checkpoint_every and on_checkpoint is not None and step % checkpoint_every == 0:
            _check_pending(pending, epoch, dist_info)
            state.seconds = time.perf_counter() - epoch_start
            on_checkpoint(step, state)
    _check_pending(pending, epoch, dist_info)
    state.seconds = time.perf_counter() - epoch_start
    return _epoch_means(state, dist_info), step


def _set_lr(optimizer: Any, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _log_step(
    log: Callable[[dict[str, Any]], None] | None,
    progress: Any,
    window: list,
    names: list[str],
    vec: torch.Tensor,
    epoch: int,
    step: int,
    optimizer: Any,
) -> None:
    """Write one step record (the loss terms, learning rate, images/s of the window)."""
    now = time.perf_counter()
    rate = window[0] / max(now - window[1], 1e-9)
    record: dict[str, Any] = {"kind": "step", "epoch": epoch, "step": step}
    record.update(zip(names, vec.tolist()))
    record["lr"] = optimizer.param_groups[0]["lr"]
    record["images_per_s"] = rate
    if log is not None:
        log(record)
    if progress is not None:
        progress.set_postfix(loss=f"{record['loss']:.4g}", img_s=f"{rate:.0f}")
    window[0], window[1] = 0, now


def _epoch_means(state: _EpochProgress, info: DistInfo | None) -> dict[str, float]:
    if state.sums is None:
        return {}
    packed = torch.cat([state.sums, state.sums.new_tensor([state.count, state.seconds])])
    if info is not None:
        all_reduce_sum(packed, info)
    count = float(packed[-2])
    sums = packed[:-2] / max(count, 1.0)
    out = dict(zip(state.names, sums.tolist()))
    world = info.world_size if info is not None else 1
    out["images_per_s"] = count / max(float(packed[-1]) / world, 1e-9)
    return out


@torch.no_grad()
def validation_metrics(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    reconstruction_scale: float,
    amp: str = "off",
    channels_last: bool = False,
    dist_info: DistInfo | None = None,
    health: HealthAccumulator | None = None,
    store: Any = "the crop store",
) -> dict[str, float]:
    """Mean loss terms, perplexities and accuracies of ``model`` over ``loader``.

    Parameters
    ----------
    model : nn.Module
        The (unwrapped) model, evaluated in eval mode.
    loader : iterable of (x, y)
    device : torch.device
    reconstruction_scale : float
    amp : {"bf16", "fp16", "off"}
    channels_last : bool
    dist_info : DistInfo, optional
        Under DDP the sums are reduced over ranks (each rank holds a shard).
    health : HealthAccumulator, optional
        Receives the global encodings and code maps of every crop (this rank's shard
        under DDP), for :class:`~cyto.analysis.EncodingHealth`.
    store : path-like, optional
        The crop store the loader reads (named when a crop holds non-finite pixels).

    Returns
    -------
    metrics : dict of str to float
        Per-crop means (empty when the loader is empty on every rank).
    """
    core = unwrap(model)
    was_training = core.training
    core.eval()
    sums = _EpochProgress()
    try:
        for x, y in loader:
            check_finite_crops(x, None, store, "its validation loss would be meaningless")
            output, _, names, vec = _step_loss(
                core,
                x,
                y,
                device=device,
                amp=amp,
                channels_last=channels_last,
                reconstruction_scale=reconstruction_scale,
            )
            if health is not None:
                _add_health(health, core, output)
            sums.add(names, vec, int(x.shape[0]))
    finally:
        core.train(was_training)
    return mean_over_ranks(sums.names, sums.sums, sums.count, device, dist_info)


def _add_health(health: HealthAccumulator, model: Any, output: Any) -> None:
    encodings, indices = model.health_arrays(output)
    health.update(
        encodings.float().cpu().numpy(),
        None if indices is None else indices.cpu().numpy(),
    )
