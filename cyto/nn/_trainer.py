"""One run's live state and the steps of its loop (:class:`_Trainer`)."""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from cyto._health import HealthAccumulator
from cyto.data._rundir import RunDir

from ._budget import EpochBudget, cosine_lr, measure_config_speed
from ._checkpoint import (
    CHECKPOINT_FORMAT,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from ._distributed import (
    DistInfo,
    broadcast_buffers,
    gather_objects,
    replica_divergence,
    same_on_all_ranks,
    wrap_ddp,
)
from ._loop import _EpochProgress, _set_lr, train_one_epoch, validation_metrics
from ._monitors import (
    PlateauState,
    TermWatch,
    TrainingWarning,
    _collapse_message,
    _health_record,
    _MetricsLog,
    _monitored_value,
    _selection_text,
)
from ._registry import saved_config
from ._run_data import _make_loaders, _RunData, _setup_record
from ._train_config import NonFiniteLossError, TrainConfig

__all__: list[str] = []  # internal to cyto.nn.train


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
        from ._registry import build_model

        if info.is_main:
            run.checkpoints.mkdir(parents=True, exist_ok=True)
            if checkpoint is None:
                # a run killed before its first checkpoint is started over
                run.metrics_file.unlink(missing_ok=True)
                run.write_config(_setup_record(run.path, data, config, mcfg))
                run.write_split(data.split, data.classes, data.labels)
            else:
                # records a killed run logged after its checkpoint (before the log opens)
                run.truncate_metrics(int(checkpoint["step"]))
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
            ddp_model=_compiled(wrap_ddp(model, info), config.compile),
            optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
            scaler=torch.amp.GradScaler("cuda") if amp == "fp16" else None,
            loaders=_make_loaders(data, config, info, paired=model.paired),
            metrics=_MetricsLog(
                run.metrics_file if info.is_main else None, tensorboard=config.tensorboard
            ),
            amp=amp,
            channels_last=channels_last,
            watch=TermWatch(codebook=mcfg.quantizer or "ema"),
            budget=_make_budget(
                data, config, mcfg, info, measure=checkpoint is None and not model.paired
            ),
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
        gens = gather_objects(
            generator.get_state() if loader_state is None else loader_state, self.info
        )
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
            "rng": gather_objects(get_rng_state(), self.info),
            "loader_generator": gens,
            "epoch": epoch,
            "step": self.step,
            "epoch_batches": batches,
            "epoch_progress": progress or {},
            "split": torch.from_numpy(data.split.astype(np.int8)),
            "classes": [str(c) for c in data.classes],
            "store": data.describe(),
            "config": self.config.to_dict(),
            "model_config": saved_config(self.mcfg),
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
        health = HealthAccumulator(num_codes=self.mcfg.codebook_sizes[1] or None)
        metrics = validation_metrics(
            self.model,
            self.loaders[1],
            device=self.info.device,
            reconstruction_scale=self.data.reconstruction_scale,
            amp=self.amp,
            channels_last=self.channels_last,
            dist_info=self.info,
            health=health,
            store=self.data.store_path,
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
        degenerate = same_on_all_ranks(bad, self.info)
        first = not any(w["term"] == "val_global_encoding" for w in self.warnings_seen)
        if degenerate and first and bad:
            message = _collapse_message(
                val_health,
                epoch,
                skipped=config.skip_degenerate,
                codebook=self.mcfg.quantizer or "ema",
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
                "model_config": saved_config(self.mcfg),
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
            "codebook": self.mcfg.quantizer,
            "model": self.mcfg.model,
            "warnings": self.warnings_seen,
            "steps": self.step,
            "world_size": info.world_size,
            "device": str(info.device),
            "time_budget": self.budget.summary() if self.budget is not None else None,
        }
        run.write_summary(summary)
        if self.config.progress:
            from tqdm.auto import tqdm

            tqdm.write(summary["selection"], file=sys.stderr)


def _make_budget(
    data: _RunData, config: TrainConfig, mcfg: Any, info: DistInfo, *, measure: bool
) -> EpochBudget | None:
    """The run's :class:`EpochBudget` (None without ``time_budget_s``); a new run first
    times a few steps of a throwaway model (``measure`` False: the first epoch in full)."""

    if not config.time_budget_s:
        return None
    if info.distributed:
        raise ValueError(
            "`time_budget_s` needs a single training process (each rank would plan from its "
            "own clock); set it to 0 under torchrun"
        )
    started = time.perf_counter()
    rates: tuple[float | None, float | None] = (None, None)
    if measure:
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
