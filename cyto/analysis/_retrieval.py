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

from cyto.analysis._validate import encode_labels, random_rank_in_group

__all__ = [
    "RetrievalResult",
    "average_precision",
    "benjamini_hochberg",
    "complex_recall",
    "mean_average_precision",
    "random_ap",
    "sample_queries",
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
        The label of each profile (None: unlabelled).
    queried : (n,) bool ndarray or None
        The rows ranked as queries when only some were (``queries=``); None: every
        labelled row.
    """

    ap: np.ndarray
    n_pos: np.ndarray
    n_total: np.ndarray
    labels: np.ndarray = field(repr=False)
    queried: np.ndarray | None = field(default=None, repr=False)


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    norm = np.sqrt(np.einsum("ij,ij->i", X, X))[:, None]
    return X / np.maximum(norm, 1e-12)


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
    queries: Any = None,
) -> RetrievalResult:
    """Average precision of each profile retrieving the profiles that share its label.

    For query ``q`` the candidates are every other labelled profile; its positives share
    ``labels[q]`` (and, with ``differ``, have another ``differ`` value — e.g. the same
    protein imaged on another plate); its negatives have another label. Candidates are
    ranked by similarity to ``q``; AP = mean over positives of the precision at their
    rank (``copairs``' definition, pos_sameby=label, pos_diffby=differ,
    neg_diffby=label). Same-label profiles that fail ``differ`` are neither positive nor
    negative.

    Every query is ranked against every candidate, so the time grows as (queries × n × d):
    for very many profiles, rank a sample of queries (``queries=``,
    :func:`sample_queries`) — each sampled AP is still exact, and
    :func:`mean_average_precision` reports the standard error of the sampled mAP.

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
        Queries ranked at once (default: ≈ 2²⁴ / n, memory ≈ 24 × block × n bytes).
    queries : (k,) array_like of int or (n,) array_like of bool, optional
        Rows used as queries (default: every labelled row). All labelled rows stay
        candidates; the other rows get AP NaN.

    Returns
    -------
    RetrievalResult

    Raises
    ------
    ValueError
        If the shapes disagree, the metric is unknown or ``queries`` is not a set of rows.

    Notes
    -----
    Similarities are computed in float64; two that differ by less than about 10⁻¹⁶ ×
    (block size × similarity range) count as ties (rows are ranked on one shifted axis).

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
        diff = np.unique(d, return_inverse=True)[1][ok]
    queried = ok & _query_mask(queries, n)
    cands = np.flatnonzero(ok)  # the ranking runs on the labelled rows only
    Xc = _unit_rows(X[cands]) if metric == "cosine" else X[cands]
    qpos = np.flatnonzero(queried[cands])
    ccodes = np.unique(codes[cands], return_inverse=True)[1]
    members = _group_members(ccodes)
    ap = np.full(n, np.nan)
    n_pos = np.zeros(n, dtype=np.int64)
    n_total = np.zeros(n, dtype=np.int64)
    step = block_size or max(1, (1 << 24) // max(n, 1))
    for a in range(0, qpos.size, step):
        rows = qpos[a : a + step]
        at = cands[rows]
        ap[at], n_pos[at], n_total[at] = _block_ap(Xc, rows, ccodes, members, diff, metric)
    labels_out = np.where(ok, lab, None)
    return RetrievalResult(ap, n_pos, n_total, labels_out, None if queries is None else queried)


def _query_mask(queries: Any, n: int) -> np.ndarray:
    """``queries`` (row indices or a boolean mask) as an (n,) boolean mask."""
    if queries is None:
        return np.ones(n, dtype=bool)
    q = np.asarray(queries)
    if q.dtype == bool:
        if q.shape != (n,):
            raise ValueError(f"`queries` as a mask must have shape ({n},), got {q.shape}")
        return q
    if q.ndim != 1 or (q.size and (q.dtype.kind not in "iu" or q.min() < 0 or q.max() >= n)):
        raise ValueError(f"`queries` must be row indices in [0, {n}) or a boolean mask")
    mask = np.zeros(n, dtype=bool)
    mask[q] = True
    return mask


def sample_queries(labels: Any, per_group: int, *, seed: int = 0) -> np.ndarray:
    """Up to ``per_group`` random rows of every label, as query rows for a sampled mAP.

    Parameters
    ----------
    labels : (n,) array_like
        The labels :func:`average_precision` matches on (unlabelled rows are never drawn).
    per_group : int
        Queries per label (a label with fewer rows gives all of them).
    seed : int, default 0

    Returns
    -------
    rows : (k,) int64 ndarray
        Sorted row indices.

    Examples
    --------
    >>> sample_queries(["a", "a", "a", "b", None], 2).size
    3
    """
    if isinstance(per_group, bool) or not isinstance(per_group, (int, np.integer)) or per_group < 1:
        raise ValueError(f"`per_group` must be a positive integer, got {per_group!r}")
    codes = encode_labels(labels, len(np.asarray(labels)))[0]
    order, rank = random_rank_in_group(codes, np.random.default_rng(seed))
    return np.sort(order[(rank < per_group) & (codes[order] >= 0)])


def _group_members(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by label, where each label starts, and its size (codes 0..G-1)."""
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    return order, np.cumsum(sizes) - sizes, sizes


def _block_ap(
    X: np.ndarray,
    rows: np.ndarray,
    codes: np.ndarray,
    members: tuple[np.ndarray, np.ndarray, np.ndarray],
    diff: np.ndarray | None,
    metric: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP, positives and candidates of a block of queries (all rows of ``X`` labelled).

    Only the query's own label is listed pair by pair; the rank of each positive (the
    candidates at least as similar) is counted over the whole row from the similarities
    at or above the query's least similar positive — no sort of the rows.
    """
    order, starts, sizes = members
    b, n = rows.size, X.shape[0]
    S = _similarity(X, rows, metric)
    g = codes[rows]
    s = sizes[g]
    pr = np.repeat(np.arange(b), s)  # same-label pairs: query row, candidate column
    pc = order[np.repeat(starts[g], s) + np.arange(s.sum()) - np.repeat(np.cumsum(s) - s, s)]
    pos = pc != rows[pr]
    if diff is not None:
        pos &= diff[pc] != diff[rows[pr]]
    n_pos = np.bincount(pr[pos], minlength=b)
    n_total = n - np.bincount(pr[~pos], minlength=b)  # self and same-batch mates are out
    rank, row = _positive_ranks(S, pr, pc, pos)
    k = n_pos[row] - (np.arange(row.size) - np.repeat(np.cumsum(n_pos) - n_pos, n_pos))
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.bincount(row, weights=k / rank, minlength=b) / n_pos
    return np.where(n_pos > 0, ap, np.nan), n_pos, n_total


def _positive_ranks(
    S: np.ndarray, pr: np.ndarray, pc: np.ndarray, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of every positive (candidates with a similarity ≥ its own), sorted by row and
    rising similarity, and the row of each. Overwrites ``S``.

    Only the similarities at or above each row's least similar positive can rank above
    a positive: those are sorted, rows laid end to end on one axis (row r shifted by
    r × width, in place), and each positive finds its place among them with one search.
    Pairs of the query's label that are not candidates (itself, same-batch mates) are
    subtracted the same way.
    """
    b = S.shape[0]
    thr = np.full(b, np.inf)
    np.minimum.at(thr, pr[pos], S[pr[pos], pc[pos]])
    lowest = thr[np.isfinite(thr)].min(initial=0.0)
    width = float(S.max(initial=0.0)) - lowest + 1.0  # any row's span is below it
    shift = width * np.arange(b)
    S += shift[:, None]
    thr += shift
    pv = S[pr, pc]
    by_key = np.argsort(pv[pos])
    keys, row = pv[pos][by_key], pr[pos][by_key]

    def at_or_above(values: np.ndarray, per_row: np.ndarray) -> np.ndarray:
        """How many of ``values`` (``per_row`` in each row) are ≥ each key of its row."""
        values.sort()
        return np.cumsum(per_row)[row] - np.searchsorted(values, keys, side="left")

    hit = S >= thr[:, None]
    hits = at_or_above(S[hit], hit.sum(axis=1))
    out = ~pos & (pv >= thr[pr])
    mates = at_or_above(pv[out], np.bincount(pr[out], minlength=b))
    return (hits - mates).astype(np.float64), row


def random_ap(null_size: int, n_pos: int, n_total: int, rng: np.random.Generator) -> np.ndarray:
    """AP of ``null_size`` random rankings of ``n_pos`` positives among ``n_total``.

    The positives' ranks are a uniform random ``n_pos``-subset of 1..n_total. When
    positives are few against the candidates, each subset is drawn directly (rows with a
    repeated rank are drawn again, which keeps every subset equally likely), in time
    independent of ``n_total``; otherwise from random keys over all candidates, in
    chunks of rows (memory ≈ 8 × 2²³ bytes whatever the sizes).
    """
    if n_pos * n_pos <= n_total:  # a repeat is rare (probability ≲ 1/2 per row)
        return _ap_of_ranks(_distinct_ranks(null_size, n_pos, n_total, rng))
    out = np.empty(null_size)
    step = max(1, (1 << 23) // max(n_total, 1))
    for a in range(0, null_size, step):
        m = min(step, null_size - a)
        keys = rng.random((m, n_total))
        out[a : a + m] = _ap_of_ranks(np.argpartition(keys, n_pos - 1, axis=1)[:, :n_pos] + 1)
    return out


def _distinct_ranks(m: int, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(m, k) rows of k distinct integers drawn uniformly from 1..n (rejection)."""
    ranks = np.sort(rng.integers(1, n + 1, size=(m, k)), axis=1)
    bad = np.flatnonzero((np.diff(ranks, axis=1) == 0).any(axis=1))
    while bad.size:
        ranks[bad] = np.sort(rng.integers(1, n + 1, size=(bad.size, k)), axis=1)
        bad = bad[(np.diff(ranks[bad], axis=1) == 0).any(axis=1)]
    return ranks


def _ap_of_ranks(ranks: np.ndarray) -> np.ndarray:
    """AP of each row of positive ranks (1-based)."""
    ranks = np.sort(ranks, axis=1)
    return (np.arange(1, ranks.shape[1] + 1) / ranks).mean(axis=1)


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

    When only a sample of queries was ranked (``average_precision(..., queries=)``),
    each group's mAP is the mean of its sampled APs and comes with its standard error
    (``sem``: sample standard deviation / √m, with the finite-population correction
    √(1 − m / group size)); its p-value tests the sampled queries against the null of
    as many random queries, so it stays valid, with less power. Exact results have
    ``sem`` 0.

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
        ``groups`` (list of dicts: ``label``, ``map``, ``sem``, ``p_value``,
        ``q_value``, ``n_queries``), ``map`` (mean over groups) and ``map_sem`` (its
        standard error; NaN when a sampled group has a single query),
        ``fraction_significant`` (q < ``threshold``), ``sampled``.
    """
    if isinstance(null_size, bool) or not isinstance(null_size, (int, np.integer)) or null_size < 1:
        raise ValueError(f"`null_size` must be a positive integer, got {null_size!r}")
    valid = np.isfinite(result.ap)
    if not valid.any():
        raise ValueError(
            "no query has another member of its group to retrieve (every group has one "
            "member): mAP is undefined"
        )
    names, inverse = np.unique(result.labels[valid].astype(str), return_inverse=True)
    conf = np.stack([result.n_pos[valid], result.n_total[valid]], axis=1)
    confs, conf_ix = np.unique(conf, axis=0, return_inverse=True)
    rng = np.random.default_rng(seed)
    nulls = np.stack([random_ap(null_size, int(k), int(t), rng) for k, t in confs])
    sampled = result.queried is not None
    # an exact result ranked every query of a group: its mAP has no sampling error
    sizes = _group_sizes(result, names) if sampled else np.bincount(inverse, minlength=names.size)
    ap = result.ap[valid]
    by_group = np.argsort(inverse, kind="stable")
    ends = np.cumsum(np.bincount(inverse, minlength=names.size))
    starts = np.append(0, ends[:-1])
    groups = []
    for g, name in enumerate(names):
        members = by_group[starts[g] : ends[g]]
        observed = float(ap[members].mean())
        null = nulls[conf_ix[members]].mean(axis=0)
        groups.append(
            {
                "label": str(name),
                "map": observed,
                "sem": _sem(ap[members], sizes[g]),
                "p_value": (1.0 + float((null > observed).sum())) / (1.0 + null_size),
                "n_queries": int(members.size),
            }
        )
    return _summary(groups, threshold, null_size, sampled=sampled)


def _group_sizes(result: RetrievalResult, names: np.ndarray) -> np.ndarray:
    """Profiles of each label (the population a sampled group's queries came from)."""
    labelled = result.labels[result.labels != None].astype(str)  # noqa: E711
    uniq, counts = np.unique(labelled, return_counts=True)
    return counts[np.searchsorted(uniq, names)] if names.size else np.zeros(0, dtype=int)


def _sem(values: np.ndarray, population: int) -> float:
    """Standard error of the mean of ``values`` drawn without replacement."""
    m = values.size
    if m >= population:
        return 0.0
    if m < 2:
        return float("nan")
    return float(values.std(ddof=1) / np.sqrt(m) * np.sqrt(1.0 - m / population))


def _summary(groups: list[dict], threshold: float, null_size: int, *, sampled: bool) -> dict:
    """Overall mAP, its standard error and the FDR-controlled significance."""
    q = benjamini_hochberg([g["p_value"] for g in groups])
    for g, qv in zip(groups, q):
        g["q_value"] = float(qv)
    sem = np.array([g["sem"] for g in groups])
    return {
        "groups": groups,
        "map": float(np.mean([g["map"] for g in groups])) if groups else float("nan"),
        "map_sem": float(np.sqrt((sem**2).sum()) / sem.size) if groups else float("nan"),
        "fraction_significant": (
            float(np.mean([g["q_value"] < threshold for g in groups])) if groups else float("nan")
        ),
        "threshold": threshold,
        "null_size": null_size,
        "sampled": sampled,
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
