"""The HDF5 crop store: one file of cell-centred crops plus their labels.

File layout (``format_version`` 1)::

    /crops        (N, C, S, S) float16 or float32, one crop per chunk, LZF-compressed
                  with byte shuffle (or uncompressed; files written by earlier
                  versions hold several crops per chunk: still read, more slowly)
    /protein_id   (N,) variable-length UTF-8 str
    /fov_id       (N,) variable-length UTF-8 str
    /centers      (N, 2) int32  (row, col of the crop centre in the processed field)
    /nucleus_id   (N,) int32    (label of the nucleus the crop is centred on)
    attrs: format_version=1, cyto_version, channels (JSON list), crop_size,
           params (JSON of the preprocessing parameters)

Writers may add further datasets (the batch preprocessor keeps a ``/fovs`` group
listing every field of view it processed, including those without crops);
readers ignore what they do not know.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import atomic_path
from cyto.data._channels import CHANNEL_NAMES, check_channels

__all__ = [
    "CHANNEL_NAMES",
    "COMPRESSIONS",
    "FORMAT_VERSION",
    "CropStore",
    "CropStoreWriter",
    "check_channels",
    "write_crop_store",
]

FORMAT_VERSION = 1
_REQUIRED = ("crops", "protein_id", "fov_id", "centers", "nucleus_id")
# the fov table's own columns; any other column is field metadata
_FOV_COLUMNS = ("fov_id", "protein_id", "path", "n_crops", "source")
#: Compressions of /crops a writer offers: LZF with byte shuffle (fast to decode, about
#: 0.7x the raw size on real crops) or none (1.45x the disk, read by plain file reads).
COMPRESSIONS = ("lzf", None)
_LZF = 32000  # HDF5 filter ids
_SHUFFLE = 2


def _h5py():
    import h5py

    return h5py


def _str_dtype():
    return _h5py().string_dtype("utf-8")


def _as_str_array(values: Any, n: int, name: str) -> np.ndarray:
    if isinstance(values, str):
        values = [values] * n
    arr = np.asarray(values, dtype=object).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"`{name}` has {arr.shape[0]} entries, expected {n} (one per crop)")
    return np.array([str(v) for v in arr], dtype=object)


class _CropChunks:
    """Direct reads of /crops when every crop is its own chunk.

    A training loader reads crops in random order. Through HDF5 each read pays for the
    library's selection machinery (and, with several crops per chunk, for decompressing
    crops nobody asked for); here each crop is one ``pread`` of its chunk's bytes, then
    LZF decoding (imagecodecs) and the byte unshuffle in NumPy: about 5x the crops/s
    of the chunked layout per core (``benchmarks/bench_loader.py``). The chunk offsets
    come from one pass of HDF5's chunk iterator when the store is opened.
    """

    def __init__(self, path: Path, crops: Any) -> None:
        plist = crops.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        if crops.chunks != (1, *crops.shape[1:]) or filters not in ([], [_SHUFFLE, _LZF]):
            raise NotImplementedError("not one plain or shuffle+LZF crop per chunk")
        self.compressed = bool(filters)
        if self.compressed:  # ImportError: the caller reads through h5py instead
            from imagecodecs import lzf_decode

            self._lzf_decode = lzf_decode
        self.shape = tuple(crops.shape[1:])
        self.dtype = crops.dtype
        n = crops.shape[0]
        self.offsets = np.full(n, -1, dtype=np.int64)
        self.sizes = np.zeros(n, dtype=np.int64)
        self.masks = np.zeros(n, dtype=np.uint32)

        def visit(info: Any) -> None:
            i = info.chunk_offset[0]
            self.offsets[i], self.sizes[i], self.masks[i] = (
                info.byte_offset,
                info.size,
                info.filter_mask,
            )

        crops.id.chunk_iter(visit)  # HDF5 >= 1.14 (else AttributeError: the h5py path)
        self.fd = os.open(path, os.O_RDONLY)

    def read(self, rows: np.ndarray, fallback: Any) -> np.ndarray:
        """Crops ``rows`` (native dtype); ``fallback(i)`` reads a chunk HDF5 must decode
        itself (a filter skipped for it) or one never written (fill value)."""
        per = int(np.prod(self.shape))
        item = self.dtype.itemsize
        if not self.compressed:
            out = np.empty((len(rows), per * item), dtype=np.uint8)
            for k, i in enumerate(rows):
                if (
                    self.offsets[i] < 0
                    or os.preadv(self.fd, [out[k]], self.offsets[i]) != out[k].size
                ):
                    out[k] = fallback(i).view(np.uint8).ravel()
            return out.view(self.dtype).reshape((len(rows), *self.shape))
        lzf_decode = self._lzf_decode
        shuffled = np.empty((len(rows), item, per), dtype=np.uint8)
        for k, i in enumerate(rows):
            if self.offsets[i] < 0 or self.masks[i]:
                data = np.ascontiguousarray(fallback(i)).view(np.uint8).reshape(per, item)
                shuffled[k] = data.T
                continue
            raw = os.pread(self.fd, int(self.sizes[i]), int(self.offsets[i]))
            try:
                plane = np.frombuffer(lzf_decode(raw, out=per * item), np.uint8)
                shuffled[k] = plane.reshape(item, per)
            except (RuntimeError, ValueError) as err:  # LzfError, or a short result
                raise OSError(f"the chunk of crop {int(i)} does not decode: {err}") from None
        # the shuffle filter stored each value's bytes in separate planes
        out = np.ascontiguousarray(shuffled.transpose(0, 2, 1))
        return out.view(self.dtype).reshape((len(rows), *self.shape))

    def close(self) -> None:
        os.close(self.fd)


class CropStoreWriter:
    """Append crops to a new crop store file, then record its fields of view.

    Writes to ``path`` directly: callers write to a temporary name and rename (see
    :func:`cyto._atomic.atomic_path`). ``cyto.preprocess`` writes its stores through
    this class; :func:`write_crop_store` writes a whole store in one call.

    Parameters
    ----------
    path : path-like
        The new file (replaced if it exists).
    channels : sequence of str
        Channel names (from :data:`CHANNEL_NAMES`).
    crop_size : int
        Crop side in pixels.
    dtype : numpy dtype
        Stored pixel type (float16 or float32).
    params : dict or None
        JSON-serializable preprocessing parameters.
    compression : {"lzf", None}, default "lzf"
        LZF with byte shuffle, or none (larger, fastest to read).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        channels: Sequence[str],
        crop_size: int,
        dtype: np.dtype,
        params: dict | None,
        compression: str | None = "lzf",
    ) -> None:
        h5py = _h5py()
        if compression not in COMPRESSIONS:
            raise ValueError(
                f"`compression` must be one of {list(COMPRESSIONS)}, got {compression!r}"
            )
        from cyto import __version__
        from cyto._provenance import package_versions

        self.channels = check_channels(channels)
        self.crop_size = int(crop_size)
        self.dtype = np.dtype(dtype)
        c, s = len(self.channels), self.crop_size
        params_json = json.dumps(params if params is not None else {}, sort_keys=True)
        self._f = h5py.File(path, "w")
        f = self._f
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["cyto_version"] = __version__
        f.attrs["channels"] = json.dumps(list(self.channels))
        f.attrs["crop_size"] = s
        f.attrs["params"] = params_json
        f.attrs["versions"] = json.dumps(package_versions())
        shape = (0, c, s, s)
        f.create_dataset(
            "crops",
            shape=shape,
            maxshape=(None, c, s, s),
            dtype=self.dtype,
            chunks=(1, c, s, s),  # one crop per chunk: random reads decode only it
            compression=compression,
            shuffle=compression is not None,
        )
        sdt = _str_dtype()
        for name in ("protein_id", "fov_id"):
            f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=sdt, chunks=(4096,))
        f.create_dataset("centers", shape=(0, 2), maxshape=(None, 2), dtype=np.int32, chunks=True)
        f.create_dataset("nucleus_id", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=True)
        self.n = 0

    def append(
        self,
        crops: np.ndarray,
        protein_ids: np.ndarray,
        fov_ids: np.ndarray,
        centers: np.ndarray,
        nucleus_ids: np.ndarray,
    ) -> None:
        """Append ``k`` crops with their protein, field, centre and nucleus labels."""
        k = crops.shape[0]
        if k == 0:
            return
        f, a, b = self._f, self.n, self.n + k
        for name in _REQUIRED:
            f[name].resize(b, axis=0)
        f["crops"][a:b] = crops.astype(self.dtype, copy=False)
        f["protein_id"][a:b] = protein_ids
        f["fov_id"][a:b] = fov_ids
        f["centers"][a:b] = centers
        f["nucleus_id"][a:b] = nucleus_ids
        self.n = b

    def write_fov_table(
        self,
        table: Sequence[tuple[str, str, str, int, str]],
        metadata: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Record the fields of view: ``(fov_id, protein_id, path, n_crops, source)`` each.

        ``path`` is where the field's image was read (marked ``location``: left out of
        content hashes), ``source`` the fingerprint of its content
        (:func:`cyto.preprocess.fingerprint`). ``metadata`` maps a fov id to its
        metadata columns (plate, well, field, ``Metadata_*``...): one string dataset per
        column under ``/fovs/metadata`` ("" where a field lacks it).
        """
        g = self._f.create_group("fovs")
        sdt = _str_dtype()
        for k, name in ((0, "fov_id"), (1, "protein_id"), (2, "path"), (4, "source")):
            g.create_dataset(name, data=np.array([t[k] for t in table], dtype=object), dtype=sdt)
        g["path"].attrs["location"] = True
        g.create_dataset("n_crops", data=np.array([t[3] for t in table], dtype=np.int64))
        metadata = metadata or {}
        columns = list(dict.fromkeys(c for m in metadata.values() for c in m))
        reserved = [c for c in columns if c in _FOV_COLUMNS or "/" in c]
        if reserved:
            raise ValueError(f"metadata columns {reserved} clash with the fov table's own names")
        meta = g.create_group("metadata", track_order=True) if columns else None
        for col in columns:
            values = [str(metadata.get(t[0], {}).get(col, "")) for t in table]
            meta.create_dataset(col, data=np.array(values, dtype=object), dtype=sdt)

    def close(self) -> None:
        """Flush and close the file."""
        if self._f is not None:
            self._f.flush()
            self._f.close()
            self._f = None


def write_crop_store(
    path: str | os.PathLike,
    crops: np.ndarray,
    protein_ids: Sequence[str] | np.ndarray | str,
    *,
    fov_ids: Sequence[str] | np.ndarray | str | None = None,
    centers: np.ndarray | None = None,
    nucleus_ids: np.ndarray | None = None,
    channels: Sequence[str] = ("protein", "distance"),
    params: dict | None = None,
    compression: str | None = "lzf",
) -> Path:
    """Write crops and their labels to a new HDF5 crop store, atomically.

    The file is written under a temporary name in the target folder and renamed
    over ``path`` only when complete, so a crash never leaves a half-written store.

    Parameters
    ----------
    path : str or PathLike
        Output ``.h5`` file; replaced if it exists. Its folder must exist.
    crops : (N, C, S, S) ndarray
        Floating-point crops. float16 is stored as float16, any other float as float32.
    protein_ids : sequence of str, length N, or str
        Protein (class) label of each crop; a single str labels all crops.
    fov_ids : sequence of str or str, optional
        Field-of-view id of each crop (default ``"fov0"`` for all).
    centers : (N, 2) int array, optional
        Crop centres (row, col) in the processed field (default zeros).
    nucleus_ids : (N,) int array, optional
        Nucleus label each crop is centred on (default ``1..N``).
    channels : sequence of str
        Channel names, one per axis-1 entry of ``crops``, from
        ``("protein", "distance", "nucleus")``.
    params : dict, optional
        JSON-serializable preprocessing parameters, stored as the ``params`` attribute.
    compression : {"lzf", None}, default "lzf"
        Compression of the crops (see :class:`CropStoreWriter`).

    Returns
    -------
    path : Path
        The written file.

    Raises
    ------
    ValueError
        If shapes or lengths disagree, crops are not square, or channel names are unknown.
    TypeError
        If ``crops`` is not floating point or ``params`` is not JSON-serializable.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from cyto.data import write_crop_store, CropStore
    >>> crops = np.zeros((3, 2, 8, 8), dtype=np.float16)
    >>> p = write_crop_store(os.path.join(tempfile.mkdtemp(), "c.h5"), crops, ["A", "A", "B"])
    >>> with CropStore(p) as s:
    ...     len(s), s.channels, s.crop_size, s.read([2, 0]).shape
    (3, ('protein', 'distance'), 8, (2, 2, 8, 8))
    """
    path = Path(path)
    crops = np.asarray(crops)
    if crops.ndim != 4:
        raise ValueError(f"`crops` must be 4-D (N, C, S, S), got shape {crops.shape}")
    if not np.issubdtype(crops.dtype, np.floating):
        raise TypeError(f"`crops` must be floating point, got dtype {crops.dtype}")
    n, c, s, s2 = crops.shape
    if s != s2 or s < 1:
        raise ValueError(f"`crops` must be square (N, C, S, S), got shape {crops.shape}")
    channels = check_channels(channels, c)
    pids = _as_str_array(protein_ids, n, "protein_ids")
    fids = _as_str_array("fov0" if fov_ids is None else fov_ids, n, "fov_ids")
    if centers is None:
        centers = np.zeros((n, 2), dtype=np.int32)
    centers = np.asarray(centers)
    if centers.shape != (n, 2):
        raise ValueError(f"`centers` must have shape ({n}, 2), got {centers.shape}")
    if nucleus_ids is None:
        nucleus_ids = np.arange(1, n + 1, dtype=np.int32)
    nucleus_ids = np.asarray(nucleus_ids)
    if nucleus_ids.shape != (n,):
        raise ValueError(f"`nucleus_ids` must have shape ({n},), got {nucleus_ids.shape}")
    try:
        json.dumps(params if params is not None else {})
    except TypeError as err:
        raise TypeError(f"`params` must be JSON-serializable: {err}") from None
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder of `path` does not exist: {path.parent}")

    dtype = np.float16 if crops.dtype == np.float16 else np.float32
    with atomic_path(path) as tmp:
        w = CropStoreWriter(
            tmp, channels=channels, crop_size=s, dtype=dtype, params=params,
            compression=compression,
        )  # fmt: skip
        try:
            w.append(
                crops,
                pids,
                fids,
                centers.astype(np.int32, copy=False),
                nucleus_ids.astype(np.int32, copy=False),
            )
        finally:
            w.close()
    return path


class CropStore:
    """Read-only access to an HDF5 crop store.

    Labels and metadata are loaded on open; crops are read on demand with
    :meth:`read`. The object is picklable (it re-opens the file lazily, e.g. in
    DataLoader worker processes) and a context manager.

    Parameters
    ----------
    path : str or PathLike
        A file written by :func:`write_crop_store` or ``cyto preprocess``.

    Attributes
    ----------
    path : Path
    channels : tuple of str
    crop_size : int
    protein_ids, fov_ids : (N,) ndarray of str
    centers : (N, 2) int32 ndarray
    nucleus_ids : (N,) int32 ndarray
    params : dict
        Preprocessing parameters stored with the crops.
    format_version : int
    cyto_version : str
    dtype : numpy dtype of the stored crops

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not HDF5 (or truncated), is not a cyto crop store, or has an
        unsupported ``format_version``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from cyto.data import write_crop_store, CropStore
    >>> p = write_crop_store(os.path.join(tempfile.mkdtemp(), "c.h5"),
    ...                      np.ones((4, 1, 6, 6), np.float32), "P1", channels=("protein",))
    >>> with CropStore(p) as s:
    ...     x = s.read(slice(1, 3))
    >>> x.shape, x.dtype
    ((2, 1, 6, 6), dtype('float32'))
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = None
        self._pid = None
        self._chunks: _CropChunks | bool | None = None  # None: not tried in this process
        f = self._open()
        try:
            self._load_metadata(f)
        except BaseException:
            self.close()
            raise

    # -- opening -----------------------------------------------------------
    def _open(self):
        h5py = _h5py()
        if not self.path.exists():
            raise FileNotFoundError(f"crop store not found: {self.path}")
        if self.path.is_dir():
            raise ValueError(f"crop store path is a folder, expected an HDF5 file: {self.path}")
        try:
            f = h5py.File(self.path, "r")
        except OSError as err:
            raise ValueError(
                f"{self.path} is not a readable HDF5 crop store (truncated, corrupted or "
                f"not HDF5): {err}"
            ) from None
        self._file = f
        self._pid = os.getpid()
        return f

    def _load_metadata(self, f) -> None:
        attrs = f.attrs
        if "format_version" not in attrs or not all(k in f for k in _REQUIRED):
            missing = [k for k in _REQUIRED if k not in f]
            raise ValueError(
                f"{self.path} is not a cyto crop store (missing "
                f"{'format_version attribute' if 'format_version' not in attrs else ''}"
                f"{' datasets ' + ', '.join(missing) if missing else ''})"
            )
        version = int(np.asarray(attrs["format_version"]).item())
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{self.path} has crop store format_version {version}; this cyto reads "
                f"format_version {FORMAT_VERSION}"
            )
        try:
            self.format_version = version
            self.cyto_version = str(attrs.get("cyto_version", "unknown"))
            self.channels = tuple(json.loads(attrs["channels"]))
            self.crop_size = int(attrs["crop_size"])
            self.params = json.loads(attrs.get("params", "{}"))
            crops = f["crops"]
            self.dtype = crops.dtype
            self._n = int(crops.shape[0])
            self.protein_ids = np.asarray(f["protein_id"].asstr()[()], dtype=str)
            self.fov_ids = np.asarray(f["fov_id"].asstr()[()], dtype=str)
            self.centers = np.asarray(f["centers"][()], dtype=np.int32)
            self.nucleus_ids = np.asarray(f["nucleus_id"][()], dtype=np.int32)
        except (KeyError, OSError, json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"{self.path} is a damaged cyto crop store: {err}") from None
        c, s = len(self.channels), self.crop_size
        if crops.ndim != 4 or crops.shape[1:] != (c, s, s):
            raise ValueError(
                f"{self.path} is a damaged cyto crop store: /crops has shape {crops.shape}, "
                f"expected (N, {c}, {s}, {s})"
            )
        lengths = {
            "protein_id": len(self.protein_ids),
            "fov_id": len(self.fov_ids),
            "centers": len(self.centers),
            "nucleus_id": len(self.nucleus_ids),
        }
        bad = {k: v for k, v in lengths.items() if v != self._n}
        if bad:
            raise ValueError(
                f"{self.path} is a damaged cyto crop store: /crops has {self._n} rows but {bad}"
            )

    def _handle(self):
        if self._file is None or self._pid != os.getpid():
            # Never reuse an HDF5 handle across fork: open a fresh one in this process.
            self._file = None
            self._chunks = None
            self._open()
        return self._file

    # -- public API --------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def _chunk_reader(self) -> _CropChunks | None:
        """This process's direct chunk reader, or None where the layout does not allow one."""
        crops = self._handle()["crops"]
        if self._chunks is None:
            try:
                self._chunks = _CropChunks(self.path, crops)
            except (NotImplementedError, AttributeError, ImportError):
                self._chunks = False
        return self._chunks or None

    def read(
        self, indices: slice | Sequence[int] | np.ndarray, dtype: Any = np.float32
    ) -> np.ndarray:
        """Read crops as float32 (or as stored, ``dtype=None``).

        A damaged file (a corrupted or truncated chunk) raises an :class:`OSError`
        naming the store, the dataset and the crops that could not be read.

        Parameters
        ----------
        indices : slice or 1-D int array-like
            Which crops, in the order wanted (unsorted and repeated indices are fine,
            negative indices count from the end).
        dtype : numpy dtype or None, default float32
            Type of the result; ``None`` keeps the stored type (float16 for stores
            written by ``cyto preprocess``), saving a conversion pass for callers that
            convert anyway.

        Returns
        -------
        crops : (n, C, S, S) ndarray

        Raises
        ------
        IndexError
            If an index is out of range.
        TypeError
            If ``indices`` is neither a slice nor integers.
        """
        try:
            out = self._read(indices)
        except OSError as err:
            if isinstance(indices, slice):
                where = f"crops {indices.start or 0}..{indices.stop}"
            else:
                idx = np.asarray(indices).ravel()
                where = f"crops {idx[:5].tolist()}{' ...' if idx.size > 5 else ''}"
            raise OSError(
                f"crop store {self.path}: cannot read {where} of dataset /crops ({err}); "
                "the file is damaged: rewrite it (`cyto preprocess` resumes from the images)"
            ) from None
        return out if dtype is None else np.asarray(out, dtype=dtype)

    def _read(self, indices: slice | Sequence[int] | np.ndarray) -> np.ndarray:
        crops = self._handle()["crops"]
        if isinstance(indices, slice):
            return crops[indices]
        idx = np.asarray(indices)
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.size == 0:
            return np.empty((0, *crops.shape[1:]), dtype=np.float32)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(
                f"`indices` must be a slice or a 1-D array of integers, got "
                f"{idx.dtype} array of shape {idx.shape}"
            )
        n = self._n
        if idx.min() < -n or idx.max() >= n:
            raise IndexError(f"`indices` out of range for a store of {n} crops")
        idx = np.where(idx < 0, idx + n, idx)
        uniq, inverse = np.unique(idx, return_inverse=True)
        lo, hi = int(uniq[0]), int(uniq[-1]) + 1
        reader = self._chunk_reader()
        if reader is not None and hi - lo < len(uniq) * 2:
            out = crops[lo:hi][uniq - lo]  # dense (e.g. embedding in order): one HDF5 read
        elif reader is not None:
            out = reader.read(uniq, lambda i: crops[int(i)])
        elif hi - lo <= 4 * len(uniq):  # dense enough: one contiguous read
            out = crops[lo:hi][uniq - lo]
        else:
            # one slice read per stored chunk touched: h5py point selections are
            # several times slower than this, and a chunk is decompressed whole anyway
            rows = crops.chunks[0] if crops.chunks else 1
            out = np.empty((len(uniq), *crops.shape[1:]), dtype=crops.dtype)
            chunk = uniq // rows
            starts = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1]])
            ends = np.r_[starts[1:], len(uniq)]
            for a, b in zip(starts, ends):
                first = int(chunk[a]) * rows
                block = crops[first : min(first + rows, self._n)]
                out[a:b] = block[uniq[a:b] - first]
        inverse = inverse.reshape(-1)
        if len(uniq) == len(idx) and np.array_equal(uniq, idx):
            return out  # sorted, no repeats: already in order
        return out[inverse]

    def fov_table(self) -> dict[str, np.ndarray]:
        """The fields of view recorded by ``cyto preprocess`` (empty arrays if none).

        Returns
        -------
        table : dict of str to (F,) ndarray
            ``fov_id``, ``protein_id``, ``path`` (str), ``n_crops`` (int64) and
            ``source`` (input fingerprint; "" for stores written before it existed),
            and one column per metadata column of the fields (plate, well, ...).
        """
        f = self._handle()
        if "fovs/fov_id" not in f:
            return {
                k: np.array([], dtype=str) for k in ("fov_id", "protein_id", "path", "source")
            } | {"n_crops": np.array([], dtype=np.int64)}
        g = f["fovs"]
        ids = np.asarray(g["fov_id"].asstr()[()], dtype=str)
        meta = g.get("metadata", {})
        return {
            **{col: np.asarray(meta[col].asstr()[()], dtype=str) for col in meta},
            "fov_id": ids,
            "protein_id": np.asarray(g["protein_id"].asstr()[()], dtype=str),
            "path": np.asarray(g["path"].asstr()[()], dtype=str),
            "n_crops": np.asarray(g["n_crops"][()], dtype=np.int64),
            "source": (
                np.asarray(g["source"].asstr()[()], dtype=str)
                if "source" in g
                else np.full(ids.size, "", dtype=str)
            ),
        }

    def fov_metadata(self) -> dict[str, dict[str, str]]:
        """``{fov_id: {column: value}}`` of the fields' metadata columns (plate, well...)."""
        t = self.fov_table()
        cols = [c for c in t if c not in _FOV_COLUMNS]
        return {str(fid): {c: str(t[c][i]) for c in cols} for i, fid in enumerate(t["fov_id"])}

    def crop_obs(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-crop annotations beyond the protein and field: what follows a crop to the end.

        Parameters
        ----------
        rows : (n,) int array, optional
            Crops to describe (default: all).

        Returns
        -------
        obs : dict of str to (n,) ndarray
            ``center_row``, ``center_col`` (in the processed field), ``nucleus_id``, and
            each metadata column of the crop's field (str; "" where unknown).
        """
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        centers = self.centers[rows]
        obs: dict[str, np.ndarray] = {
            "center_row": centers[:, 0].astype(np.int32),
            "center_col": centers[:, 1].astype(np.int32),
            "nucleus_id": self.nucleus_ids[rows].astype(np.int32),
        }
        t = self.fov_table()
        cols = [c for c in t if c not in _FOV_COLUMNS]
        if cols:
            where = {str(f): i for i, f in enumerate(t["fov_id"])}
            idx = np.array([where.get(str(f), -1) for f in self.fov_ids[rows]], dtype=np.int64)
            for c in cols:
                obs[c] = np.append(t[c], "")[idx].astype(str)
        return obs

    def labels(self, column: str = "protein_id") -> np.ndarray:
        """Every crop's value of a label column: what ``cyto train --target`` identifies.

        Parameters
        ----------
        column : str, default "protein_id"
            ``protein_id``, ``fov_id`` or a metadata column of the fields (``well``,
            ``plate``, ``Metadata_*``: a perturbation, a compound, a gene).

        Returns
        -------
        (n,) str ndarray

        Raises
        ------
        ValueError
            If the store has no such column (the message lists those it has), or some
            crops have no value in it.
        """
        if column in ("protein_id", "fov_id"):
            return (self.protein_ids if column == "protein_id" else self.fov_ids).astype(str)
        t = self.fov_table()
        columns = [c for c in t if c not in _FOV_COLUMNS]
        if column not in columns:
            raise ValueError(
                f"`target` {column!r} is not a label column of crop store {self.path.name}; "
                f"it has protein_id, fov_id{''.join(f', {c}' for c in columns)}"
            )
        values = self.crop_obs()[column]
        empty = int((values == "").sum())
        if empty:
            raise ValueError(
                f"{empty} crop(s) of {self.path.name} have no {column!r} (their fields lack "
                "it in the manifest); fill it in or choose another `target`"
            )
        return values

    def fingerprint(self, samples: int = 64) -> dict[str, str]:
        """Cheap identity of the store's content: hashes of its ids and of sampled pixels.

        Every crop's protein and field id is hashed, and the pixels of ``samples`` crops
        spread evenly over the store, so a store of the same shape whose pixels were
        rescaled or whose ids were permuted gets another fingerprint, at the cost of
        reading ``samples`` crops (not the whole store).

        Parameters
        ----------
        samples : int, default 64
            Crops whose pixels are hashed.

        Returns
        -------
        fingerprint : dict
            ``{"ids": hex, "pixels": hex}`` (BLAKE2b, 16 bytes each).
        """
        import hashlib

        ids = hashlib.blake2b(digest_size=16)
        for values in (self.protein_ids, self.fov_ids):
            ids.update("\x1f".join(np.asarray(values).astype(str).tolist()).encode())
        n = len(self)
        rows = np.unique(np.linspace(0, n - 1, min(samples, n)).astype(int)) if n else []
        data = self.read(rows).astype(np.float32).tobytes() if n else b""
        pixels = hashlib.blake2b(data, digest_size=16)
        return {"ids": ids.hexdigest(), "pixels": pixels.hexdigest()}

    def close(self) -> None:
        """Close the file handle (metadata stay available)."""
        if self._chunks and self._pid == os.getpid():
            self._chunks.close()
        self._chunks = None
        if self._file is not None:
            try:
                if self._pid == os.getpid():
                    self._file.close()
            finally:
                self._file = None

    def __enter__(self) -> CropStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        state["_chunks"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (
            f"CropStore({str(self.path)!r}, n={self._n}, channels={self.channels}, "
            f"crop_size={self.crop_size})"
        )
