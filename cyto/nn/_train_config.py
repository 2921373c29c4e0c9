"""The training configuration (:class:`TrainConfig`) and its file reader."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._config import _is_int, _is_nonneg_number

__all__ = [
    "LR_SCHEDULES",
    "MAXIMIZED_METRICS",
    "NonFiniteLossError",
    "TrainConfig",
    "read_config_file",
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
    split_by : str, default "fov_id"
        With ``group_by_fov``: the crops sharing this column stay in one split (a label
        column of the store, e.g. a well id: held-out wells).
    target : str, default "protein_id"
        The per-crop label the model learns to identify: ``protein_id``, or a label
        column of the store (:meth:`cyto.data.CropStore.labels`: a perturbation, a
        compound, a gene, ``well``...). The split keeps every class in every split.
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
    target: str = "protein_id"
    split_by: str = "fov_id"
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
        for name in ("target", "split_by"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"`{name}` must be a column name; got {getattr(self, name)!r}")
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
