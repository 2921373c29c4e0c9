"""Cell-centred crops and their normalization."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cyto.data import CHANNEL_NAMES, check_channels
from cyto.preprocess._distance import _check_labels

__all__ = ["CHANNELS", "CellCrops", "crop_cells", "normalize_crops"]

#: Channel names a crop may hold and how :func:`normalize_crops` scales them (the
#: names a crop store accepts, :data:`cyto.data.CHANNEL_NAMES`).
CHANNELS = CHANNEL_NAMES


@dataclass(frozen=True)
class CellCrops:
    """Crops centred on nuclei, with where they came from.

    Attributes
    ----------
    crops : (n, C, S, S) ndarray
        One crop per kept nucleus.
    centers : (n, 2) int32 ndarray
        Crop centres (row, col) in the image the crops were cut from.
    nucleus_ids : (n,) int32 ndarray
        Label of the nucleus each crop is centred on.
    channels : tuple of str
        Channel names (empty when unknown).
    labels : (M, N) int32 ndarray or None
        The nucleus segmentation the crops came from (set by :func:`preprocess_fov`).
    """

    crops: np.ndarray
    centers: np.ndarray
    nucleus_ids: np.ndarray
    channels: tuple[str, ...] = ()
    labels: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.crops.shape[0])


def crop_cells(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    size: int = 100,
    channels: Sequence[str] = (),
) -> CellCrops:
    """Cut square crops centred on each nucleus.

    The centre of a crop is the nucleus centroid rounded to the nearest pixel; the
    crop spans rows ``r - size // 2`` to ``r - size // 2 + size`` (same for columns).
    Nuclei whose crop would leave the image are skipped (the paper ignores cells
    too close to the edges), so no crop is padded.

    Parameters
    ----------
    image : (C, M, N) or (M, N) ndarray
        Channels to crop (a 2-D image is treated as one channel).
    labels : (M, N) int ndarray
        Nucleus instance labels (0 = background).
    size : int
        Crop side in pixels.
    channels : sequence of str, optional
        Channel names recorded on the result.

    Returns
    -------
    CellCrops
        ``crops`` (n, C, size, size) with the dtype of ``image``, ``centers`` and
        ``nucleus_ids`` in increasing label order.

    Raises
    ------
    ValueError
        If shapes disagree, ``size`` is not a positive integer or the image is
        smaller than one crop.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((40, 40), np.int32)
    >>> lab[18:23, 18:23] = 1          # centred: kept
    >>> lab[0:3, 0:3] = 2              # at the corner: its crop would leave the image
    >>> out = crop_cells(np.ones((2, 40, 40), np.float32), lab, size=20)
    >>> out.crops.shape, out.centers.tolist(), out.nucleus_ids.tolist()
    ((1, 2, 20, 20), [[20, 20]], [1])
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3:
        raise ValueError(f"`image` must be (C, M, N) or (M, N), got shape {np.shape(image)}")
    lab = _check_labels(labels)
    if lab.shape != img.shape[1:]:
        raise ValueError(
            f"`labels` (shape {lab.shape}) must have the spatial shape of `image` "
            f"(shape {img.shape[1:]})"
        )
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"`size` must be a positive integer, got {size!r}")
    size = int(size)
    m, n_cols = lab.shape
    if size > m or size > n_cols:
        raise ValueError(
            f"`image` (spatial shape {lab.shape}) is smaller than one crop of size {size}"
        )
    names = check_channels(channels, img.shape[0], array="`image`") if len(channels) else ()
    empty = CellCrops(
        np.empty((0, img.shape[0], size, size), dtype=img.dtype),
        np.empty((0, 2), np.int32),
        np.empty(0, np.int32),
        names,
    )
    n = int(lab.max()) if lab.size else 0
    if n == 0:
        return empty
    flat = lab.ravel()
    where = np.flatnonzero(flat)
    ids_px = flat[where]
    count = np.bincount(ids_px, minlength=n + 1).astype(np.float64)
    rsum = np.bincount(ids_px, weights=where // n_cols, minlength=n + 1)
    csum = np.bincount(ids_px, weights=where % n_cols, minlength=n + 1)
    ids = np.nonzero(count[1:])[0] + 1
    cr = np.floor(rsum[ids] / count[ids] + 0.5).astype(np.int64)
    cc = np.floor(csum[ids] / count[ids] + 0.5).astype(np.int64)
    half = size // 2
    r0, c0 = cr - half, cc - half
    ok = (r0 >= 0) & (c0 >= 0) & (r0 + size <= m) & (c0 + size <= n_cols)
    if not ok.any():
        return empty
    ids, cr, cc, r0, c0 = ids[ok], cr[ok], cc[ok], r0[ok], c0[ok]
    crops = np.empty((len(ids), img.shape[0], size, size), dtype=img.dtype)
    for i, (a, b) in enumerate(zip(r0, c0)):
        crops[i] = img[:, a : a + size, b : b + size]
    return CellCrops(
        crops,
        np.stack([cr, cc], axis=1).astype(np.int32),
        ids.astype(np.int32),
        names,
    )


def normalize_crops(
    crops: np.ndarray, *, channels: Sequence[str] = ("protein", "distance")
) -> np.ndarray:
    """Scale each crop's channels to the paper's ranges, crop by crop.

    Every (crop, channel) plane is scaled on its own: ``"protein"`` and
    ``"nucleus"`` min-max to [0, 1]; ``"distance"`` divided by its largest
    absolute value to [-1, 1] (0 stays 0, so the sign still marks inside/outside
    the nucleus). Constant planes become 0.

    To normalize per field of view instead, pass the whole field as a single
    "crop", ``normalize_crops(field[None], channels=...)[0]``, before cropping;
    :func:`preprocess_fov` does this with ``normalize="field"``.

    Parameters
    ----------
    crops : (n, C, S, S) ndarray
        Crops (any real dtype; S need not be square for whole fields).
    channels : sequence of str
        Name of each of the C channels, from ``("protein", "distance", "nucleus")``.

    Returns
    -------
    normalized : (n, C, S, S) float32 ndarray

    Raises
    ------
    ValueError
        If ``crops`` is not 4-D, is non-finite, or the channel names are unknown or
        do not match C.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[10., 30.]], [[-4., 2.]]]])   # 1 crop, 2 channels, 1x2 px
    >>> normalize_crops(x, channels=("protein", "distance"))
    array([[[[ 0. ,  1. ]],
    <BLANKLINE>
            [[-1. ,  0.5]]]], dtype=float32)
    """
    arr = np.asarray(crops)
    if arr.ndim != 4:
        raise ValueError(f"`crops` must be 4-D (n, C, S, S), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) and arr.dtype.kind != "c"):
        raise TypeError(f"`crops` must hold real numbers, got dtype {arr.dtype}")
    names = check_channels(channels, arr.shape[1])
    out = arr.astype(np.float32, copy=True)
    if out.size and not np.isfinite(out).all():
        raise ValueError("`crops` contains non-finite values (NaN or inf); expected finite")
    if out.shape[0] == 0:
        return out
    for c, name in enumerate(names):
        plane = out[:, c]
        if name == "distance":
            scale = np.abs(plane).max(axis=(1, 2), keepdims=True)
            np.divide(plane, scale, out=plane, where=scale > 0)
        else:
            lo = plane.min(axis=(1, 2), keepdims=True)
            hi = plane.max(axis=(1, 2), keepdims=True)
            plane -= lo
            rng = hi - lo
            np.divide(plane, rng, out=plane, where=rng > 0)
            plane[np.broadcast_to(rng <= 0, plane.shape)] = 0.0
    return out
