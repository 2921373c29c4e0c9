"""Argument checks shared by the preprocessing functions (internal)."""

from __future__ import annotations

import numpy as np

__all__ = ["as_float_image", "check_positive", "components_if_binary"]


# Largest magnitude kept in float32: squares and sums of a 10⁶-pixel image stay finite.
_FLOAT32_SAFE = 1e15


def as_float_image(image: object, name: str, *, ndim: int | tuple[int, ...] = 2) -> np.ndarray:
    """Return ``image`` as a finite float32/float64 array with the expected ndim.

    float32 stays float32, float16 and integers below 32 bits go to float32
    (exact for uint16 microscopy data), anything else to float64; float32 values so large
    that squares or sums would overflow (beyond ±1e15) go to float64 too.
    """
    if isinstance(image, (str, bytes)) or image is None:
        raise TypeError(f"`{name}` must be an array, got {type(image).__name__}")
    arr = np.asarray(image)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"`{name}` must be {want}, got {arr.ndim}-D array of shape {arr.shape}")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"`{name}` must hold real numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape})")
    if arr.dtype in (np.float32, np.float16) or (
        np.issubdtype(arr.dtype, np.integer) and arr.dtype.itemsize <= 2
    ):
        arr = arr.astype(np.float32, copy=False)
    else:
        arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"`{name}` contains {bad} non-finite values (NaN or inf); expected finite")
    if arr.dtype == np.float32 and float(np.abs(arr).max()) > _FLOAT32_SAFE:
        # finite, but sums and squares would overflow float32 (e.g. values near ±3e38)
        arr = arr.astype(np.float64)
    return arr


def check_positive(value: object, name: str, *, integer: bool = False, allow_none: bool = False):
    """Validate a positive scalar option and return it."""
    if value is None and allow_none:
        return None
    kind = "integer" if integer else "number"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a positive {kind}, got {type(value).__name__} {value!r}")
    if integer and not float(value).is_integer():
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive {kind}, got {value!r}")
    return int(value) if integer else float(value)


def components_if_binary(labels: np.ndarray) -> np.ndarray | None:
    """A binary mask (bool, or two values such as 0/1 or 0/255, as CellProfiler and
    thresholding segmenters write them) as one int32 label per connected component;
    None when ``labels`` is already a label image (three or more values)."""
    if labels.dtype.kind != "b" and np.unique(labels).size > 2:
        return None
    from scipy import ndimage as ndi

    return ndi.label(labels > 0)[0].astype(np.int32)
