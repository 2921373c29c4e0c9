"""Retrieval metrics: AP/mAP against copairs, p-values and FDR, complex recall."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cyto.analysis import (
    GroundTruth,
    average_precision,
    benjamini_hochberg,
    complex_recall,
    mean_average_precision,
    retrieval_scores,
    sample_queries,
)
from cyto.analysis._retrieval import random_ap


def _profiles(rng: np.random.Generator, n: int = 300, groups: int = 10, signal: float = 1.5):
    lab = rng.integers(0, groups, n)
    centres = rng.normal(size=(groups, 16))
    X = rng.normal(size=(n, 16)) + signal * centres[lab]
    return X, lab.astype(str), rng.integers(0, 3, n).astype(str)


@pytest.mark.parametrize("with_plate", [False, True])
def test_average_precision_matches_copairs(rng: np.random.Generator, with_plate: bool) -> None:
    pd = pytest.importorskip("pandas")
    copairs_map = pytest.importorskip("copairs.map")
    X, lab, plate = _profiles(rng)
    ours = average_precision(X, lab, differ=plate if with_plate else None, block_size=37)
    meta = pd.DataFrame({"lab": lab, "plate": plate})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = copairs_map.average_precision(
            meta,
            X,
            pos_sameby=["lab"],
            pos_diffby=["plate"] if with_plate else [],
            neg_sameby=[],
            neg_diffby=["lab"],
            progress_bar=False,
        )
    np.testing.assert_allclose(ours.ap, theirs["average_precision"].to_numpy(), atol=1e-6)
    np.testing.assert_array_equal(ours.n_pos, theirs["n_pos_pairs"].to_numpy())
    np.testing.assert_array_equal(ours.n_total, theirs["n_total_pairs"].to_numpy())


def test_map_p_values_separate_signal_from_noise(rng: np.random.Generator) -> None:
    X, lab, _ = _profiles(rng, signal=1.5)
    real = mean_average_precision(average_precision(X, lab), null_size=2000)
    noise = mean_average_precision(average_precision(rng.normal(size=X.shape), lab), null_size=2000)
    assert real["map"] > 0.5 > noise["map"]
    assert real["fraction_significant"] == 1.0
    assert noise["fraction_significant"] <= 0.2
    assert all(0 < g["p_value"] <= 1 and g["q_value"] >= g["p_value"] for g in noise["groups"])


def test_unlabelled_rows_are_neither_queries_nor_candidates() -> None:
    X = np.array([[1.0, 0], [0.9, 0.1], [0.95, 0.05], [0, 1], [0.1, 0.9]])
    r = average_precision(X, ["a", "a", None, "b", "b"])
    assert np.isnan(r.ap[2]) and r.n_total.tolist() == [3, 3, 0, 3, 3]
    assert r.ap[[0, 1, 3, 4]].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_benjamini_hochberg_matches_the_textbook() -> None:
    p = np.array([0.01, 0.02, 0.03, 0.04, 0.05, np.nan])
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q[:5], [0.05] * 5)
    assert np.isnan(q[5])
    np.testing.assert_allclose(benjamini_hochberg([0.5, 0.001]), [0.5, 0.002])


def test_complex_recall_against_shuffled_labels(rng: np.random.Generator) -> None:
    names = [f"P{i}" for i in range(40)]
    cpx = {p: f"c{i // 4}" for i, p in enumerate(names)}  # 10 complexes of 4
    centres = rng.normal(size=(10, 8)) * 3
    X = centres[np.arange(40) // 4] + rng.normal(size=(40, 8))
    res = complex_recall(X, names, cpx, k=3, n_permutations=200)
    assert res["recall"] == 1.0 and res["null_mean"] < 0.5 and res["p_value"] < 0.01
    with pytest.raises(ValueError, match="at least two"):
        complex_recall(X, names, {"P0": "c0"})


def test_retrieval_scores_of_crops(rng: np.random.Generator) -> None:
    proteins = np.repeat([f"P{i}" for i in range(12)], 10)
    fam = {f"P{i}": f"f{i % 3}" for i in range(12)}
    centres = rng.normal(size=(3, 8)) * 4
    X = centres[np.arange(120) // 10 % 3] + rng.normal(size=(120, 8))
    gt = GroundTruth({"organelle": fam, "complex": {"P0": "c", "P3": "c"}})
    out = retrieval_scores(X, proteins, gt, null_size=200)
    assert out["family"]["map"] > 0.9 and out["family"]["fraction_significant"] == 1.0
    assert out["protein"]["n_crops"] == 120
    assert out["complex"]["recall"] == 1.0


def test_bad_options_are_named(rng: np.random.Generator) -> None:
    X, lab, _ = _profiles(rng, n=40)
    with pytest.raises(ValueError, match="`metric` must be 'cosine' or 'euclidean'"):
        average_precision(X, lab, metric="l1")
    with pytest.raises(ValueError, match="one label per row"):
        average_precision(X, lab[:5])
    with pytest.raises(ValueError, match="`null_size` must be a positive integer"):
        mean_average_precision(average_precision(X, lab), null_size=0)
    names = [f"P{i}" for i in range(40)]
    with pytest.raises(ValueError, match="`metric` must be 'cosine' or 'euclidean'"):
        complex_recall(X, names, {"P0": "c", "P1": "c"}, metric="manhattan")


def _brute_ap(X: np.ndarray, lab: np.ndarray, differ: np.ndarray) -> np.ndarray:
    """AP by its definition, one query at a time (Euclidean; ties count as ranked above)."""
    out = np.full(len(X), np.nan)
    for q in range(len(X)):
        if lab[q] is None:
            continue
        sim = -np.sqrt(((X - X[q]) ** 2).sum(1))
        same = np.array([v == lab[q] for v in lab])
        pos = same & (differ != differ[q])
        cand = np.array([v is not None for v in lab]) & (~same | pos)
        cand[q] = pos[q] = False
        if not pos.any():
            continue
        ranks = np.sort([(sim[cand] >= sim[j]).sum() for j in np.flatnonzero(pos)])
        out[q] = np.mean(np.arange(1, ranks.size + 1) / ranks)
    return out


def test_average_precision_with_ties_matches_its_definition(rng: np.random.Generator) -> None:
    X = rng.integers(0, 3, size=(80, 2)).astype(float)  # many exact ties
    lab = rng.integers(0, 4, 80).astype(object)
    lab[::9] = None
    plate = rng.integers(0, 2, 80)
    ours = average_precision(X, lab, differ=plate, metric="euclidean", block_size=7)
    np.testing.assert_allclose(ours.ap, _brute_ap(X, lab, plate), atol=1e-12)


def test_sampled_queries_give_exact_aps_and_a_standard_error(rng: np.random.Generator) -> None:
    X, lab, _ = _profiles(rng, n=600, groups=12, signal=0.6)
    full = average_precision(X, lab)
    rows = sample_queries(lab, 6, seed=1)
    assert rows.size == 72 and np.unique(lab[rows], return_counts=True)[1].tolist() == [6] * 12
    part = average_precision(X, lab, queries=rows)
    np.testing.assert_allclose(part.ap[rows], full.ap[rows], atol=1e-12)
    assert np.isnan(np.delete(part.ap, rows)).all() and part.queried.sum() == 72
    exact = mean_average_precision(full, null_size=500)
    est = mean_average_precision(part, null_size=500)
    assert exact["map_sem"] == 0.0 and not exact["sampled"] and est["sampled"]
    assert 0 < est["map_sem"] < 0.05
    assert abs(est["map"] - exact["map"]) < 3 * est["map_sem"]
    assert all(g["n_queries"] == 6 and g["sem"] > 0 for g in est["groups"])
    everything = mean_average_precision(average_precision(X, lab, queries=sample_queries(lab, 999)))
    assert everything["map"] == pytest.approx(exact["map"]) and everything["map_sem"] == 0.0


def test_random_ap_draws_every_subset_equally_often() -> None:
    from itertools import combinations

    from cyto.analysis._retrieval import _distinct_ranks

    ranks = _distinct_ranks(30000, 2, 6, np.random.default_rng(0))
    assert (np.diff(ranks, axis=1) > 0).all()
    subsets = {c: i for i, c in enumerate(combinations(range(1, 7), 2))}
    counts = np.bincount([subsets[tuple(r)] for r in ranks.tolist()], minlength=15)
    expected = 30000 / 15
    assert ((counts - expected) ** 2 / expected).sum() < 36.1  # chi² 14 dof, p = 0.001
    rng = np.random.default_rng(1)
    direct = random_ap(20000, 3, 12, rng)  # drawn as subsets (3² ≤ 12)
    perm = np.argsort(rng.random((20000, 12)), axis=1)[:, :3] + 1  # ranks of a shuffle
    by_shuffle = (np.arange(1, 4) / np.sort(perm, axis=1)).mean(axis=1)
    se = np.sqrt((direct.var() + by_shuffle.var()) / 20000)
    assert abs(direct.mean() - by_shuffle.mean()) < 4 * se
    assert np.quantile(direct, 0.9) == pytest.approx(np.quantile(by_shuffle, 0.9), abs=0.02)


def test_bad_queries_are_named(rng: np.random.Generator) -> None:
    X, lab, _ = _profiles(rng, n=40)
    with pytest.raises(ValueError, match="`queries` must be row indices"):
        average_precision(X, lab, queries=[0, 40])
    with pytest.raises(ValueError, match="`queries` as a mask must have shape"):
        average_precision(X, lab, queries=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="`per_group` must be a positive integer"):
        sample_queries(lab, 0)


def test_groups_of_one_have_nothing_to_retrieve() -> None:
    X = np.random.default_rng(0).normal(size=(4, 3))
    with pytest.raises(ValueError, match="every group has one member"):
        mean_average_precision(average_precision(X, np.array(["a", "b", "c", "d"])))
    # a family per protein: no family mAP (nothing to retrieve), protein mAP still there
    gt = GroundTruth({"family": {p: p for p in "ab"}})
    pids = np.repeat(["a", "b"], 6)
    out = retrieval_scores(np.random.default_rng(1).normal(size=(12, 3)), pids, gt)
    assert "family" not in out and "protein" in out
