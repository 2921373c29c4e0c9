"""Input checks shared by the analysis functions (private)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["as_float_array", "as_int_array", "encode_labels", "is_unlabelled"]


def as_float_array(x: Any, name: str, *, ndim: int | None = None) -> np.ndarray:
    """Convert anything with ``__array__`` to a float array (float32 kept, else float64).

    float16 is promoted to float32; integers and booleans go to float64. Non-numeric
    input, a wrong number of dimensions or non-finite values raise ``ValueError``.
    """
    try:
        arr = np.asarray(x)
    except Exception as err:  # pragma: no cover - depends on the foreign object
        raise TypeError(f"`{name}` must be array-like, got {type(x).__name__}") from err
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"`{name}` must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"`{name}` must be real-valued, got dtype {arr.dtype}")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values")
    return arr


def as_int_array(x: Any, name: str, *, ndim: int | None = None) -> np.ndarray:
    """Convert to an integer array; floats holding integers are accepted."""
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise TypeError(f"`{name}` must hold integers, got non-integer {arr.dtype} values")
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"`{name}` must be an integer array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-D, got shape {arr.shape}")
    return arr


def is_unlabelled(value: Any) -> bool:
    """True for the values that mark an unlabelled point: None, "", NaN or -1."""
    if value is None:
        return True
    if isinstance(value, str):
        return value == ""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return bool(value != value or value == -1)  # NaN or -1
    return False


def encode_labels(
    labels: Any, n: int, *, exclude: Any = None, name: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
    """Factorise labels into integer codes, ``-1`` for unlabelled or excluded points.

    Returns ``(codes, classes)`` with ``codes`` (n,) int64 and ``classes`` the sorted
    unique labels that remain. Object/str labels are compared by their string form.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (one label per point), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"`{name}` has {arr.shape[0]} entries but `X` has {n} points")
    if exclude is None:
        excl: list[Any] = []
    elif isinstance(exclude, (str, bytes)) or not np.iterable(exclude):
        excl = [exclude]
    else:
        excl = list(exclude)

    if arr.dtype.kind in "iub":
        arr = arr.astype(np.int64)
        keep = arr != -1
        values = arr
        excl_vals = [e for e in excl if isinstance(e, numbers.Integral)]
    elif arr.dtype.kind == "f":
        keep = np.isfinite(arr) & (arr != -1)
        values = arr
        excl_vals = [e for e in excl if isinstance(e, numbers.Real)]
    elif arr.dtype.kind in "USO":
        if arr.dtype.kind == "O":
            keep = np.fromiter((not is_unlabelled(v) for v in arr), dtype=bool, count=n)
            values = np.where(keep, arr, "").astype(str)
        else:
            values = arr.astype(str)
            keep = values != ""
        excl_vals = [str(e) for e in excl]
    else:
        raise TypeError(f"`{name}` must hold str, int or float labels, got dtype {arr.dtype}")
    if excl_vals:
        keep &= ~np.isin(values, np.asarray(excl_vals))
    codes = np.full(n, -1, dtype=np.int64)
    kept = values[keep]
    if kept.dtype == np.int64 and kept.size and 0 <= kept.min() and kept.max() < 4 * n + 1024:
        # small non-negative integers: O(n) factorisation through a lookup table
        present = np.bincount(kept) > 0
        classes = np.flatnonzero(present)
        lookup = np.cumsum(present) - 1
        codes[keep] = lookup[kept]
        return codes, classes
    classes, inverse = np.unique(kept, return_inverse=True)
    codes[keep] = inverse.ravel()
    return codes, classes


def random_rank_in_group(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Items ordered by group, shuffled within each, and each one's rank in its group.

    Returns ``(order, rank)``: ``order`` (n,) indices grouped by code in random order
    within a group, ``rank`` (n,) 0-based position of ``order[i]`` within its group.
    """
    shuffled = rng.permutation(codes.size)
    order = shuffled[np.argsort(codes[shuffled], kind="stable")]
    grouped = codes[order]
    return order, np.arange(codes.size) - np.searchsorted(grouped, grouped, side="left")
