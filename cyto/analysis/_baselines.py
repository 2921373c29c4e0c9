"""Model-free representations of crops, the baselines a trained model has to beat."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from cyto.analysis._validate import as_float_array

__all__ = ["baseline_features", "handcrafted_features"]

_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
_BRIGHT = (0.25, 0.5, 0.75)


# signed nuclear distance bins (positive inside the nucleus) of the radial profile
_RADIAL_EDGES = (-np.inf, -0.6, -0.35, -0.15, 0.0, 0.25, np.inf)
_GLCM_DISTANCES = (1, 2, 4)
_GLCM_PROPS = ("contrast", "homogeneity", "energy", "correlation")
_GRANULARITY_RADII = (1, 2, 4)


def _standardize(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _intensity_stats(flat: np.ndarray) -> np.ndarray:
    """Per-row mean, sd, CV, skewness, kurtosis, percentiles and bright fractions."""
    mean = flat.mean(axis=1)
    std = flat.std(axis=1)
    safe = np.maximum(std, 1e-6)
    centred = flat - mean[:, None]
    skew = (centred**3).mean(axis=1) / safe**3
    kurt = (centred**4).mean(axis=1) / safe**4
    pct = np.percentile(flat, _PERCENTILES, axis=1).T
    top = np.maximum(flat.max(axis=1), 1e-6)[:, None]
    bright = np.stack([(flat > t * top).mean(axis=1) for t in _BRIGHT], axis=1)
    return np.column_stack(
        [mean, std, std / np.maximum(np.abs(mean), 1e-6), skew, kurt, pct, bright]
    )


def _radial_profile(protein: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Share of each crop's protein signal in rings of signed nuclear distance."""
    n = protein.shape[0]
    p = protein.reshape(n, -1)
    d = distance.reshape(n, -1)
    total = np.maximum(p.sum(axis=1), 1e-9)
    rings = []
    for lo, hi in itertools.pairwise(_RADIAL_EDGES):
        mask = (d > lo) & (d <= hi)
        rings.append((p * mask).sum(axis=1) / total)
        rings.append((p * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1))
    inside = d > 0
    pc, dc = p - p.mean(axis=1, keepdims=True), d - d.mean(axis=1, keepdims=True)
    norm = np.sqrt((pc**2).sum(axis=1) * (dc**2).sum(axis=1))
    r = np.where(norm > 0, (pc * dc).sum(axis=1) / np.maximum(norm, 1e-12), 0.0)
    return np.column_stack([*rings, inside.mean(axis=1), r])


def _texture(protein: np.ndarray, levels: int = 16) -> np.ndarray:
    """Haralick (GLCM) properties averaged over 4 angles, and granularity."""
    from scipy import ndimage
    from skimage.feature import graycomatrix, graycoprops
    from skimage.morphology import disk

    angles = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
    rows = []
    for img in protein:
        lo, hi = float(img.min()), float(img.max())
        q = np.zeros(img.shape, np.uint8)
        if hi > lo:
            q = np.minimum((img - lo) / (hi - lo) * levels, levels - 1).astype(np.uint8)
        glcm = graycomatrix(q, _GLCM_DISTANCES, angles, levels=levels, symmetric=True, normed=True)
        feats = [graycoprops(glcm, prop).mean(axis=1) for prop in _GLCM_PROPS]
        total = max(float(img.sum()), 1e-9)
        gran = [
            (total - float(ndimage.grey_opening(img, footprint=disk(r)).sum())) / total
            for r in _GRANULARITY_RADII
        ]
        rows.append(np.concatenate([*feats, gran]))
    return np.nan_to_num(np.asarray(rows, dtype=np.float64))


def handcrafted_features(
    crops: Any, *, protein_channel: int = 0, distance_channel: int | None = 1
) -> np.ndarray:
    """Classic hand-crafted localization features of crops (a CellProfiler-like baseline).

    Per crop: the intensity statistics of :func:`baseline_features`; the share and mean
    of the protein signal in six rings of signed nuclear distance (inside the nucleus
    and around it) with the fraction of nuclear pixels and the protein-distance
    correlation (when a distance channel is given); Haralick texture (GLCM contrast,
    homogeneity, energy, correlation at distances 1, 2, 4, averaged over four angles, on
    16 grey levels); and granularity (signal removed by grey openings of radius 1, 2,
    4). Columns are standardized.

    Parameters
    ----------
    crops : (n, C, S, S) array_like
        Normalized crops.
    protein_channel : int, default 0
        Channel of the tagged protein.
    distance_channel : int or None, default 1
        Channel of the signed nuclear distance (positive inside nuclei); None skips
        the radial features.

    Returns
    -------
    features : (n, d) ndarray
        ``d`` = 15 + 14 (radial) + 15 (texture).

    Raises
    ------
    ValueError
        If ``crops`` is not 4-D, holds non-finite values, or a channel index is out of
        range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> crops = np.stack([rng.random((4, 16, 16)), rng.uniform(-1, 1, (4, 16, 16))], axis=1)
    >>> handcrafted_features(crops).shape
    (4, 44)
    """
    X = as_float_array(crops, "crops", ndim=4)  # rejects NaN/inf too
    for name, ch in (("protein_channel", protein_channel), ("distance_channel", distance_channel)):
        if ch is not None and not 0 <= ch < X.shape[1]:
            raise ValueError(f"`{name}` must be in [0, {X.shape[1]}), got {ch!r}")
    protein = X[:, protein_channel]
    parts = [_intensity_stats(protein.reshape(len(X), -1))]
    if distance_channel is not None:
        parts.append(_radial_profile(protein, X[:, distance_channel]))
    parts.append(_texture(protein))
    return _standardize(np.column_stack(parts))


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

    stats = _standardize(_intensity_stats(X.reshape(n, -1)))
    return {"pixels": _pca(pooled.astype(np.float64), n_components), "intensity": stats}
