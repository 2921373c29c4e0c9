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
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ._dataset import CropDataset, DihedralAugment, collate_crops, encode_labels
from ._registry import build_model, model_config

__all__ = [
    "EpochBudget",
    "StepPlan",
    "cosine_lr",
    "measure_config_speed",
    "measure_train_speed",
    "plan_steps",
]

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
    if min(steps, batch_size) < 1 or warmup < 0:
        raise ValueError(
            f"`steps` and `batch_size` must be >= 1 and `warmup` >= 0; got {steps}, "
            f"{batch_size}, {warmup}"
        )
    from cyto.data import CropStore

    with CropStore(crops) as store:
        ids, size, channels = store.protein_ids, int(store.crop_size), len(store.channels)
    classes = encode_labels(ids)[1]
    cfg = model_config(preset, dict(model_overrides or {})).replace(
        in_channels=channels, num_classes=max(int(classes.size), 2), image_size=size
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads or before)
        return measure_config_speed(crops, cfg, batch_size, steps=steps, warmup=warmup, seed=seed)
    finally:
        torch.set_num_threads(before)


def measure_config_speed(
    crops: str | os.PathLike,
    config: Any,
    batch_size: int,
    *,
    steps: int = 6,
    warmup: int = 2,
    seed: int = 0,
    device: torch.device | None = None,
) -> tuple[float, float]:
    """:func:`measure_train_speed` for a model config (one whose model's ``loss`` takes
    ``(x, y, output)``), on ``device`` (default CPU), with the current threads."""
    from cyto.data import CropStore

    with CropStore(crops) as store:
        n, ids = len(store), store.protein_ids
    if n < batch_size:
        raise ValueError(f"crop store {crops} holds {n} crops, fewer than one batch ({batch_size})")
    device = device or torch.device("cpu")
    rng_state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = build_model(config).to(device)
        labels = encode_labels(ids)[0]
        data = CropDataset(crops, np.arange(n), labels=labels, augment=DihedralAugment(seed))
        rows = np.random.default_rng(seed).integers(0, n, size=(warmup + steps, batch_size))
        batches = (collate_crops(data.__getitems__(list(r))) for r in rows)
        train_rate = _timed_steps(model, batches, warmup, device, train=True)
        batches = (collate_crops(data.__getitems__(list(r))) for r in rows)
        eval_rate = _timed_steps(model, batches, warmup, device, train=False)
    finally:
        torch.set_rng_state(rng_state)
    return train_rate, eval_rate


def _timed_steps(
    model: torch.nn.Module, batches: Any, warmup: int, device: torch.device, *, train: bool
) -> float:
    """Images/s of the batches after the first ``warmup`` (training steps or forwards)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train(train)
    images, start = 0, time.perf_counter()
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            _sync(device)
            images, start = 0, time.perf_counter()
        x, y = x.to(device), y.to(device)
        if train:
            loss = model.loss(x, y, model(x), reconstruction_scale=1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(x)
        images += int(x.shape[0])
    _sync(device)
    return images / max(time.perf_counter() - start, 1e-9)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    steps = _steps_that_fit(budget_s - fixed, max_epochs, step_s, full)
    return StepPlan(
        budget_s=float(budget_s),
        images_per_s=float(images_per_s),
        eval_images_per_s=float(eval_images_per_s),
        full_steps=full,
        steps_per_epoch=steps,
        max_epochs=int(max_epochs),
        estimated_s=float(fixed + max_epochs * steps * step_s),
    )


def cosine_lr(step: int, *, total: int, lr: float, min_lr: float = 0.0) -> float:
    """Learning rate of ``step`` on a half cosine from ``lr`` (step 0) to ``min_lr``.

    Parameters
    ----------
    step : int
        Steps taken before this one.
    total : int
        Steps of the whole schedule; later steps keep ``min_lr``.
    lr, min_lr : float
        Start and end of the schedule.

    Returns
    -------
    float

    Examples
    --------
    >>> cosine_lr(0, total=100, lr=1e-3), cosine_lr(50, total=100, lr=1e-3)
    (0.001, 0.0005)
    """
    return _cosine(min(max(step, 0) / max(total, 1), 1.0), lr, min_lr)


def _cosine(frac: float, lr: float, min_lr: float) -> float:
    """The half cosine from ``lr`` (``frac`` 0) to ``min_lr`` (``frac`` 1)."""
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


def _steps_that_fit(seconds: float, epochs: int, step_s: float, full_steps: int) -> int:
    """Steps per epoch of ``epochs`` epochs that fit ``seconds`` (1 to ``full_steps``)."""
    return min(full_steps, max(int(seconds / (epochs * step_s)), 1))


class EpochBudget:
    """The steps of each epoch of a run that must end within ``budget_s`` seconds.

    Before each epoch the steps are sized from the time left and the speed observed so
    far (:func:`measure_train_speed` before the first epoch, then each finished epoch's
    own training and validation time), so a machine that slows down mid-run shortens the
    later epochs instead of overrunning. ``lr_at`` keeps a cosine schedule continuous
    across the re-plans: the schedule's progress goes from where it is to 1 over the
    steps now planned. When every epoch fits in full, the steps and learning rates are
    those of a run without a budget.

    Parameters
    ----------
    budget_s : float
        Wall-time budget of the run from the moment this object is made (plus
        ``spent_s`` of a resumed run).
    max_epochs : int
        Epochs of the run.
    images_per_s, eval_images_per_s : float
        Speeds to plan the first epoch with (:func:`measure_train_speed`); ``None``
        plans it in full.
    batch_size, n_val : int
        Crops per step and validation crops.
    lr, min_lr : float
        Ends of the cosine schedule (used by :meth:`lr_at`).
    clock : callable, default time.perf_counter
        Seconds of a monotonic clock.
    """

    def __init__(
        self,
        budget_s: float,
        *,
        max_epochs: int,
        batch_size: int,
        n_val: int,
        images_per_s: float | None,
        eval_images_per_s: float | None,
        lr: float,
        min_lr: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not (isinstance(budget_s, int | float) and math.isfinite(budget_s) and budget_s > 0):
            raise ValueError(f"`budget_s` must be a finite number > 0; got {budget_s!r}")
        if min(max_epochs, batch_size) < 1:
            raise ValueError(
                f"`max_epochs` and `batch_size` must be >= 1; got {max_epochs}, {batch_size}"
            )
        self.budget_s = float(budget_s)
        self.clock = clock
        self.max_epochs, self.batch_size, self.n_val = int(max_epochs), int(batch_size), n_val
        self.lr, self.min_lr = float(lr), float(min_lr)
        self.rates = (images_per_s, eval_images_per_s)
        self.spent_s = 0.0
        self._start = clock()
        self.observed: tuple[float, float] | None = None  # seconds per step, per validation
        self.epoch_steps: dict[int, int] = {}
        self.anchor = (0, 0.0, 1)  # step, schedule progress at it, steps left after it

    def elapsed(self) -> float:
        """Seconds of the run so far (those before a resume included)."""
        return self.spent_s + self.clock() - self._start

    def plan_epoch(self, epoch: int, full_steps: int, step: int) -> int:
        """Steps of ``epoch`` (``full_steps`` when they fit); fixed once planned."""
        if epoch in self.epoch_steps:
            return self.epoch_steps[epoch]
        left_epochs = self.max_epochs - epoch
        left_s = self.budget_s - self.elapsed()
        if self.observed is not None:
            step_s, val_s = self.observed
            steps = _steps_that_fit(left_s - left_epochs * val_s, left_epochs, step_s, full_steps)
        elif self.rates[0] and self.rates[1]:
            steps = plan_steps(
                max(left_s, 1e-3),
                images_per_s=self.rates[0],
                eval_images_per_s=self.rates[1],
                n_train=full_steps * self.batch_size,
                n_val=self.n_val,
                batch_size=self.batch_size,
                max_epochs=left_epochs,
            ).steps_per_epoch
        else:
            steps = full_steps
        self.epoch_steps[epoch] = steps
        progress = self.progress(step)
        self.anchor = (step, progress, max(steps * left_epochs, 1))
        return steps

    def observe(self, *, train_s: float, steps: int, val_s: float) -> None:
        """Record a finished epoch's training seconds, steps and validation seconds."""
        if steps > 0:
            self.observed = (train_s / steps, val_s)

    def progress(self, step: int) -> float:
        """Fraction of the learning-rate schedule done before ``step``."""
        start, done, left = self.anchor
        return min(done + (step - start) / left * (1.0 - done), 1.0)

    def lr_at(self, step: int) -> float:
        """Cosine learning rate of ``step`` (see :func:`cyto.nn.cosine_lr`)."""
        return _cosine(self.progress(step), self.lr, self.min_lr)

    def summary(self) -> dict[str, Any]:
        """The budget, the time used so far and the steps of each planned epoch."""
        return {
            "budget_s": self.budget_s,
            "elapsed_s": round(self.elapsed(), 3),
            "measured_images_per_s": self.rates[0],
            "epoch_steps": [self.epoch_steps[e] for e in sorted(self.epoch_steps)],
        }

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps (time spent, plans, observed speeds)."""
        return {
            "spent_s": self.elapsed(),
            "epoch_steps": {str(k): v for k, v in self.epoch_steps.items()},
            "observed": self.observed,
            "anchor": list(self.anchor),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue a resumed run's budget."""
        self.spent_s = float(state.get("spent_s", 0.0))
        self._start = self.clock()
        self.epoch_steps = {int(k): int(v) for k, v in state.get("epoch_steps", {}).items()}
        observed = state.get("observed")
        self.observed = None if observed is None else (float(observed[0]), float(observed[1]))
        step, done, left = state.get("anchor", (0, 0.0, 1))
        self.anchor = (int(step), float(done), int(left))
