"""Batch preprocessing of a dataset into one HDF5 crop store (resumable, parallel).

Crash safety: every field of view (FOV) is processed into its own shard file in
``<store>.parts/``, written under a temporary name and renamed when complete.
At the end of a run (also after Ctrl-C) the shards and the previous store are
merged into a new store written under a temporary name, which then replaces the
old one (``os.replace``). A run killed at any moment therefore leaves the
previous store (or an empty one, created at the start of the first run) intact,
plus complete shards that the next run picks up without recomputing them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import atomic_path, check_free_space, human_bytes, io_failure, write_text_atomic
from cyto._lock import write_lock
from cyto.data import check_output
from cyto.data._channels import named_stains
from cyto.preprocess._batch_inputs import (
    _check_duplicates,
    _check_image_kinds,
    _check_same_inputs,
    _check_scales,
)
from cyto.preprocess._crop import check_channels
from cyto.preprocess._fov import NORMALIZE_MODES, preprocess_fov
from cyto.preprocess._readers import (
    FovSpec,
    attach_masks,
    fingerprint,
    list_fovs,
    read_labels,
    read_stack,
)
from cyto.preprocess._segmenters import register_segmenter, resolve_segmenter
from cyto.preprocess._validate import check_positive

__all__ = ["BatchReport", "preprocess_dataset"]

_PARTS_SUFFIX = ".parts"


@dataclass
class BatchReport:
    """What :func:`preprocess_dataset` did.

    Attributes
    ----------
    path : Path
        The crop store.
    n_fovs : int
        Fields of view in the dataset.
    n_processed : int
        Processed in this run.
    n_skipped : int
        Already done by an earlier run (resumed).
    n_crops : int
        Crops in the store after the run.
    failed : list of (str, str)
        ``(path, reason)`` of every field of view that could not be processed.
    seconds : float
        Wall time of the run.
    """

    path: Path
    n_fovs: int = 0
    n_processed: int = 0
    n_skipped: int = 0
    n_crops: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return len(self.failed)


def _shard_name(fov_id: str) -> str:
    return hashlib.sha1(fov_id.encode("utf-8")).hexdigest()[:20] + ".npz"


def _atomic_savez(target: Path, **arrays: np.ndarray) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _nucleus_channel(name: str | None, channels: Sequence[str]) -> str:
    """The stain segmented into nuclei: required with named stains, one of ``channels``."""
    if name is None:
        raise ValueError(
            f"`nucleus_channel` is required with named stains {list(channels)}: which one "
            "holds the nuclei (e.g. DNA)?"
        )
    if name not in channels or name == "distance":
        raise ValueError(f"`nucleus_channel` {name!r} must be one of `channels` {list(channels)}")
    return name


def _read_stains(spec: FovSpec) -> dict[str, np.ndarray]:
    """Every named stain of a field, (Z, Y, X) each, checked to be one field's images."""
    images = {}
    for name, path, index in spec.stains:
        stack = read_stack(path, axes=spec.axes)
        if index >= stack.shape[0]:
            raise ValueError(
                f"wrong channel count: {Path(path).name} has {stack.shape[0]} channel(s) but "
                f"channel {index} of it is stain {name!r}"
            )
        images[name] = stack[index]
    shapes = {n: a.shape[-2:] for n, a in images.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the stains of field {spec.fov_id} differ in size (Y, X): {shapes}")
    _check_not_all_nan(images)
    return images


def _check_not_all_nan(images: Mapping[str, np.ndarray]) -> None:
    """Refuse a channel that holds no number (a failed acquisition)."""
    for name, arr in images.items():
        if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).all():
            raise ValueError(f"the {name} channel is all NaN")


def _read_channels(spec: FovSpec) -> tuple[np.ndarray, np.ndarray]:
    """The protein and Hoechst (Z, Y, X) stacks of a field, checked."""
    stack = read_stack(spec.path, axes=spec.axes)
    if spec.nucleus_path is None:
        nuclear = stack
        need = max(spec.protein_channel, spec.nucleus_channel)
    else:  # Hoechst in its own file
        nuclear = read_stack(spec.nucleus_path, axes=spec.axes)
        need = spec.protein_channel
    for image, name, channel in (
        (stack, spec.path.name, need),
        (nuclear, Path(spec.nucleus_path or spec.path).name, spec.nucleus_channel),
    ):
        n_c = image.shape[0]
        if channel >= n_c:
            raise ValueError(
                f"wrong channel count: {name} has {n_c} channel(s) (shape CZYX "
                f"{image.shape}) but channel {channel} is requested"
            )
    protein = stack[spec.protein_channel]
    hoechst = nuclear[spec.nucleus_channel]
    if spec.nucleus_path is not None and protein.shape[-2:] != hoechst.shape[-2:]:
        raise ValueError(
            f"the protein image {spec.path.name} is {protein.shape[-2:]} (Y, X) but the "
            f"nucleus image {spec.nucleus_path.name} is {hoechst.shape[-2:]}; they must match"
        )
    _check_not_all_nan({"protein": protein, "nucleus": hoechst})
    return protein, hoechst


def _read_masks(spec: FovSpec, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The field's user masks (``nuclei``, ``cells``), checked against its image shape."""
    out = {}
    for key, path in (("nuclei", spec.mask_path), ("cells", spec.cell_mask_path)):
        if path is None:
            continue
        labels = read_labels(path)
        if labels.shape != tuple(shape):
            raise ValueError(
                f"the mask {Path(path).name} is {labels.shape} (Y, X) but the image "
                f"{spec.path.name} is {tuple(shape)}; a mask must label the field it belongs to"
            )
        out[key] = labels
    return out


def _process_one(spec: FovSpec, params: dict, parts: str) -> tuple[str, str, int, str]:
    """Worker: one FOV to one shard. Returns (fov_id, status, n_crops, reason)."""
    try:
        if spec.stains:
            images = {"stains": _read_stains(spec), "nucleus_channel": params["nucleus_channel"]}
            shape = images["stains"][params["nucleus_channel"]].shape[-2:]
        else:
            protein, hoechst = _read_channels(spec)
            images, shape = {"protein": protein, "hoechst": hoechst}, protein.shape[-2:]
        out = preprocess_fov(
            **images,
            channels=tuple(params["channels"]),
            downsample_factor=params["downsample_factor"],
            crop_size=params["crop_size"],
            nucleus_diameter=params["nucleus_diameter"],
            normalize=params["normalize"],
            min_contrast=params["min_contrast"],
            segmenter=params.get("segmenter"),
            **_read_masks(spec, shape),
        )
        _atomic_savez(
            Path(parts) / _shard_name(spec.fov_id),
            crops=out.crops.astype(params["dtype"], copy=False),
            centers=out.centers,
            nucleus_ids=out.nucleus_ids,
            fov_id=np.array(spec.fov_id),
            protein_id=np.array(spec.protein_id),
            path=np.array(str(spec.path)),
        )
        return spec.fov_id, "ok", len(out), ""
    except OSError as err:
        if err.errno == errno.ENOSPC:  # not the field's fault: every other field would fail too
            return spec.fov_id, "disk_full", 0, str(err.filename or parts)
        return spec.fov_id, "failed", 0, f"{type(err).__name__}: {err}"
    except Exception as err:  # a bad file must never abort the others
        return spec.fov_id, "failed", 0, f"{type(err).__name__}: {err}"


def _store_fovs(path: Path, params: dict) -> dict[str, tuple[str, str]]:
    """Fields recorded in an existing store made with the same parameters.

    Returns ``{fov_id: (protein_id, source fingerprint or "")}``.
    """
    from cyto.data import CropStore

    with CropStore(path) as store:
        if store.params != params:
            raise ValueError(
                f"{path} was made with other preprocessing parameters "
                f"({store.params}); expected {params}. Write to a new file or delete it."
            )
        t = store.fov_table()
    return {str(i): (str(p), str(s)) for i, p, s in zip(t["fov_id"], t["protein_id"], t["source"])}


def _sources(specs: Sequence[FovSpec]) -> dict[str, str]:
    """Content fingerprint of every field's inputs ("" when a file cannot be read: that
    field fails later with its own message)."""
    out = {}
    for spec in specs:
        try:
            out[spec.fov_id] = fingerprint(spec)
        except OSError:
            out[spec.fov_id] = ""
    return out


def _free_space_needed(parts: Path, done: int, total: int) -> float:
    """Bytes the remaining fields need, extrapolated from the shards written so far (×2:
    the final merge rewrites the store)."""
    shards = list(parts.glob("*.npz"))
    per_field = sum(p.stat().st_size for p in shards) / max(len(shards), 1)
    return 2.0 * per_field * max(total - done, 0)


def _check_space_for_merge(out: Path, parts: Path) -> None:
    """Refuse a merge that cannot fit on the disk, before HDF5 writes anything."""
    need = sum(p.stat().st_size for p in parts.glob("*.npz"))
    if out.exists():
        need += out.stat().st_size
    check_free_space(out.parent, need, f"the store merged from the fields kept in {parts.name}")


def _all_done(
    out: Path, specs: Sequence[FovSpec], params: dict, sources: Mapping[str, str]
) -> bool:
    """True when ``out`` is a finished store that already holds every field."""
    if not out.exists() or out.with_name(out.name + _PARTS_SUFFIX).exists():
        return False
    done = _store_fovs(out, params)
    _check_same_inputs(out, done, specs, sources)
    return all(s.fov_id in done for s in specs)


def _consolidate(
    out: Path,
    parts: Path,
    specs: Sequence[FovSpec],
    params: dict,
    channels: tuple[str, ...],
    sources: Mapping[str, str],
    compression: str | None = "lzf",
) -> int:
    """Merge the old store and all shards into a new store; replace atomically."""
    from cyto.data import CropStore, CropStoreWriter

    old = CropStore(out) if out.exists() and out.stat().st_size > 0 else None
    try:
        with atomic_path(out) as tmp:
            w = CropStoreWriter(
                tmp,
                channels=channels,
                crop_size=params["crop_size"],
                dtype=np.dtype(params["dtype"]),
                params=params,
                compression=compression,
            )
            try:
                table = _copy_old_store(old, w) if old is not None else []
                table += _append_shards(w, parts, specs, {t[0] for t in table}, sources)
                metadata = old.fov_metadata() if old is not None else {}
                metadata |= {s.fov_id: dict(s.metadata) for s in specs if s.metadata}
                w.write_fov_table(table, metadata)
                n_total = w.n
            finally:
                w.close()
    finally:
        if old is not None:
            old.close()
    return n_total


def _copy_old_store(old: Any, w: Any) -> list[tuple[str, str, str, int, str]]:
    """Copy every crop of ``old`` into ``w``; the old store's field table."""
    t = old.fov_table()
    step = 4096
    for a in range(0, len(old), step):
        b = min(len(old), a + step)
        w.append(
            old.read(slice(a, b)).astype(old.dtype, copy=False),
            old.protein_ids[a:b].astype(object),
            old.fov_ids[a:b].astype(object),
            old.centers[a:b],
            old.nucleus_ids[a:b],
        )
    return [
        (str(i), str(p), str(path), int(k), str(src))
        for i, p, path, k, src in zip(
            t["fov_id"], t["protein_id"], t["path"], t["n_crops"], t["source"]
        )
    ]


def _append_shards(
    w: Any, parts: Path, specs: Sequence[FovSpec], done: set[str], sources: Mapping[str, str]
) -> list[tuple[str, str, str, int, str]]:
    """Append the finished fields' shards not already in the store; their table rows."""
    table = []
    for spec in specs:
        shard = parts / _shard_name(spec.fov_id)
        if spec.fov_id in done or not shard.is_file():
            continue
        with np.load(shard) as z:
            k = z["crops"].shape[0]
            w.append(
                z["crops"],
                np.full(k, spec.protein_id, dtype=object),
                np.full(k, spec.fov_id, dtype=object),
                z["centers"],
                z["nucleus_ids"],
            )
        table.append(
            (spec.fov_id, spec.protein_id, str(spec.path), k, sources.get(spec.fov_id, ""))
        )
        done.add(spec.fov_id)
    return table


def _run_pool(pending, params, parts, workers, on_result) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
        futures = {pool.submit(_process_one, s, params, str(parts)): s for s in pending}
        try:
            for fut in as_completed(futures):
                spec = futures[fut]
                try:
                    on_result(fut.result())
                except BrokenProcessPool:
                    on_result((spec.fov_id, "failed", 0, "worker process died"))
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _run_dask(pending, params, parts, scheduler, on_result) -> None:
    from cyto._optional import require

    distributed = require("distributed", "dask", purpose="preprocessing on a Dask cluster")
    client = (
        scheduler
        if isinstance(scheduler, distributed.Client)
        else distributed.Client(scheduler, set_as_default=False)
    )
    own = client is not scheduler
    try:
        futures = [
            client.submit(_process_one, s, params, str(parts), key=f"cyto-fov-{i}-{s.fov_id}")
            for i, s in enumerate(pending)
        ]
        by_key = {f.key: s for f, s in zip(futures, pending)}
        try:
            for fut in distributed.as_completed(futures, loop=client.loop):
                spec = by_key[fut.key]
                try:
                    on_result(fut.result())
                except Exception as err:  # worker lost, etc.
                    on_result((spec.fov_id, "failed", 0, f"{type(err).__name__}: {err}"))
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if own:
            client.close()


def _check_storage(normalize: str, dtype: str, compression: str | None) -> None:
    """Intensity scaling, storage type and compression, checked before any work."""
    from cyto.data import COMPRESSIONS

    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"`normalize` {normalize!r} must be one of {list(NORMALIZE_MODES)}")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"`dtype` {dtype!r} must be 'float16' or 'float32'")
    if compression not in COMPRESSIONS:
        raise ValueError(f"`compression` must be one of {list(COMPRESSIONS)}, got {compression!r}")
    if normalize == "none" and dtype == "float16":
        raise ValueError(
            "`normalize`='none' keeps raw intensities (up to 65535 for 16-bit images), "
            "beyond the float16 range; use dtype='float32'"
        )


def preprocess_dataset(
    source: str | os.PathLike | Sequence[FovSpec],
    out: str | os.PathLike,
    *,
    channels: Sequence[str] = ("protein", "distance"),
    nucleus_channel: str | None = None,
    crop_size: int = 100,
    downsample_factor: int = 2,
    nucleus_diameter: float | None = None,
    normalize: str = "crop",
    min_contrast: float = 5.0,
    dtype: str = "float16",
    workers: int | None = None,
    scheduler: str | object | None = None,
    progress: bool = True,
    on_error: Callable[[str, str], None] | None = None,
    masks: str | os.PathLike | None = None,
    segmenter: str | Callable[..., np.ndarray] | None = None,
    plate_map: str | os.PathLike | Mapping[str, str] | None = None,
    compression: str | None = "lzf",
) -> BatchReport:
    """Preprocess every field of view of a dataset into one HDF5 crop store.

    Each field goes through :func:`preprocess_fov`; crops, protein ids, FOV ids,
    crop centres and nucleus ids land in ``out`` (layout: :mod:`cyto.data`),
    with the parameters and the cyto version. The store also lists every
    processed field under ``/fovs`` (including fields without crops).

    Re-running resumes: fields already in the store or in the ``<out>.parts/``
    shard folder are skipped. A file that cannot be processed (unreadable, wrong
    dimensionality, all-NaN, wrong channel count, ...) is reported with its path
    and reason and skipped; the others go on. A run killed at any moment leaves
    a store that opens and holds only complete fields; the next run picks up the
    finished shards.

    Parameters
    ----------
    source : str, PathLike or sequence of FovSpec
        Manifest CSV, folder (``manifest.csv`` or ``<protein_id>/*.tif``; see
        :func:`list_fovs`), or the fields themselves.
    out : str or PathLike
        The ``.h5`` crop store to write or complete.
    channels, crop_size, downsample_factor, nucleus_diameter, normalize, min_contrast
        As in :func:`preprocess_fov`.
    nucleus_channel : str, optional
        With named stains (``channels`` such as ``("DNA", "ER", "RNA", "AGP", "Mito")``,
        read from a manifest's columns): the stain segmented into nuclei (required then,
        and recorded in the store's parameters).
    dtype : {"float16", "float32"}
        Storage type of the crops.
    compression : {"lzf", None}, default "lzf"
        Compression of the stored crops (one crop per chunk either way): LZF with byte
        shuffle, or none (about 1.45x the disk, for the fastest training reads). Not a
        preprocessing parameter: a resumed run may change it, and the whole store is
        rewritten with it.
    workers : int, optional
        Processes of the local pool (default: all CPU cores); 1 runs in this process.
    scheduler : str or distributed.Client, optional
        Address of a Dask scheduler (e.g. ``"tcp://10.0.0.1:8786"``) or a client:
        the fields are spread over the cluster (needs ``cyto[dask]``; workers must
        see the input files and the output folder). Overrides ``workers``.
    progress : bool
        Show a tqdm progress bar.
    on_error : callable, optional
        Called as ``on_error(path, reason)`` for each failed field (default: print a
        line through tqdm).
    masks : path-like, optional
        A folder of nucleus label images made elsewhere, one per field (found by
        :func:`~cyto.preprocess.attach_masks`): segmentation is skipped. A manifest's
        ``mask_path`` / ``cell_mask_path`` columns do the same per row. A field whose
        mask is missing, of another shape or not integer fails and is reported.
    segmenter : str or callable, optional
        Nucleus segmenter (see :func:`preprocess_fov`): a registered name,
        ``"package.module:function"`` (importable by every worker) or a picklable
        callable. Recorded in the store's parameters.
    plate_map : path-like or mapping, optional
        ``well,protein_id`` table of an OME-Zarr HCS plate (``source`` = ``plate.zarr``);
        without it each well group's ``protein_id`` attribute is used.

    Returns
    -------
    BatchReport

    Raises
    ------
    cyto.LockedError
        If another process is writing ``out`` (the message names it).
    ValueError
        If an option is invalid, the dataset has repeated fov ids, or ``out`` exists
        with other parameters or is not a crop store.
    FileNotFoundError
        If ``source`` or the folder of ``out`` does not exist.

    Examples
    --------
    >>> import os, tempfile, numpy as np, tifffile
    >>> from skimage.draw import disk
    >>> from cyto.data import CropStore
    >>> root = tempfile.mkdtemp()
    >>> field = np.full((2, 1, 200, 200), 300, np.uint16)     # C=2 (Hoechst, protein), Z=1
    >>> field[:, 0][(slice(None), *disk((100, 100), 20))] = 3000
    >>> os.mkdir(os.path.join(root, "ACTB"))
    >>> tifffile.imwrite(os.path.join(root, "ACTB", "fov1.tif"), field, photometric="minisblack")
    >>> report = preprocess_dataset(root, os.path.join(root, "crops.h5"), crop_size=64,
    ...                             workers=1, progress=False)
    >>> report.n_processed, report.n_crops, report.failed
    (1, 1, [])
    >>> with CropStore(os.path.join(root, "crops.h5")) as store:
    ...     store.protein_ids.tolist(), store.fov_ids.tolist(), store.read([0]).shape
    (['ACTB'], ['ACTB/fov1'], (1, 2, 64, 64))
    """
    t0 = time.perf_counter()
    names = check_channels(channels)
    _check_storage(normalize, dtype, compression)
    params = {
        "channels": list(names),
        "crop_size": check_positive(crop_size, "crop_size", integer=True),
        "downsample_factor": check_positive(downsample_factor, "downsample_factor", integer=True),
        "nucleus_diameter": check_positive(nucleus_diameter, "nucleus_diameter", allow_none=True),
        "normalize": normalize,
        "min_contrast": check_positive(min_contrast, "min_contrast"),
        "dtype": dtype,
    }
    stains = named_stains(names)
    if stains or nucleus_channel is not None:
        params["nucleus_channel"] = _nucleus_channel(nucleus_channel, names)
    seg_name = _segmenter_name(segmenter, workers, scheduler)
    if seg_name != "cyto":  # recorded only when not the default (older stores lack it)
        params["segmenter"] = seg_name
    if workers is not None:
        workers = check_positive(workers, "workers", integer=True)
    if isinstance(source, (str, os.PathLike)):
        pm = dict(plate_map) if isinstance(plate_map, Mapping) else plate_map
        specs = list_fovs(source, plate_map=pm, channels=names)
    else:
        specs = list(source)
    if not all(isinstance(s, FovSpec) for s in specs):
        raise TypeError("`source` must be a path or a sequence of FovSpec")
    if not specs:
        raise ValueError(f"`source` {source!s:.200} lists no field of view; nothing to do")
    if masks is not None:
        specs = attach_masks(specs, masks)
    _check_image_kinds(specs)
    _check_scales(specs, params)
    counts = Counter(s.fov_id for s in specs)
    if len(counts) != len(specs):
        dup = sorted(i for i, k in counts.items() if k > 1)[:5]
        raise ValueError(f"the dataset repeats fov ids {dup}; fov ids must be unique")

    out = Path(out)
    inputs = [("the manifest", source)] if isinstance(source, (str, os.PathLike)) else []
    check_output(out, "crop store", inputs=inputs, resume=True, flag="out")
    report = BatchReport(path=out, n_fovs=len(specs))
    sources = _sources(specs)
    _check_duplicates(specs, sources)
    if _all_done(out, specs, params, sources):  # read-only: also works in a read-only folder
        from cyto.data import CropStore

        report.n_skipped = len(specs)
        with CropStore(out) as store:
            report.n_crops = len(store)
        report.seconds = time.perf_counter() - t0
        return report
    with write_lock(out, what="crop store"):
        return _preprocess_locked(
            specs, sources, out, params, names, report, workers, scheduler, progress, on_error, t0,
            compression,
        )  # fmt: skip


def _segmenter_name(segmenter: Any, workers: int | None, scheduler: Any) -> str:
    """The segmenter's name, resolvable in worker processes (checked here, up front)."""
    name, func = resolve_segmenter(segmenter)
    if callable(segmenter):
        register_segmenter(name, func, overwrite=True)  # found by name in this process
        if "<" in name and (workers != 1 or scheduler is not None):
            raise ValueError(
                f"`segmenter` {name!r} cannot be imported by worker processes; define it "
                "at module level (or register it in an imported module), or use workers=1"
            )
    return name


def _prepare_parts(out: Path, parts: Path, params: dict) -> None:
    """The shards folder of this run (refusing one left by a run with other parameters)."""
    if parts.is_dir():
        saved = parts / "params.json"
        if saved.is_file() and json.loads(saved.read_text()) != params:
            raise ValueError(
                f"{parts} holds an unfinished run with other parameters "
                f"({saved.read_text().strip()}); delete it or rerun with those parameters"
            )
    parts.mkdir(exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.tmp"):  # from a killed merge
        stale.unlink(missing_ok=True)
    write_text_atomic(parts / "params.json", json.dumps(params, sort_keys=True))


def _result_handler(
    report: BatchReport,
    specs: Sequence[FovSpec],
    parts: Path,
    bar: Any,
    on_error: Callable[[str, str], None] | None,
) -> Callable[[tuple[str, str, int, str]], None]:
    """What to do with each field's result: count it, report a failure, stop on a full disk."""
    by_id = {s.fov_id: s for s in specs}

    def on_result(result: tuple[str, str, int, str]) -> None:
        fov_id, status, _, reason = result
        if status == "disk_full":
            need = _free_space_needed(parts, report.n_processed, len(specs) - report.n_skipped)
            raise OSError(
                errno.ENOSPC,
                f"No space left on device ({report.n_processed} field(s) done and kept; about "
                f"{human_bytes(need)} more are needed for the rest)",
                reason,
            )
        if status == "ok":
            report.n_processed += 1
        else:
            path = str(by_id[fov_id].path)
            report.failed.append((path, reason))
            if on_error is not None:
                on_error(path, reason)
            else:
                bar.write(f"skipped {path}: {reason}")
        bar.update(1)

    return on_result


def _dispatch(
    pending: Sequence[FovSpec],
    params: dict,
    parts: Path,
    workers: int | None,
    scheduler: Any,
    on_result: Callable[[tuple[str, str, int, str]], None],
) -> None:
    """Process the pending fields: on a Dask cluster, a process pool, or in this process."""
    if scheduler is not None:
        _run_dask(pending, params, parts, scheduler, on_result)
    elif (workers or os.cpu_count() or 1) == 1 or len(pending) == 1:
        for spec in pending:
            on_result(_process_one(spec, params, str(parts)))
    else:
        n = min(workers or os.cpu_count() or 1, len(pending))
        _run_pool(pending, params, parts, n, on_result)


def _preprocess_locked(
    specs: list[FovSpec],
    sources: dict[str, str],
    out: Path,
    params: dict,
    names: tuple[str, ...],
    report: BatchReport,
    workers: int | None,
    scheduler: Any,
    progress: bool,
    on_error: Callable[[str, str], None] | None,
    t0: float,
    compression: str | None,
) -> BatchReport:
    """The body of :func:`preprocess_dataset`, run while holding the store's lock."""
    parts = out.with_name(out.name + _PARTS_SUFFIX)
    done = _store_fovs(out, params) if out.exists() else {}
    _check_same_inputs(out, done, specs, sources)
    _prepare_parts(out, parts, params)
    if not out.exists():  # an empty, valid store from the start
        _consolidate(out, parts, [], params, names, sources, compression)
    sharded = {s.fov_id for s in specs if (parts / _shard_name(s.fov_id)).is_file()}
    pending = [s for s in specs if s.fov_id not in done and s.fov_id not in sharded]
    report.n_skipped = len(specs) - len(pending)

    from tqdm import tqdm

    bar = tqdm(
        total=len(specs),
        initial=report.n_skipped,
        desc="preprocess",
        unit="fov",
        disable=not progress,
    )
    on_result = _result_handler(report, specs, parts, bar, on_error)
    failure: BaseException | None = None
    try:
        if pending:
            _dispatch(pending, params, parts, workers, scheduler, on_result)
    except BaseException as err:
        failure = err
        raise
    finally:
        bar.close()
        # also after Ctrl-C: keep what is finished. A merge that cannot fit is not
        # started (HDF5 copes badly with failed writes); after a full disk the finished
        # fields then stay in the shards folder, where the next run starts from them.
        disk_full = failure is not None and io_failure(failure) == "disk_full"
        try:
            _check_space_for_merge(out, parts)
        except OSError:
            if not disk_full:
                raise
        else:
            report.n_crops = _consolidate(out, parts, specs, params, names, sources, compression)
    shutil.rmtree(parts, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    return report
