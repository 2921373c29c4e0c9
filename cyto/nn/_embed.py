"""Load trained models and stream localization encodings of a crop store to HDF5.

The embeddings file (``cyto embed RUN CROPS -o OUT.h5``) holds, for the selected
crops in store order:

====================  ==================  ============================================
dataset               shape / dtype       content
====================  ==================  ============================================
``global``            (N, G·h·w) float32  quantized global encoding, flattened (C, H, W)
``local``             (N, D·h·w) float32  quantized local encoding (``local=True``)
``local_indices``     (N, h·w) int        VQ1 code index map, flattened
``global_indices``    (N, s·h·w) int      VQ2 code index map (split, H, W), flattened
``local_hist``        (N, K1) uint16      per-crop histogram of VQ1 codes
``global_hist``       (N, K2) uint16      per-crop histogram of VQ2 codes
``logits``            (N, P) float32      global-head logits (``logits=True``)
``logits_local``      (N, P) float32      local-head logits (``logits=True``)
``protein_id``        (N,) str            protein of each crop
``fov_id``            (N,) str            field of view of each crop
``crop_index``        (N,) int64          row of the crop in the store
``split``             (N,) str            "train" / "val" / "test", or "none" for
                                          crops of a store the run did not train on
``classes``           (P,) str            protein ids of the logit columns
====================  ==================  ============================================

Attributes record the run, checkpoint, store, ``model_config`` (JSON),
``num_embeddings_local`` / ``num_embeddings_global`` and the ``local_shape`` /
``global_shape`` (C, H, W) needed to unflatten the encodings.

Without quantization (an ablated model) the continuous encodings are written and
the index and histogram datasets are left out. Rows are computed and written
chunk by chunk (memory does not grow with N); the file is written under a
temporary name that a rerun resumes, and renamed when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cyto._atomic import check_free_space
from cyto._health import DegenerateEncodingError, EncodingHealth, HealthAccumulator
from cyto._lock import write_lock
from cyto._paths import relative_to
from cyto._provenance import content_hash, package_versions
from cyto.data import OutputError, check_output
from cyto.data._embeddings import EMBEDDING_FORMAT, EmbeddingsWriter, export_h5ad
from cyto.data._rundir import RunDir

from ._checkpoint import load_checkpoint
from ._dataset import (
    SPLIT_NAMES,
    CropDataset,
    check_finite_crops,
    collate_crops,
    default_num_workers,
    torch_threads,
)
from ._distributed import resolve_device
from ._registry import saved_config

__all__ = ["EMBEDDING_FORMAT", "embed", "load_model"]


def _checkpoint_path(run_dir: Path, checkpoint: str | os.PathLike) -> Path:
    if run_dir.is_file() and str(checkpoint) in ("best", "last"):
        raise ValueError(
            f"`run_dir` {run_dir} is a file: give the run folder (written by `cyto train`), "
            "and a checkpoint file with checkpoint=PATH (`--checkpoint PATH`)"
        )
    if not run_dir.is_dir() and str(checkpoint) in ("best", "last"):
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    if str(checkpoint) in ("best", "last"):
        run = RunDir(run_dir)
        path = run.checkpoint(str(checkpoint))
        return run.last if checkpoint == "best" and not path.exists() else path
    return Path(checkpoint)


def load_model(
    run_dir: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike = "best",
    device: str | torch.device = "cpu",
    trust_plugins: bool = False,
) -> Any:
    """The trained :class:`~cyto.nn.Cytoself` of a run, in eval mode.

    Parameters
    ----------
    run_dir : str or PathLike
        Run directory written by :func:`~cyto.nn.train`.
    checkpoint : {"best", "last"} or path, default "best"
        Which weights: the best validation epoch (falls back to ``last`` when no
        epoch finished validation), the latest state, or a checkpoint file.
    device : str or torch.device, default "cpu"
        Where to put the model (``"auto"`` picks CUDA when available).
    trust_plugins : bool, default False
        Import a plug-in encoder (``"package.module:factory"``) that the checkpoint
        names. By default loading never imports code a file names: such a checkpoint is
        refused unless its encoder was registered first (:func:`resolve_encoder`).

    Returns
    -------
    model : Cytoself

    Raises
    ------
    FileNotFoundError
        If the checkpoint does not exist.
    ValueError
        If it is not a safe cyto checkpoint.

    Examples
    --------
    >>> model = load_model("runs/a")  # doctest: +SKIP
    """
    dev = resolve_device(device)
    model, _ = _load_model_and_state(Path(run_dir), checkpoint, dev, trust_plugins)
    return model


def _load_model_and_state(
    run_dir: Path, checkpoint: str | os.PathLike, dev: torch.device, trust_plugins: bool = False
) -> tuple[Any, dict[str, Any]]:
    """The run's model (eval mode, on ``dev``) and its checkpoint's other entries."""
    from ._registry import build_model, config_from_saved

    path = _checkpoint_path(run_dir, checkpoint)
    state = load_checkpoint(path, map_location="cpu")
    bad = [k for k, v in state["model"].items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise ValueError(
            f"checkpoint {path} holds non-finite weights ({', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''}): the run diverged; use an earlier checkpoint "
            "or retrain with a lower learning rate"
        )
    config = config_from_saved(state.pop("model_config"), trust_plugins=trust_plugins)
    model = build_model(config)
    try:
        model.load_state_dict(state.pop("model"))
    except RuntimeError as err:
        raise ValueError(
            f"the weights in {path} do not fit the model built from its config (was it "
            f"written by another cyto version?): {err}"
        ) from None
    for heavy in ("optimizer", "scaler"):
        state.pop(heavy, None)
    return model.to(dev).eval(), state


def _run_split(run_dir: Path, store: Any) -> np.ndarray | None:
    """The run's split if ``store`` is the store the run trained on, else None."""
    run = RunDir(run_dir)
    path = run.split_file
    if not path.exists() or not run.started:
        return None
    saved = run.read_config()
    meta = saved["store"]
    same = (
        meta["n"] == len(store)
        and list(meta["channels"]) == list(store.channels)
        and meta["crop_size"] == store.crop_size
    )
    if not same:
        return None
    with np.load(path, allow_pickle=False) as z:
        split, classes, labels = z["split"], z["classes"], z["labels"]
    target = saved["train"].get("target", "protein_id")
    try:
        ids = store.labels(target)
    except ValueError:  # another store, without the run's label column
        return None
    if split.shape != (len(store),) or not np.array_equal(classes[labels].astype(str), ids):
        return None
    return split.astype(np.int8)


def embed(
    run_dir: str | os.PathLike,
    store_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    split: str | None = None,
    batch_size: int = 256,
    checkpoint: str | os.PathLike = "best",
    device: str = "auto",
    logits: bool = False,
    local: bool = False,
    global_only: bool = False,
    num_workers: int = -1,
    h5ad: bool | str | os.PathLike = False,
    progress: bool = True,
    allow_degenerate: bool = False,
    overwrite: bool = False,
    threads: int = 0,
    trust_plugins: bool = False,
) -> Path:
    """Write the localization encodings of a crop store to an HDF5 file.

    Parameters
    ----------
    run_dir : str or PathLike
        Training run (see :func:`~cyto.nn.train`).
    store_path : str or PathLike
        Crop store to encode (the training store or any store with the same
        channels and crop size).
    out_path : str or PathLike
        Output ``.h5`` file (replaced when complete).
    split : {"train", "val", "test"}, optional
        Encode only the crops of this split of the run (training store only).
    batch_size : int, default 256
        Crops per chunk; memory use is bounded by it, not by the store size.
    checkpoint : {"best", "last"} or path, default "best"
        Weights to use.
    device : str, default "auto"
        Compute device.
    logits : bool, default False
        Also write the identification heads' logits.
    local : bool, default False
        Also write the (large: 40,000 values per crop for the paper model)
        quantized local encodings.
    global_only : bool, default False
        Fast path for the localization encodings only: skip VQ1 and the local
        head, so ``local*`` and ``logits_local`` are not written (about 1.6x faster).
    num_workers : int, default -1
        DataLoader workers reading the store ahead of the model; -1 picks
        :func:`~cyto.nn.default_num_workers` (0 on CPU).
    h5ad : bool or path, default False
        Also export an AnnData file (``obs``: protein, FOV, split, crop index;
        ``obsm``: encodings and histograms); ``True`` puts it next to
        ``out_path`` with the suffix ``.h5ad``. Needs the ``anndata`` extra.
    progress : bool, default True
        Show a progress bar.
    allow_degenerate : bool, default False
        Write the file even when the global encodings are degenerate (see
        :class:`~cyto.analysis.EncodingHealth`: nearly every crop with the same
        encoding or code map, or non-finite values). By default that is an error.
    threads : int, default 0
        Torch compute threads; 0 uses at most the CPUs this process may use
        (:func:`~cyto.nn.default_threads`) and at most torch's current setting.
    overwrite : bool, default False
        Replace an existing embeddings file (and AnnData export) that cyto wrote at
        ``out_path`` (``h5ad``) for another job. The same job finished already (same
        run, checkpoint, store, rows and options) is not redone. Never a file of another
        kind, the crop store being encoded, a checkpoint or a file inside a run's
        ``checkpoints/`` (:func:`cyto.data.check_output`).
    trust_plugins : bool, default False
        Import the plug-in encoder the checkpoint names (see :func:`load_model`).

    Returns
    -------
    out_path : Path

    Raises
    ------
    FileNotFoundError
        If the run or the store is missing.
    ValueError
        If the store does not fit the model, or ``split`` is unknown or asked for a
        store the run did not train on.
    FileExistsError
        If ``out_path`` (or the ``h5ad`` file) is an input, a checkpoint, a file of
        another kind, or an earlier output and not ``overwrite``.
    cyto.LockedError
        If another process is writing ``out_path``.
    DegenerateEncodingError
        (a ValueError) If the encodings are degenerate and ``allow_degenerate`` is
        False; the message names the checkpoint and the numbers, and nothing is written.

    Examples
    --------
    >>> embed("runs/a", "crops.h5", "emb.h5", split="test")  # doctest: +SKIP
    """
    run_dir, out_path = Path(run_dir), Path(out_path)
    if split is not None and split not in SPLIT_NAMES:
        raise ValueError(f"`split` must be one of {list(SPLIT_NAMES)} or None; got {split!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}")
    ckpt_path = _checkpoint_path(run_dir, checkpoint)
    inputs = [("the crop store being encoded", store_path), ("the checkpoint", ckpt_path)]
    exists = check_output(out_path, "embeddings file", inputs=inputs, resume=True)
    h5ad_path = None if not h5ad else out_path.with_suffix(".h5ad") if h5ad is True else Path(h5ad)
    if h5ad_path is not None:
        inputs += [("the embeddings file this command writes (-o)", out_path)]
        check_output(h5ad_path, "AnnData file", inputs=inputs, overwrite=overwrite, flag="--h5ad")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"`threads` must be an int >= 0; got {threads!r}")
    options = {"logits": bool(logits), "local": bool(local), "global_only": bool(global_only)}
    with write_lock(out_path, what="embeddings file"), torch_threads(threads):
        dev = resolve_device(device)
        model, state = _load_model_and_state(run_dir, ckpt_path, dev, trust_plugins)
        job = _plan(model, state, run_dir, Path(store_path), ckpt_path, split, options)
        done = exists and not overwrite and EmbeddingsWriter.finished(out_path, job.identity)
        if exists and not overwrite and not done:
            raise OutputError(
                f"`-o` {out_path} already holds an embeddings file of another run, "
                "checkpoint, store, split or options; pass --overwrite to replace it (or "
                "choose another name)"
            )
        if not done:  # else the same job finished already: nothing to do
            _write_job(
                model, job, out_path, options, run_dir=run_dir, checkpoint=ckpt_path,
                device=dev, batch_size=batch_size, num_workers=num_workers,
                progress=progress, allow_degenerate=allow_degenerate,
            )  # fmt: skip
    if h5ad_path is not None and not (done and h5ad_path.exists()):
        export_h5ad(out_path, h5ad_path, overwrite=overwrite)
    return out_path


def _write_job(
    model: Any,
    job: _EmbedJob,
    out_path: Path,
    options: dict[str, bool],
    *,
    run_dir: Path,
    checkpoint: Path,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    progress: bool,
    allow_degenerate: bool,
) -> None:
    """Encode the job's rows into ``out_path`` (resuming a partial file of the same job);
    a degenerate result is discarded (DegenerateEncodingError) unless allowed."""
    layout = model.embed_layout(**options)
    # a lower bound (a quarter of the raw size; LZF shrinks these by about 1.7×)
    row_bytes = sum(width * dtype.itemsize for width, dtype in layout.values())
    check_free_space(out_path.parent, job.rows.size * row_bytes / 4, "the embeddings")
    writer = EmbeddingsWriter(out_path, job.identity)
    try:
        if not writer.created:
            writer.create(layout, **job.labels, attrs=_model_attrs(model, checkpoint, job))
        workers = num_workers if num_workers >= 0 else default_num_workers(device)
        health = _encode_rows(
            model, writer, job, batch_size=batch_size, workers=workers, progress=progress
        )
        here = Path(out_path).parent
        writer.finish(
            {
                "health": json.dumps(health.to_dict()),
                # relative to this file's folder: a moved folder still finds them
                "store_relative": relative_to(job.store, here),
                "run_relative": relative_to(run_dir, here),
            }
        )
        if health.degenerate and not allow_degenerate:
            writer.discard()
            msg = _degenerate_message(
                health, checkpoint, job.rows.size, model.config.quantizer or "ema"
            )
            raise DegenerateEncodingError(msg, health)
        writer.commit()
    finally:
        writer.close()


@dataclass(frozen=True)
class _EmbedJob:
    """What one embed call encodes: the store's rows, their labels, the job's identity."""

    store: Path
    rows: np.ndarray
    labels: dict[str, Any]
    identity: dict[str, Any]
    fingerprint: dict[str, str]


def _plan(
    model: Any,
    state: dict[str, Any],
    run_dir: Path,
    store_path: Path,
    ckpt_path: Path,
    split: str | None,
    options: dict[str, bool],
) -> _EmbedJob:
    """Check the store against the model and pick the rows of ``split``."""
    from cyto.data import CropStore

    cfg = model.config
    with CropStore(store_path) as store:
        trained_on = list(state.get("store", {}).get("channels", store.channels))
        if list(store.channels) != trained_on:
            raise ValueError(
                f"crop store {store_path} has channels {list(store.channels)}, the model was "
                f"trained on {trained_on}: the names and their order must be the same"
            )
        if len(store.channels) != cfg.in_channels or store.crop_size != cfg.image_size:
            raise ValueError(
                f"crop store {store_path} has {len(store.channels)} channels of "
                f"{store.crop_size}x{store.crop_size}, the model expects {cfg.in_channels} "
                f"of {cfg.image_size}x{cfg.image_size}"
            )
        split_codes = _run_split(run_dir, store)
        if split_codes is None and split is not None:
            raise ValueError(
                f"`split` {split!r} needs the run's training store; {store_path} is a "
                "different store"
            )
        if split_codes is None:
            split_codes = np.full(len(store), -1, dtype=np.int8)
        rows = _split_rows(split_codes, split)
        names = np.array([*SPLIT_NAMES, "none"])
        labels = {
            "protein_ids": store.protein_ids[rows].astype(str),
            "fov_ids": store.fov_ids[rows].astype(str),
            "split": names[split_codes[rows]],
            "crop_index": rows,
            "classes": [str(c) for c in state.get("classes", [])],
            "obs": store.crop_obs(rows),
        }
        store_n, fingerprint = len(store), store.fingerprint()
    identity = {
        "format": EMBEDDING_FORMAT,
        "run": str(run_dir.resolve()),
        "checkpoint": str(ckpt_path.resolve()),
        "checkpoint_step": int(state.get("step", -1)),
        "store": str(store_path.resolve()),
        "store_n": store_n,
        "split_selected": split or "all",
        "n": int(rows.size),
        **options,
    }
    return _EmbedJob(store_path, rows, labels, identity, fingerprint)


def _split_rows(split_codes: np.ndarray, split: str | None) -> np.ndarray:
    """Store rows of ``split`` (every row for None); an empty split is an error."""
    rows = np.arange(split_codes.size, dtype=np.int64)
    if split is None:
        return rows
    rows = rows[split_codes == SPLIT_NAMES.index(split)]
    if rows.size == 0:
        counts = {name: int((split_codes == k).sum()) for k, name in enumerate(SPLIT_NAMES)}
        raise ValueError(
            f"the run's {split!r} split is empty ({counts} crops per split: too "
            "few fields per protein for it); embed without --split, or choose "
            "another split"
        )
    return rows


def _model_attrs(model: Any, ckpt_path: Path, job: _EmbedJob) -> dict[str, Any]:
    """File attributes describing the model and what went into the encodings."""
    cfg = model.config
    inputs = {"checkpoint_sha256": content_hash(ckpt_path), "store_fingerprint": job.fingerprint}
    return {
        "model_config": json.dumps(saved_config(cfg)),
        "num_embeddings_local": cfg.codebook_sizes[0],
        "num_embeddings_global": cfg.codebook_sizes[1],
        "global_shape": list(model.global_shape),
        "local_shape": list(model.local_shape),
        "versions": json.dumps(package_versions()),
        "inputs": json.dumps(inputs),
    }


def _encode_rows(
    model: Any,
    writer: EmbeddingsWriter,
    job: _EmbedJob,
    *,
    batch_size: int,
    workers: int,
    progress: bool,
) -> EncodingHealth:
    """Encode the rows not yet written, block by block; the health of all rows."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ._dataset import BlockShuffleSampler

    start, n = writer.done, job.rows.size
    # health of the rows an interrupted run already wrote, then of each new block as it
    # is computed (the finished file is not read again)
    health = _written_health(writer, start, model.config.codebook_sizes[1] or None, batch_size)
    dev = next(model.parameters()).device
    ds = CropDataset(job.store, job.rows)
    sampler = BlockShuffleSampler(ds, shuffle=False, even=False, skip=start)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        collate_fn=collate_crops,
    )
    options = {k: bool(job.identity[k]) for k in ("logits", "local", "global_only")}
    pos = start
    with tqdm(total=n, initial=start, desc="embed", disable=not progress, unit="crop") as bar:
        with torch.inference_mode():
            for x, _ in loader:
                check_finite_crops(
                    x,
                    job.rows[pos : pos + x.shape[0]],
                    job.store,
                    "their encodings would be meaningless",
                )
                x = x.to(dev, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                    out = model.embed_arrays(x, **options)
                pos = writer.write(out)
                health.update(out["global"], out.get("global_indices"))
                bar.update(x.shape[0])
    return health.result()


def _written_health(
    writer: EmbeddingsWriter, stop: int, num_codes: int | None, block: int
) -> HealthAccumulator:
    """A :class:`HealthAccumulator` fed the first ``stop`` rows already in the file."""
    acc = HealthAccumulator(num_codes=num_codes)
    step = max(block, 1024)
    for lo in range(0, stop, step):
        hi = min(lo + step, stop)
        acc.update(writer.read("global", lo, hi), writer.read("global_indices", lo, hi))
    return acc


def _degenerate_message(
    health: EncodingHealth, checkpoint: Path, n: int, codebook: str = "paper"
) -> str:
    remedy = (
        "The model has not learned distinct encodings: train longer (more epochs or more "
        "crops) or with a lower learning rate"
        if codebook == "ema"
        else "The model has collapsed: retrain with the default codebook "
        "(`cyto train --codebook ema`)"
    )
    other = "" if Path(checkpoint).stem == "last" else ", or try `--checkpoint last`"
    return (
        f"the global encodings of checkpoint {checkpoint} are degenerate for the {n} crops "
        f"encoded: {'; '.join(health.reasons)} ({health.describe()}). Every analysis of them "
        f"would be chance, so nothing was written. {remedy}{other}; "
        "`--allow-degenerate` writes the file anyway"
    )
