"""One field of view's description (:class:`FovSpec`) and the axes every reader shares.

Kept apart from the readers so that each reader (TIFF, OME-Zarr, vendor files) uses them
without importing the others (no import cycle between ``_readers`` and ``_zarr``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["METADATA_COLUMNS", "FovSpec", "is_metadata_column"]

# tifffile axis codes that mean "some stack of planes"
_UNKNOWN_AXES = set("QIPRHEVLAMB")


@dataclass(frozen=True)
class FovSpec:
    """One field of view of a dataset: where it is and how to read it.

    Attributes
    ----------
    path : Path
        The image file.
    protein_id : str
        Label of the tagged protein.
    fov_id : str
        Unique id of the field of view.
    protein_channel, nucleus_channel : int
        Channel indices (after reading as CZYX) of the protein and Hoechst images.
        ``nucleus_channel`` indexes ``nucleus_path`` when that is given.
    axes : str or None
        Axes of the file's array (e.g. ``"CZYX"``), or None to read them from the
        file's metadata. Applies to both files.
    nucleus_path : Path or None
        A separate image file holding the Hoechst channel (one file per channel, as
        CellProfiler-style exports write them), or None when ``path`` holds both.
    mask_path : Path or None
        A nucleus label image of the field made elsewhere (CellProfiler, cellpose,
        StarDist...): used instead of segmenting the Hoechst channel.
    cell_mask_path : Path or None
        A cell label image: crops are centred on the cell holding each nucleus.
    metadata : tuple of (str, str)
        Columns that follow every crop of the field to the end (plate, well, field,
        ``Metadata_*``).
    stains : tuple of (str, Path, int)
        Named stains read from their own files (name, file, channel index in it), as a
        manifest that names its channels gives them (Cell Painting: DNA, ER, RNA, AGP,
        Mito); empty for the protein/Hoechst fields above.
    """

    path: Path
    protein_id: str
    fov_id: str
    protein_channel: int = 1
    nucleus_channel: int = 0
    axes: str | None = None
    nucleus_path: Path | None = None
    mask_path: Path | None = None
    cell_mask_path: Path | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    stains: tuple[tuple[str, Path, int], ...] = ()


def _canonical(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Transpose ``data`` with ``axes`` to (C, Z, Y, X)."""
    axes = axes.upper()
    if len(axes) != data.ndim:
        raise ValueError(
            f"{path}: axes {axes!r} name {len(axes)} dimensions but the image is "
            f"{data.ndim}-D with shape {data.shape}"
        )
    if len(set(axes)) != len(axes):
        raise ValueError(f"{path}: axes {axes!r} repeat an axis")
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"{path}: axes {axes!r} must contain Y and X")
    # squeeze singleton axes we do not use (time, unknown)
    for i in reversed(range(len(axes))):
        a = axes[i]
        if a in "CZYX":
            continue
        if a == "S" and "C" not in axes:
            axes = axes[:i] + "C" + axes[i + 1 :]
            continue
        if a in _UNKNOWN_AXES and "Z" not in axes:
            axes = axes[:i] + "Z" + axes[i + 1 :]
            continue
        if data.shape[i] != 1:
            raise ValueError(
                f"{path}: axis {a!r} of size {data.shape[i]} is not supported "
                f"(axes {axes!r}, shape {data.shape}); expected C, Z, Y, X"
            )
        data = data.take(0, axis=i)
        axes = axes[:i] + axes[i + 1 :]
    for a in "CZ":
        if a not in axes:
            data = data[None]
            axes = a + axes
    return np.transpose(data, [axes.index(a) for a in "CZYX"])


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _relative(value: str, manifest: Path) -> Path | None:
    """A manifest path cell: relative to the manifest's folder, or absolute; None if empty."""
    value = value.strip()
    if not value:
        return None
    file = Path(value)
    return file if file.is_absolute() else manifest.parent / file


#: Manifest columns kept as metadata of every crop (besides ``Metadata_*`` columns).
METADATA_COLUMNS = ("plate", "well", "field", "site")


def is_metadata_column(name: str) -> bool:
    """True for a manifest column that follows the crops: plate, well, field, site or
    ``Metadata_*`` (as pycytominer names them)."""
    return name in METADATA_COLUMNS or name.lower().startswith("metadata_")
