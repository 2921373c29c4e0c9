"""UMAP atlases with a pluggable backend (umap-learn on CPU, cuML on GPU), imported lazily."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from cyto._optional import require
from cyto.analysis._validate import as_float_array

__all__ = ["AtlasUMAP", "aligned_umap", "umap_embed"]

_BACKENDS = ("auto", "umap", "cuml")


def _import_umap(purpose: str) -> Any:
    """Import umap-learn, silencing its ImportWarning about the optional TensorFlow."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ImportWarning)
        return require("umap", "umap", purpose=purpose)


def _resolve_backend(backend: str) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"`backend` must be one of {list(_BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "cuml" if importlib.util.find_spec("cuml") is not None else "umap"
    return backend


class AtlasUMAP:
    """UMAP estimator (scikit-learn style) with the paper's defaults and a backend switch.

    Fit on one split (e.g. the training crops) and place another (e.g. the test crops)
    in the same map with :meth:`transform`.

    Parameters
    ----------
    n_neighbors : int, default 15
        Size of the local neighbourhood (umap-learn default, as in the paper).
    min_dist : float, default 0.1
        Minimum distance between embedded points (umap-learn default).
    n_components : int, default 2
        Dimension of the embedding.
    metric : str, default "euclidean"
        Distance in the input space.
    random_state : int, optional
        Seed; makes umap-learn deterministic (and single-threaded).
    backend : {"auto", "umap", "cuml"}, default "auto"
        ``"umap"``: umap-learn (CPU). ``"cuml"``: RAPIDS cuML's GPU UMAP (an
        ``ImportError`` names the package to install when missing). ``"auto"``: cuML
        when it is installed, else umap-learn. The choice is stored in ``backend_``.

    Attributes
    ----------
    backend_ : str
        The backend used by :meth:`fit`.
    reducer_ : object
        The fitted ``umap.UMAP`` or ``cuml.UMAP`` instance.
    embedding_ : (n, n_components) ndarray
        Embedding of the data given to :meth:`fit`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> train, test = rng.normal(size=(200, 8)), rng.normal(size=(20, 8))
    >>> atlas = AtlasUMAP(random_state=0, backend="umap").fit(train)  # doctest: +SKIP
    >>> atlas.embedding_.shape, atlas.transform(test).shape  # doctest: +SKIP
    ((200, 2), (20, 2))
    """

    def __init__(
        self,
        *,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        n_components: int = 2,
        metric: str = "euclidean",
        random_state: int | None = None,
        backend: str = "auto",
    ) -> None:
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_components = n_components
        self.metric = metric
        self.random_state = random_state
        self.backend = backend

    def _validate(self, n: int) -> str:
        if not isinstance(self.n_neighbors, (int, np.integer)) or self.n_neighbors < 2:
            raise ValueError(f"`n_neighbors` must be an integer >= 2, got {self.n_neighbors!r}")
        if self.n_neighbors >= n:
            raise ValueError(
                f"`n_neighbors` ({self.n_neighbors}) must be smaller than the number of "
                f"points ({n})"
            )
        if not 0.0 <= float(self.min_dist):
            raise ValueError(f"`min_dist` must be >= 0, got {self.min_dist!r}")
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ValueError(
                f"`n_components` must be a positive integer, got {self.n_components!r}"
            )
        return _resolve_backend(self.backend)

    def _make(self, backend: str) -> Any:
        kwargs = dict(
            n_neighbors=int(self.n_neighbors),
            min_dist=float(self.min_dist),
            n_components=int(self.n_components),
            metric=self.metric,
            random_state=self.random_state,
        )
        if backend == "cuml":
            cuml = require("cuml", "cuml", purpose="GPU UMAP (backend='cuml')")
            return cuml.UMAP(**kwargs)
        umap = _import_umap("UMAP embeddings")
        return umap.UMAP(**kwargs)

    def fit(self, X: Any, y: Any = None) -> AtlasUMAP:
        """Fit the map on ``X`` (n, d); returns ``self``."""
        X = as_float_array(X, "X", ndim=2)
        self.backend_ = self._validate(X.shape[0])
        self.n_features_in_ = int(X.shape[1])  # the estimator contract's name
        self.reducer_ = self._make(self.backend_)
        with warnings.catch_warnings():
            # umap-learn warns that a seed disables parallelism: that is the point of a seed
            warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
            self.embedding_ = np.asarray(self.reducer_.fit_transform(X), dtype=np.float32)
        self._fit_X = X  # for place(): a reference, not a copy
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit on ``X`` and return its embedding (n, n_components)."""
        return self.fit(X).embedding_

    def transform(self, X: Any) -> np.ndarray:
        """Place new points ``X`` (n, d) in the fitted map."""
        if not hasattr(self, "reducer_"):
            raise ValueError("this AtlasUMAP is not fitted yet; call `fit` first")
        X = as_float_array(X, "X", ndim=2)
        expected = self.n_features_in_
        if X.shape[1] != expected:
            raise ValueError(f"`X` has {X.shape[1]} features, the map was fit on {expected}")
        return np.asarray(self.reducer_.transform(X), dtype=np.float32)

    def place(self, X: Any, *, block: int = 8192) -> np.ndarray:
        """Place new points ``X`` (n, d) at the mean position of their nearest fitted points.

        A fast alternative to :meth:`transform` for large ``X``: each point goes to the
        distance-weighted mean of the map positions of its ``n_neighbors`` nearest
        neighbours among the fitted points (Euclidean, or the fitted ``metric`` where
        scikit-learn has it), without UMAP's optimisation of the new points. Measured
        on 10⁵ 64-dimensional encodings (``benchmarks/results/scale.md``): faster than
        umap-learn's ``transform`` (which takes about 30 minutes for 10⁶ points on 2
        cores), and Γ reads about 9% higher than a full fit's: placed points sit a little
        tighter than optimised ones.
        """
        from sklearn.neighbors import NearestNeighbors

        if not hasattr(self, "reducer_"):
            raise ValueError("this AtlasUMAP is not fitted yet; call `fit` first")
        X = as_float_array(X, "X", ndim=2)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"`X` has {X.shape[1]} features, the map was fit on {self.n_features_in_}"
            )
        index = NearestNeighbors(n_neighbors=int(self.n_neighbors), metric=self.metric)
        index.fit(self._fit_X)
        out = np.empty((X.shape[0], self.embedding_.shape[1]), dtype=np.float32)
        for start in range(0, X.shape[0], block):
            dist, nn = index.kneighbors(X[start : start + block])
            weight = 1.0 / np.maximum(dist, 1e-12)
            weight /= weight.sum(axis=1, keepdims=True)
            out[start : start + block] = np.einsum("nk,nkc->nc", weight, self.embedding_[nn])
        return out


def umap_embed(
    X: Any,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_components: int = 2,
    metric: str = "euclidean",
    random_state: int | None = None,
    backend: str = "auto",
    fit_on: Any = None,
    placement: str = "transform",
) -> np.ndarray:
    """Embed points with UMAP (paper defaults: Euclidean, 15 neighbours, min_dist 0.1).

    Parameters
    ----------
    X : (n, d) array_like
        Features to embed (e.g. the flattened global encodings of the test crops).
    n_neighbors, min_dist, n_components, metric, random_state, backend
        See :class:`AtlasUMAP`.
    fit_on : (n_fit, d) array_like, optional
        Fit the map on these points (e.g. the training split) and *transform* ``X``
        into it. By default the map is fit on ``X`` itself. Use :class:`AtlasUMAP`
        directly to keep the fitted reducer.
    placement : {"transform", "neighbors"}, default "transform"
        How ``X`` is placed in a map fit on ``fit_on``: UMAP's own ``transform``, or
        :meth:`AtlasUMAP.place` (the mean position of the nearest fitted points; the
        fast path for 10⁶ points).

    Returns
    -------
    embedding : (n, n_components) float32 ndarray

    Raises
    ------
    ValueError
        On bad shapes, NaN/inf, ``n_neighbors >= n`` or an unknown backend.
    ImportError
        If the requested backend's package is not installed (names the extra).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> umap_embed(X, random_state=0, backend="umap").shape  # doctest: +SKIP
    (100, 2)
    """
    atlas = AtlasUMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        n_components=n_components,
        metric=metric,
        random_state=random_state,
        backend=backend,
    )
    if fit_on is None:
        _check_placement(placement)
        return atlas.fit_transform(X)
    return _place_into(atlas.fit(fit_on), X, placement)


PLACEMENTS = ("transform", "neighbors")


def _check_placement(placement: str) -> None:
    if placement not in PLACEMENTS:
        raise ValueError(f"`placement` must be one of {list(PLACEMENTS)}, got {placement!r}")


def _place_into(atlas: AtlasUMAP, X: Any, placement: str = "transform") -> np.ndarray:
    """Points ``X`` in the fitted map of ``atlas``: :meth:`AtlasUMAP.transform`
    (``"transform"``) or :meth:`AtlasUMAP.place` (``"neighbors"``)."""
    _check_placement(placement)
    return atlas.transform(X) if placement == "transform" else atlas.place(X)


def aligned_umap(
    datasets: Sequence[Any],
    *,
    relations: Sequence[dict[int, int]] | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_components: int = 2,
    metric: str = "euclidean",
    alignment_regularisation: float = 1e-2,
    alignment_window_size: int = 3,
    n_epochs: int | None = None,
    random_state: int | None = None,
) -> list[np.ndarray]:
    """Aligned UMAPs of several feature sets, e.g. one per model variant (Supp. Figs. 11–12).

    umap-learn's ``AlignedUMAP`` embeds each dataset while pulling related points of
    consecutive datasets towards the same place, so maps of model variants can be compared
    panel by panel.

    Parameters
    ----------
    datasets : sequence of (n_i, d_i) array_like
        One feature array per variant (at least 2). Dimensions may differ.
    relations : sequence of dict, optional
        ``relations[i]`` maps row indices of ``datasets[i]`` to rows of
        ``datasets[i + 1]``. By default all datasets must have the same rows (the same
        crops embedded by different models) and row ``r`` is related to row ``r``.
    n_neighbors, min_dist, n_components, metric, random_state
        As in :func:`umap_embed`.
    alignment_regularisation : float, default 1e-2
        Strength of the pull between related points.
    alignment_window_size : int, default 3
        How many neighbouring datasets each alignment considers.
    n_epochs : int, optional
        Optimisation epochs (umap-learn's default, 200, when None).

    Returns
    -------
    embeddings : list of (n_i, n_components) float32 ndarray

    Raises
    ------
    ValueError
        If fewer than two datasets are given, or their lengths differ without
        ``relations``, or ``relations`` has the wrong length.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(60, 4)); b = a + rng.normal(scale=0.1, size=a.shape)
    >>> [e.shape for e in aligned_umap([a, b], random_state=0)]  # doctest: +SKIP
    [(60, 2), (60, 2)]
    """
    if isinstance(datasets, np.ndarray) or len(datasets) < 2:
        raise ValueError("`datasets` must be a list of at least 2 feature arrays")
    arrays = [as_float_array(x, f"datasets[{i}]", ndim=2) for i, x in enumerate(datasets)]
    if relations is None:
        sizes = {a.shape[0] for a in arrays}
        if len(sizes) != 1:
            raise ValueError(
                f"`datasets` have different numbers of rows {[a.shape[0] for a in arrays]}; "
                "pass `relations` to say which rows correspond"
            )
        identity = {i: i for i in range(arrays[0].shape[0])}
        relations = [identity] * (len(arrays) - 1)
    elif len(relations) != len(arrays) - 1:
        raise ValueError(
            f"`relations` must have len(datasets) - 1 = {len(arrays) - 1} entries, "
            f"got {len(relations)}"
        )
    smallest = min(a.shape[0] for a in arrays)
    if not 2 <= n_neighbors < smallest:
        raise ValueError(
            f"`n_neighbors` must be in [2, {smallest}) (smallest dataset), got {n_neighbors}"
        )
    umap = _import_umap("aligned UMAP embeddings")
    mapper = umap.AlignedUMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        n_components=n_components,
        metric=metric,
        alignment_regularisation=alignment_regularisation,
        alignment_window_size=alignment_window_size,
        random_state=random_state,
        **({} if n_epochs is None else {"n_epochs": int(n_epochs)}),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
        mapper.fit(arrays, relations=list(relations))
    return [np.asarray(e, dtype=np.float32) for e in mapper.embeddings_]
