"""What a run watches while it trains: the plateau of the monitored metric, loss terms
that rise, codebook collapse, the metrics log, and the texts that explain them."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._train_config import NonFiniteLossError, TrainConfig

__all__ = ["PlateauState", "TermWatch", "TrainingWarning"]


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
