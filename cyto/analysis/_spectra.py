"""Feature spectra (Supp. Fig. 8): code histograms, code correlation, biclustering, localize."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cyto.analysis._validate import as_float_array, as_int_array, encode_labels

__all__ = [
    "Biclusters",
    "FeatureSpectra",
    "bicluster",
    "code_correlation",
    "code_histograms",
    "feature_spectra",
    "localize",
    "mean_by_label",
    "representative_images",
]

_CHUNK = 1 << 22  # code positions per bincount chunk (32 MiB of int64 keys)
_BLOCK_VALUES = 1 << 22  # values per row block of mean_by_label (32 MiB in float64)


def _check_num_codes(num_codes: Any) -> None:
    if not isinstance(num_codes, (int, np.integer)) or num_codes < 1:
        raise ValueError(f"`num_codes` must be a positive integer, got {num_codes!r}")


def _check_range(idx: np.ndarray, num_codes: int) -> np.ndarray:
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= num_codes:
            raise ValueError(
                f"`indices` must lie in [0, num_codes={num_codes}), got values in [{lo}, {hi}]"
            )
    return idx


def _check_indices(indices: Any, num_codes: int) -> np.ndarray:
    _check_num_codes(num_codes)
    idx = as_int_array(indices, "indices")
    if idx.ndim < 1:
        raise ValueError(f"`indices` must have one row per image, got shape {idx.shape}")
    return _check_range(idx.reshape(idx.shape[0], -1), num_codes)


def _is_lazy(indices: Any) -> bool:
    """Rows read on slicing (e.g. :class:`cyto.data.LazyRows`), not an in-memory array."""
    return not isinstance(indices, (np.ndarray, list, tuple)) and hasattr(indices, "shape")


def _n_images(indices: Any) -> int:
    return int(indices.shape[0]) if _is_lazy(indices) else int(np.shape(indices)[0])


def _index_blocks(indices: Any, num_codes: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, (b, P) checked int block)`` over the rows of ``indices``.

    An array is walked in views; lazily read rows (:class:`cyto.data.LazyRows`) are read
    one block at a time, so memory stays bounded whatever the number of images.
    """
    _check_num_codes(num_codes)
    lazy = _is_lazy(indices)
    src = indices if lazy else as_int_array(indices, "indices")
    if len(src.shape) < 1:
        raise ValueError(f"`indices` must have one row per image, got shape {src.shape}")
    per_image = int(np.prod(src.shape[1:]))
    step = max(_CHUNK // max(per_image, 1), 1)
    for start in range(0, int(src.shape[0]), step):
        block = (
            as_int_array(src[start : start + step], "indices")
            if lazy
            else src[start : step + start]
        )
        yield start, _check_range(block.reshape(block.shape[0], -1), num_codes)


def _binned(
    rows: np.ndarray, idx: np.ndarray, n_rows: int, num_codes: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Counts ``out[rows[i], idx[i, j]] += 1`` by bincount on ``row * K + code``, chunked."""
    out = np.zeros(n_rows * num_codes, dtype=np.int64) if out is None else out.reshape(-1)
    per_image = max(idx.shape[1], 1)
    step = max(_CHUNK // per_image, 1)
    for start in range(0, idx.shape[0], step):
        block = idx[start : start + step]
        keys = rows[start : start + step, None] * num_codes + block
        out += np.bincount(keys.ravel(), minlength=out.size)
    return out.reshape(n_rows, num_codes)


def _row_histograms(idx: np.ndarray, num_codes: int) -> np.ndarray:
    """(n, K) int32 histogram of every row, built chunk by chunk (bounded memory)."""
    n, per_image = idx.shape
    out = np.zeros((n, num_codes), dtype=np.int32)
    step = max(_CHUNK // max(per_image, num_codes, 1), 1)
    for start in range(0, n, step):
        block = idx[start : start + step]
        rows = np.arange(block.shape[0], dtype=np.int64)[:, None] * num_codes
        counts = np.bincount((rows + block).ravel(), minlength=block.shape[0] * num_codes)
        out[start : start + block.shape[0]] = counts.reshape(block.shape[0], num_codes)
    return out


def code_histograms(indices: Any, num_codes: int) -> np.ndarray:
    """Per-image histogram of code indices (how often each codebook vector occurs).

    Parameters
    ----------
    indices : (n, ...) array_like of int
        Code indices per image, e.g. VQ1 ``local_indices`` (n, 625) or (n, 1, 25, 25);
        all axes after the first are flattened.
    num_codes : int
        Codebook size K.

    Returns
    -------
    hist : (n, K) int32 ndarray
        ``hist[i, k]`` = number of positions of image ``i`` using code ``k``.

    Raises
    ------
    ValueError
        If an index is outside ``[0, num_codes)``.

    Examples
    --------
    >>> code_histograms([[0, 0, 2], [1, 2, 2]], 3).tolist()
    [[2, 0, 1], [0, 1, 2]]
    """
    return _row_histograms(_check_indices(indices, num_codes), num_codes)


@dataclass(frozen=True)
class FeatureSpectra:
    """Mean code histogram per group (e.g. per protein): the feature spectra.

    Attributes
    ----------
    groups : (G,) ndarray
        Sorted group labels (e.g. protein ids).
    spectra : (G, K) float64 ndarray
        Mean per-image histogram of each group: average occurrence of every code in one
        image of that group (rows sum to the number of positions per image).
    n_images : (G,) int ndarray
        Images per group.
    """

    groups: np.ndarray
    spectra: np.ndarray = field(repr=False)
    n_images: np.ndarray = field(repr=False)

    def __getitem__(self, group: Any) -> np.ndarray:
        """Spectrum of one group by label."""
        hit = np.flatnonzero(self.groups == group)
        if hit.size == 0:
            raise KeyError(group)
        return self.spectra[hit[0]]


def feature_spectra(indices: Any, groups: Any, num_codes: int) -> FeatureSpectra:
    """Feature spectra: per-group mean of the per-image code histograms (Supp. Fig. 8a–b).

    Computed without materialising the (n, K) per-image histograms: one bincount over
    ``group * K + code`` sums every group's histograms, divided by its image count.

    Parameters
    ----------
    indices : (n, ...) array_like of int
        Local (VQ1) code indices per image, e.g. (n, 625); also rows read lazily
        (:meth:`cyto.data.Embeddings.lazy`), walked block by block in bounded memory.
    groups : (n,) array_like
        Group of each image, typically its protein id. Images with an unlabelled group
        (``None``, ``""``, NaN, -1) are skipped.
    num_codes : int
        Codebook size K (2048 in the paper).

    Returns
    -------
    spectra : FeatureSpectra
        ``spectra.groups`` (G,), ``spectra.spectra`` (G, K), ``spectra.n_images`` (G,).

    Raises
    ------
    ValueError
        If ``groups`` has the wrong length or an index is outside ``[0, num_codes)``.

    Examples
    --------
    >>> s = feature_spectra([[0, 0], [0, 1], [2, 2]], ["A", "A", "B"], 3)
    >>> s.groups.tolist(), s.spectra.tolist(), s.n_images.tolist()
    (['A', 'B'], [[1.5, 0.5, 0.0], [0.0, 0.0, 2.0]], [2, 1])
    """
    _check_num_codes(num_codes)
    codes, classes = encode_labels(groups, _n_images(indices), name="groups")
    g = classes.shape[0]
    sums = np.zeros((g, num_codes), dtype=np.int64)
    for start, block in _index_blocks(indices, num_codes):
        rows = codes[start : start + block.shape[0]]
        keep = rows >= 0
        _binned(rows[keep], block[keep], g, num_codes, out=sums)
    n_images = np.bincount(codes[codes >= 0], minlength=g)
    spectra = sums / np.maximum(n_images, 1)[:, None]
    return FeatureSpectra(groups=classes, spectra=spectra, n_images=n_images)


def mean_by_label(X: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Row means of ``X`` per label (e.g. the mean spectrum per localization family).

    Parameters
    ----------
    X : (n, K) array_like
        Rows to average (e.g. per-protein spectra).
    labels : (n,) array_like
        Label per row; unlabelled rows (``None``, ``""``, NaN, -1) are ignored.

    Returns
    -------
    classes : (L,) ndarray
        Sorted labels.
    means : (L, K) ndarray
        Mean row per label.

    Examples
    --------
    >>> classes, means = mean_by_label([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]], ["er", "er", None])
    >>> classes.tolist(), means.tolist()
    (['er'], [[2.0, 1.0]])
    """
    from scipy.sparse import csr_matrix

    X = as_float_array(X, "X", ndim=2)
    codes, classes = encode_labels(labels, X.shape[0])
    n_classes = classes.shape[0]
    counts = np.bincount(codes[codes >= 0], minlength=n_classes)
    sums = np.zeros((n_classes, X.shape[1]), dtype=np.float64)
    # in row blocks, summed by a sparse one-hot product: sorting or a float64 copy of a
    # (10^5, 4608) matrix would take gigabytes
    step = max(1, _BLOCK_VALUES // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        c = codes[start : start + step]
        keep = np.flatnonzero(c >= 0)
        if keep.size:
            onehot = csr_matrix((np.ones(keep.size), (c[keep], keep)), shape=(n_classes, c.size))
            sums += onehot @ X[start : start + step].astype(np.float64, copy=False)
    return classes, sums / np.maximum(counts, 1)[:, None]


def code_correlation(hist: Any, *, constant: str = "zero") -> np.ndarray:
    """Pearson correlation between the columns (code profiles) of a histogram matrix.

    Vectorised: the columns are standardised once and the (K, K) matrix is one matrix
    product ``Zᵀ Z / n`` — the same numbers as one ``scipy.stats.pearsonr`` per pair.

    Parameters
    ----------
    hist : (n, K) array_like
        Rows are observations (proteins in the paper: the feature spectra), columns are
        codes.
    constant : {"zero", "nan"}, default "zero"
        What to put in the rows/columns of constant (e.g. never used) codes, whose
        correlation is undefined: ``"zero"`` gives 0 off the diagonal and 1 on it, so
        the matrix stays usable for clustering; ``"nan"`` gives NaN.

    Returns
    -------
    corr : (K, K) float64 ndarray
        Symmetric, values in [-1, 1].

    Raises
    ------
    ValueError
        If ``hist`` is not 2-D, has fewer than 2 rows, or ``constant`` is unknown.

    Examples
    --------
    >>> h = [[1, 2, 5, 0], [2, 4, 3, 0], [3, 6, 1, 0]]
    >>> np.round(code_correlation(h), 3).tolist()
    [[1.0, 1.0, -1.0, 0.0], [1.0, 1.0, -1.0, 0.0], [-1.0, -1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    """
    if constant not in ("zero", "nan"):
        raise ValueError(f"`constant` must be 'zero' or 'nan', got {constant!r}")
    H = as_float_array(hist, "hist", ndim=2)
    n = H.shape[0]
    if n < 2:
        raise ValueError(f"`hist` needs at least 2 rows to correlate columns, got {n}")
    Z = H.astype(np.float64) - H.mean(axis=0, dtype=np.float64)
    norm = np.sqrt(np.einsum("ij,ij->j", Z, Z))
    const = norm <= 1e-12 * np.maximum(np.abs(H).max(axis=0), 1.0) * np.sqrt(n)
    Z /= np.where(const, 1.0, norm)
    corr = Z.T @ Z
    np.clip(corr, -1.0, 1.0, out=corr)
    fill = 0.0 if constant == "zero" else np.nan
    corr[const, :] = fill
    corr[:, const] = fill
    diag = np.arange(corr.shape[0])
    corr[diag, diag] = np.where(const, 1.0 if constant == "zero" else np.nan, 1.0)
    return corr


@dataclass(frozen=True)
class Biclusters:
    """Hierarchical clustering of codes by their correlation.

    Attributes
    ----------
    order : (K,) int ndarray
        Codes in dendrogram leaf order (use ``corr[np.ix_(order, order)]`` for the
        heatmap and ``spectra[:, order]`` for aligned spectra).
    labels : (K,) int ndarray
        Top-level feature cluster of each code (indexed by code), numbered 0, 1, ...
        from left to right along ``order``.
    linkage : (K - 1, 4) ndarray
        SciPy linkage matrix (for ``scipy.cluster.hierarchy.dendrogram``).
    n_clusters : int
        Number of top-level clusters actually formed.
    """

    order: np.ndarray
    labels: np.ndarray
    linkage: np.ndarray = field(repr=False)
    n_clusters: int

    def members(self, cluster: int) -> np.ndarray:
        """Codes of one feature cluster, in leaf order."""
        return self.order[self.labels[self.order] == cluster]


def bicluster(
    corr: Any, *, n_clusters: int = 11, method: str = "average", optimal_ordering: bool = False
) -> Biclusters:
    """Order codes by hierarchical clustering of their correlation; cut into feature clusters.

    The distance between two codes is ``1 - corr`` (0 for identical profiles, 2 for
    opposite ones); codes are merged agglomeratively with SciPy (paper Fig. 4a: 11
    top-level clusters). Because the matrix is symmetric the same order serves rows and
    columns — the biclustered heatmap.

    Parameters
    ----------
    corr : (K, K) array_like
        Correlation matrix, e.g. from :func:`code_correlation` (NaN not allowed).
    n_clusters : int, default 11
        Number of top-level clusters to cut the tree into.
    method : {"average", "complete", "single", "weighted"}, default "average"
        Linkage method.
    optimal_ordering : bool, default False
        Reorder leaves so neighbours are most similar (slower, O(K³)).

    Returns
    -------
    result : Biclusters
        Leaf ``order``, top-level cluster ``labels`` and the ``linkage`` matrix.

    Raises
    ------
    ValueError
        If ``corr`` is not square, holds NaN, or the options are out of range.

    Examples
    --------
    >>> corr = np.array([[1.0, 0.9, -0.2], [0.9, 1.0, -0.1], [-0.2, -0.1, 1.0]])
    >>> b = bicluster(corr, n_clusters=2)
    >>> b.labels[0] == b.labels[1] != b.labels[2]
    np.True_
    """
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    from scipy.spatial.distance import squareform

    methods = ("average", "complete", "single", "weighted")
    if method not in methods:
        raise ValueError(f"`method` must be one of {list(methods)}, got {method!r}")
    C = as_float_array(corr, "corr", ndim=2)
    k = C.shape[0]
    if C.shape != (k, k) or k < 2:
        raise ValueError(f"`corr` must be a square (K, K) matrix with K >= 2, got {C.shape}")
    if not isinstance(n_clusters, (int, np.integer)) or not 1 <= n_clusters <= k:
        raise ValueError(f"`n_clusters` must be an integer in [1, {k}], got {n_clusters!r}")
    D = 1.0 - (C + C.T) / 2
    np.fill_diagonal(D, 0.0)
    np.clip(D, 0.0, 2.0, out=D)
    Z = linkage(squareform(D, checks=False), method=method, optimal_ordering=optimal_ordering)
    order = leaves_list(Z)
    raw = fcluster(Z, t=n_clusters, criterion="maxclust")
    # renumber clusters 0.. in order of first appearance along the leaves
    first_seen = raw[order]
    _, first_idx = np.unique(first_seen, return_index=True)
    ranked = np.argsort(np.argsort(first_idx))
    uniq = np.unique(first_seen)
    lut = np.zeros(raw.max() + 1, dtype=np.int64)
    lut[uniq] = ranked
    labels = lut[raw]
    return Biclusters(order=order, labels=labels, linkage=Z, n_clusters=int(uniq.size))


def cluster_shares(indices: Any, cluster_labels: Any, n_clusters: int | None = None) -> np.ndarray:
    """Share of every image's code positions that fall in each feature cluster.

    Parameters
    ----------
    indices : (n_images, ...) array_like of int
        Local code indices per image (or rows read lazily, walked block by block).
    cluster_labels : (K,) array_like of int
        Feature cluster (>= 0) of every code.
    n_clusters : int, optional
        Number of clusters (default: the largest label + 1).

    Returns
    -------
    shares : (n_images, n_clusters) float ndarray
        Rows sum to 1.

    Examples
    --------
    >>> cluster_shares([[0, 0, 1, 2]], [0, 0, 1]).tolist()
    [[0.75, 0.25]]
    """
    lab = as_int_array(cluster_labels, "cluster_labels", ndim=1)
    if lab.size and lab.min() < 0:
        raise ValueError("`cluster_labels` must be non-negative cluster numbers")
    k = (int(lab.max()) + 1 if lab.size else 0) if n_clusters is None else int(n_clusters)
    out = np.zeros((_n_images(indices), k), dtype=np.float64)
    for start, block in _index_blocks(indices, lab.shape[0]):
        shares = _row_histograms(lab[block], k) / max(block.shape[1], 1)
        out[start : start + block.shape[0]] = shares
    return out


def representative_images(
    indices: Any,
    cluster_labels: Any,
    *,
    n: int = 4,
    groups: Any = None,
    distinct: bool = True,
) -> np.ndarray:
    """Images that use a feature cluster most: ``n`` representatives per cluster.

    An image's score for a cluster is the fraction of its code positions whose code
    belongs to that cluster (paper Fig. 4a bottom, Supp. Fig. 10). Only images that
    use the cluster (score > 0) are chosen, and with ``distinct`` no image represents
    two clusters: clusters are served in order of their best score, each image going
    to the first cluster that picks it.

    Parameters
    ----------
    indices : (n_images, ...) array_like of int
        Local code indices per image.
    cluster_labels : (K,) array_like of int
        Feature cluster of every code, e.g. ``Biclusters.labels``.
    n : int, default 4
        Representatives per cluster.
    groups : (n_images,) array_like, optional
        Protein id per image; when given, at most one image per protein is chosen, so the
        representatives show different proteins.
    distinct : bool, default True
        Never show the same image for two clusters.

    Returns
    -------
    picks : (n_clusters, n) int ndarray
        Image indices, best first; -1 where fewer images are available.

    Examples
    --------
    >>> idx = [[0, 0, 1], [2, 2, 2], [0, 1, 1], [2, 0, 2]]
    >>> representative_images(idx, [0, 0, 1], n=2).tolist()
    [[0, 2], [1, 3]]
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}")
    frac = cluster_shares(indices, cluster_labels)
    m, n_clusters = frac.shape
    picks = np.full((n_clusters, n), -1, dtype=np.int64)
    if groups is not None:
        gcodes, _ = encode_labels(groups, m, name="groups")
    taken = np.zeros(m, dtype=bool)
    best_first = np.argsort(-frac.max(axis=0), kind="stable") if m else np.arange(n_clusters)
    for c in best_first:  # loop over the ~11 clusters only
        ranked = np.lexsort((np.arange(m), -frac[:, c]))
        ranked = ranked[(frac[ranked, c] > 0) & ~taken[ranked]]
        if groups is not None:
            g = gcodes[ranked]
            ranked = ranked[g >= 0]
            _, first = np.unique(gcodes[ranked], return_index=True)
            ranked = ranked[np.sort(first)]
        chosen = ranked[:n]
        picks[c, : chosen.size] = chosen
        if distinct:
            taken[chosen] = True
    return picks


def localize(
    spectrum: Any,
    family_spectra: Mapping[str, Any] | Any,
    *,
    families: Any = None,
) -> list[tuple[str, float]]:
    """Rank localization families by the correlation of their spectrum with a protein's.

    The paper's FAM241A example (Fig. 4c–e): the spectrum of a protein of unknown
    localization correlates best with the consensus spectrum of ER proteins.

    Parameters
    ----------
    spectrum : (K,) array_like
        Feature spectrum of the query protein.
    family_spectra : mapping of str to (K,) array_like, or (F, K) array_like
        Consensus spectrum per family (e.g. from :func:`mean_by_label`).
    families : (F,) sequence of str, optional
        Family names when ``family_spectra`` is an array.

    Returns
    -------
    ranking : list of (str, float)
        ``(family, pearson_r)`` from most to least correlated (NaN — constant spectra —
        last).

    Raises
    ------
    ValueError
        If lengths disagree or names are missing.

    Examples
    --------
    >>> fams = {"er": [5, 1, 0, 0], "nucleolus": [0, 0, 4, 6], "golgi": [1, 4, 1, 0]}
    >>> [name for name, r in localize([4, 2, 0, 1], fams)]
    ['er', 'golgi', 'nucleolus']
    """
    if isinstance(family_spectra, Mapping):
        names = [str(k) for k in family_spectra]
        F = np.stack(
            [as_float_array(v, f"family_spectra[{k!r}]") for k, v in family_spectra.items()]
        )
    else:
        F = as_float_array(family_spectra, "family_spectra", ndim=2)
        if families is None:
            raise ValueError("`families` (names) is required when `family_spectra` is an array")
        names = [str(f) for f in families]
        if len(names) != F.shape[0]:
            raise ValueError(
                f"`families` has {len(names)} names but `family_spectra` has {F.shape[0]} rows"
            )
    s = as_float_array(spectrum, "spectrum", ndim=1)
    if F.ndim != 2 or F.shape[1] != s.shape[0]:
        raise ValueError(
            f"`spectrum` has {s.shape[0]} codes but family spectra have shape {F.shape}"
        )
    fz = F - F.mean(axis=1, keepdims=True)
    sz = s - s.mean()
    denom = np.linalg.norm(fz, axis=1) * np.linalg.norm(sz)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, fz @ sz / np.where(denom > 0, denom, 1.0), np.nan)
    order = np.lexsort((np.arange(r.size), np.where(np.isnan(r), np.inf, -r)))
    return [(names[i], float(r[i])) for i in order]


def _loo_localization_accuracy(spectra: np.ndarray, families: np.ndarray) -> float | None:
    """Fraction of labelled proteins whose best-correlated family (leave-one-out) is theirs."""
    lab = np.array([f is not None for f in families])
    if lab.sum() < 3:
        return None
    S = spectra[lab]
    fam = families[lab].astype(str)
    names, inverse = np.unique(fam, return_inverse=True)
    counts = np.bincount(inverse, minlength=names.size)
    if names.size < 2:
        return None
    sums = np.zeros((names.size, S.shape[1]))
    np.add.at(sums, inverse, S)
    means = sums / counts[:, None]

    def _z(a: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=-1, keepdims=True)
        n = np.linalg.norm(a, axis=-1, keepdims=True)
        return a / np.where(n > 0, n, 1.0)

    r = _z(S) @ _z(means).T  # (G, F)
    own_n = counts[inverse]
    loo = (sums[inverse] - S) / np.maximum(own_n - 1, 1)[:, None]
    r_own = np.einsum("ij,ij->i", _z(S), _z(loo))
    rows = np.arange(S.shape[0])
    r[rows, inverse] = np.where(own_n > 1, r_own, -np.inf)  # singleton families can't be hit
    valid = own_n > 1
    return float(np.mean(np.argmax(r[valid], axis=1) == inverse[valid])) if valid.any() else None
