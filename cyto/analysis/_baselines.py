"""Model-free representations of crops, the baselines a trained model has to beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from cyto.analysis._validate import as_float_array

__all__ = ["baseline_features"]

_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
_BRIGHT = (0.25, 0.5, 0.75)


def _pca(X: np.ndarray, n_components: int) -> np.ndarray:
    Xc = X - X.mean(axis=0)
    k = min(n_components, *Xc.shape)
    # SVD of the smaller Gram matrix: cheap for n crops × d pixels with either side large
    if Xc.shape[0] <= Xc.shape[1]:
        w, v = np.linalg.eigh(Xc @ Xc.T)
        top = np.argsort(w)[::-1][:k]
        return v[:, top] * np.sqrt(np.clip(w[top], 0.0, None))
    w, v = np.linalg.eigh(Xc.T @ Xc)
    top = np.argsort(w)[::-1][:k]
    return Xc @ v[:, top]


def baseline_features(
    images: Any, *, pool: int = 2, n_components: int = 50
) -> dict[str, np.ndarray]:
    """Raw-pixel and intensity-statistics features of single-channel crops.

    Parameters
    ----------
    images : (n, S, S) array_like
        One channel per crop (typically the normalized protein channel).
    pool : int, default 2
        Side of the mean-pooling blocks applied before the pixel PCA (S must divide).
    n_components : int, default 50
        Principal components kept of the pooled pixels.

    Returns
    -------
    features : dict of str to (n, d) ndarray
        ``"pixels"``: pooled pixels → PCA(``n_components``);
        ``"intensity"``: per-crop mean, standard deviation, coefficient of variation,
        skewness, kurtosis, percentiles (1, 5, 25, 50, 75, 95, 99) and fractions of
        pixels above 0.25, 0.5 and 0.75 of the crop's maximum, standardized per column.

    Raises
    ------
    ValueError
        If ``images`` is not 3-D, holds non-finite values, or ``pool`` does not divide
        the crop side.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = baseline_features(rng.random((6, 8, 8)), n_components=3)
    >>> f["pixels"].shape, f["intensity"].shape
    ((6, 3), (6, 15))
    """
    X = as_float_array(images, "images", ndim=3)
    n, h, w = X.shape
    if not isinstance(pool, (int, np.integer)) or pool < 1 or h % pool or w % pool:
        raise ValueError(
            f"`pool` must be a positive integer dividing the crop side {h}×{w}, got {pool!r}"
        )
    if not np.isfinite(X).all():
        raise ValueError("`images` must be finite")
    pooled = X.reshape(n, h // pool, pool, w // pool, pool).mean(axis=(2, 4)).reshape(n, -1)

    flat = X.reshape(n, -1)
    mean = flat.mean(axis=1)
    std = flat.std(axis=1)
    safe = np.maximum(std, 1e-6)
    centred = flat - mean[:, None]
    skew = (centred**3).mean(axis=1) / safe**3
    kurt = (centred**4).mean(axis=1) / safe**4
    pct = np.percentile(flat, _PERCENTILES, axis=1).T
    top = np.maximum(flat.max(axis=1), 1e-6)[:, None]
    bright = np.stack([(flat > t * top).mean(axis=1) for t in _BRIGHT], axis=1)
    stats = np.column_stack(
        [mean, std, std / np.maximum(np.abs(mean), 1e-6), skew, kurt, pct, bright]
    )
    sd = stats.std(axis=0)
    stats = (stats - stats.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return {"pixels": _pca(pooled.astype(np.float64), n_components), "intensity": stats}
