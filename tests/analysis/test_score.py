"""Clustering score Γ: hand-computed cases, invariances, unlabelled rule, errors, table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cyto.analysis import (
    class_medians,
    clustering_score,
    clustering_score_table,
    merge_score_tables,
)


def naive_score(X: np.ndarray, labels: list) -> float:
    """Direct transcription of the paper's formula, one class at a time."""
    X = np.asarray(X, dtype=float)
    classes = sorted({lab for lab in labels if lab is not None})
    centroids, sizes = [], []
    for c in classes:
        pts = X[[i for i, lab in enumerate(labels) if lab == c]]
        mu = np.median(pts, axis=0)
        centroids.append(mu)
        sizes.append(np.median(np.linalg.norm(pts - mu, axis=1)))
    centroids = np.array(centroids)
    spread = np.median(np.linalg.norm(centroids - np.median(centroids, axis=0), axis=1))
    return float(spread / np.median(sizes))


def test_hand_computed_two_classes() -> None:
    X = [[0, 0], [2, 0], [0, 2], [10, 0], [12, 0], [10, 2]]
    assert clustering_score(X, ["a"] * 3 + ["b"] * 3) == pytest.approx(2.5)


def test_hand_computed_three_classes_even_sizes() -> None:
    # class a: 4 points, median of an even count averages the two middle values
    X = np.array(
        [[0, 0], [1, 0], [0, 1], [1, 1], [10, 0], [10, 2], [10, 4], [0, 20], [3, 20], [6, 20]],
        dtype=float,
    )
    labels = ["a"] * 4 + ["b"] * 3 + ["c"] * 3
    # a: centroid (.5,.5), all distances sqrt(.5); b: centroid (10,2) dists 2,0,2 -> 2
    # c: centroid (3,20), dists 3,0,3 -> 3; median size = 2
    # centroids' median = (3, 2); distances: |(-2.5,-1.5)|, |(7,0)|=7, |(0,18)|=18
    # median of (2.92, 7, 18) = 7, so Γ = 7 / 2
    expected = np.median([math.hypot(2.5, 1.5), 7.0, 18.0]) / 2.0
    assert expected == pytest.approx(3.5)
    assert clustering_score(X, labels) == pytest.approx(expected)
    _, centroids, sizes, counts = class_medians(X, labels)
    np.testing.assert_allclose(centroids, [[0.5, 0.5], [10, 2], [3, 20]])
    np.testing.assert_allclose(sizes, [math.sqrt(0.5), 2, 3])
    assert counts.tolist() == [4, 3, 3]


def test_matches_naive_on_random_data(rng: np.random.Generator) -> None:
    X = rng.normal(size=(500, 3)) + rng.integers(0, 4, size=(500, 1))
    lab = rng.integers(0, 7, size=500)
    labels = [str(v) for v in lab]
    assert clustering_score(X, labels) == pytest.approx(naive_score(X, labels))
    assert clustering_score(X, lab) == pytest.approx(naive_score(X, labels))


def test_imbalanced_classes_match_naive(rng: np.random.Generator) -> None:
    # one huge class: the padded-table fast path is skipped for the segment-sort path
    lab = np.r_[np.zeros(2000, dtype=int), rng.integers(1, 10, size=1000)]
    X = rng.normal(size=(lab.size, 2)) + lab[:, None]
    labels = [str(v) for v in lab]
    assert clustering_score(X, lab) == pytest.approx(naive_score(X, labels))


def test_translation_scale_and_rotation_invariance(rng: np.random.Generator) -> None:
    X = rng.normal(size=(300, 2)) + 4 * rng.integers(0, 5, size=(300, 1))
    lab = rng.integers(0, 5, size=300)
    ref = clustering_score(X, lab)
    assert clustering_score(X * 7.5 - 3.0, lab) == pytest.approx(ref)
    assert clustering_score(X[:, ::-1] * [1, -1], lab) == pytest.approx(ref)  # 90° rotation


def test_unlabelled_points_are_ignored(rng: np.random.Generator) -> None:
    X = rng.normal(size=(60, 2))
    lab = np.repeat(np.arange(3), 20)
    ref = clustering_score(X, lab)
    outliers = rng.normal(scale=100, size=(4, 2))
    X2 = np.vstack([X, outliers])
    assert clustering_score(X2, [*lab.tolist(), None, "", float("nan"), -1]) == ref
    assert clustering_score(X2, np.r_[lab, [-1] * 4]) == ref
    assert clustering_score(X2, np.r_[lab.astype(float), [np.nan] * 4]) == ref
    str_lab = np.r_[lab.astype(str), [""] * 4]
    assert clustering_score(X2, str_lab) == ref
    # excluded classes are ignored like unlabelled points
    assert clustering_score(X2, np.r_[lab, [9] * 4], exclude=9) == ref
    assert clustering_score(X2, np.r_[str_lab[:60], ["others"] * 4], exclude=["others"]) == ref


def test_tight_clusters_score_higher(rng: np.random.Generator) -> None:
    centres = rng.normal(scale=10, size=(6, 2))
    lab = np.repeat(np.arange(6), 50)
    tight = centres[lab] + rng.normal(scale=0.5, size=(300, 2))
    loose = centres[lab] + rng.normal(scale=5.0, size=(300, 2))
    assert clustering_score(tight, lab) > 3 * clustering_score(loose, lab)


def test_accepts_array_likes_and_degenerate_sizes() -> None:
    class Wrapped:
        def __array__(self, dtype=None, copy=None):
            return np.array([[0, 0], [2, 0], [0, 2], [10, 0], [12, 0], [10, 2]], dtype=np.float16)

    assert clustering_score(Wrapped(), [0, 0, 0, 1, 1, 1]) == pytest.approx(2.5)
    assert clustering_score([[0.0], [1.0]], [0, 1]) == math.inf  # single-point classes
    assert math.isnan(clustering_score([[0.0], [0.0], [0.0]], [0, 1, 1]))


@pytest.mark.parametrize(
    ("X", "labels", "exc", "match"),
    [
        (np.zeros(4), [0, 0, 1, 1], ValueError, "`X` must be 2-D"),
        (np.zeros((4, 2)), [0, 1], ValueError, "`labels` has 2 entries but `X` has 4"),
        (np.zeros((4, 2)), [0, 0, 0, 0], ValueError, "at least 2 classes"),
        (np.zeros((4, 2)), [-1, -1, 0, 0], ValueError, "at least 2 classes"),
        ([[np.nan, 0], [0, 0]], [0, 1], ValueError, "NaN or infinite"),
        ([["a", "b"], ["c", "d"]], [0, 1], TypeError, "numeric"),
        (np.zeros((2, 2)), [[0], [1]], ValueError, "`labels` must be 1-D"),
    ],
)
def test_bad_input(X, labels, exc, match) -> None:
    with pytest.raises(exc, match=match):
        clustering_score(X, labels)


def test_score_table(rng: np.random.Generator) -> None:
    lab = np.repeat(["er", "golgi", "nucleolus", "mito"], 40)
    centres = {"er": (0, 0), "golgi": (6, 0), "nucleolus": (0, 6), "mito": (6, 6)}
    base = np.array([centres[c] for c in lab], dtype=float)
    cplx = np.where(np.arange(lab.size) % 2 == 0, lab, None)
    good = [base + rng.normal(scale=0.5, size=base.shape) for _ in range(4)]
    bad = [base + rng.normal(scale=4.0, size=base.shape) for _ in range(4)]
    table = clustering_score_table(
        {"full": good, "no pretext": bad}, {"organelle": lab, "complex": cplx}
    )
    assert table.variants == ("full", "no pretext")
    assert table.levels == ("organelle", "complex")
    vals = table.scores["full"]["organelle"]
    assert vals.shape == (4,)
    assert table.mean[0, 0] == pytest.approx(vals.mean())
    assert table.sem[0, 0] == pytest.approx(vals.std(ddof=1) / 2)
    assert table.mean[0, 0] > table.mean[1, 0]
    text = str(table)
    assert text.splitlines()[0] == "| model variant | organelle | complex |"
    assert f"{table.mean[1, 1]:.3f} ± {table.sem[1, 1]:.3f}" in text
    assert len(table.to_records()) == 4
    # umap_seeds path with an injected embedder: one score per (model, seed)
    calls = []

    def fake_embed(X, *, random_state):
        calls.append(random_state)
        return X[:, :2] + random_state * 0.0

    t2 = clustering_score_table(
        {"full": good[:2]}, {"organelle": lab}, umap_seeds=[0, 1, 2], embed=fake_embed
    )
    assert calls == [0, 1, 2, 0, 1, 2]
    assert t2.scores["full"]["organelle"].shape == (6,)
    with pytest.raises(ValueError, match="'full' appears in more than one table"):
        merge_score_tables([table, t2])
    t3 = clustering_score_table({"no VQ": bad[:2]}, {"complex": cplx})
    merged = merge_score_tables([table, t3])
    assert merged.variants == ("full", "no pretext", "no VQ")
    assert merged.levels == ("organelle", "complex")
    assert np.isnan(merged.mean[2, 0]) and merged.scores["no VQ"]["organelle"].size == 0
    np.testing.assert_allclose(merged.mean[:2], table.mean)
    with pytest.raises(ValueError, match="non-empty mapping"):
        clustering_score_table({}, {"organelle": lab})
    with pytest.raises(ValueError, match="no replicate"):
        clustering_score_table({"full": []}, {"organelle": lab})


def test_score_table_from_replicate_scores() -> None:
    from cyto.analysis import ScoreTable

    table = ScoreTable.from_scores(
        {"full": {"organelle": [3.0, 3.5], "complex": [6.0]}, "no VQ": {"organelle": [1.0, 1.5]}}
    )
    assert table.variants == ("full", "no VQ")
    assert table.levels == ("organelle", "complex")
    np.testing.assert_allclose(table.mean[:, 0], [3.25, 1.25])
    np.testing.assert_allclose(table.sem[0, 0], 0.25)
    assert np.isnan(table.mean[1, 1])  # level missing for a variant
    assert "3.250 ± 0.250" in table.to_markdown()
    with pytest.raises(ValueError, match="non-empty mapping"):
        ScoreTable.from_scores({})
    with pytest.raises(ValueError, match=r"`scores\['x'\]` must be a non-empty mapping"):
        ScoreTable.from_scores({"x": {}})
