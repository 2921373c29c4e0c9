"""Training a model on a crop store: :func:`train`, resumable and DDP-aware.

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

One job per module: :mod:`._train_config` (:class:`TrainConfig` and its file reader),
:mod:`._run_data` (the store's labels, split and pixel variance; the loaders),
:mod:`._loop` (a step, an epoch, the validation pass), :mod:`._monitors` (plateau,
rising loss terms, codebook collapse, the metrics log), :mod:`._trainer` (the run's live
state and checkpoints), :mod:`._distributed` (DDP). The run folder's file names and
writers are :class:`cyto.data.RunDir`'s; a model is known only through its contract
(:mod:`._protocol`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cyto._lock import write_lock
from cyto.data import check_output
from cyto.data._rundir import RunDir

from ._checkpoint import (
    load_checkpoint,
    seeded_global_rngs,
)
from ._dataset import (
    default_threads,
    torch_threads,
)
from ._distributed import (
    DistInfo,
    setup_distributed,
    teardown_distributed,
)
from ._monitors import TrainingWarning
from ._run_data import _check_store_matches, _model_config, _prepare_data, _RunData
from ._train_config import _RESUMABLE, NonFiniteLossError, TrainConfig
from ._trainer import _non_finite_stop, _Trainer

__all__ = ["resume_config", "train"]


def _resolve_resume_config(saved: TrainConfig, given: TrainConfig | None) -> TrainConfig:
    """``given`` when it differs from the run's ``saved`` options only where resuming
    allows (``saved`` when None)."""
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


def resume_config(run_dir: str | os.PathLike, **changes: Any) -> TrainConfig:
    """The training options of the run in ``run_dir``, with ``changes`` applied.

    What ``cyto train --resume`` passes to :func:`train`; :func:`train` checks a given
    config against the run's in the same way.

    Parameters
    ----------
    run_dir : path-like
        A run folder (:class:`cyto.data.RunDir`) that has started.
    **changes
        :class:`TrainConfig` fields to change: only those that do not change the result
        (``max_epochs``, ``num_workers``, ``device``, ``progress``, ``log_every``,
        ``checkpoint_every``, ``tensorboard``, ``threads``, ``compile``).

    Returns
    -------
    TrainConfig

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` holds no run.
    ValueError
        If a change would change the result (the message names it).
    """
    saved = TrainConfig.from_dict(RunDir(run_dir).read_config()["train"])
    return _resolve_resume_config(saved, saved.replace(**changes))


# --------------------------------------------------------------------------- train
def train(
    store_path: str | os.PathLike | None,
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
    store_path : str or PathLike or None
        HDF5 crop store (:class:`cyto.data.CropStore`); None on resume: the store the
        run trained on (:meth:`cyto.data.RunDir.store_path`).
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
    run_dir = Path(run_dir)
    if store_path is None:
        if not resume:
            raise ValueError("`store_path` is required unless the run is resumed")
        store_path = RunDir(run_dir).store_path()
    store_path = Path(store_path).resolve()
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
