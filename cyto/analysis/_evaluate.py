"""Evaluation steps on encodings: k-NN family accuracy, hidden-protein localization and
model-free baselines (arrays in, numbers out; no torch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cyto.analysis._baselines import baseline_features
from cyto.analysis._score import clustering_score, mean_sem
from cyto.analysis._spectra import localize, mean_by_label
from cyto.analysis._umap import umap_embed

__all__ = ["baseline_scores", "knn_both_metrics", "knn_family_accuracy", "localize_hidden"]


def knn_family_accuracy(
    train_x: Any,
    train_labels: Any,
    test_x: Any,
    test_labels: Any,
    *,
    n_neighbors: int = 15,
    metric: str = "euclidean",
) -> float:
    """Accuracy of a k-nearest-neighbour classifier fit on one split.

    Parameters
    ----------
    train_x, test_x : (n, d) array_like
        Encodings of the reference and query crops.
    train_labels, test_labels : (n,) array_like of str
        Their labels (e.g. localization family).
    n_neighbors : int, default 15
        Neighbours voting for each query.
    metric : {"euclidean", "cosine"}, default "euclidean"
        Distance between encodings (cosine: Euclidean after L2 normalisation).

    Returns
    -------
    accuracy : float
        Fraction of query crops whose majority label is right.

    Raises
    ------
    ValueError
        If the arrays disagree in length or dimension, a split is empty or the metric
        is unknown.

    Examples
    --------
    >>> x = np.r_[np.zeros((5, 2)), np.ones((5, 2))]
    >>> y = np.array(["a"] * 5 + ["b"] * 5)
    >>> knn_family_accuracy(x, y, x + 0.1, y, n_neighbors=3)
    1.0
    """
    from sklearn.neighbors import KNeighborsClassifier

    tx, qx = np.asarray(train_x, dtype=np.float32), np.asarray(test_x, dtype=np.float32)
    ty, qy = np.asarray(train_labels), np.asarray(test_labels)
    if tx.ndim != 2 or qx.ndim != 2 or tx.shape[1] != qx.shape[1]:
        raise ValueError(
            f"`train_x` and `test_x` must be 2-D with the same width, got {tx.shape} and {qx.shape}"
        )
    if len(tx) != len(ty) or len(qx) != len(qy):
        raise ValueError("each encoding array must have one label per row")
    if len(tx) == 0 or len(qx) == 0:
        raise ValueError("both splits must hold at least one crop")
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"`metric` must be 'euclidean' or 'cosine', got {metric!r}")
    if metric == "cosine":
        tx = tx / np.maximum(np.linalg.norm(tx, axis=1, keepdims=True), 1e-12)
        qx = qx / np.maximum(np.linalg.norm(qx, axis=1, keepdims=True), 1e-12)
    clf = KNeighborsClassifier(n_neighbors=min(n_neighbors, len(tx)))
    clf.fit(tx.reshape(len(tx), -1), ty)
    return float((clf.predict(qx) == qy).mean())


def knn_both_metrics(
    train_x: np.ndarray, train_families: np.ndarray, test_x: np.ndarray, test_families: np.ndarray
) -> dict[str, float]:
    """:func:`knn_family_accuracy`, Euclidean and cosine, over the labelled crops only.

    Empty when either split has no labelled crop.
    """
    tr = np.array([f is not None for f in train_families], dtype=bool)
    te = np.array([f is not None for f in test_families], dtype=bool)
    if not tr.any() or not te.any():
        return {}
    return {
        metric: knn_family_accuracy(
            train_x[tr], train_families[tr], test_x[te], test_families[te], metric=metric
        )
        for metric in ("euclidean", "cosine")
    }


def localize_hidden(
    spectra: Any,
    proteins: Sequence[str],
    families: Mapping[str, str],
    *,
    hidden: Sequence[str],
) -> list[dict[str, Any]]:
    """Predict the family of hidden proteins from their feature spectra.

    The families of ``hidden`` are left out of the family consensus spectra (the mean
    spectrum of the other proteins of each family), then each hidden protein's spectrum
    is ranked against them with :func:`cyto.analysis.localize` (the paper's FAM241A
    analysis).

    Parameters
    ----------
    spectra : (P, K) array_like
        One feature spectrum per protein.
    proteins : (P,) sequence of str
        Protein ids of the rows.
    families : mapping of str to str
        Family of each annotated protein.
    hidden : sequence of str
        Proteins whose family is hidden and predicted.

    Returns
    -------
    rows : list of dict
        ``protein``, ``true``, ``predicted``, ``r`` (correlation of the best family),
        ``hit`` (bool) and ``top3`` per hidden protein.

    Raises
    ------
    ValueError
        If a hidden protein has no spectrum.
    """

    S = np.asarray(spectra, dtype=np.float64)
    proteins = [str(p) for p in proteins]
    missing = [h for h in hidden if h not in proteins]
    if missing:
        raise ValueError(f"`hidden` proteins have no spectrum: {missing}")
    known = np.array([p not in set(hidden) and p in families for p in proteins])
    labels = np.array([families.get(p, "") for p in proteins], dtype=object)
    names, means = mean_by_label(S[known], labels[known])
    rows = []
    for h in hidden:
        ranking = localize(S[proteins.index(h)], means, families=names)
        rows.append(
            {
                "protein": h,
                "true": families.get(h),
                "predicted": ranking[0][0],
                "r": round(float(ranking[0][1]), 3),
                "hit": ranking[0][0] == families.get(h),
                "top3": [name for name, _ in ranking[:3]],
            }
        )
    return rows


def baseline_scores(
    crops: Any,
    levels: Mapping[str, Any],
    *,
    protein_channel: int = 0,
    seeds: Sequence[int] = (0,),
    exclude: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Clustering scores of model-free baselines: raw pixels and intensity statistics.

    Parameters
    ----------
    crops : (n, C, S, S) array_like
        Normalized crops.
    levels : mapping of str to (n,) array_like
        Ground-truth label per crop for each level (e.g. ``{"organelle": ..., "complex": ...}``;
        unlabelled crops are None).
    protein_channel : int, default 0
        Channel holding the tagged protein.
    seeds : sequence of int
        UMAP seeds.
    exclude : mapping of str to labels, optional
        Labels left out of the score per level (e.g. ``{"organelle": ["mixed"]}``).

    Returns
    -------
    scores : dict
        ``scores[baseline][level] = {"mean", "sem", "values"}`` for baselines ``pixels``
        (protein channel → PCA(50) → UMAP) and ``intensity`` (per-crop statistics →
        UMAP).
    """

    feats = baseline_features(np.asarray(crops)[:, protein_channel])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, X in feats.items():
        per_level: dict[str, list[float]] = {lvl: [] for lvl in levels}
        for seed in seeds:
            Y = umap_embed(X, random_state=int(seed))
            for lvl, labels in levels.items():
                ex = None if exclude is None else exclude.get(lvl)
                per_level[lvl].append(clustering_score(Y, labels, exclude=ex))
        out[name] = {lvl: mean_sem(v) for lvl, v in per_level.items()}
    return out
