"""Retrieval metrics of image-based profiling: average precision per query, mAP per group
with permutation p-values and Benjamini–Hochberg FDR (as ``copairs`` defines them, Kalinin
et al., Nat. Commun. 2025), and complex recall (arrays in, arrays out; no torch).

Why not ``copairs`` itself: it lists every (query, candidate) pair in memory before ranking,
so its memory grows with n²; here the candidates of a block of queries are ranked at once
from one matrix product (memory ≈ block × n), with the same definitions — the tests check
the numbers against ``copairs`` to 1e-6.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cyto.analysis._validate import encode_labels

__all__ = [
    "RetrievalResult",
    "average_precision",
    "benjamini_hochberg",
    "complex_recall",
    "mean_average_precision",
    "random_ap",
]


@dataclass
class RetrievalResult:
    """Average precision of every query.

    Attributes
    ----------
    ap : (n,) float64 ndarray
        Average precision of each profile as a query (NaN: no positive, or unlabelled).
    n_pos, n_total : (n,) int64 ndarray
        Positives and candidates (positives + negatives) of each query.
    labels : (n,) object ndarray
        The label each query was matched on (None: not a query).
    """

    ap: np.ndarray
    n_pos: np.ndarray
    n_total: np.ndarray
    labels: np.ndarray = field(repr=False)


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _similarity(X: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        return X[rows] @ X.T
    sq = (X**2).sum(1)
    d2 = sq[rows, None] + sq[None, :] - 2.0 * (X[rows] @ X.T)
    return -np.sqrt(np.maximum(d2, 0.0))  # higher = more similar


def average_precision(
    X: Any,
    labels: Any,
    *,
    differ: Any = None,
    metric: str = "cosine",
    block_size: int | None = None,
) -> RetrievalResult:
    """Average precision of each profile retrieving the profiles that share its label.

    For query ``q`` the candidates are every other labelled profile; its positives share
    ``labels[q]`` (and, with ``differ``, have another ``differ`` value — e.g. the same
    protein imaged on another plate); its negatives have another label. Candidates are
    ranked by similarity to ``q``; AP = mean over positives of the precision at their
    rank (``copairs``' definition, pos_sameby=label, pos_diffby=differ,
    neg_diffby=label). Same-label profiles that fail ``differ`` are neither positive nor
    negative.

    Parameters
    ----------
    X : (n, d) array_like
        Profiles.
    labels : (n,) array_like
        Label to match (None / "" = unlabelled: neither query nor candidate).
    differ : (n,) array_like, optional
        A label positives must *not* share with the query (e.g. plate or batch).
    metric : {"cosine", "euclidean"}, default "cosine"
        Similarity used for ranking.
    block_size : int, optional
        Queries ranked at once (default: ≈ 2²⁴ / n, memory ≈ 16 × block × n bytes).

    Returns
    -------
    RetrievalResult

    Raises
    ------
    ValueError
        If the shapes disagree or the metric is unknown.

    Examples
    --------
    >>> X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    >>> average_precision(X, ["a", "a", "b", "b"]).ap.tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    X = np.asarray(X, dtype=np.float64)
    lab = np.asarray(labels, dtype=object)
    if X.ndim != 2 or len(X) != len(lab):
        raise ValueError(f"`X` must be (n, d) with one label per row, got {X.shape}, {lab.shape}")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"`metric` must be 'cosine' or 'euclidean', got {metric!r}")
    n = len(X)
    codes = encode_labels(labels, n)[0]  # -1: unlabelled (None, "", NaN, -1)
    ok = codes >= 0
    diff = None
    if differ is not None:
        d = np.asarray(differ).astype(str)
        if d.shape != (n,):
            raise ValueError(f"`differ` must have one value per row, got shape {d.shape}")
        diff = np.unique(d, return_inverse=True)[1]
    if metric == "cosine":
        X = _unit_rows(X)
    ap = np.full(n, np.nan)
    n_pos = np.zeros(n, dtype=np.int64)
    n_total = np.zeros(n, dtype=np.int64)
    queries = np.flatnonzero(ok)
    step = block_size or max(1, (1 << 24) // max(n, 1))
    for a in range(0, queries.size, step):
        rows = queries[a : a + step]
        ap[rows], n_pos[rows], n_total[rows] = _block_ap(X, rows, codes, diff, metric)
    return RetrievalResult(ap, n_pos, n_total, np.where(ok, lab, None))


def _block_ap(
    X: np.ndarray, rows: np.ndarray, codes: np.ndarray, diff: np.ndarray | None, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP, positives and candidates of a block of queries (one sort per block)."""
    b, n = rows.size, codes.size
    S = _similarity(X, rows, metric)
    same = codes[rows, None] == codes[None, :]
    cand = (codes[None, :] >= 0) & (np.arange(n)[None, :] != rows[:, None])
    pos = same & cand
    if diff is not None:
        ok_pos = diff[rows, None] != diff[None, :]
        cand &= ~same | ok_pos  # same label, same batch: neither positive nor negative
        pos &= ok_pos
    finite = S[cand]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    width = hi - lo + 2.0
    # rows laid end to end on one axis: one sort and one search rank every positive
    keys = np.where(cand, S, lo - 1.0) + width * np.arange(b)[:, None]
    flat = np.sort(keys, axis=1).ravel()
    r, c = np.nonzero(pos)
    at = np.searchsorted(flat, keys[r, c], side="left") - r * n
    rank = n - at  # candidates at least as similar as this positive (itself included)
    order = np.lexsort((rank, r))
    r, rank = r[order], rank[order]
    counts = np.bincount(r, minlength=b)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(r.size) - first + 1  # the k-th positive of its query
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.bincount(r, weights=k / rank, minlength=b) / counts
    return np.where(counts > 0, ap, np.nan), counts, cand.sum(1)


def random_ap(null_size: int, n_pos: int, n_total: int, rng: np.random.Generator) -> np.ndarray:
    """AP of ``null_size`` random rankings of ``n_pos`` positives among ``n_total``.

    The positives' ranks are a uniform random subset of 1..n_total (drawn in chunks of
    rows, so memory stays ≈ 8 × 2²³ bytes whatever the sizes).
    """
    out = np.empty(null_size)
    step = max(1, (1 << 23) // max(n_total, 1))
    k = np.arange(1, n_pos + 1)
    for a in range(0, null_size, step):
        m = min(step, null_size - a)
        keys = rng.random((m, n_total))
        ranks = np.sort(np.argpartition(keys, n_pos - 1, axis=1)[:, :n_pos], axis=1) + 1
        out[a : a + m] = (k / ranks).mean(axis=1)
    return out


def benjamini_hochberg(p: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values); NaN stays NaN.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok])]
        scaled = p[order] * ok.size / np.arange(1, ok.size + 1)
        q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q


def mean_average_precision(
    result: RetrievalResult,
    *,
    null_size: int = 10000,
    seed: int = 0,
    threshold: float = 0.05,
) -> dict[str, Any]:
    """mAP per label, with a permutation p-value and FDR, and the overall mAP.

    The null of a group averages, over its queries, the AP of random rankings with the
    same number of positives and candidates (``copairs``' null); p = (1 + #null > mAP) /
    (1 + null_size); q-values by Benjamini–Hochberg over the groups.

    Parameters
    ----------
    result : RetrievalResult
        From :func:`average_precision`.
    null_size : int, default 10000
        Random rankings per (positives, candidates) configuration.
    seed : int, default 0
        Seed of the null.
    threshold : float, default 0.05
        Significance level of ``fraction_significant``.

    Returns
    -------
    summary : dict
        ``groups`` (list of dicts: ``label``, ``map``, ``p_value``, ``q_value``,
        ``n_queries``), ``map`` (mean over groups), ``fraction_significant`` (q <
        ``threshold``).
    """
    if isinstance(null_size, bool) or not isinstance(null_size, (int, np.integer)) or null_size < 1:
        raise ValueError(f"`null_size` must be a positive integer, got {null_size!r}")
    valid = np.isfinite(result.ap)
    labels = result.labels[valid].astype(str)
    names, inverse = np.unique(labels, return_inverse=True)
    conf = np.stack([result.n_pos[valid], result.n_total[valid]], axis=1)
    confs, conf_ix = np.unique(conf, axis=0, return_inverse=True)
    rng = np.random.default_rng(seed)
    nulls = np.stack([random_ap(null_size, int(k), int(t), rng) for k, t in confs])
    ap = result.ap[valid]
    groups = []
    for g, name in enumerate(names):
        members = inverse == g
        observed = float(ap[members].mean())
        null = nulls[conf_ix[members]].mean(axis=0)
        p = (1.0 + float((null > observed).sum())) / (1.0 + null_size)
        groups.append(
            {"label": str(name), "map": observed, "p_value": p, "n_queries": int(members.sum())}
        )
    q = benjamini_hochberg([g["p_value"] for g in groups])
    for g, qv in zip(groups, q):
        g["q_value"] = float(qv)
    return {
        "groups": groups,
        "map": float(np.mean([g["map"] for g in groups])) if groups else float("nan"),
        "fraction_significant": (
            float(np.mean([g["q_value"] < threshold for g in groups])) if groups else float("nan")
        ),
        "threshold": threshold,
        "null_size": null_size,
    }


def complex_recall(
    profiles: Any,
    proteins: Any,
    complexes: Mapping[str, str],
    *,
    k: int = 5,
    metric: str = "cosine",
    n_permutations: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Fraction of complex members whose ``k`` nearest proteins include another member.

    Parameters
    ----------
    profiles : (P, d) array_like
        One profile per protein.
    proteins : (P,) array_like of str
        Protein of each row.
    complexes : mapping of str to str
        Complex of each protein (proteins without one are neighbours, never queries).
    k : int, default 5
        Neighbours looked at.
    metric : {"cosine", "euclidean"}, default "cosine"
    n_permutations : int, default 1000
        Null: the complex labels shuffled among the labelled proteins.
    seed : int, default 0

    Returns
    -------
    summary : dict
        ``recall``, ``null_mean``, ``p_value`` ((1 + #null ≥ recall) / (1 + n)), ``k``,
        ``n_queries``.
    """
    X = np.asarray(profiles, dtype=np.float64)
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"`metric` must be 'cosine' or 'euclidean', got {metric!r}")
    names = [str(p) for p in proteins]
    lab = np.array([complexes.get(p) for p in names], dtype=object)
    codes = encode_labels(lab, len(names), name="proteins")[0]
    labelled = np.flatnonzero(codes >= 0)
    if labelled.size < 2 or len(X) < 2:
        raise ValueError("`complexes` must label at least two of the `proteins`")
    kk = min(int(k), len(X) - 1)
    S = _similarity(_unit_rows(X) if metric == "cosine" else X, labelled, metric)
    S[np.arange(labelled.size), labelled] = -np.inf
    nn = np.argpartition(-S, kk - 1, axis=1)[:, :kk]  # (queries, k) neighbour rows

    def recall(codes: np.ndarray) -> float:
        q = codes[labelled]
        hits = (codes[nn] == q[:, None]) & (codes[nn] >= 0)
        has_mate = np.bincount(q, minlength=q.max() + 1)[q] > 1
        return float(hits.any(axis=1)[has_mate].mean()) if has_mate.any() else float("nan")

    observed = recall(codes)
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    for i in range(n_permutations):
        perm = codes.copy()
        perm[labelled] = rng.permutation(codes[labelled])
        null[i] = recall(perm)
    return {
        "recall": observed,
        "null_mean": float(np.nanmean(null)),
        "p_value": (1.0 + float((null >= observed).sum())) / (1.0 + n_permutations),
        "k": kk,
        "n_queries": int(labelled.size),
    }
