"""Profile steps: aggregation, constant features, per-batch centring, sphering, Harmony."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from cyto._optional import MissingExtraError
from cyto.analysis import aggregate, center_scale_by_batch, drop_constant, harmony, sphere


def test_aggregate_mean_and_median() -> None:
    X = np.array([[0.0, 1], [2, 3], [10, 10], [5, 5]])
    names, prof = aggregate(X, ["b", "b", "a", "b"])
    assert names.tolist() == ["a", "b"]
    np.testing.assert_allclose(prof, [[10, 10], [7 / 3, 3]])
    np.testing.assert_allclose(aggregate(X, ["b", "b", "a", "b"], how="median")[1][1], [2, 3])
    with pytest.raises(ValueError, match="`how` must be"):
        aggregate(X, list("abab"), how="max")


def test_drop_constant_and_center_scale(rng: np.random.Generator) -> None:
    X = np.c_[rng.normal(size=(20, 2)), np.full(20, 3.0)]
    kept_x, kept = drop_constant(X)
    assert kept.tolist() == [0, 1] and kept_x.shape == (20, 2)
    batch = np.repeat(["p1", "p2"], 10)
    X[batch == "p2", :2] = 5 * X[batch == "p2", :2] + 100  # gain and offset on plate 2
    Y = center_scale_by_batch(X, batch)
    for b in ("p1", "p2"):
        np.testing.assert_allclose(Y[batch == b, :2].mean(0), 0, atol=1e-12)
        np.testing.assert_allclose(Y[batch == b, :2].std(0), 1)
    assert (Y[:, 2] == 0).all()  # a constant feature stays finite
    with pytest.raises(ValueError, match="one value per row"):
        center_scale_by_batch(X, batch[:5])


def test_sphere_whitens_on_the_reference_rows(rng: np.random.Generator) -> None:
    A = rng.normal(size=(500, 3)) @ np.array([[3, 0, 0], [1, 1, 0], [0, 0, 0.1]])
    Y = sphere(A, epsilon=0)
    np.testing.assert_allclose(np.cov(Y, rowvar=False), np.eye(3), atol=1e-8)
    controls = np.arange(500) < 250
    Yc = sphere(A, reference=controls, epsilon=0)
    np.testing.assert_allclose(np.cov(Yc[controls], rowvar=False), np.eye(3), atol=1e-8)
    with pytest.raises(ValueError, match="at least two rows"):
        sphere(A, reference=np.arange(500) == 0)


def test_harmony_needs_its_extra(rng: np.random.Generator) -> None:
    X = rng.normal(size=(40, 6))
    batch = np.repeat(["a", "b"], 20)
    if importlib.util.find_spec("harmonypy") is None:
        with pytest.raises(MissingExtraError, match=r"cyto\[harmony\]"):
            harmony(X, batch)
    else:
        assert harmony(X, batch, n_components=4).shape == (40, 4)
