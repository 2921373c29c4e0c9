"""Training within a wall-time budget: measure this machine's speed, then size the epochs.

A demo that promises "under 8 minutes" cannot fix its number of steps: the same 2-core
machine type trains the small preset at 30 to 110 images/s depending on the host. The
budget is kept by measuring a few real training steps (store reading, augmentation,
forward, backward, Adam) before training and capping ``steps_per_epoch`` so that the
planned epochs, their validation passes and the run's set-up fit. A machine fast enough
for the whole plan trains exactly the plan, so its results do not depend on the timing.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ._dataset import CropDataset, DihedralAugment, collate_crops, encode_labels
from ._registry import build_model, model_config

__all__ = ["StepPlan", "measure_train_speed", "plan_steps"]

# Wall time of a run's set-up besides the steps (store checks, pixel variance, model,
# codebook initialisation, checkpoints), in seconds of one training step.
_SETUP_STEPS = 25.0
# The training loop's steps run slower than the bare ones measured (data loader, metric
# records, progress): 0.87-0.90 of the measured rate for the small preset on 2 cores.
_LOOP_EFFICIENCY = 0.88


@dataclass(frozen=True)
class StepPlan:
    """How many steps a budgeted run takes, and why.

    Attributes
    ----------
    budget_s : float
        Wall-time budget of the training run, in seconds.
    images_per_s : float
        Measured training speed (images per second of full training steps).
    eval_images_per_s : float
        Measured validation speed (images per second of forward passes).
    full_steps : int
        Steps of one full epoch over the training split.
    steps_per_epoch : int
        Steps each epoch takes: ``full_steps`` when the plan fits, fewer otherwise.
    max_epochs : int
        Epochs of the plan.
    estimated_s : float
        Predicted wall time of the run with ``steps_per_epoch``.
    """

    budget_s: float
    images_per_s: float
    eval_images_per_s: float
    full_steps: int
    steps_per_epoch: int
    max_epochs: int
    estimated_s: float

    @property
    def capped(self) -> bool:
        """True when the budget made the epochs shorter than a full pass."""
        return self.steps_per_epoch < self.full_steps

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields plus ``capped``."""
        return {**asdict(self), "capped": self.capped}

    def describe(self) -> str:
        """One line for logs and reports."""
        rate = f"measured {self.images_per_s:.0f} images/s"
        if not self.capped:
            return (
                f"full epochs of {self.full_steps} steps fit the {self.budget_s:.0f} s "
                f"budget ({rate})"
            )
        return (
            f"{self.steps_per_epoch} of {self.full_steps} steps per epoch to fit the "
            f"{self.budget_s:.0f} s budget ({rate})"
        )


def measure_train_speed(
    crops: str | os.PathLike,
    *,
    preset: str,
    batch_size: int,
    model_overrides: Mapping[str, Any] | None = None,
    steps: int = 6,
    warmup: int = 2,
    seed: int = 0,
    threads: int = 0,
) -> tuple[float, float]:
    """Training and evaluation images/s of a model preset on crops of a store.

    Parameters
    ----------
    crops : path-like
        HDF5 crop store; batches of random crops are read with augmentation, as in
        training.
    preset : str
        Model preset (:meth:`cyto.nn.CytoselfConfig.preset` name).
    batch_size : int
        Crops per step.
    model_overrides : mapping, optional
        Fields replacing those of the preset.
    steps, warmup : int
        Timed steps, and untimed ones before them (first-call allocation and kernel
        selection).
    seed : int
        Seed of the throwaway model and the crops drawn. The torch RNG state of the
        caller is restored afterwards.
    threads : int
        Torch compute threads to measure with (0: the current setting), as the
        training run will use; the caller's setting is restored afterwards.

    Returns
    -------
    train_rate, eval_rate : float
        Images per second of training steps (forward, loss, backward, Adam, including
        reading and augmenting the batch) and of evaluation forward passes.

    Raises
    ------
    ValueError
        If ``steps``/``warmup``/``batch_size`` are not positive or the store holds
        fewer crops than one batch.
    """
    from cyto.data import CropStore

    if min(steps, batch_size) < 1 or warmup < 0:
        raise ValueError(
            f"`steps` and `batch_size` must be >= 1 and `warmup` >= 0; got {steps}, "
            f"{batch_size}, {warmup}"
        )
    with CropStore(crops) as store:
        n, ids, size = len(store), store.protein_ids, int(store.crop_size)
        channels = len(store.channels)
    if n < batch_size:
        raise ValueError(f"crop store {crops} holds {n} crops, fewer than one batch ({batch_size})")
    labels, classes = encode_labels(ids)
    cfg = model_config(preset, dict(model_overrides or {})).replace(
        in_channels=channels, num_classes=max(int(classes.size), 2), image_size=size
    )
    rng_state, before = torch.get_rng_state(), torch.get_num_threads()
    try:
        torch.set_num_threads(threads or before)
        torch.manual_seed(seed)
        model = build_model(cfg)
        data = CropDataset(crops, np.arange(n), labels=labels, augment=DihedralAugment(seed))
        rows = np.random.default_rng(seed).integers(0, n, size=(warmup + steps, batch_size))
        batches = (collate_crops(data.__getitems__(list(r))) for r in rows)
        train_rate = _timed_steps(model, batches, warmup, train=True)
        batches = (collate_crops(data.__getitems__(list(r))) for r in rows)
        eval_rate = _timed_steps(model, batches, warmup, train=False)
    finally:
        torch.set_rng_state(rng_state)
        torch.set_num_threads(before)
    return train_rate, eval_rate


def _timed_steps(model: torch.nn.Module, batches: Any, warmup: int, *, train: bool) -> float:
    """Images/s of the batches after the first ``warmup`` (training steps or forwards)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train(train)
    images, start = 0, time.perf_counter()
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            images, start = 0, time.perf_counter()
        if train:
            loss = model.loss(x, y, model(x), reconstruction_scale=1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(x)
        images += int(x.shape[0])
    return images / max(time.perf_counter() - start, 1e-9)


def plan_steps(
    budget_s: float,
    *,
    images_per_s: float,
    eval_images_per_s: float,
    n_train: int,
    n_val: int,
    batch_size: int,
    max_epochs: int,
) -> StepPlan:
    """The steps per epoch that fit a training run into ``budget_s`` seconds.

    The run's time is predicted as ``max_epochs`` epochs of ``steps_per_epoch`` steps,
    one validation pass over ``n_val`` crops per epoch and a set-up worth
    25 steps, with the steps 12% slower than measured (the training loop's own work).
    The full epoch is kept when it fits; otherwise ``steps_per_epoch`` is the largest
    count that fits (at least 1).

    Parameters
    ----------
    budget_s : float
        Seconds the training run may take (> 0).
    images_per_s, eval_images_per_s : float
        Training and validation speeds (:func:`measure_train_speed`).
    n_train, n_val : int
        Crops of the training and validation splits.
    batch_size, max_epochs : int
        Of the run.

    Returns
    -------
    StepPlan

    Examples
    --------
    >>> plan = plan_steps(60.0, images_per_s=64.0, eval_images_per_s=256.0,
    ...                   n_train=6400, n_val=800, batch_size=32, max_epochs=3)
    >>> plan.full_steps, plan.steps_per_epoch
    (200, 21)
    """
    values = {"budget_s": budget_s, "images_per_s": images_per_s}
    values["eval_images_per_s"] = eval_images_per_s
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}")
    step_s = batch_size / (images_per_s * _LOOP_EFFICIENCY)
    full = max(n_train // batch_size, 1)
    fixed = _SETUP_STEPS * step_s + max_epochs * n_val / eval_images_per_s
    fits = int((budget_s - fixed) / (max_epochs * step_s))
    steps = min(full, max(fits, 1))
    return StepPlan(
        budget_s=float(budget_s),
        images_per_s=float(images_per_s),
        eval_images_per_s=float(eval_images_per_s),
        full_steps=full,
        steps_per_epoch=steps,
        max_epochs=int(max_epochs),
        estimated_s=float(fixed + max_epochs * steps * step_s),
    )
