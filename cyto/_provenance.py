"""What went into an output: package versions and content hashes of files and folders.

Standard library + NumPy (+ h5py / tifffile, imported when a file of that kind is
hashed); no torch, so every layer may use it.

A *content hash* is the SHA-256 of what a file means rather than of its bytes, so
that two runs writing the same numbers compare equal even where a writer stamps the
time or its own version into the file:

- HDF5 (``.h5``, ``.hdf5``): every dataset's name, dtype, shape and values, in name
  order. Attributes are left out (they hold paths, times and provenance), and so are
  datasets marked with a true ``location`` attribute (the paths the inputs were read
  from: a store written from a moved copy of the same images hashes the same).
- PyTorch checkpoints (``.pt``, ``.pth``; zip archives): the raw tensor storages
  (``*/data/<n>`` entries) in name order — every tensor, no pickled metadata. Read as
  a zip file: nothing is unpickled.
- NumPy archives (``.npz``): every array's name, dtype, shape and values (the zip
  entries' timestamps are left out).
- TIFF (``.tif``, ``.tiff``): the pixel array, dtype and shape.
- Folders: the relative path and content hash of every file in path order, ignoring
  ``*.tmp``, ``*.lock`` and ``__pycache__``.
- Anything else: the bytes.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["content_hash", "output_hashes", "package_versions"]

#: Distributions whose versions go with every output (those installed).
PACKAGES: tuple[str, ...] = (
    "cyto",
    "numpy",
    "scipy",
    "scikit-image",
    "scikit-learn",
    "h5py",
    "tifffile",
    "torch",
    "umap-learn",
    "pynndescent",
    "numba",
    "pandas",
)

_SKIP_SUFFIXES = (".tmp", ".lock")
_CHUNK_BYTES = 64 << 20


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Python, platform and the installed versions of ``packages``.

    Parameters
    ----------
    packages : iterable of str, default :data:`PACKAGES`
        Distribution names; those not installed are left out.

    Returns
    -------
    versions : dict of str to str
        ``{"python": ..., "platform": ..., "<package>": ...}``.

    Examples
    --------
    >>> v = package_versions(["numpy"])
    >>> sorted(v) == ["numpy", "platform", "python"]
    True
    """
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of what a file or folder holds (see the module docstring).

    Parameters
    ----------
    path : str or PathLike
        A file or a folder.

    Returns
    -------
    digest : str
        64 hexadecimal characters.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x")
    >>> content_hash(d / "a.txt") == hashlib.sha256(b"x").hexdigest()
    True
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"`path`: {str(p)!r} does not exist")
    h = hashlib.sha256()
    if p.is_dir():
        _hash_folder(h, p)
    else:
        _HASHERS.get(p.suffix.lower(), _hash_bytes)(h, p)
    return h.hexdigest()


def output_hashes(paths: Iterable[str | os.PathLike], root: str | os.PathLike) -> dict[str, str]:
    """:func:`content_hash` of each existing path, keyed by its path relative to ``root``.

    Parameters
    ----------
    paths : iterable of path-like
        Files or folders (those that do not exist are left out).
    root : path-like
        Folder the keys are relative to (paths outside it keep their absolute form).

    Returns
    -------
    hashes : dict of str to str
    """
    base = Path(root).resolve()
    out = {}
    for path in paths:
        p = Path(path)
        if not p.exists():
            continue
        try:
            key = p.resolve().relative_to(base).as_posix()
        except ValueError:
            key = str(p.resolve())
        out[key] = content_hash(p)
    return out


# --------------------------------------------------------------------------- hashers
def _hash_folder(h: hashlib._Hash, folder: Path) -> None:
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or p.name.endswith(_SKIP_SUFFIXES) or "__pycache__" in rel.parts:
            continue
        h.update(rel.as_posix().encode() + b"\0" + content_hash(p).encode() + b"\n")


def _hash_bytes(h: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK_BYTES):
            h.update(block)


def _hash_array(h: hashlib._Hash, name: str, a: np.ndarray) -> None:
    if a.dtype.kind == "O":  # variable-length strings (h5py) → their UTF-8 bytes
        a = np.array([x.decode() if isinstance(x, bytes) else str(x) for x in a.ravel()])
        a = a.astype(np.str_).reshape(a.shape)
    h.update(f"{name}\0{a.dtype.str}\0{a.shape}\n".encode())
    h.update(np.ascontiguousarray(a).tobytes())


def _hash_hdf5(h: hashlib._Hash, path: Path) -> None:
    import h5py

    names: list[str] = []
    with h5py.File(path, "r") as f:

        def collect(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset) and not obj.attrs.get("location", False):
                names.append(name)

        f.visititems(collect)
        for name in sorted(names):
            ds = f[name]
            h.update(f"{name}\0{ds.dtype.str}\0{ds.shape}\n".encode())
            if ds.shape == () or ds.size == 0:
                _hash_array(h, name, np.asarray(ds[()]))
                continue
            row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:])))
            step = max(1, _CHUNK_BYTES // row_bytes)
            for start in range(0, ds.shape[0], step):
                _hash_array(h, name, np.asarray(ds[start : start + step]))


def _hash_checkpoint(h: hashlib._Hash, path: Path) -> None:
    if not zipfile.is_zipfile(path):  # legacy (non-zip) torch files: their bytes
        _hash_bytes(h, path)
        return
    with zipfile.ZipFile(path) as z:
        names = sorted(
            (n for n in z.namelist() if "/data/" in n),
            key=lambda n: (n.rsplit("/", 1)[0], _storage_key(n.rsplit("/", 1)[1])),
        )
        for name in names:
            h.update(name.split("/", 1)[-1].encode() + b"\n")
            with z.open(name) as fh:
                while block := fh.read(_CHUNK_BYTES):
                    h.update(block)


def _storage_key(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 62, name)


def _hash_npz(h: hashlib._Hash, path: Path) -> None:
    with np.load(path, allow_pickle=False) as z:
        for name in sorted(z.files):
            _hash_array(h, name, z[name])


def _hash_tiff(h: hashlib._Hash, path: Path) -> None:
    import tifffile

    _hash_array(h, "pixels", tifffile.imread(path))


_HASHERS = {
    ".h5": _hash_hdf5,
    ".hdf5": _hash_hdf5,
    ".pt": _hash_checkpoint,
    ".pth": _hash_checkpoint,
    ".npz": _hash_npz,
    ".tif": _hash_tiff,
    ".tiff": _hash_tiff,
}
