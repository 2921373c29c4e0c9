"""Training as plain functions: ``train_one_epoch``, ``evaluate`` and ``train``.

``train`` owns the run directory, the device, the optimizer, the learning-rate
plateau schedule, early stopping and the checkpoints; the model only computes its
outputs and its loss. A run directory holds::

    config.json          model + training configuration, store description, classes
    split.npz            split (0 train / 1 val / 2 test per crop) and class names
    metrics.jsonl        one JSON record per logged step and per epoch
    checkpoints/last.pt  full state after the latest epoch (or mid-epoch save)
    checkpoints/best.pt  model weights of the best validation epoch
    summary.json         written when training ends (best epoch, stop reason)

Launch on several GPUs or nodes with ``torchrun``; every rank runs ``train`` and
only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cyto._atomic import atomic_path
from cyto._health import HealthAccumulator
from cyto._lock import write_lock
from cyto._paths import relative_to
from cyto._provenance import package_versions
from cyto.data import check_output
from cyto.data._rundir import RunDir

from ._budget import EpochBudget, cosine_lr, measure_config_speed
from ._checkpoint import (
    CHECKPOINT_FORMAT,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    seeded_global_rngs,
    set_rng_state,
)
from ._config import _is_int, _is_nonneg_number
from ._dataset import (
    SPLIT_NAMES,
    BlockShuffleSampler,
    CropDataset,
    DihedralAugment,
    PairedCropDataset,
    collate_crops,
    default_num_workers,
    default_threads,
    encode_labels,
    split_crops,
    torch_threads,
)
from ._distributed import (
    DistInfo,
    all_reduce_sum,
    broadcast_buffers,
    replica_divergence,
    setup_distributed,
    teardown_distributed,
)

__all__ = [
    "LR_SCHEDULES",
    "NonFiniteLossError",
    "PlateauState",
    "TermWatch",
    "TrainConfig",
    "TrainingWarning",
    "cosine_lr",
    "evaluate",
    "read_config_file",
    "train",
    "train_one_epoch",
]

_AMP_CHOICES = ("bf16", "fp16", "off")

#: Learning-rate schedules of :class:`TrainConfig` (``lr_schedule``).
LR_SCHEDULES = ("plateau", "cosine")
# Fields that may change when a run is resumed (they do not change the result).
_RESUMABLE = frozenset(
    {
        "max_epochs",
        "num_workers",
        "device",
        "progress",
        "log_every",
        "checkpoint_every",
        "tensorboard",
        "threads",
        "compile",
    }
)


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss became NaN or infinite (``.step``: where)."""

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


#: Metrics that improve upward (``monitor_mode="auto"`` maximises them).
MAXIMIZED_METRICS = frozenset({"accuracy_local", "accuracy_global"})


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters (frozen, validated, JSON/TOML-safe).

    Defaults follow the paper: Adam at 4e-4, learning rate ×0.1 after 4 epochs
    without validation improvement (floor 1e-8), early stop after 12 such epochs
    with the best weights restored, 8:1:1 split grouped by field of view, random
    90° rotations and flips. One exception: improvement is judged on the validation
    ``task_loss`` (reconstruction + identification), not the whole loss, whose
    feature-space terms can grow while the model improves (see ``monitor``).

    Parameters
    ----------
    preset : str, default "paper"
        Model preset used when :func:`train` gets no ``model_config``.
    batch_size : int, default 32
        Crops per step and per process.
    max_epochs : int, default 100
        Upper bound on epochs.
    lr : float, default 4e-4
        Initial Adam learning rate.
    lr_factor : float, default 0.1
        Factor applied to the learning rate on a plateau.
    lr_patience : int, default 4
        Epochs without improvement before the learning rate drops (the counter
        restarts after each drop and on every improvement).
    min_lr : float, default 1e-8
        Learning-rate floor.
    lr_schedule : {"plateau", "cosine"}, default "plateau"
        ``"plateau"``: ``lr`` until the monitored metric stops improving, then
        ``lr * lr_factor`` (the paper's rule). ``"cosine"``: from ``lr`` down to
        ``min_lr`` along a half cosine over the ``max_epochs`` epochs, set every step
        (the plateau rule then changes nothing; early stopping still applies). For a
        fixed budget of steps: the last epochs train at a small learning rate, so the
        last model is a settled one.
    early_stop_patience : int, default 12
        Epochs without improvement before training stops.
    min_delta : float, default 0.0
        Validation-loss decrease that counts as an improvement.
    monitor : str, default "task_loss"
        Validation metric that drives the learning-rate plateau, early stopping and the
        best checkpoint. ``"task_loss"`` (default): image reconstruction plus
        identification, the loss without the feature-space terms
        (``local_reconstruction``, ``vq_*``) whose scale follows the encoders' output
        and can grow while the model improves. ``"loss"``: the whole loss (the
        paper's choice). Or one term (``"reconstruction"``, ``"cls_global"``, ...)
        or an accuracy (``"accuracy_global"``, ...).
    monitor_mode : {"auto", "min", "max"}, default "auto"
        Whether lower (``"min"``) or higher (``"max"``) values of ``monitor`` are
        better. ``"auto"``: ``"max"`` for the metrics in :data:`MAXIMIZED_METRICS`
        (the accuracies), ``"min"`` for every loss; :attr:`mode` gives the resolved one.
    skip_degenerate : bool, default True
        Epochs whose validation global encodings are degenerate (nearly every crop
        with the same encoding or code map; :class:`~cyto.analysis.EncodingHealth`)
        never become the best checkpoint and do not count towards the learning-rate
        plateau or early stopping. False judges them by ``monitor`` alone.
    split : (float, float, float), default (0.8, 0.1, 0.1)
        Train, validation, test fractions.
    group_by_fov : bool, default True
        Keep the crops of one field of view in one split.
    seed : int, default 0
        Seed of the split, the model initialisation, shuffling and augmentation.
    augment : bool, default True
        Random 90° rotations and flips of the training crops.
    num_workers : int, default -1
        DataLoader worker processes per rank (each opens its own HDF5 handle);
        -1 picks :func:`~cyto.nn.default_num_workers` (0 on CPU, where workers
        would compete with the compute threads; up to 8 per GPU).
    shuffle_block : int, default 1
        Consecutive crops shuffled as one unit (see
        :class:`~cyto.nn.BlockShuffleSampler`); 1 is a plain random permutation.
    device : str, default "auto"
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.
    amp : {"bf16", "fp16", "off"}, default "bf16"
        Mixed precision on CUDA (ignored on other devices).
    channels_last : bool, default True
        Channels-last memory format on CUDA (ignored on other devices).
    deterministic : bool, default False
        ``torch.use_deterministic_algorithms(True)`` during training.
    time_budget_s : float, default 0.0
        Wall-time budget of the run in seconds (0: none; one process only). A few timed
        steps measure the machine first, and before each epoch its steps are sized
        from the time left and the speed seen so far (:class:`~cyto.nn.EpochBudget`):
        full epochs when they fit, otherwise each epoch trains a random subset that
        does, so a machine that slows down mid-run shortens its later epochs. With
        ``lr_schedule="cosine"`` the schedule stays continuous and ends at ``min_lr``.
        A machine fast enough for every full epoch trains exactly them. The plan is in
        each epoch record (``planned_steps``) and in ``summary.json``.
    steps_per_epoch : int, default 0
        At most this many training steps per epoch (0: a full pass). Each epoch then
        trains on the first ``steps_per_epoch * batch_size`` crops of its own random
        order: a fresh random subset every epoch, so a screen of 10⁶ crops validates
        and checkpoints every ``steps_per_epoch`` steps.
    log_every : int, default 10
        Steps between per-step metric records (and progress-bar updates).
    checkpoint_every : int, default 0
        Also save ``last.pt`` every this many steps inside an epoch (0: only at
        the end of each epoch). Resuming from such a save continues mid-epoch.
    variance_samples : int, default 4096
        Training crops sampled to estimate the pixel variance that scales the
        reconstruction loss.
    grad_clip : float, default 0.0
        Clip the gradient norm to this value (0: no clipping).
    tensorboard : bool, default False
        Also write TensorBoard event files (needs the ``tensorboard`` extra).
    progress : bool, default True
        Show a progress bar.
    threads : int, default 0
        Torch compute threads of this process. 0: at most the CPUs this process may use
        (affinity mask and container quota, shared by the ranks of a node under
        torchrun) and at most torch's current setting, leaving out the CPUs other work
        keeps busy, re-checked every epoch (:func:`cyto.nn.default_threads`; fixed for
        the run when ``deterministic``).
    compile : bool, default False
        Compile the model's training forward pass with :func:`torch.compile` (one graph:
        the step has no graph breaks and no host syncs). Worth it on a GPU for long runs;
        the first steps pay the compilation (about a minute for the paper preset).

    Examples
    --------
    >>> cfg = TrainConfig(batch_size=64)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    preset: str = "paper"
    batch_size: int = 32
    max_epochs: int = 100
    lr: float = 4e-4
    lr_factor: float = 0.1
    lr_patience: int = 4
    min_lr: float = 1e-8
    lr_schedule: str = "plateau"
    early_stop_patience: int = 12
    min_delta: float = 0.0
    monitor: str = "task_loss"
    monitor_mode: str = "auto"
    skip_degenerate: bool = True
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    group_by_fov: bool = True
    seed: int = 0
    augment: bool = True
    num_workers: int = -1
    shuffle_block: int = 1
    device: str = "auto"
    amp: str = "bf16"
    channels_last: bool = True
    deterministic: bool = False
    log_every: int = 10
    steps_per_epoch: int = 0
    time_budget_s: float = 0.0
    checkpoint_every: int = 0
    variance_samples: int = 4096
    grad_clip: float = 0.0
    tensorboard: bool = False
    progress: bool = True
    threads: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        for name, low in (
            ("batch_size", 1),
            ("max_epochs", 0),
            ("lr_patience", 1),
            ("early_stop_patience", 1),
            ("num_workers", -1),
            ("shuffle_block", 1),
            ("log_every", 1),
            ("steps_per_epoch", 0),
            ("checkpoint_every", 0),
            ("variance_samples", 1),
            ("seed", 0),
            ("threads", 0),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ValueError(f"`{name}` must be an int >= {low}; got {value!r}")
        for name in ("lr", "lr_factor", "min_lr", "min_delta", "grad_clip", "time_budget_s"):
            value = getattr(self, name)
            if not _is_nonneg_number(value):
                raise ValueError(f"`{name}` must be a finite number >= 0; got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"`lr` must be > 0; got {self.lr!r}")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"`lr_factor` must be in (0, 1); got {self.lr_factor!r}")
        for name in (
            "skip_degenerate",
            "group_by_fov",
            "augment",
            "channels_last",
            "deterministic",
            "tensorboard",
            "progress",
            "compile",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be a bool; got {getattr(self, name)!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"`lr_schedule` must be one of {list(LR_SCHEDULES)}; got {self.lr_schedule!r}"
            )
        if self.amp not in _AMP_CHOICES:
            raise ValueError(f"`amp` must be one of {list(_AMP_CHOICES)}; got {self.amp!r}")
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ValueError(
                f"`monitor` must be a metric name such as 'loss'; got {self.monitor!r}"
            )
        if self.monitor_mode not in ("auto", "min", "max"):
            raise ValueError(
                f"`monitor_mode` must be 'auto', 'min' or 'max'; got {self.monitor_mode!r}"
            )
        if not isinstance(self.preset, str) or not isinstance(self.device, str):
            raise ValueError(
                f"`preset` and `device` must be str; got {self.preset!r}, {self.device!r}"
            )
        split = tuple(float(v) for v in np.asarray(self.split, dtype=float).ravel())
        if len(split) != 3 or min(split) < 0 or split[0] <= 0:
            raise ValueError(
                f"`split` must be three fractions (train, val, test) >= 0 with train > 0; "
                f"got {self.split!r}"
            )
        object.__setattr__(self, "split", split)

    @property
    def mode(self) -> str:
        """``"min"`` or ``"max"``: the direction in which ``monitor`` improves."""
        if self.monitor_mode != "auto":
            return self.monitor_mode
        return "max" if self.monitor in MAXIMIZED_METRICS else "min"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the fields (``split`` as a list)."""
        d = dataclasses.asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys raise a ValueError listing the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; valid options are {names}")
        values = dict(values)
        if "split" in values:
            values["split"] = tuple(values["split"])
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return self.from_dict({**self.to_dict(), **changes})


def read_config_file(path: str | os.PathLike) -> tuple[TrainConfig, dict[str, Any]]:
    """Read a TOML run configuration.

    The file has a ``[train]`` table (fields of :class:`TrainConfig`) and an
    optional ``[model]`` table (fields of :class:`~cyto.nn.CytoselfConfig`
    overriding the preset; ``preset = "small"`` may also be given there).

    Parameters
    ----------
    path : str or PathLike
        The ``.toml`` file.

    Returns
    -------
    config : TrainConfig
    model_overrides : dict
        Model fields to override (without ``preset``).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not valid TOML or has unknown tables or keys.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "run.toml")
    >>> _ = open(p, "w").write('[train]\\nbatch_size = 8\\n[model]\\npreset = "tiny"\\n')
    >>> cfg, model = read_config_file(p)
    >>> cfg.batch_size, cfg.preset, model
    (8, 'tiny', {})
    """
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from None
    unknown = sorted(set(data) - {"train", "model"})
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {unknown}; expected [train] and [model]")
    train_values = dict(data.get("train", {}))
    model_values = dict(data.get("model", {}))
    if "preset" in model_values:
        train_values["preset"] = model_values.pop("preset")
    return TrainConfig.from_dict(train_values), model_values


@dataclass
class PlateauState:
    """Learning-rate plateau schedule and early stopping on the validation loss.

    Both counters restart on every improvement (the reference code forgot to
    restart the learning-rate counter); the learning-rate counter also restarts
    after each reduction. Semantics follow Keras' ``ReduceLROnPlateau`` and
    ``EarlyStopping``, which trained the published model: with patience 4 the
    rate drops after the 4th consecutive epoch without improvement.

    Examples
    --------
    >>> s = PlateauState()
    >>> cfg = TrainConfig(lr_patience=2, early_stop_patience=3)
    >>> [s.update(v, epoch=i, config=cfg)[1:] for i, v in enumerate([1.0, 2.0, 2.0, 2.0])]
    [(False, False), (False, False), (True, False), (False, True)]
    """

    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    lr_bad_epochs: int = 0

    def update(self, value: float, *, epoch: int, config: TrainConfig) -> tuple[bool, bool, bool]:
        """Record an epoch's validation loss; returns ``(improved, reduce_lr, stop)``."""
        improved = value < self.best - config.min_delta
        if improved:
            self.best, self.best_epoch = float(value), int(epoch)
            self.bad_epochs = self.lr_bad_epochs = 0
            return True, False, False
        self.bad_epochs += 1
        self.lr_bad_epochs += 1
        reduce = self.lr_bad_epochs >= config.lr_patience
        if reduce:
            self.lr_bad_epochs = 0
        return False, reduce, self.bad_epochs >= config.early_stop_patience

    def state_dict(self) -> dict[str, Any]:
        """Plain-number state for checkpoints."""
        return dataclasses.asdict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        for key, value in state.items():
            setattr(self, key, type(getattr(self, key))(value))


class TrainingWarning(UserWarning):
    """A sign, during training, that the run may not give useful encodings."""


# A validation term that rose this many epochs in a row, to at least this factor of
# its value before the rise, gets a warning.
_RISE_EPOCHS = 3
_RISE_FACTOR = 1.5
_ADVICE = {
    "vq": (
        "the codebook is not following the encoder, and the global encoding may be "
        "collapsing: use the default codebook (codebook = 'ema', `cyto train --codebook "
        "ema`) or a lower learning rate (--lr)"
    ),
    "vq_ema": (
        "the encoder's output is moving faster than the moving-average codebook follows "
        "it; harmless while the epochs' encoding health (distinct maps, perplexity in "
        "metrics.jsonl) holds, otherwise lower the learning rate (--lr)"
    ),
    "local_reconstruction": (
        "this term compares features whose scale follows encoder1's output; it is "
        "harmless while task_loss keeps falling"
    ),
    "other": (
        "the model may be overfitting or the learning rate too high: try a lower --lr; "
        "the best checkpoint keeps the epoch with the lowest monitored value"
    ),
}


def _advice(term: str, codebook: str = "paper") -> str:
    if term.startswith("vq_"):
        return _ADVICE["vq_ema" if codebook == "ema" else "vq"]
    return _ADVICE.get(term, _ADVICE["other"])


@dataclass
class TermWatch:
    """Flags loss terms that keep growing from epoch to epoch.

    A term that rose :data:`_RISE_EPOCHS` epochs in a row and is now at least
    :data:`_RISE_FACTOR` times its value before the rise is reported once (again
    only after it has stopped rising).

    Examples
    --------
    >>> w = TermWatch()
    >>> [len(w.update({"vq_global": v})) for v in (1.0, 2.0, 4.0, 8.0, 9.0)]
    [0, 0, 0, 1, 0]
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    warned: list[str] = field(default_factory=list)
    codebook: str = "paper"

    def update(self, metrics: Mapping[str, float]) -> list[tuple[str, str]]:
        """Record one epoch's loss terms; returns ``(term, message)`` for new alarms."""
        alarms = []
        for name, value in metrics.items():
            if not (name in _WATCHED or name.startswith("vq_")):
                continue
            past = self.history.setdefault(name, [])
            past.append(float(value))
            del past[: -(_RISE_EPOCHS + 1)]
            rising = len(past) == _RISE_EPOCHS + 1 and all(
                b > a for a, b in itertools.pairwise(past)
            )
            if not rising:
                if name in self.warned:
                    self.warned.remove(name)
                continue
            if name in self.warned or not past[-1] >= _RISE_FACTOR * past[0]:
                continue
            self.warned.append(name)
            alarms.append(
                (
                    name,
                    f"{name} rose for {_RISE_EPOCHS} epochs in a row ({past[0]:.3g} -> "
                    f"{past[-1]:.3g}): {_advice(name, self.codebook)}",
                )
            )
        return alarms

    def state_dict(self) -> dict[str, Any]:
        """Plain state for checkpoints."""
        return {"history": {k: list(v) for k, v in self.history.items()}, "warned": self.warned}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.history = {k: [float(x) for x in v] for k, v in state.get("history", {}).items()}
        self.warned = list(state.get("warned", []))


_WATCHED = frozenset(
    {"loss", "task_loss", "reconstruction", "local_reconstruction", "cls_local", "cls_global"}
)


# --------------------------------------------------------------------------- metrics
class _MetricsLog:
    """Append-only JSONL metrics file (+ optional TensorBoard), rank 0 only."""

    def __init__(self, path: Path | None, *, tensorboard: bool = False) -> None:
        self.path = path
        self._fh = None
        self._tb = None
        if path is not None:
            self._fh = open(path, "a", encoding="utf-8")
            if tensorboard:
                from cyto._optional import require

                tb = require("torch.utils.tensorboard", "tensorboard", purpose="TensorBoard logs")
                self._tb = tb.SummaryWriter(log_dir=str(path.parent / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record, allow_nan=True) + "\n")
        self._fh.flush()
        if self._tb is not None:
            kind = record.get("kind", "step")
            step = record.get("step", 0)
            for key, value in record.items():
                if key not in ("kind", "step", "epoch") and isinstance(value, int | float):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records written after ``step`` (a killed run's lost work), atomically."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if int(rec.get("step", 0)) <= step:
            keep.append(line)
    _atomic_text(path, "".join(k + "\n" for k in keep))


def _atomic_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _loss_values(loss: Any) -> dict[str, torch.Tensor | float]:
    values: dict[str, torch.Tensor | float] = {"loss": loss.total.detach()}
    if loss.task is not None:
        values["task_loss"] = loss.task.detach()
    for name, term in loss.terms.items():
        values[name] = term.detach()
    for name in ("perplexity_local", "perplexity_global", "accuracy_local", "accuracy_global"):
        value = getattr(loss, name, None)
        if value is not None:
            values[name] = value
    return values


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
    core = model.module if hasattr(model, "module") else model
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = x.to(device, non_blocking=True, memory_format=memory_format)
    y = y.to(device, non_blocking=True)
    with _autocast(device, amp):
        output = model(x)
        loss = core.loss(x, y, output, reconstruction_scale=reconstruction_scale)
    values = _loss_values(loss)
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
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    reconstruction_scale: float,
    amp: str = "off",
    channels_last: bool = False,
    dist_info: DistInfo | None = None,
    health: HealthAccumulator | None = None,
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

    Returns
    -------
    metrics : dict of str to float
        Per-crop means (empty when the loader is empty on every rank).
    """
    core = model.module if hasattr(model, "module") else model
    was_training = core.training
    core.eval()
    sums = _EpochProgress()
    try:
        for x, y in loader:
            if not torch.isfinite(x).all():
                where = getattr(getattr(loader, "dataset", None), "path", "the crop store")
                raise ValueError(
                    f"validation crops of {where} hold non-finite pixels "
                    f"({int((~torch.isfinite(x)).sum())} values in one batch); fix or drop "
                    "those crops before training"
                )
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
                _add_health(health, output)
            sums.add(names, vec, int(x.shape[0]))
    finally:
        core.train(was_training)
    return _mean_over_ranks(sums, device, dist_info)


def _mean_over_ranks(
    sums: _EpochProgress, device: torch.device, dist_info: DistInfo | None
) -> dict[str, float]:
    """Per-crop means of ``sums``, reduced over ranks under DDP (empty when no crop)."""
    names, total, count = sums.names, sums.sums, sums.count
    if dist_info is not None and dist_info.distributed:
        # ranks with an empty shard still take part in the reduction
        width = torch.tensor([0 if total is None else total.numel()], device=device)
        torch.distributed.all_reduce(width, op=torch.distributed.ReduceOp.MAX)
        if total is None:
            total = torch.zeros(int(width), dtype=torch.float64, device=device)
        packed = torch.cat([total, total.new_tensor([count])])
        all_reduce_sum(packed, dist_info)
        names = names or _broadcast_names(names, dist_info)
        total, count = packed[:-1], int(packed[-1])
    if total is None or count == 0:
        return {}
    return dict(zip(names, (total / count).tolist()))


def _add_health(health: HealthAccumulator, output: Any) -> None:
    if not hasattr(output, "global_quantized"):  # a model without codebooks
        health.update(output.encoding.float().cpu().numpy(), None)
        return
    quantized = output.global_quantized
    encodings = (quantized if quantized is not None else output.global_).flatten(1)
    indices = output.global_indices
    health.update(
        encodings.float().cpu().numpy(),
        None if indices is None else indices.flatten(1).cpu().numpy(),
    )


def _broadcast_names(names: list[str], info: DistInfo) -> list[str]:
    box = [names]
    torch.distributed.broadcast_object_list(box, src=0)
    return list(box[0])


# --------------------------------------------------------------------------- setup
@dataclass
class _RunData:
    store_path: Path
    n: int
    channels: tuple[str, ...]
    crop_size: int
    labels: np.ndarray
    classes: np.ndarray
    split: np.ndarray
    reconstruction_scale: float
    fingerprint: dict[str, str] = field(default_factory=dict)
    fields: np.ndarray | None = None  # field of view of every crop (pair sampling)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.store_path),
            "n": self.n,
            "channels": list(self.channels),
            "crop_size": self.crop_size,
            "fingerprint": dict(self.fingerprint),
        }


# Crops read (evenly spaced) for a store's pixel fingerprint.
def _open_store(store_path: Path) -> Any:
    from cyto.data import CropStore

    try:
        return CropStore(store_path)
    except FileNotFoundError:
        raise FileNotFoundError(f"crop store not found: {store_path}") from None


def _pixel_variance(store: Any, rows: np.ndarray, *, samples: int, seed: int) -> float:
    rng = np.random.default_rng([seed, 1])
    if rows.size > samples:
        rows = np.sort(rng.choice(rows, size=samples, replace=False))
    total = total_sq = 0.0
    count = 0
    for lo in range(0, rows.size, 256):
        block = store.read(rows[lo : lo + 256]).astype(np.float64)
        if not np.isfinite(block).all():
            bad = rows[lo : lo + 256][~np.isfinite(block).reshape(block.shape[0], -1).all(1)]
            raise ValueError(
                f"crop store {store.path} contains non-finite pixel values (crops "
                f"{bad[:5].tolist()}{' ...' if bad.size > 5 else ''}); fix or drop them before "
                "training"
            )
        total += block.sum()
        total_sq += np.square(block).sum()
        count += block.size
    mean = total / max(count, 1)
    var = total_sq / max(count, 1) - mean * mean
    if not var > 0:
        raise ValueError(
            f"training crops of {store.path} have zero pixel variance; nothing to learn"
        )
    return float(var)


def _prepare_data(store_path: Path, config: TrainConfig) -> _RunData:
    with _open_store(store_path) as store:
        n = len(store)
        if n < 2:
            raise ValueError(f"crop store {store_path} holds {n} crops; need at least 2 to train")
        labels, classes = encode_labels(store.protein_ids)
        split = split_crops(
            store.protein_ids,
            store.fov_ids,
            fractions=config.split,
            seed=config.seed,
            group_by_fov=config.group_by_fov,
        )
        train_rows = np.flatnonzero(split == 0)
        if train_rows.size < config.batch_size:
            raise ValueError(
                f"the training split of {store_path} has {train_rows.size} crops, fewer than "
                f"`batch_size` ({config.batch_size})"
            )
        # read one crop from the far end: catches stores truncated after writing
        store.read([n - 1])
        scale = _pixel_variance(
            store, train_rows, samples=config.variance_samples, seed=config.seed
        )
        return _RunData(
            store_path=store_path,
            n=n,
            channels=tuple(store.channels),
            crop_size=int(store.crop_size),
            labels=labels,
            classes=classes,
            split=split,
            reconstruction_scale=scale,
            fingerprint=store.fingerprint(),
            fields=np.asarray(store.fov_ids).astype(str),
        )


def _model_config(
    data: _RunData, config: TrainConfig, model_config: Any, overrides: Mapping[str, Any]
) -> Any:
    from ._config import CytoselfConfig
    from ._inpainting import PairedInpaintingConfig
    from ._registry import model_config as registered_config

    derived = {
        "in_channels": len(data.channels),
        "num_classes": max(int(data.classes.size), 2),
        "image_size": data.crop_size,
    }
    clash = sorted(set(overrides) & set(derived))
    if clash:
        raise ValueError(f"model option(s) {clash} are taken from the crop store and cannot be set")
    if model_config is None:
        model_config = registered_config(config.preset, overrides)
    elif not isinstance(model_config, CytoselfConfig | PairedInpaintingConfig):
        raise TypeError(
            "`model_config` must be a CytoselfConfig, a PairedInpaintingConfig or None; got "
            f"{type(model_config).__name__}"
        )
    return model_config.replace(**derived)


def _check_store_matches(data: _RunData, saved: Mapping[str, Any], classes: list[str]) -> None:
    want = {k: saved[k] for k in ("n", "channels", "crop_size")}
    got = {k: data.describe()[k] for k in want}
    if got != want or list(data.classes) != list(classes):
        raise ValueError(
            f"crop store {data.store_path} does not match the run: run was trained on "
            f"{want} with {len(classes)} proteins, the store has {got} with "
            f"{data.classes.size} proteins"
        )
    # runs saved before fingerprints existed are checked by shape only
    differ = [
        {"ids": "protein or field ids", "pixels": "pixels"}[k]
        for k, v in saved.get("fingerprint", {}).items()
        if data.fingerprint.get(k) != v
    ]
    if differ:
        raise ValueError(
            f"crop store {data.store_path} is not the store the run was trained on: same "
            f"shape, but its {' and '.join(differ)} differ (run trained on "
            f"{saved.get('path')}); resume with that store"
        )


def _make_loaders(
    data: _RunData, config: TrainConfig, info: DistInfo, *, skip: int = 0, paired: bool = False
) -> tuple[Any, Any, CropDataset, BlockShuffleSampler, torch.Generator]:
    """Training and validation loaders; ``paired``: each item a pair of crops of one
    protein (:class:`PairedCropDataset`, for paired cell inpainting)."""
    from torch.utils.data import DataLoader

    aug = DihedralAugment(config.seed) if config.augment else None
    dataset: Any = CropDataset
    extra: dict[str, Any] = {}
    if paired:
        dataset, extra = PairedCropDataset, {"fields": data.fields, "seed": config.seed}
    train_ds = dataset(
        data.store_path, np.flatnonzero(data.split == 0), labels=data.labels, augment=aug, **extra
    )
    val_ds = dataset(data.store_path, np.flatnonzero(data.split == 1), labels=data.labels, **extra)
    sampler = BlockShuffleSampler(
        train_ds,
        num_replicas=info.world_size,
        rank=info.rank,
        seed=config.seed,
        block_size=config.shuffle_block,
        skip=skip,
    )
    val_sampler = BlockShuffleSampler(
        val_ds, num_replicas=info.world_size, rank=info.rank, shuffle=False, even=False
    )
    generator = torch.Generator()
    generator.manual_seed(config.seed + 7919 * info.rank)
    workers = config.num_workers
    if workers < 0:
        workers = default_num_workers(
            info.device, processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        )
    common = dict(
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
        generator=generator,
        collate_fn=collate_crops,
    )
    if workers > 0:
        common["prefetch_factor"] = 4
    train_loader = DataLoader(
        train_ds, batch_size=config.batch_size, sampler=sampler, drop_last=True, **common
    )
    val_loader = DataLoader(val_ds, batch_size=config.batch_size, sampler=val_sampler, **common)
    return train_loader, val_loader, train_ds, sampler, generator


def _write_run_files(run_dir: Path, data: _RunData, config: TrainConfig, model_config: Any) -> None:
    import cyto

    meta = {
        "train": config.to_dict(),
        "model": model_config.to_dict(),
        # the store also relative to the run: a moved folder still resumes
        "store": {**data.describe(), "relative": relative_to(data.store_path, run_dir)},
        "reconstruction_scale": data.reconstruction_scale,
        "classes": [str(c) for c in data.classes],
        "split_names": list(SPLIT_NAMES),
        "cyto_version": cyto.__version__,
        "torch_version": torch.__version__,
        "versions": package_versions(),
    }
    run = RunDir(run_dir)
    _atomic_text(run.config_file, json.dumps(meta, indent=2) + "\n")
    with atomic_path(run.split_file, suffix=".npz") as tmp:
        np.savez(tmp, split=data.split, classes=data.classes.astype(str), labels=data.labels)


def _resolve_resume_config(saved: TrainConfig, given: TrainConfig | None) -> TrainConfig:
    if given is None:
        return saved
    changed = [
        f.name
        for f in dataclasses.fields(TrainConfig)
        if getattr(saved, f.name) != getattr(given, f.name) and f.name not in _RESUMABLE
    ]
    if changed:
        raise ValueError(
            f"cannot resume with changed training option(s) {changed}: they would change "
            f"the result; only {sorted(_RESUMABLE)} may differ"
        )
    return given


# --------------------------------------------------------------------------- train
def train(
    store_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    config: TrainConfig | None = None,
    model_config: Any = None,
    model_overrides: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> Path:
    """Train a cytoself model on a crop store; resumable, DDP-aware.

    Parameters
    ----------
    store_path : str or PathLike
        HDF5 crop store (:class:`cyto.data.CropStore`).
    run_dir : str or PathLike
        Run directory (created). Without ``resume`` it must not hold a run yet.
    config : TrainConfig, optional
        Training options; default ``TrainConfig()``, or the saved ones on resume
        (where only ``max_epochs``, ``num_workers``, ``device``, ``progress``,
        ``log_every``, ``checkpoint_every`` and ``tensorboard`` may change).
    model_config : CytoselfConfig, optional
        Model configuration; default the preset ``config.preset``. Its
        ``in_channels``, ``num_classes`` and ``image_size`` are always taken
        from the store.
    model_overrides : dict, optional
        Fields replacing those of the preset (when ``model_config`` is None).
    resume : bool, default False
        Continue the run in ``run_dir`` from ``checkpoints/last.pt``.

    Returns
    -------
    run_dir : Path

    Raises
    ------
    FileNotFoundError
        If the store (or, on resume, the checkpoint) is missing.
    ValueError
        If the store is truncated, damaged, of another format version, holds
        non-finite pixels in the variance sample, or does not match the resumed run;
        if ``run_dir`` already holds a run and ``resume`` is False, or is a file.
    cyto.LockedError
        If another process is training into ``run_dir`` (the message names it).
    NonFiniteLossError
        If the loss becomes NaN/inf; ``checkpoints/last.pt`` keeps the last good state.

    Examples
    --------
    >>> from cyto.nn import train, TrainConfig
    >>> run = train("crops.h5", "runs/a", config=TrainConfig(preset="small"))  # doctest: +SKIP
    """
    store_path = Path(store_path).resolve()
    run_dir = Path(run_dir)
    if not resume:  # a new or empty folder, or a run (refused below: it needs resume)
        inputs = [("the crop store", store_path)]
        check_output(run_dir, "run", inputs=inputs, resume=True, flag="run_dir")
    # one writer per run folder (rank 0 holds the lock for the whole job under torchrun)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if resume and not run_dir.is_dir():
        raise FileNotFoundError(f"no run to resume: {run_dir} does not exist")
    created = rank0 and not run_dir.exists()
    if rank0:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with write_lock(run_dir, what="run folder") if rank0 else nullcontext():
            return _train_locked(store_path, run_dir, config, model_config, model_overrides, resume)
    except BaseException as err:
        # a run refused before it trained a step leaves nothing behind (an interrupted one
        # keeps its settings, for --resume to start it over; a failed one its error record)
        if created and not isinstance(err, KeyboardInterrupt) and not _trained(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        elif created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise


def _trained(run_dir: Path) -> bool:
    """True once a run has a checkpoint or has logged a training step."""
    run = RunDir(run_dir)
    if run.resumable:
        return True
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return '"kind": "step"' in run.metrics_file.read_text(encoding="utf-8")
    return False


def _train_locked(
    store_path: Path,
    run_dir: Path,
    config: TrainConfig | None,
    model_config: Any,
    model_overrides: Mapping[str, Any] | None,
    resume: bool,
) -> Path:
    """The body of :func:`train`, run while holding the run folder's lock."""
    run = RunDir(run_dir)
    ckpt_dir = run.checkpoints
    # temporary files of a writer killed mid-write (we hold the lock: nobody else writes)
    for stale in [*run_dir.glob(".*.tmp"), *ckpt_dir.glob(".*.tmp")]:
        stale.unlink(missing_ok=True)
    last_path = run.last
    checkpoint = None
    if resume and not last_path.exists() and run.started:
        # killed before its first checkpoint: nothing to lose, start over as it was set up
        saved = run.read_config()
        config = _resolve_resume_config(TrainConfig.from_dict(saved["train"]), config)
        from ._registry import config_from_saved

        model_config, model_overrides, resume = config_from_saved(saved["model"]), {}, False
        warnings.warn(
            f"{run_dir} stopped before its first checkpoint: starting it over with its "
            "saved settings",
            TrainingWarning,
            stacklevel=3,
        )
    if resume:
        if not last_path.exists() and any(p.name != ".lock" for p in run_dir.iterdir()):
            # the folder holds files of a run that never reached its first checkpoint
            raise FileNotFoundError(
                f"no checkpoint to resume from in {run_dir} (the run stopped before its "
                "first checkpoint); start it again without resuming"
            )
        checkpoint = load_checkpoint(last_path)
        saved_cfg = TrainConfig.from_dict(checkpoint["config"])
        config = _resolve_resume_config(saved_cfg, config)
    else:
        if last_path.exists():
            raise ValueError(
                f"`run_dir` {run_dir} already holds a run; resume it (--resume) or pick "
                f"a new folder"
            )
        config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a TrainConfig; got {type(config).__name__}")

    if config.tensorboard:  # fail before any work if the extra is missing
        from cyto._optional import require

        require("torch.utils.tensorboard", "tensorboard", purpose="TensorBoard logs")
    data = _prepare_data(store_path, config)  # validates the store before anything else
    if checkpoint is not None:
        _check_store_matches(data, checkpoint["store"], checkpoint["classes"])
        from ._registry import config_from_saved

        mcfg = config_from_saved(checkpoint["model_config"])
        data.split = checkpoint["split"].numpy().astype(np.int8)
        data.reconstruction_scale = float(checkpoint["reconstruction_scale"])
    else:
        mcfg = _model_config(data, config, model_config, model_overrides or {})

    if config.deterministic:
        # needed by deterministic cuBLAS; must be set before CUDA initialises
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    info = setup_distributed(config.device)
    prev_deterministic = torch.are_deterministic_algorithms_enabled()
    cuda_devices = [info.device.index] if info.device.type == "cuda" else []
    try:
        # the caller's global torch RNG state and thread count are left as they were
        cap = config.threads or min(torch.get_num_threads(), default_threads())
        with (
            torch.random.fork_rng(devices=cuda_devices),
            seeded_global_rngs(config.seed + info.rank),
            torch_threads(config.threads),
        ):
            if config.deterministic:
                torch.use_deterministic_algorithms(True)
            return _fit(data, run_dir, config, mcfg, info, checkpoint, thread_cap=cap)
    finally:
        torch.use_deterministic_algorithms(prev_deterministic)
        teardown_distributed(info)


def _fit(
    data: _RunData,
    run_dir: Path,
    config: TrainConfig,
    mcfg: Any,
    info: DistInfo,
    checkpoint: dict[str, Any] | None,
    *,
    thread_cap: int = 1,
) -> Path:
    """The training loop: epochs of training, validation, selection and checkpoints."""
    trainer = _Trainer.build(data, RunDir(run_dir), config, mcfg, info, checkpoint)
    try:
        stop_reason = trainer.resumed_stop_reason()
        for epoch in range(trainer.start_epoch, config.max_epochs):
            if not (config.threads or config.deterministic or info.distributed):
                if epoch > trainer.start_epoch:
                    # the machine's load changes during a long run: leave busy CPUs alone
                    torch.set_num_threads(min(thread_cap, default_threads(adapt=True)))
            train_metrics = trainer.train_epoch(epoch)
            stop = trainer.end_epoch(epoch, train_metrics)
            if stop:
                stop_reason = "early_stopping"
                break
            if trainer.budget_spent(epoch):
                stop_reason = "time_budget"
                break
        trainer.finish(stop_reason)
    except NonFiniteLossError as err:
        raise _non_finite_stop(err, trainer.run, trainer.step, trainer.metrics) from None
    except (OSError, ValueError, RuntimeError) as err:
        # a damaged store, a full disk, ...: the record says where the run stopped
        with contextlib.suppress(OSError):  # the disk may be what is full
            message = f"{type(err).__name__}: {err}"
            trainer.metrics.write({"kind": "error", "step": trainer.step, "message": message})
        raise
    finally:
        trainer.metrics.close()
    return run_dir


@dataclass
class _Trainer:
    """One run's live state and the steps of its loop (internal to :func:`train`).

    Everything a checkpoint holds is in :meth:`state_dict` / :meth:`load_state_dict`:
    model, optimizer, scaler, learning-rate schedule, warnings, epoch, step, RNG and
    data-loader generator states.
    """

    data: _RunData
    run: RunDir
    config: TrainConfig
    mcfg: Any
    info: DistInfo
    model: nn.Module
    ddp_model: nn.Module
    optimizer: Any
    scaler: Any
    loaders: tuple[Any, Any, Any, Any, torch.Generator]
    metrics: _MetricsLog
    amp: str
    channels_last: bool
    plateau: PlateauState = field(default_factory=PlateauState)
    watch: TermWatch = field(default_factory=TermWatch)
    warnings_seen: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    step: int = 0
    skip_batches: int = 0
    partial: Mapping[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    budget: EpochBudget | None = None
    epoch_time: tuple[float, int] = (0.0, 0)  # training seconds and steps of the last epoch

    # ------------------------------------------------------------------ set-up
    @classmethod
    def build(
        cls,
        data: _RunData,
        run: RunDir,
        config: TrainConfig,
        mcfg: Any,
        info: DistInfo,
        checkpoint: dict[str, Any] | None,
    ) -> _Trainer:
        """Model, optimizer, loaders and log of a new run, or of a resumed one."""
        from ._registry import build_model, is_paired

        if info.is_main:
            run.checkpoints.mkdir(parents=True, exist_ok=True)
            if checkpoint is None:
                # a run killed before its first checkpoint is started over
                run.metrics_file.unlink(missing_ok=True)
                _write_run_files(run.path, data, config, mcfg)
            else:
                # records a killed run logged after its checkpoint (before the log opens)
                _truncate_metrics(run.metrics_file, int(checkpoint["step"]))
        torch.manual_seed(config.seed)
        model = build_model(mcfg)
        torch.manual_seed(config.seed + info.rank)  # per-rank streams (dropout)
        use_cuda = info.device.type == "cuda"
        model.to(info.device)
        channels_last = config.channels_last and use_cuda
        if channels_last:
            model.to(memory_format=torch.channels_last)
        amp = config.amp if use_cuda else "off"
        trainer = cls(
            data=data,
            run=run,
            config=config,
            mcfg=mcfg,
            info=info,
            model=model,
            ddp_model=_compiled(_wrap_ddp(model, info), config.compile),
            optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
            scaler=torch.amp.GradScaler("cuda") if amp == "fp16" else None,
            loaders=_make_loaders(data, config, info, paired=is_paired(mcfg)),
            metrics=_MetricsLog(
                run.metrics_file if info.is_main else None, tensorboard=config.tensorboard
            ),
            amp=amp,
            channels_last=channels_last,
            watch=TermWatch(codebook=getattr(mcfg, "codebook", "ema")),
            budget=_make_budget(data, config, mcfg, info, measure=checkpoint is None),
        )
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint)
        return trainer

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a ``last.pt`` checkpoint (see :meth:`state_dict`)."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.plateau.load_state_dict(checkpoint["plateau"])
        self.watch.load_state_dict(checkpoint.get("watch", {}))
        self.warnings_seen = list(checkpoint.get("warnings", []))
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.start_epoch, self.step = int(checkpoint["epoch"]), int(checkpoint["step"])
        self.skip_batches = int(checkpoint.get("epoch_batches", 0))
        self.partial = checkpoint.get("epoch_progress") or None
        if self.budget is not None and checkpoint.get("budget"):
            self.budget.load_state_dict(checkpoint["budget"])
        self.checkpoint = checkpoint
        gens = checkpoint["loader_generator"]
        self.loaders[4].set_state(gens[min(self.info.rank, len(gens) - 1)])
        if len(checkpoint["rng"]) == self.info.world_size:
            set_rng_state(checkpoint["rng"][self.info.rank])

    def budget_spent(self, epoch: int) -> bool:
        """True (with a warning) when the time budget is spent before the last epoch.

        The epochs are sized to fit the budget; when they cannot (one step per epoch
        already takes longer, or the machine slowed down) training stops after the epoch
        that spent it, so a budget is kept to within one epoch (its steps and validation).
        """
        budget, last = self.budget, self.config.max_epochs - 1
        if budget is None or epoch >= last or budget.elapsed() < budget.budget_s:
            return False
        warnings.warn(
            f"the time budget of {budget.budget_s:g} s is spent after {epoch + 1} of "
            f"{self.config.max_epochs} epochs ({budget.elapsed():.1f} s): training stops "
            "here; give a larger --time-budget or fewer --max-epochs",
            TrainingWarning,
            stacklevel=2,
        )
        return True

    def resumed_stop_reason(self) -> str:
        """How a finished run that is resumed had stopped ("max_epochs" otherwise)."""
        ckpt = self.checkpoint
        if ckpt is None or not ckpt.get("finished"):
            return "max_epochs"
        reason = str(ckpt.get("stop_reason", "finished"))
        if reason == "early_stopping":
            self.start_epoch = self.config.max_epochs
        return reason

    def state_dict(
        self,
        epoch: int,
        batches: int = 0,
        progress: dict | None = None,
        loader_state: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Everything ``last.pt`` holds, to resume at ``epoch`` after ``batches`` batches."""
        generator = self.loaders[4]
        gens = _gather(generator.get_state() if loader_state is None else loader_state, self.info)
        data = self.data
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": "last",
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "plateau": self.plateau.state_dict(),
            "watch": self.watch.state_dict(),
            "warnings": list(self.warnings_seen),
            "rng": _gather(get_rng_state(), self.info),
            "loader_generator": gens,
            "epoch": epoch,
            "step": self.step,
            "epoch_batches": batches,
            "epoch_progress": progress or {},
            "split": torch.from_numpy(data.split.astype(np.int8)),
            "classes": [str(c) for c in data.classes],
            "store": data.describe(),
            "config": self.config.to_dict(),
            "model_config": self.mcfg.to_dict(),
            "reconstruction_scale": data.reconstruction_scale,
            "world_size": self.info.world_size,
            "budget": self.budget.state_dict() if self.budget is not None else None,
        }

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (the rest of it, when resumed mid-epoch); its mean metrics."""
        from tqdm.auto import tqdm

        config, info = self.config, self.info
        train_loader, _, train_ds, sampler, generator = self.loaders
        train_ds.set_epoch(epoch)
        sampler.set_epoch(epoch)
        sampler.skip = self.skip_batches * config.batch_size
        ep_state = _EpochProgress.from_state(self.partial, info.device)
        epoch_start_step = self.step - self.skip_batches
        # a mid-epoch save keeps the loader's generator as it was before this epoch's
        # iterator drew from it: the resumed run draws again, as the first one did
        loader_state = generator.get_state()

        def on_checkpoint(s: int, st: _EpochProgress) -> None:
            self.step = s
            state = self.state_dict(epoch, s - epoch_start_step, st.state_dict(), loader_state)
            if info.is_main:
                save_checkpoint(state, self.run.last)

        steps = len(train_loader) + self.skip_batches
        if config.steps_per_epoch:
            steps = min(steps, config.steps_per_epoch)
        lr_at = self._lr_schedule(steps)
        if self.budget is not None:
            steps = self.budget.plan_epoch(epoch, steps, epoch_start_step)
            lr_at = self.budget.lr_at if config.lr_schedule == "cosine" else None
        bar = tqdm(
            total=steps,
            initial=self.skip_batches,
            desc=f"epoch {epoch + 1}/{config.max_epochs}",
            disable=not (config.progress and info.is_main),
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        try:
            metrics, self.step = train_one_epoch(
                self.ddp_model,
                train_loader,
                self.optimizer,
                device=info.device,
                reconstruction_scale=self.data.reconstruction_scale,
                epoch=epoch,
                step=self.step,
                amp=self.amp,
                channels_last=self.channels_last,
                scaler=self.scaler,
                grad_clip=config.grad_clip,
                log_every=config.log_every,
                log=self.metrics.write,
                progress=bar,
                state=ep_state,
                checkpoint_every=config.checkpoint_every,
                on_checkpoint=on_checkpoint,
                dist_info=info,
                max_steps=steps,
                lr_at=lr_at,
            )
        finally:
            bar.close()
        self.epoch_time = (ep_state.seconds, ep_state.batches)
        self.skip_batches, self.partial, sampler.skip = 0, None, 0
        return metrics

    def _lr_schedule(self, steps_per_epoch: int) -> Callable[[int], float] | None:
        """The per-step learning rate of ``lr_schedule="cosine"`` (None for "plateau")."""
        c = self.config
        if c.lr_schedule != "cosine":
            return None
        return partial(cosine_lr, total=steps_per_epoch * c.max_epochs, lr=c.lr, min_lr=c.min_lr)

    def validate(self) -> tuple[dict[str, float], Any]:
        """Validation metrics and the health of the validation crops' global encodings."""
        broadcast_buffers(self.model, self.info)
        health = HealthAccumulator(num_codes=getattr(self.mcfg, "num_embeddings_global", None))
        metrics = evaluate(
            self.model,
            self.loaders[1],
            device=self.info.device,
            reconstruction_scale=self.data.reconstruction_scale,
            amp=self.amp,
            channels_last=self.channels_last,
            dist_info=self.info,
            health=health,
        )
        return metrics, health.result() if health.n else None

    def end_epoch(self, epoch: int, train_metrics: dict[str, float]) -> bool:
        """Validate, judge, log and checkpoint the epoch; True when training should stop."""
        config = self.config
        started = time.perf_counter()
        val_metrics, val_health = self.validate()
        if self.budget is not None:
            seconds, steps = self.epoch_time
            self.budget.observe(train_s=seconds, steps=steps, val_s=time.perf_counter() - started)
        source, prefix = (val_metrics, "val") if val_metrics else (train_metrics, "train")
        monitor = f"{prefix}_{config.monitor}"
        value = _monitored_value(source, config, monitor, epoch=epoch, step=self.step)
        alarms = [(f"{prefix}_{t}", m) for t, m in self.watch.update(source)]
        # every rank must take the same decision: rank 0's shard decides
        bad = val_health is not None and val_health.degenerate
        degenerate = _same_on_all_ranks(bad, self.info)
        first = not any(w["term"] == "val_global_encoding" for w in self.warnings_seen)
        if degenerate and first and bad:
            message = _collapse_message(
                val_health,
                epoch,
                skipped=config.skip_degenerate,
                codebook=str(getattr(self.mcfg, "codebook", "ema")),
            )
            alarms.append(("val_global_encoding", message))
        if degenerate and config.skip_degenerate:
            # A collapsed epoch is never the best one, and does not count against the
            # run either: an undertrained BatchNorm network in eval mode gives every
            # crop the same encoding for its first ~100 steps.
            improved, reduce_lr, stop = False, False, False
        else:
            improved, reduce_lr, stop = self.plateau.update(value, epoch=epoch, config=config)
        record = self._epoch_record(epoch, train_metrics, val_metrics, val_health, monitor)
        record["improved"] = improved
        if self.budget is not None:
            record["planned_steps"] = self.budget.epoch_steps.get(epoch)
        if reduce_lr and config.lr_schedule == "plateau":
            record["lr_next"] = self._reduce_lr()
        self.metrics.write(record)
        self._warn(epoch, alarms)
        self._print_epoch(epoch, train_metrics, monitor, value, improved, record["lr"])
        if improved and self.info.is_main:
            self._save_best(epoch, value, monitor)
        state = self.state_dict(epoch + 1)
        if stop:
            state.update(finished=True, stop_reason="early_stopping")
        if self.info.is_main:
            save_checkpoint(state, self.run.last)
        return stop

    def _epoch_record(
        self,
        epoch: int,
        train_metrics: dict[str, float],
        val_metrics: dict[str, float],
        val_health: Any,
        monitor: str,
    ) -> dict[str, Any]:
        lr = self.optimizer.param_groups[0]["lr"]
        record: dict[str, Any] = {"kind": "epoch", "epoch": epoch, "step": self.step, "lr": lr}
        record["threads"] = torch.get_num_threads()
        record.update({f"train_{k}": v for k, v in train_metrics.items()})
        record.update({f"val_{k}": v for k, v in val_metrics.items()})
        if val_health is not None:
            record.update(_health_record(val_health))
        record.update(
            monitor=monitor, best_epoch=self.plateau.best_epoch, bad_epochs=self.plateau.bad_epochs
        )
        divergence = replica_divergence(self.model, self.info)
        if divergence:
            record["replica_max_abs_diff"] = max(divergence.values())
            record["codebook_max_abs_diff"] = max(
                [v for k, v in divergence.items() if "codebook" in k or k.startswith("vq_")]
                or [0.0]
            )
        return record

    def _reduce_lr(self) -> float:
        lr = self.optimizer.param_groups[0]["lr"]
        new_lr = max(lr * self.config.lr_factor, self.config.min_lr)
        _set_lr(self.optimizer, new_lr)
        return new_lr

    def _warn(self, epoch: int, alarms: list[tuple[str, str]]) -> None:
        for term, message in alarms:
            self.warnings_seen.append({"epoch": epoch, "term": term, "message": message})
            record = {"kind": "warning", "epoch": epoch, "step": self.step, "term": term}
            self.metrics.write({**record, "message": message})
            if self.info.is_main:
                warnings.warn(f"epoch {epoch + 1}: {message}", TrainingWarning, stacklevel=4)

    def _print_epoch(
        self,
        epoch: int,
        train_metrics: dict[str, float],
        monitor: str,
        value: float,
        improved: bool,
        lr: float,
    ) -> None:
        if not (self.config.progress and self.info.is_main):
            return
        from tqdm.auto import tqdm

        tqdm.write(
            f"epoch {epoch + 1}/{self.config.max_epochs}: "
            f"train loss {train_metrics.get('loss', math.nan):.4g}, "
            f"{monitor.replace('_', ' ')} {value:.4g}{' (best)' if improved else ''}, "
            f"lr {lr:.2g}, {train_metrics.get('images_per_s', 0):.0f} images/s",
            file=sys.stderr,
        )

    def _save_best(self, epoch: int, value: float, monitor: str) -> None:
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "kind": "best",
                "model": self.model.state_dict(),
                "model_config": self.mcfg.to_dict(),
                "epoch": epoch,
                "step": self.step,
                "val_loss": value,
                "monitor": monitor,
                "reconstruction_scale": self.data.reconstruction_scale,
                "classes": [str(c) for c in self.data.classes],
            },
            self.run.best,
        )

    # ------------------------------------------------------------------ the end
    def finish(self, stop_reason: str) -> None:
        """Load the best weights into the model and write ``summary.json``."""
        info, run = self.info, self.run
        if info.distributed:
            torch.distributed.barrier()
        if not info.is_main:
            return
        # the run's model is the best epoch's (what load_model returns by default)
        if run.best.exists():
            best = load_checkpoint(run.best, map_location=info.device)
            self.model.load_state_dict(best["model"])
        last = load_checkpoint(run.last) if run.last.exists() else None
        plateau = self.plateau
        summary = {
            "stop_reason": stop_reason,
            "epochs": int(last["epoch"]) if last is not None else 0,
            "best_epoch": plateau.best_epoch,
            "monitor": self.config.monitor,
            "best_loss": plateau.best if math.isfinite(plateau.best) else None,
            "selection": _selection_text(plateau, self.config, run.best.exists()),
            "codebook": self.mcfg.codebook if getattr(self.mcfg, "quantize", False) else None,
            "model": getattr(self.mcfg, "model", "cytoself"),
            "warnings": self.warnings_seen,
            "steps": self.step,
            "world_size": info.world_size,
            "device": str(info.device),
            "time_budget": self.budget.summary() if self.budget is not None else None,
        }
        _atomic_text(run.summary_file, json.dumps(summary, indent=2) + "\n")
        if self.config.progress:
            from tqdm.auto import tqdm

            tqdm.write(summary["selection"], file=sys.stderr)


def _make_budget(
    data: _RunData, config: TrainConfig, mcfg: Any, info: DistInfo, *, measure: bool
) -> EpochBudget | None:
    """The run's :class:`EpochBudget` (None without ``time_budget_s``); a new run first
    times a few steps of a throwaway model (paired models: the first epoch in full)."""
    from ._registry import is_paired

    if not config.time_budget_s:
        return None
    if info.distributed:
        raise ValueError(
            "`time_budget_s` needs a single training process (each rank would plan from its "
            "own clock); set it to 0 under torchrun"
        )
    started = time.perf_counter()
    rates: tuple[float | None, float | None] = (None, None)
    if measure and not is_paired(mcfg):
        rates = measure_config_speed(
            data.store_path, mcfg, config.batch_size, seed=config.seed, device=info.device
        )
    budget = EpochBudget(
        config.time_budget_s,
        max_epochs=config.max_epochs,
        batch_size=config.batch_size,
        n_val=int((data.split == 1).sum()),
        images_per_s=rates[0],
        eval_images_per_s=rates[1],
        lr=config.lr,
        min_lr=config.min_lr,
    )
    budget.spent_s = time.perf_counter() - started  # the measurement counts too
    return budget


def _compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled``; the codebooks' one-off initialisation
    at the first step runs eagerly (one recompilation), every later step in one graph."""
    return torch.compile(model) if enabled else model


def _wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """``model`` in DistributedDataParallel under torchrun, else itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    cuda = info.device.type == "cuda"
    return DistributedDataParallel(model, device_ids=[info.device.index] if cuda else None)


def _non_finite_stop(
    err: NonFiniteLossError, run: RunDir, step: int, metrics: _MetricsLog
) -> NonFiniteLossError:
    """The error to raise after a non-finite loss, recorded in metrics.jsonl."""
    last = run.last
    where = (
        f"the last good checkpoint is kept at {last}"
        if last.exists()
        else "no checkpoint had been written yet"
    )
    at = err.step if err.step is not None else step
    metrics.write({"kind": "error", "step": at, "message": str(err)})
    return NonFiniteLossError(f"{err}; {where}", step=at)


def _same_on_all_ranks(flag: bool, info: DistInfo) -> bool:
    """Rank 0's ``flag`` on every rank (unchanged without DDP)."""
    if not info.distributed:
        return bool(flag)
    t = torch.tensor([int(flag)], device=info.device)
    torch.distributed.broadcast(t, src=0)
    return bool(t.item())


def _monitored_value(
    source: Mapping[str, float], config: TrainConfig, label: str, *, epoch: int, step: int
) -> float:
    """The epoch's value of the monitored metric, signed so that lower is better."""
    name = config.monitor
    if name not in source:
        raise ValueError(
            f"`monitor` {name!r} is not a metric of this model; valid choices are {sorted(source)}"
        )
    value = float(source[name]) * (-1.0 if config.mode == "max" else 1.0)
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"the {label.replace('_', ' ')} became {value} after epoch {epoch} (step {step}); "
            "training stopped",
            step=step,
        )
    return value


def _health_record(health: Any) -> dict[str, Any]:
    """Per-epoch numbers of the validation crops' global encodings."""
    return {
        "val_global_distinct_maps": health.distinct_maps,
        "val_global_top_map_fraction": health.top_map_fraction,
        "val_global_codes_used": health.codes_used,
        "val_global_code_perplexity": health.perplexity,
        "val_global_relative_variance": health.relative_variance,
        "val_global_degenerate": health.degenerate,
    }


def _collapse_message(health: Any, epoch: int, *, skipped: bool, codebook: str = "ema") -> str:
    """The degenerate-epoch warning; its advice fits the codebook in use (a run with the
    EMA codebook is not told to switch to it)."""
    advice = (
        "train longer (more epochs or crops) or with a lower learning rate (--lr)"
        if codebook == "ema"
        else _ADVICE["vq"]
    )
    policy = (
        "Such epochs never become the best checkpoint nor count towards early stopping"
        if skipped
        else "skip_degenerate is off, so such an epoch can still become the best checkpoint"
    )
    return (
        f"the global encodings of the validation crops are degenerate after epoch "
        f"{epoch + 1} ({'; '.join(health.reasons)}; {health.describe()}). {policy}. "
        f"Common in the first ~100 steps, a problem if it lasts; if it does: {advice}"
    )


def _selection_text(plateau: PlateauState, config: TrainConfig, has_best: bool) -> str:
    """One sentence: which weights ``cyto embed`` uses by default, and why."""
    if not has_best or plateau.best_epoch < 0:
        return (
            "no epoch qualified as best (none finished validation with healthy encodings); "
            "checkpoints/last.pt is the run's model"
        )
    sign = -1.0 if config.mode == "max" else 1.0
    return (
        f"checkpoints/best.pt (the default of `cyto embed`) is epoch {plateau.best_epoch + 1}: "
        f"the best validation {config.monitor} ({sign * plateau.best:.4g}) among epochs whose "
        "global encodings were not degenerate"
    )


def _gather(obj: Any, info: DistInfo) -> list[Any]:
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(out, obj)
    return out
