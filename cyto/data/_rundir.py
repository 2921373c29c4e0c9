"""The run directory written by :func:`cyto.nn.train`: every file name, in one place.

::

    RUN/
      config.json          train + model configuration, store description, versions
      split.npz            split code per crop (0 train, 1 val, 2 test), classes, labels
      metrics.jsonl        one JSON record per logged step, epoch, warning or error
      summary.json         how the run ended and which epoch is best
      checkpoints/last.pt  everything needed to resume
      checkpoints/best.pt  the selected model (what ``cyto embed`` uses)

Written through this owner by ``cyto.nn`` (every file but the checkpoints, which
:func:`cyto.nn.save_checkpoint` writes and :func:`cyto.nn.load_checkpoint` reads); it
needs no torch, so every layer reads runs through it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import atomic_path, write_text_atomic

__all__ = ["RunDir"]


@dataclass(frozen=True)
class RunDir:
    """A training run's folder and the names of the files in it.

    Parameters
    ----------
    path : path-like
        The run directory (it need not exist yet).

    Examples
    --------
    >>> run = RunDir("runs/a")
    >>> run.best.as_posix(), run.checkpoint("last").name
    ('runs/a/checkpoints/best.pt', 'last.pt')
    """

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path))

    # ------------------------------------------------------------------ file names
    @property
    def config_file(self) -> Path:
        """``config.json``: the run's settings (written when the run starts)."""
        return self.path / "config.json"

    @property
    def split_file(self) -> Path:
        """``split.npz``: the split code of every crop, the classes and labels."""
        return self.path / "split.npz"

    @property
    def metrics_file(self) -> Path:
        """``metrics.jsonl``: the training log."""
        return self.path / "metrics.jsonl"

    @property
    def summary_file(self) -> Path:
        """``summary.json``: written when the run ends."""
        return self.path / "summary.json"

    @property
    def checkpoints(self) -> Path:
        """The checkpoint folder."""
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        """``checkpoints/last.pt``: the state to resume from."""
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        """``checkpoints/best.pt``: the selected model."""
        return self.checkpoints / "best.pt"

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.pt`` (e.g. ``"best"``, ``"last"``)."""
        return self.checkpoints / f"{name}.pt"

    # ------------------------------------------------------------------ state
    @property
    def started(self) -> bool:
        """True once the run has written its settings."""
        return self.config_file.is_file()

    @property
    def finished(self) -> bool:
        """True once the run has written its summary."""
        return self.summary_file.is_file()

    @property
    def resumable(self) -> bool:
        """True when a checkpoint to resume from exists."""
        return self.last.is_file()

    # ------------------------------------------------------------------ writers
    def write_config(self, record: dict[str, Any]) -> None:
        """Write ``config.json`` (atomically) when the run starts."""
        write_text_atomic(self.config_file, json.dumps(record, indent=2) + "\n")

    def write_split(self, split: np.ndarray, classes: np.ndarray, labels: np.ndarray) -> None:
        """Write ``split.npz``: the split code and class label of every crop, the classes."""
        with atomic_path(self.split_file, suffix=".npz") as tmp:
            np.savez(tmp, split=split, classes=np.asarray(classes).astype(str), labels=labels)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json`` (atomically) when the run ends."""
        write_text_atomic(self.summary_file, json.dumps(summary, indent=2) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop the ``metrics.jsonl`` records logged after ``step`` (the lost work of a
        run killed after its checkpoint at ``step``), atomically; lines cut by the kill
        go too."""
        if not self.metrics_file.exists():
            return
        keep = []
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(rec.get("step", 0)) <= step:
                keep.append(line)
        write_text_atomic(self.metrics_file, "".join(k + "\n" for k in keep))

    # ------------------------------------------------------------------ readers
    def read_config(self) -> dict[str, Any]:
        """The parsed ``config.json``.

        Raises
        ------
        FileNotFoundError
            If the run has not written it (not a run directory, or never started).
        """
        if not self.config_file.is_file():
            raise FileNotFoundError(f"no run in {self.path} (config.json missing)")
        return _read_json(self.config_file)

    def store_path(self) -> Path:
        """The crop store the run trained on: where it was, or where it is now relative
        to the run (a run moved together with its store still finds it).

        Raises
        ------
        FileNotFoundError
            If the run has not started, or the store is in neither place.
        """
        from cyto._paths import locate

        recorded = self.read_config()["store"]
        found = locate(recorded["path"], recorded.get("relative"), self.path)
        if found is None:
            raise FileNotFoundError(
                f"the crop store of the run in {self.path} is gone: not at {recorded['path']} "
                "nor beside the run; give its new place as CROPS"
            )
        return Path(found)

    def read_summary(self) -> dict[str, Any]:
        """The parsed ``summary.json``.

        Raises
        ------
        FileNotFoundError
            If the run has not finished.
        """
        if not self.summary_file.is_file():
            raise FileNotFoundError(f"the run in {self.path} has not finished (no summary.json)")
        return _read_json(self.summary_file)

    def read_epochs(self) -> list[dict[str, Any]]:
        """The per-epoch records of ``metrics.jsonl`` (``kind == "epoch"``), in order; the
        last record of an epoch wins when a resumed run logged it twice. Empty when the
        run has not logged an epoch."""
        if not self.metrics_file.is_file():
            return []
        by_epoch: dict[int, dict[str, Any]] = {}
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash: skip it
                continue
            if rec.get("kind") == "epoch" and "epoch" in rec:
                by_epoch[int(rec["epoch"])] = rec
        return [by_epoch[e] for e in sorted(by_epoch)]

    def read_split(self) -> np.ndarray:
        """The split code of every crop of the run's store (int8: 0 train, 1 val, 2 test).

        Raises
        ------
        FileNotFoundError
            If the run has not written its split.
        """
        if not self.split_file.is_file():
            raise FileNotFoundError(f"no split in {self.path} (split.npz missing)")
        with np.load(self.split_file, allow_pickle=False) as z:
            return z["split"].astype(np.int8)


def _read_json(path: Path) -> dict[str, Any]:
    """A run file's JSON object; a damaged one is a ValueError naming the file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        why = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else f"not JSON: {err}"
        raise ValueError(
            f"{path} is damaged ({why}); restore it from a copy, or train the run again"
        ) from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is damaged (a JSON {type(record).__name__}, not an object)")
    return record
