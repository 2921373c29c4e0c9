"""Evaluation of encodings against a ground truth: Γ over UMAP seeds, k-NN family
accuracy, hidden-protein localization and model-free baselines, as one
:class:`Evaluation` (arrays in, numbers out; no torch)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cyto.analysis._baselines import baseline_features
from cyto.analysis._ground_truth import GroundTruth
from cyto.analysis._retrieval import average_precision, complex_recall, mean_average_precision
from cyto.analysis._score import clustering_score, mean_sem
from cyto.analysis._spectra import localize, mean_by_label
from cyto.analysis._umap import AtlasUMAP, _place_into

__all__ = [
    "Evaluation",
    "baseline_scores",
    "choose_hidden",
    "evaluate",
    "gamma_over_umaps",
    "knn_both_metrics",
    "knn_family_accuracy",
    "localize_hidden",
    "retrieval_scores",
    "umap_replicates",
]


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


def umap_replicates(
    X: Any,
    seeds: Sequence[int],
    *,
    fit: Any = None,
    log: Callable[[str], None] | None = None,
    **umap_options: Any,
) -> tuple[list[np.ndarray], str]:
    """One 2-D UMAP of ``X`` per seed (the paper scores over 10 of them).

    Parameters
    ----------
    X : (n, d) array_like
        Points to embed.
    seeds : sequence of int
        One UMAP per seed.
    fit : (m, d) array_like, optional
        Fit each map on these points and transform ``X`` into it.
    log : callable, optional
        Called with a line of progress per UMAP.
    **umap_options
        Options of :class:`~cyto.analysis.AtlasUMAP` (``n_neighbors``, ``min_dist``,
        ``backend``...), and ``placement`` (``"transform"`` or ``"neighbors"``: how
        ``X`` is placed in a map fit on ``fit``; see :func:`umap_embed`).

    Returns
    -------
    embeddings : list of (n, 2) ndarray
    backend : str
        The backend that ran.
    """
    X = np.asarray(X)
    placement = umap_options.pop("placement", "transform")
    out, backend = [], ""
    for seed in seeds:
        if log is not None:
            log(f"UMAP (seed {seed}) of {X.shape[0]} points × {X.shape[1]}")
        atlas = AtlasUMAP(random_state=int(seed), **umap_options)
        if fit is None:
            out.append(atlas.fit_transform(X))
        else:
            out.append(_place_into(atlas.fit(fit), X, placement))
        backend = atlas.backend_
    return out, backend


def gamma_over_umaps(
    umaps: Sequence[Any], crop_labels: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Γ of each UMAP per level, as mean ± s.e.m. (:func:`~cyto.analysis.mean_sem`).

    Parameters
    ----------
    umaps : sequence of (n, 2) array_like
        Replicate embeddings of the same points.
    crop_labels : mapping of str to (n,) array_like
        Label per point for each level (None: unlabelled).

    Returns
    -------
    scores : dict
        ``scores[level] = {"mean", "sem", "values"}``.
    """
    return {
        level: mean_sem([clustering_score(Y, labels) for Y in umaps])
        for level, labels in crop_labels.items()
    }


def baseline_scores(
    crops: Any,
    protein_ids: Any,
    ground_truth: GroundTruth,
    *,
    protein_channel: int = 0,
    seeds: Sequence[int] = (0,),
    umap_options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Clustering scores of model-free baselines: raw pixels and intensity statistics.

    Parameters
    ----------
    crops : (n, C, S, S) array_like
        Normalized crops.
    protein_ids : (n,) array_like of str
        Protein of each crop.
    ground_truth : GroundTruth
        Labels per level; levels with fewer than two classes among the crops are skipped.
    protein_channel : int, default 0
        Channel holding the tagged protein.
    seeds : sequence of int
        UMAP seeds.
    umap_options : mapping, optional
        Options of :class:`~cyto.analysis.AtlasUMAP`.

    Returns
    -------
    scores : dict
        ``scores[baseline][level] = {"mean", "sem", "values"}`` for baselines ``pixels``
        (protein channel → PCA(50) → UMAP) and ``intensity`` (per-crop statistics →
        UMAP), and ``scores[baseline]["retrieval"]`` (:func:`retrieval_scores` of the
        features).
    """
    labels = ground_truth.crop_labels(protein_ids, min_classes=2)
    if not labels:
        return {}
    feats = baseline_features(np.asarray(crops)[:, protein_channel])
    return {
        name: {
            **gamma_over_umaps(umap_replicates(X, seeds, **dict(umap_options or {}))[0], labels),
            "retrieval": retrieval_scores(X, protein_ids, ground_truth),
        }
        for name, X in feats.items()
    }


def retrieval_scores(
    X: Any,
    protein_ids: Any,
    ground_truth: GroundTruth,
    *,
    null_size: int = 1000,
    seed: int = 0,
    k: int = 5,
    max_crops: int = 10000,
) -> dict[str, Any]:
    """The profiling field's retrieval metrics of one representation.

    - ``protein``: crops retrieving the other crops of their protein (mAP per protein,
      at most ``max_crops`` crops, seeded sample) — consistency of the encodings;
    - ``family``: per-protein profiles (mean of their crops) retrieving the proteins of
      the same family (mAP per family, :attr:`GroundTruth.family_level`);
    - ``complex``: :func:`complex_recall` of the per-protein profiles.

    mAP values come with permutation p-values and Benjamini–Hochberg q-values
    (:func:`mean_average_precision`).

    Parameters
    ----------
    X : (n, ...) array_like
        Encodings of the crops (flattened).
    protein_ids : (n,) array_like of str
    ground_truth : GroundTruth
    null_size : int, default 1000
        Size of the permutation nulls.
    seed : int, default 0
    k : int, default 5
        Neighbours of complex recall.
    max_crops : int, default 10000
        Crops used for the crop-level protein mAP.

    Returns
    -------
    scores : dict
        ``{"protein": ..., "family": ..., "complex": ...}`` (a key is absent when it
        cannot be measured); each mAP entry holds ``map``, ``fraction_significant`` and
        per-group ``groups``.
    """
    X = np.asarray(X)  # no float64 copy of all crops: only of the sampled rows
    X = X.reshape(len(X), -1)
    pids = np.asarray(protein_ids).astype(str)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(X))
    if rows.size > max_crops:
        rows = np.sort(rng.choice(rows, size=max_crops, replace=False))
    out: dict[str, Any] = {}
    opts = {"null_size": null_size, "seed": seed}
    if np.unique(pids[rows]).size >= 2:
        r = average_precision(X[rows].astype(np.float64), pids[rows])
        out["protein"] = {**mean_average_precision(r, **opts), "n_crops": int(rows.size)}
    names, profiles = mean_by_label(X, pids)
    names = np.asarray(names).astype(str)
    family = ground_truth.family_level
    if family is not None:
        fam = ground_truth.labels(family, names)
        known = [v for v in fam if v is not None]
        # a family retrieves its other proteins: some family must have two
        if len(set(known)) >= 2 and len(set(known)) < len(known):
            out["family"] = mean_average_precision(average_precision(profiles, fam), **opts)
    cpx = ground_truth.levels.get("complex", {})
    if sum(str(p) in cpx for p in names) >= 2:
        out["complex"] = complex_recall(
            profiles, names, cpx, k=k, n_permutations=null_size, seed=seed
        )
    return out


def choose_hidden(
    proteins: Sequence[str], families: Mapping[str, str], *, seed: int = 0
) -> list[str]:
    """One protein per family (of the families with two or more ``proteins``), at random.

    Parameters
    ----------
    proteins : sequence of str
        Candidate proteins (e.g. those with a feature spectrum).
    families : mapping of str to str
        Family of each labelled protein.
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    hidden : list of str
        In family order.
    """
    by_family: dict[str, list[str]] = {}
    for p in proteins:
        if families.get(p):
            by_family.setdefault(str(families[p]), []).append(str(p))
    rng = np.random.default_rng(seed)
    # a hidden protein needs another protein of its family to build the consensus
    return [str(rng.choice(sorted(ps))) for _, ps in sorted(by_family.items()) if len(ps) > 1]


@dataclass
class Evaluation:
    """Everything :func:`evaluate` measured on one set of encodings.

    Attributes
    ----------
    n_crops : int
        Crops evaluated.
    scores : dict
        Γ per ground-truth level: ``{"mean", "sem", "values"}`` over the UMAP seeds.
    knn : dict of str to float
        k-NN family accuracy per metric (``"euclidean"``, ``"cosine"``); empty without a
        reference split.
    hidden : list of dict
        Hidden-protein localization rows (see :func:`localize_hidden`).
    baselines : dict
        Γ of model-free baselines, ``baselines[name][level]``, and their retrieval
        metrics, ``baselines[name]["retrieval"]``, measured on the same crops.
    retrieval : dict
        :func:`retrieval_scores`: protein-consistency mAP, family mAP (with p- and
        q-values) and complex recall.
    ground_truth : dict
        :meth:`GroundTruth.to_dict` of the labels used.
    umap : dict
        UMAP seeds, options and backend.
    notes : list of str
        What could not be measured and why.
    umaps : list of (n, 2) ndarray
        The UMAPs Γ was measured on (not serialised).
    """

    n_crops: int
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    knn: dict[str, float] = field(default_factory=dict)
    hidden: list[dict[str, Any]] = field(default_factory=list)
    baselines: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    retrieval: dict[str, Any] = field(default_factory=dict)
    ground_truth: dict[str, Any] = field(default_factory=dict)
    umap: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    umaps: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def hidden_hit_rate(self) -> float | None:
        """Fraction of hidden proteins whose family was ranked first (None: none hidden)."""
        return float(np.mean([r["hit"] for r in self.hidden])) if self.hidden else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every attribute but the UMAPs, plus ``hidden_hit_rate``."""
        return {
            "n_crops": self.n_crops,
            "scores": self.scores,
            "knn_family_accuracy": self.knn,
            "hidden_localization": self.hidden,
            "hidden_hit_rate": self.hidden_hit_rate,
            "baselines": self.baselines,
            "retrieval": self.retrieval,
            "ground_truth": self.ground_truth,
            "umap": self.umap,
            "notes": self.notes,
        }


def evaluate(
    encodings: Any,
    protein_ids: Any,
    ground_truth: GroundTruth,
    *,
    reference: tuple[Any, Any] | None = None,
    fit: Any = None,
    spectra: Any = None,
    crops: Any = None,
    protein_channel: int = 0,
    umap_seeds: Sequence[int] = (0,),
    umap_options: Mapping[str, Any] | None = None,
    hidden_seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Evaluation:
    """Evaluate encodings against a ground truth: the one evaluation of cyto.

    ``cyto analyze``, ``cyto demo`` and ``cyto ablate`` all call it.

    Parameters
    ----------
    encodings : (n, ...) array_like
        Global encodings of the crops evaluated (e.g. the test split); flattened.
    protein_ids : (n,) array_like of str
        Protein of each crop.
    ground_truth : GroundTruth
        Labels per level and what is excluded.
    reference : (encodings, protein_ids), optional
        Crops a k-NN classifier is fit on (e.g. the training split) to predict the family
        of ``encodings``; without it no k-NN accuracy.
    fit : array_like, optional
        Fit the UMAPs on these encodings and transform ``encodings`` into them.
    spectra : FeatureSpectra, optional
        Per-protein feature spectra (``groups``, ``spectra``): one protein per family is
        hidden (seeded by ``hidden_seed``) and localized from its spectrum.
    crops : (n, C, S, S) array_like, optional
        The crops of ``encodings``: the model-free baselines are scored on them.
    protein_channel : int, default 0
        Channel of ``crops`` holding the tagged protein.
    umap_seeds : sequence of int, default (0,)
        One UMAP per seed; Γ is reported as mean ± s.e.m. over them.
    umap_options : mapping, optional
        Options of :class:`~cyto.analysis.AtlasUMAP`.
    hidden_seed : int, default 0
        Seed of the hidden-protein draw.
    log : callable, optional
        Receives progress lines.

    Returns
    -------
    evaluation : Evaluation
    """
    X = np.asarray(encodings)
    X = X.reshape(len(X), -1).astype(np.float32, copy=False)
    pids = np.asarray(protein_ids)
    opts = dict(umap_options or {})
    few = _few_crops_neighbors(opts, len(X) if fit is None else len(fit))
    fit_x = None if fit is None else np.asarray(fit).reshape(len(fit), -1)
    umaps, backend = umap_replicates(X, umap_seeds, fit=fit_x, log=log, **opts)
    labels = ground_truth.crop_labels(pids, min_classes=2)
    ev = Evaluation(
        n_crops=len(X),
        scores=gamma_over_umaps(umaps, labels) if umaps else {},
        ground_truth=ground_truth.to_dict(),
        umap={"seeds": [int(s) for s in umap_seeds], **opts, "backend": backend},
        umaps=umaps,
    )
    ev.notes += few + [
        f"level '{lv}': fewer than 2 classes among the {len(X)} crops, not scored"
        for lv in ground_truth.levels
        if lv not in labels
    ]
    if ground_truth:
        ev.retrieval = retrieval_scores(X, pids, ground_truth, seed=hidden_seed)
    family = ground_truth.family_level
    if reference is not None and family is not None:
        ref_x, ref_p = reference
        ref_x = np.asarray(ref_x)
        ev.knn = knn_both_metrics(
            ref_x.reshape(len(ref_x), -1),
            ground_truth.labels(family, ref_p),
            X,
            ground_truth.labels(family, pids),
        )
    if spectra is not None and family is not None:
        ev.hidden = _hidden_rows(spectra, ground_truth.family_of(), hidden_seed)
    if crops is not None:
        ev.baselines = baseline_scores(
            crops,
            pids,
            ground_truth,
            protein_channel=protein_channel,
            seeds=umap_seeds,
            umap_options=opts,
        )
    return ev


def _few_crops_neighbors(opts: dict[str, Any], n: int) -> list[str]:
    """Lower the UMAP's ``n_neighbors`` below a small atlas's size (a note saying so)."""
    k = int(opts.get("n_neighbors", 15))
    if not 3 <= n <= k:
        return []
    opts["n_neighbors"] = n - 1
    return [f"UMAP n_neighbors lowered from {k} to {n - 1}: the atlas has only {n} crops"]


def _hidden_rows(spectra: Any, families: Mapping[str, str], seed: int) -> list[dict[str, Any]]:
    """Hide one protein per family and localize it from its spectrum."""
    proteins = [str(p) for p in spectra.groups]
    hidden = choose_hidden(proteins, families, seed=seed)
    return localize_hidden(spectra.spectra, proteins, families, hidden=hidden) if hidden else []
