"""Evaluation steps: k-NN family accuracy, hidden-protein localization, mean ± s.e.m."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cyto.analysis import knn_family_accuracy, localize_hidden, mean_sem


def test_knn_family_accuracy_separates_clusters(rng: np.random.Generator) -> None:
    centres = np.array([[10.0, 10.0], [20.0, 0.0], [0.0, 20.0]])
    labels = np.repeat(["a", "b", "c"], 20)
    x = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 2))
    q = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 2))
    assert knn_family_accuracy(x, labels, q, labels, n_neighbors=5) == 1.0
    assert knn_family_accuracy(x, labels, q, labels, n_neighbors=5, metric="cosine") > 0.9
    shuffled = rng.permutation(labels)
    assert knn_family_accuracy(x, shuffled, q, labels, n_neighbors=5) < 0.7


def test_knn_family_accuracy_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError, match="same width"):
        knn_family_accuracy(np.zeros((4, 2)), list("aabb"), np.zeros((4, 3)), list("aabb"))
    with pytest.raises(ValueError, match="`metric` must be"):
        knn_family_accuracy(
            np.zeros((4, 2)), list("aabb"), np.zeros((4, 2)), list("aabb"), metric="l1"
        )
    with pytest.raises(ValueError, match="one label per row"):
        knn_family_accuracy(np.zeros((4, 2)), list("aab"), np.zeros((4, 2)), list("aabb"))


def test_localize_hidden_uses_only_the_other_proteins(rng: np.random.Generator) -> None:
    fam_profiles = {"er": np.r_[np.ones(5), np.zeros(5)], "golgi": np.r_[np.zeros(5), np.ones(5)]}
    proteins = ["p0", "p1", "p2", "p3", "p4", "p5"]
    families = {"p0": "er", "p1": "er", "p2": "er", "p3": "golgi", "p4": "golgi", "p5": "golgi"}
    spectra = np.stack([fam_profiles[families[p]] + 0.1 * rng.random(10) for p in proteins])
    rows = localize_hidden(spectra, proteins, families, hidden=["p0", "p5"])
    assert [r["predicted"] for r in rows] == ["er", "golgi"]
    assert all(r["hit"] for r in rows)
    with pytest.raises(ValueError, match="no spectrum"):
        localize_hidden(spectra, proteins, families, hidden=["zz"])


def test_mean_sem_is_one_definition_with_nan_for_one_value() -> None:
    from cyto.analysis import ScoreTable

    r = mean_sem([1.0, 2.0, 6.0])
    assert r["mean"] == 3.0 and r["sem"] == pytest.approx(np.std([1, 2, 6], ddof=1) / math.sqrt(3))
    t = ScoreTable.from_scores({"v": {"lvl": [1.0, 2.0, 6.0]}, "w": {"lvl": [4.0]}})
    assert t.sem[0, 0] == pytest.approx(r["sem"])
    assert math.isnan(mean_sem([4.0])["sem"]) and math.isnan(t.sem[1, 0])
    with pytest.raises(ValueError, match="at least one"):
        mean_sem([])
