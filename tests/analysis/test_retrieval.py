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
)


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
