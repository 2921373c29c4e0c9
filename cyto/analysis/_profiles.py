"""Profiles and batch correction: aggregation per group, per-batch centring and scaling,
PCA whitening (sphering) and Harmony — the usual steps of image-based profiling
(pycytominer, Arevalo et al. 2024), each a small function over arrays (no torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cyto.analysis._spectra import mean_by_label

__all__ = [
    "CORRECTIONS",
    "aggregate",
    "center_scale_by_batch",
    "drop_constant",
    "harmony",
    "sphere",
]


def aggregate(X: Any, groups: Any, *, how: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """One profile per group (e.g. per protein or per well): the mean or median of its rows.

    Parameters
    ----------
    X : (n, d) array_like
    groups : (n,) array_like
    how : {"mean", "median"}, default "mean"

    Returns
    -------
    names : (G,) ndarray
        Sorted group names.
    profiles : (G, d) float64 ndarray

    Examples
    --------
    >>> aggregate([[0.0], [2.0], [5.0]], ["a", "a", "b"])[1].ravel().tolist()
    [1.0, 5.0]
    """
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(len(X), -1)
    g = np.asarray(groups).astype(str)
    if how not in ("mean", "median"):
        raise ValueError(f"`how` must be 'mean' or 'median', got {how!r}")
    if how == "mean":
        return mean_by_label(X, g)
    names, inverse = np.unique(g, return_inverse=True)
    return names, np.stack([np.median(X[inverse == i], axis=0) for i in range(names.size)])


def drop_constant(X: Any, *, tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Remove features that do not vary (feature selection's first step).

    Returns
    -------
    X : (n, d') ndarray
    kept : (d',) int ndarray
        Indices of the kept features.
    """
    X = np.asarray(X, dtype=np.float64)
    kept = np.flatnonzero(X.std(axis=0) > tol)
    return X[:, kept], kept


def center_scale_by_batch(X: Any, batch: Any, *, scale: bool = True) -> np.ndarray:
    """Centre (and scale) every feature within each batch (plate, well, site...).

    The first and most common correction of plate effects: each batch's profiles get
    mean 0 (and standard deviation 1) per feature, so a per-plate gain or offset
    disappears.

    Parameters
    ----------
    X : (n, d) array_like
    batch : (n,) array_like
    scale : bool, default True
        Also divide by each batch's standard deviation (constant features stay 0).

    Returns
    -------
    X : (n, d) float64 ndarray
    """
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(len(X), -1).copy()
    b = np.asarray(batch).astype(str)
    if b.shape != (len(X),):
        raise ValueError(f"`batch` must have one value per row, got shape {b.shape}")
    for name in np.unique(b):
        rows = b == name
        X[rows] -= X[rows].mean(axis=0)
        if scale:
            sd = X[rows].std(axis=0)
            X[rows] /= np.where(sd > 1e-12, sd, 1.0)
    return X


def sphere(X: Any, *, reference: Any = None, epsilon: float = 1e-6) -> np.ndarray:
    """PCA whitening (sphering, "TVN" when fitted on controls): decorrelate the features
    and give them unit variance, as fitted on ``reference`` rows (default: all rows).

    Parameters
    ----------
    X : (n, d) array_like
    reference : (n,) bool array_like, optional
        Rows the transform is fitted on (e.g. negative controls).
    epsilon : float, default 1e-6
        Added to the eigenvalues (regularisation).

    Returns
    -------
    X : (n, d) float64 ndarray
    """
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(len(X), -1)
    R = X if reference is None else X[np.asarray(reference, dtype=bool)]
    if len(R) < 2:
        raise ValueError("`reference` must select at least two rows")
    mu = R.mean(axis=0)
    cov = np.cov(R - mu, rowvar=False).reshape(X.shape[1], X.shape[1])
    vals, vecs = np.linalg.eigh(cov)
    W = vecs / np.sqrt(np.maximum(vals, 0.0) + epsilon)
    return (X - mu) @ W


def harmony(X: Any, batch: Any, *, n_components: int = 50, seed: int = 0) -> np.ndarray:
    """Harmony batch integration (Korsunsky et al. 2019) via ``harmonypy`` on the first
    principal components (``pip install harmonypy``; the error names it otherwise).

    Parameters
    ----------
    X : (n, d) array_like
    batch : (n,) array_like
    n_components : int, default 50
        Principal components Harmony corrects (at most d).
    seed : int, default 0

    Returns
    -------
    Z : (n, k) float64 ndarray
        Corrected principal components.
    """
    from cyto._optional import require

    hp = require("harmonypy", "harmony", purpose="Harmony batch correction")
    import pandas as pd

    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(len(X), -1)
    k = int(min(n_components, X.shape[1], len(X) - 1))
    Xc = X - X.mean(axis=0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    pcs = U[:, :k] * S[:k]
    meta = pd.DataFrame({"batch": np.asarray(batch).astype(str)})
    out = hp.run_harmony(pcs, meta, ["batch"], random_state=seed, verbose=False)
    Z = np.asarray(out.Z_corr)
    return Z.T if Z.shape[0] != len(X) else Z


#: Batch corrections by name: ``f(X, batch) -> corrected features``. The one registry
#: ``cyto evaluate`` (its ``corrections``) and the report's batch section look them up in.
CORRECTIONS: dict[str, Callable[[Any, Any], np.ndarray]] = {
    "center_scale": center_scale_by_batch,
    "harmony": harmony,
}
