"""Z projection and block-mean downsampling."""

from __future__ import annotations

import numpy as np

from cyto.preprocess._validate import check_positive

__all__ = ["downsample", "max_projection"]


def max_projection(stack: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Maximum-intensity projection along one axis (the z axis by default).

    Parameters
    ----------
    stack : ndarray
        At least 2-D array, e.g. a (Z, Y, X) stack or a (C, Z, Y, X) hyperstack
        with ``axis=1``. Integer and float dtypes are kept.
    axis : int
        Axis to project along (negative values count from the end).

    Returns
    -------
    projection : ndarray
        ``stack`` with ``axis`` removed, same dtype.

    Raises
    ------
    ValueError
        If ``stack`` has fewer than 2 dimensions, ``axis`` is out of range or
        ``stack`` is empty.
    TypeError
        If ``axis`` is not an integer or ``stack`` is not numeric.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.zeros((3, 4, 4), np.uint16)
    >>> stack[1, 2, 2] = 7
    >>> max_projection(stack)[2, 2]
    np.uint16(7)
    """
    arr = np.asarray(stack)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"`axis` must be an int, got {type(axis).__name__} {axis!r}")
    if arr.ndim < 2:
        raise ValueError(f"`stack` must be at least 2-D, got {arr.ndim}-D shape {arr.shape}")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"`axis` {axis} is out of range for a {arr.ndim}-D `stack`")
    if arr.shape[axis] == 0:
        raise ValueError(f"`stack` has no planes along axis {axis} (shape {arr.shape})")
    if not (np.issubdtype(arr.dtype, np.number) and arr.dtype.kind != "c"):
        raise TypeError(f"`stack` must hold real numbers, got dtype {arr.dtype}")
    return arr.max(axis=axis)


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Downsample the last two axes by an integer factor (block mean).

    Each output pixel is the mean of a ``factor × factor`` block; rows and
    columns that do not fill a whole block at the bottom/right edge are dropped.
    This is the area-averaging the paper uses for its ×2 reduction (1024 → 512).

    Parameters
    ----------
    image : (..., M, N) ndarray
        Image or stack of images (leading axes, e.g. channels, are kept).
    factor : int
        Block size, ≥ 1. 1 returns a float copy.

    Returns
    -------
    small : (..., M // factor, N // factor) ndarray
        float32 for inputs of ≤ 16-bit integers, float32 or float16; float64 otherwise.

    Raises
    ------
    ValueError
        If ``factor`` is not a positive integer or larger than the image.
    TypeError
        If ``factor`` is not an integer or ``image`` is not numeric.

    Examples
    --------
    >>> import numpy as np
    >>> im = np.arange(16, dtype=np.float32).reshape(4, 4)
    >>> downsample(im, 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    arr = np.asarray(image)
    if isinstance(factor, float) and factor.is_integer():
        factor = int(factor)
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)):
        raise TypeError(f"`factor` must be a positive int, got {type(factor).__name__} {factor!r}")
    factor = check_positive(factor, "factor", integer=True)
    if arr.ndim < 2:
        raise ValueError(f"`image` must be at least 2-D, got {arr.ndim}-D shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.number) and arr.dtype.kind != "c"):
        raise TypeError(f"`image` must hold real numbers, got dtype {arr.dtype}")
    small_dtypes = (np.float16, np.float32)
    if arr.dtype in small_dtypes or (
        np.issubdtype(arr.dtype, np.integer) and arr.dtype.itemsize <= 2
    ):
        out_dtype = np.float32
    else:
        out_dtype = np.float64
    h, w = arr.shape[-2:]
    if factor > min(h, w):
        raise ValueError(f"`factor` {factor} is larger than the image (shape {arr.shape[-2:]})")
    if factor == 1:
        return arr.astype(out_dtype, copy=True)
    hh, ww = (h // factor) * factor, (w // factor) * factor
    return _block_mean(arr[..., :hh, :ww], factor, out_dtype)


def _block_mean(arr: np.ndarray, factor: int, out_dtype=np.float32) -> np.ndarray:
    """Block mean of the last two axes, whose lengths are multiples of ``factor``.

    Adds the ``factor**2`` strided sub-grids: numpy reduces over a reshaped
    block axis several times slower than it adds contiguous-ish slices.
    """
    # float32 sums are exact for 16-bit data up to 256 pixels per block
    acc_dtype = np.float64 if out_dtype == np.float64 or factor > 16 else np.float32
    hh, ww = arr.shape[-2:]
    acc = arr[..., 0:hh:factor, 0:ww:factor].astype(acc_dtype, copy=True)
    for i in range(factor):
        for j in range(factor):
            if i or j:
                acc += arr[..., i:hh:factor, j:ww:factor]
    acc *= acc_dtype(1.0 / (factor * factor))
    return acc.astype(out_dtype, copy=False)
