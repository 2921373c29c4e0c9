"""The embeddings file written by ``cyto embed``: its one reader, writer and converter.

One HDF5 file, one row per encoded crop::

    global (n, G·h·w) float32      quantized global encodings
    global_indices, local_indices  VQ code maps (when quantized)
    global_hist, local_hist        per-crop code histograms
    local, logits, logits_local    optional
    protein_id, fov_id, split      strings per row
    crop_index                     row in the crop store
    classes                        the run's class names
    attrs: format, run, checkpoint, store, n, done, complete, health, versions, inputs, ...

It is written into ``.<name>.partial`` beside the target and renamed when complete, so
the final name only ever holds a complete file; an interrupted identical job resumes
from the rows already written. No torch here: :func:`cyto.nn.embed` computes the rows,
every other layer reads them through :class:`Embeddings`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import atomic_path, default_mode
from cyto._health import check_encodings
from cyto._paths import locate
from cyto.data._outputs import check_output

__all__ = ["EMBEDDING_FORMAT", "Embeddings", "EmbeddingsWriter", "LazyRows", "export_h5ad"]

#: ``format`` attribute of embedding files.
EMBEDDING_FORMAT = "cyto-embeddings-1"

_BLOCK = 4096  # rows read per HDF5 block


def _h5py() -> Any:
    import h5py

    return h5py


def _strings(ds: Any) -> np.ndarray:
    """A string dataset as an object array of ``str``."""
    return np.array(
        [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]], dtype=object
    )


def _read_rows(ds: Any, rows: np.ndarray | None) -> np.ndarray:
    """Rows (sorted int array; None: all) of an HDF5 dataset, read block by block."""
    n = ds.shape[0]
    if rows is None or (rows.size == n and np.array_equal(rows, np.arange(n))):
        return np.asarray(ds[()])
    out = np.empty((rows.size, *ds.shape[1:]), dtype=ds.dtype)
    pos = 0
    for start in range(0, n, _BLOCK):
        sel = rows[(rows >= start) & (rows < start + _BLOCK)]
        if sel.size:
            out[pos : pos + sel.size] = ds[start : start + _BLOCK][sel - start]
            pos += sel.size
    return out


class LazyRows:
    """Rows of one dataset of an embeddings file, read only when sliced.

    Array-like enough for the analysis functions that walk their input in row blocks
    (``shape``, ``dtype``, ``len``, slicing): 10⁶ local code maps (625 codes each, 1.25
    GB) then never sit in memory at once. Each slice opens the file, reads those rows
    and closes it, so the object is safe to keep and to pickle. Indexing with an integer
    array gives the ``LazyRows`` of those rows; ``np.asarray`` reads everything.

    Parameters
    ----------
    path : path-like
        The embeddings file.
    name : str
        Dataset, e.g. ``"local_indices"``.
    rows : (m,) int array, optional
        File rows served (in this order); default all.

    Examples
    --------
    >>> codes = LazyRows("emb.h5", "local_indices")  # doctest: +SKIP
    >>> codes.shape, codes[:10].shape  # doctest: +SKIP
    ((1000000, 1, 25, 25), (10, 1, 25, 25))
    """

    def __init__(self, path: str | os.PathLike, name: str, rows: np.ndarray | None = None):
        self.path, self.name = Path(path), str(name)
        with _h5py().File(self.path, "r") as f:
            if self.name not in f:
                raise KeyError(
                    f"`name` {self.name!r} is not a dataset of {self.path.name}; it has "
                    f"{sorted(f.keys())}"
                )
            ds = f[self.name]
            self._file_shape, self.dtype = tuple(ds.shape), ds.dtype
        n = self._file_shape[0]
        self.rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.rows.size), *self._file_shape[1:])

    @property
    def ndim(self) -> int:
        return len(self._file_shape)

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, key: Any) -> np.ndarray | LazyRows:
        if isinstance(key, slice):
            return self._read(self.rows[key])
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return LazyRows(self.path, self.name, self.rows[key])

    def _read(self, rows: np.ndarray) -> np.ndarray:
        order = np.argsort(rows, kind="stable")
        with _h5py().File(self.path, "r") as f:
            sorted_rows = _read_rows(f[self.name], rows[order])
        out = np.empty_like(sorted_rows)
        out[order] = sorted_rows
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._read(self.rows)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"LazyRows({str(self.path)!r}, {self.name!r}, shape={self.shape})"


class Embeddings:
    """Read access to an embeddings file (a context manager; closes its handle).

    Parameters
    ----------
    path : path-like
        A file written by ``cyto embed``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a readable HDF5 file or lacks the ``global`` / ``protein_id`` rows.

    Attributes
    ----------
    path : Path
    n : int
        Rows (crops).
    protein_ids, fov_ids, split : (n,) object arrays of str
        ``split`` is ``"none"`` for every row of a file written without a run split.
    crop_index : (n,) int64 array
        Row of each crop in its crop store.
    attrs : dict
        The file's attributes.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"embeddings file not found: {self.path}")
        try:
            self._f = _h5py().File(self.path, "r")
        except OSError as err:
            raise ValueError(
                f"`embeddings` {self.path} is not a readable HDF5 file: {err}"
            ) from None
        f = self._f
        missing = [k for k in ("global", "protein_id") if k not in f]
        if missing:
            has = sorted(f.keys())
            store = "format_version" in f.attrs and "crops" in f
            self._f.close()
            what = (
                "is a crop store, not an embeddings file" if store else "is not an embeddings file"
            )
            raise ValueError(
                f"`embeddings` {self.path} {what}: it lacks dataset(s) {missing} (has {has}); "
                "give the file `cyto embed` wrote"
            )
        self.n = int(f["global"].shape[0])
        self.attrs: dict[str, Any] = dict(f.attrs)
        self.protein_ids = _strings(f["protein_id"])
        self.fov_ids = _strings(f["fov_id"]) if "fov_id" in f else np.full(self.n, "", object)
        self.split = _strings(f["split"]) if "split" in f else np.full(self.n, "none", object)
        self.crop_index = f["crop_index"][()] if "crop_index" in f else np.arange(self.n)

    def __contains__(self, name: str) -> bool:
        return name in self._f

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of dataset ``name``."""
        return tuple(self._f[name].shape)

    def read(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Dataset ``name`` (all rows, or the sorted ``rows``), read block by block."""
        return _read_rows(self._f[name], None if rows is None else np.asarray(rows))

    def lazy(self, name: str, rows: np.ndarray | None = None) -> LazyRows:
        """Dataset ``name`` (all rows, or ``rows``) as :class:`LazyRows`: read on slicing."""
        return LazyRows(self.path, name, rows)

    def strings(self, name: str) -> np.ndarray:
        """String dataset ``name`` (e.g. ``"classes"``) as ``str`` objects."""
        return _strings(self._f[name])

    def obs(self) -> dict[str, np.ndarray]:
        """Per-crop annotations carried from the crop store (``obs/``): crop centre,
        nucleus id and the fields' metadata columns (plate, well...); empty for files
        written before they were carried."""
        g = self._f.get("obs")
        if g is None:
            return {}
        return {k: _strings(g[k]) if g[k].dtype.kind == "O" else g[k][()] for k in g}

    @property
    def store_path(self) -> Path | None:
        """The crop store the crops came from: found beside this file as recorded
        (relative to its folder, so a moved folder keeps working), else at the recorded
        absolute path; None when neither exists."""
        return locate(self.attrs.get("store"), self.attrs.get("store_relative"), self.path.parent)

    @property
    def run_path(self) -> Path | None:
        """The run folder of the model, found like :attr:`store_path`."""
        return locate(self.attrs.get("run"), self.attrs.get("run_relative"), self.path.parent)

    def inputs(self) -> dict[str, Any]:
        """What the file came from: its path, checkpoint hash and store fingerprint."""
        recorded = self.attrs.get("inputs")
        return {"path": str(self.path.resolve()), **(json.loads(recorded) if recorded else {})}

    def check_health(self, rows: np.ndarray, X: np.ndarray, *, allow: bool = False) -> Any:
        """The :class:`~cyto.analysis.EncodingHealth` of the global encodings ``X`` of
        ``rows`` (with their global codes, when the file has them); degenerate ones are a
        :class:`~cyto.analysis.DegenerateEncodingError` unless ``allow``.

        The one check every reader of encodings makes (analyze, evaluate, explore).

        Parameters
        ----------
        rows : (n,) int array
            Sorted rows of ``X``.
        X : (n, d) array
            Their global encodings, as read.
        allow : bool, default False
            Return the health of degenerate encodings instead of raising.

        Returns
        -------
        health : EncodingHealth
        """
        num_codes = self.shape("global_hist")[1] if "global_hist" in self else None
        indices = self.read("global_indices", rows) if "global_indices" in self else None
        return check_encodings(X, indices, num_codes=num_codes, where=str(self.path), allow=allow)

    def crop_store(self, crops: str | os.PathLike | None = None) -> Path | None:
        """The crop store of these crops: ``crops`` if given, else the recorded one.

        A store given (or found) is checked against the fingerprint the file recorded
        when it was embedded, so the images shown or scored are those of the encodings.

        Parameters
        ----------
        crops : path-like, optional
            A crop store to use instead of the recorded one.

        Returns
        -------
        store : Path or None
            None when no store was given and the recorded one is not found.

        Raises
        ------
        FileNotFoundError
            If ``crops`` is given and does not exist.
        ValueError
            If the store's fingerprint differs from the recorded one.
        """
        from cyto.data._store import CropStore

        path = self.store_path if crops is None else Path(crops)
        if path is None:
            return None
        if not path.is_file():
            raise FileNotFoundError(f"`crops` crop store not found: {path}")
        recorded = self.inputs().get("store_fingerprint")
        if recorded:
            with CropStore(path) as store:
                found = store.fingerprint()
            differ = [k for k in ("ids", "pixels") if recorded.get(k) != found.get(k)]
            if differ:
                raise ValueError(
                    f"`crops` {path} is not the crop store {self.path.name} was embedded "
                    f"from: its {' and '.join(differ)} differ from the fingerprint recorded "
                    "(give the store the embeddings were made from)"
                )
        return path

    def close(self) -> None:
        """Close the file handle."""
        self._f.close()

    def __enter__(self) -> Embeddings:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def is_embeddings_file(path: str | os.PathLike) -> bool:
        """True when ``path`` is an HDF5 file written by ``cyto embed``."""
        try:
            with _h5py().File(path, "r") as f:
                return f.attrs.get("format") == EMBEDDING_FORMAT
        except OSError:
            return False


class EmbeddingsWriter:
    """Writes an embeddings file block by block into ``.<name>.partial``, resumably.

    Parameters
    ----------
    out : path-like
        The final file.
    identity : dict
        Attributes that identify the job (run, checkpoint, store, rows, options): a
        partial file with the same identity is resumed, any other is replaced.
    """

    def __init__(self, out: str | os.PathLike, identity: Mapping[str, Any]) -> None:
        self.out = Path(out)
        self.partial = self.out.with_name(f".{self.out.name}.partial")
        self.identity = dict(identity)
        self._f = self._open()

    def _open(self) -> Any:
        h5py = _h5py()
        if self.partial.exists():
            try:
                f = h5py.File(self.partial, "r+")
                same = all(
                    f.attrs.get(k) is not None and _attr_eq(f.attrs[k], v)
                    for k, v in self.identity.items()
                )
                if same and "done" in f.attrs:
                    return f
                f.close()
            except OSError:
                pass
            self.partial.unlink()
        return h5py.File(self.partial, "w")

    @staticmethod
    def finished(out: str | os.PathLike, identity: Mapping[str, Any]) -> bool:
        """True when ``out`` is a complete embeddings file of the job ``identity`` (the
        same run, checkpoint, store, rows and options): rerunning it has nothing to do."""
        try:
            with _h5py().File(out, "r") as f:
                if not bool(f.attrs.get("complete", False)):
                    return False
                return all(
                    f.attrs.get(k) is not None and _attr_eq(f.attrs[k], v)
                    for k, v in identity.items()
                )
        except OSError:
            return False

    @property
    def created(self) -> bool:
        """True once :meth:`create` has laid the file out (also after a resume)."""
        return "done" in self._f.attrs

    @property
    def done(self) -> int:
        """Rows written so far."""
        return int(self._f.attrs["done"])

    def create(
        self,
        layout: Mapping[str, tuple[int, np.dtype]],
        *,
        protein_ids: np.ndarray,
        fov_ids: np.ndarray,
        split: np.ndarray,
        crop_index: np.ndarray,
        classes: list[str],
        attrs: Mapping[str, Any],
        obs: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Lay out a new file: one ``(n, width)`` dataset per ``layout`` entry, row labels
        and the per-crop annotations ``obs`` (one dataset each under ``obs/``)."""
        h5py, f, n = _h5py(), self._f, int(crop_index.size)
        for key, (width, dtype) in layout.items():
            rows_per_chunk = max(1, min(n, (1 << 20) // max(width * dtype.itemsize, 1)))
            f.create_dataset(
                key,
                shape=(n, width),
                dtype=dtype,
                chunks=(rows_per_chunk, width) if n else None,
                compression="lzf" if n else None,
            )
        sdt = h5py.string_dtype("utf-8")
        for name, values in (("protein_id", protein_ids), ("fov_id", fov_ids), ("split", split)):
            f.create_dataset(name, data=np.asarray(values).astype(object), dtype=sdt)
        f.create_dataset("crop_index", data=np.asarray(crop_index, dtype=np.int64))
        f.create_dataset("classes", data=np.array(classes, dtype=object), dtype=sdt)
        if obs:
            g = f.create_group("obs", track_order=True)  # columns in the order given
            for name, values in obs.items():
                values = np.asarray(values)
                if values.dtype.kind in "OUS":
                    g.create_dataset(name, data=values.astype(object), dtype=sdt)
                else:
                    g.create_dataset(name, data=values)
        for key, value in {**self.identity, **attrs}.items():
            f.attrs[key] = value
        f.attrs["done"] = 0

    def write(self, arrays: Mapping[str, np.ndarray]) -> int:
        """Append one block of rows (every dataset of the layout); the new row count."""
        start = self.done
        stop = start + len(next(iter(arrays.values())))
        for key, value in arrays.items():
            self._f[key][start:stop] = value
        self._f.attrs["done"] = stop
        self._f.flush()
        return stop

    def read(self, name: str, start: int, stop: int) -> np.ndarray | None:
        """Rows ``start:stop`` of dataset ``name`` already written (None if absent)."""
        return self._f[name][start:stop] if name in self._f else None

    def finish(self, attrs: Mapping[str, Any]) -> None:
        """Record ``attrs``, mark the file complete and close it (still partial)."""
        for key, value in attrs.items():
            self._f.attrs[key] = value
        self._f.attrs["complete"] = True
        self._f.close()

    def commit(self) -> Path:
        """Rename the finished partial file onto the final name."""
        default_mode(self.partial)
        os.replace(self.partial, self.out)
        return self.out

    def discard(self) -> None:
        """Remove the partial file."""
        self.close()
        self.partial.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the handle if open (the partial file stays, to resume from)."""
        if self._f.id.valid:
            self._f.close()


def _attr_eq(stored: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return bool(stored) == value
    if isinstance(value, int):
        return int(stored) == value
    return str(stored) == str(value)


def export_h5ad(
    embeddings: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    rows: np.ndarray | None = None,
    obs: Mapping[str, Any] | None = None,
    obsm: Mapping[str, np.ndarray] | None = None,
    uns: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an embeddings file to AnnData (``.h5ad``), streaming the big arrays.

    ``X`` is the global encoding of every crop (also what ``use_rep`` defaults to in
    scanpy). ``obs`` holds ``protein_id``, ``fov_id``, ``split`` and ``crop_index``
    (index = crop index), what the crop store carried (``center_row``, ``center_col``,
    ``nucleus_id`` and the fields' metadata columns: ``plate``, ``well``, ``field``,
    ``Metadata_*``) and the columns given in ``obs`` (e.g. ``family``, ``complex``);
    ``obsm`` holds ``X_local``, ``local_hist`` and ``global_hist`` where present, and
    the arrays given in ``obsm`` (e.g. ``X_umap``). Arrays are gzip-compressed, which
    every HDF5 reader decodes (R, Julia, Fiji, ``h5dump``). ``uns["classes"]`` holds
    the class names, ``uns["provenance"]`` what made the file (run, checkpoint, its
    hash and model config when recorded, store, cyto and package versions, input
    hashes) and ``uns`` whatever else is given.

    Parameters
    ----------
    embeddings : str or PathLike
        File written by ``cyto embed``.
    out_path : str or PathLike
        Output ``.h5ad`` (written atomically).
    rows : (m,) int array, optional
        Export only these rows (sorted; e.g. the crops of an atlas); default all.
    obs : mapping of str to (m,) array, optional
        Further per-crop columns; strings become categoricals (``None`` → missing).
    obsm : mapping of str to (m, k) array, optional
        Further per-crop arrays, e.g. ``{"X_umap": umap}``.
    uns : mapping, optional
        Further unstructured entries (strings, numbers, small arrays).
    overwrite : bool, default False
        Replace an ``.h5ad`` file cyto exported earlier at ``out_path`` (never any
        other file: :func:`cyto.data.check_output`).

    Returns
    -------
    out_path : Path

    Raises
    ------
    ValueError
        If ``rows`` is not sorted and unique, or an ``obs``/``obsm`` entry has the
        wrong length.
    """
    from cyto._optional import require

    ad = require("anndata", "anndata", purpose="the .h5ad export")
    import pandas as pd

    h5py = _h5py()
    out_path = Path(out_path)
    inputs = [("the embeddings file being exported", embeddings)]
    check_output(out_path, "AnnData file", inputs=inputs, overwrite=overwrite, flag="out_path")
    with h5py.File(embeddings, "r") as src:
        n = src["protein_id"].shape[0]
        rows = _export_rows(rows, n)
        m = n if rows is None else rows.size
        frame = _obs_frame(src, rows)
        for name, values in (obs or {}).items():
            frame[name] = _obs_column(name, values, m)
        extra = {k: _obsm_array(k, v, m) for k, v in (obsm or {}).items()}
        classes = list(src["classes"].asstr()[()]) if "classes" in src else []
        meta = {
            "classes": np.array(classes, dtype=object),
            "provenance": _provenance(dict(src.attrs)),
            **dict(uns or {}),
        }
        d = int(np.prod(src["global"].shape[1:]))
        var = pd.DataFrame(index=[f"global_{j}" for j in range(d)])
        with atomic_path(out_path) as tmp:
            ad.AnnData(obs=frame, var=var, obsm=extra, uns=meta).write_h5ad(tmp, compression="gzip")
            with h5py.File(tmp, "r+") as dst:
                _copy_array(src["global"], dst, "X", rows, flat=True)
                _copy_obsm(src, dst["obsm"], rows)
    return out_path


def _export_rows(rows: Any, n: int) -> np.ndarray | None:
    if rows is None:
        return None
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= n)):
        raise ValueError(f"`rows` must be 1-D indices in [0, {n}), got shape {rows.shape}")
    if np.any(np.diff(rows) <= 0):
        raise ValueError("`rows` must be sorted and unique")
    return rows


def _obs_frame(src: Any, rows: np.ndarray | None) -> Any:
    """The obs table: ids, split, crop index and the carried per-crop columns."""
    import pandas as pd

    sel = slice(None) if rows is None else rows
    carried = src.get("obs", {})

    def col(ds: Any) -> Any:
        if ds.dtype.kind == "O":
            return pd.Categorical(ds.asstr()[()][sel])
        return ds[()][sel]

    frame = pd.DataFrame(
        {
            "protein_id": col(src["protein_id"]),
            "fov_id": col(src["fov_id"]),
            "split": col(src["split"]),
            "crop_index": src["crop_index"][()][sel],
            **{k: col(carried[k]) for k in carried},
        }
    )
    frame.index = frame["crop_index"].astype(str).to_numpy()
    return frame


def _obs_column(name: str, values: Any, m: int) -> Any:
    import pandas as pd

    arr = np.asarray(values)
    if arr.shape != (m,):
        raise ValueError(f"`obs[{name!r}]` must have {m} values (one per crop), got {arr.shape}")
    if arr.dtype.kind in "fiub":  # numbers stay numbers
        return arr
    return pd.Categorical([None if v is None or v == "" else str(v) for v in arr])


def _obsm_array(name: str, values: Any, m: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[0] != m:
        raise ValueError(f"`obsm[{name!r}]` must have shape ({m}, k), got {arr.shape}")
    return arr


def _provenance(attrs: Mapping[str, Any]) -> dict[str, str]:
    """What made the embeddings (run, checkpoint, store, versions, input hashes) as
    strings, for ``uns["provenance"]`` of the AnnData export."""
    keys = (
        "format",
        "run",
        "checkpoint",
        "checkpoint_step",
        "model_config",
        "store",
        "versions",
        "inputs",
        "health",
    )
    return {k: str(attrs[k]) for k in keys if k in attrs}


def _copy_obsm(src: Any, obsm: Any, rows: np.ndarray | None) -> None:
    for key, name in (
        ("local", "X_local"),
        ("local_hist", "local_hist"),
        ("global_hist", "global_hist"),
    ):
        if key in src:
            _copy_array(src[key], obsm, name, rows)


def _copy_array(
    data: Any, group: Any, name: str, rows: np.ndarray | None, *, flat: bool = False
) -> None:
    """Copy a dataset (or its ``rows``) in blocks, gzip-compressed, as an AnnData array
    (``flat``: each row flattened, for ``X``)."""
    m = data.shape[0] if rows is None else rows.size
    shape = (m, int(np.prod(data.shape[1:]))) if flat else (m, *data.shape[1:])
    chunks = None if flat else data.chunks
    chunks = chunks if chunks and m >= chunks[0] else None
    if name in group:
        del group[name]
    out = group.create_dataset(
        name,
        shape=shape,
        dtype=data.dtype,
        chunks=chunks,
        # gzip: every HDF5 reader decodes it (R, Julia, Fiji, h5dump), unlike LZF
        compression="gzip" if m else None,
        compression_opts=4 if m else None,
    )
    step = max(1, (data.chunks[0] if data.chunks else 4096) * 8)
    for lo in range(0, m, step):
        hi = min(lo + step, m)
        block = data[lo:hi] if rows is None else data[rows[lo:hi]]
        out[lo:hi] = block.reshape(hi - lo, -1) if flat else block
    out.attrs["encoding-type"] = "array"
    out.attrs["encoding-version"] = "0.2.0"
