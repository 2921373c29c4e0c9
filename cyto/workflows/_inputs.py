"""What every workflow shares: presets, inputs, ground-truth tables, JSON records."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import write_text_atomic

STAGES: tuple[str, ...] = ("synth", "preprocess", "train", "embed", "baselines", "analyze")


@dataclass(frozen=True)
class DemoPreset:
    """Sizes of one demo run: the atlas, the model preset and the training budget.

    Parameters
    ----------
    name : str
        Preset name.
    atlas : dict
        Overrides of :class:`cyto.data.SyntheticAtlasConfig`.
    model_preset : str
        :meth:`cyto.nn.CytoselfConfig.preset` name.
    batch_size, max_epochs, lr : int, int, float
        Training budget (see :class:`cyto.nn.TrainConfig`).
    umap_seeds : tuple of int
        UMAP seeds of the clustering scores (mean ± s.e.m. over them).
    model_overrides : dict
        Fields replacing those of the model preset.
    lr_schedule : {"plateau", "cosine"}
        Learning-rate schedule (see :class:`cyto.nn.TrainConfig`).
    train_budget_s : float
        Wall-time budget of the train stage in seconds (0: none): ``time_budget_s`` of
        :class:`cyto.nn.TrainConfig` (a slower machine trains shorter epochs; one fast
        enough for full epochs trains exactly them).
    monitor : str
        Validation metric of early stopping and the best checkpoint (see
        :class:`cyto.nn.TrainConfig`; default ``"task_loss"`` as in ``cyto train``);
        variants without the identification task fall back to ``"loss"`` when it names
        a classification metric.
    """

    name: str
    atlas: Mapping[str, Any]
    model_preset: str
    batch_size: int
    max_epochs: int
    lr: float = 4e-4
    umap_seeds: tuple[int, ...] = (0, 1, 2)
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    monitor: str = "task_loss"
    lr_schedule: str = "plateau"
    train_budget_s: float = 0.0

    def train_config(
        self,
        *,
        seed: int,
        device: str,
        progress: bool,
        classify: bool = True,
        threads: int = 0,
        deterministic: bool = False,
    ) -> Any:
        """The :class:`cyto.nn.TrainConfig` of this preset (imports torch)."""
        from cyto.nn import TrainConfig

        monitor = self.monitor
        if not classify and monitor.startswith(("accuracy", "cls")):
            monitor = "loss"
        return TrainConfig(
            preset=self.model_preset,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            lr=self.lr,
            lr_schedule=self.lr_schedule,
            time_budget_s=float(self.train_budget_s),
            seed=int(seed),
            device=device,
            progress=progress,
            num_workers=0,
            monitor=monitor,
            threads=int(threads),
            deterministic=bool(deterministic),
        )


#: Earlier preset names, still accepted.
PRESET_ALIASES = {"gpu": "paper"}

#: The same names as the model presets of ``cyto train --preset``.
DEMO_PRESETS: dict[str, DemoPreset] = {
    # End-to-end smoke test: a minute on 2 CPU cores, scores above chance only.
    "tiny": DemoPreset(
        name="tiny",
        atlas={
            "families": ("nucleolus_gc", "er", "membrane", "mitochondria"),
            "complexes_per_family": 2,
            "complex_size": (2, 2),
            "n_proteins": None,
            "fields_per_protein": 6,
            "field_size": 256,
            "z_planes": 4,
        },
        model_preset="tiny",
        batch_size=32,
        max_epochs=15,
        lr=1e-3,
        umap_seeds=(0,),
    ),
    # The default: the whole synthetic atlas, ≤ 8 minutes on a slow 2-core machine. Three
    # epochs of small batches on a cosine schedule (4 z planes: half the synthesis and
    # reading of 8); a machine too slow for them in 5 minutes trains shorter epochs.
    "small": DemoPreset(
        name="small",
        atlas={"fields_per_protein": 5, "z_planes": 4},
        model_preset="small",
        batch_size=16,
        max_epochs=3,
        lr=2e-3,
        umap_seeds=(0, 1, 2),
        model_overrides={"fc_dropout": 0.0},
        lr_schedule="cosine",
        train_budget_s=300.0,
    ),
    # The paper's model on a larger atlas: for one GPU ("gpu" is an alias).
    "paper": DemoPreset(
        name="paper",
        atlas={"fields_per_protein": 12, "scale": 1.0},
        model_preset="paper",
        batch_size=64,
        max_epochs=40,
        lr=4e-4,
        umap_seeds=tuple(range(5)),
    ),
}


@dataclass(frozen=True)
class StageRecord:
    """What one stage did: its name, wall time, a one-line summary and what it wrote.

    ``outputs`` maps each output file or folder (relative to the demo folder) to its
    :func:`cyto._provenance.content_hash` — equal hashes mean equal numbers, whatever
    times and paths the files also record; ``versions`` are the packages it ran with
    and ``threads`` the compute threads of its torch and UMAP work.
    """

    name: str
    seconds: float
    summary: str
    skipped: bool = False
    outputs: Mapping[str, str] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    threads: int | None = None


@dataclass(frozen=True)
class DemoResult:
    """Output of :func:`run_demo`.

    Attributes
    ----------
    out_dir : Path
        The demo folder.
    report : Path or None
        ``report.html`` (None when the analyze stage did not run).
    stages : tuple of StageRecord
        Every stage, in order.
    summary : dict
        Scores, baselines, accuracy and timings (also in ``summary.json``).
    """

    out_dir: Path
    report: Path | None
    stages: tuple[StageRecord, ...]
    summary: dict[str, Any]


# --------------------------------------------------------------------------- helpers
def _resolve_preset(preset: str | DemoPreset) -> DemoPreset:
    if isinstance(preset, str):
        preset = PRESET_ALIASES.get(preset, preset)
        if preset not in DEMO_PRESETS:
            raise ValueError(f"`preset` must be one of {sorted(DEMO_PRESETS)}, got {preset!r}")
        return DEMO_PRESETS[preset]
    if not isinstance(preset, DemoPreset):
        raise TypeError(f"`preset` must be a str or DemoPreset, got {type(preset).__name__}")
    return preset


def _atomic_json(path: Path, obj: Any) -> Path:
    """``obj`` as standard JSON (NaN/inf as null), written atomically."""
    text = json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False)
    return write_text_atomic(path, text, mkdir=True)


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON is standard."""
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _check_job(out: Path, kind: str, inputs: Mapping[str, Any], device: str) -> bool:
    """Refuse, before any work, an unknown or absent ``device`` and an output folder
    that is neither new, empty nor cyto's ``kind`` (or is one of the inputs); True when
    it holds a ``kind`` to resume."""
    from cyto.data import check_output
    from cyto.nn import resolve_device

    resolve_device(device)
    named = [
        (f"the {k.replace('_', ' ')}", inputs[k]) for k in ("data", "ground_truth", "complexes")
    ]
    return check_output(out, kind, inputs=named, resume=True, flag="out_dir")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _check_preprocessed(report: Any) -> Any:
    """Stop the pipeline when preprocessing produced no crops (every field failed)."""
    if report.n_crops == 0:
        reasons = "; ".join(f"{path}: {why}" for path, why in report.failed[:3])
        raise ValueError(
            f"preprocessing wrote no crops to {report.path} ({report.n_failed} of "
            f"{report.n_fovs} fields failed{': ' + reasons if reasons else ''})"
        )
    return report


# --------------------------------------------------------------------------- demo


def _demo_inputs(
    data: str | os.PathLike | None,
    ground_truth: str | os.PathLike | None,
    complexes: str | os.PathLike | None,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Check the own-data arguments of run_demo / run_ablation; paths as Path (None if absent)."""
    out: dict[str, Any] = {}
    for name, value in (("data", data), ("ground_truth", ground_truth), ("complexes", complexes)):
        if value is None:
            out[name] = None
            continue
        if not isinstance(value, str | os.PathLike):
            raise TypeError(f"`{name}` must be a path, got {type(value).__name__}")
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"`{name}`: {str(path)!r} does not exist")
        out[name] = path
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"`preprocess_options` must be a mapping, got {type(options).__name__}")
    out["options"] = dict(options or {})
    if data is None:
        given = [k for k in ("ground_truth", "complexes") if out[k] is not None]
        if out["options"]:
            given.append("preprocess_options")
        if given:
            raise ValueError(
                f"{', '.join(f'`{g}`' for g in given)} only apply with `data` (your own "
                "images); the synthetic atlas brings its own ground truth and settings"
            )
    elif out["options"] and _is_crop_store(out["data"]):
        raise ValueError(
            "`preprocess_options` apply to a manifest or folder `data`; "
            f"{str(out['data'])!r} is a crop store, already preprocessed"
        )
    return out


def _check_batch_key(data: Path | None, key: str | None) -> None:
    """Refuse, before any work, a ``batch_key`` the demo's input cannot carry."""
    if key is None:
        return
    if not isinstance(key, str) or not key:
        raise ValueError(f"`batch_key` must be a column name such as 'plate', got {key!r}")
    if data is None:
        raise ValueError(
            "`batch_key` needs your own `data` with that per-crop column: the synthetic "
            "atlas is imaged as one plate, so there is nothing to correct"
        )
    # the metadata columns that follow every crop, as their readers define them
    if _is_crop_store(data):
        from cyto.data import CropStore

        with CropStore(data) as store:
            columns = {c for meta in store.fov_metadata().values() for c in meta}
    else:
        from cyto.preprocess import list_fovs

        columns = {c for fov in list_fovs(data) for c, _ in fov.metadata}
    if key not in columns:
        raise ValueError(
            f"`batch_key` {key!r} is not a column of {str(data)!r}; it has "
            f"{sorted(columns) or 'none'} (plate, well... come from the manifest)"
        )


def _is_crop_store(path: Path) -> bool:
    """True when ``path`` is an HDF5 file (a crop store), judged by its signature."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


def _print_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
