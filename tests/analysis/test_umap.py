"""UMAP backends: lazy import, fit/transform across splits, aligned maps, errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from cyto.analysis import AtlasUMAP, aligned_umap, clustering_score, umap_embed


def test_import_is_cheap() -> None:
    code = (
        "import sys, cyto.analysis\n"
        "heavy = [m for m in ('umap', 'pynndescent', 'numba', 'matplotlib', 'torch', 'cuml')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 3, size=n)
    centres = rng.normal(scale=8.0, size=(3, 10))
    return centres[labels] + rng.normal(size=(n, 10)), labels


@pytest.mark.slow
def test_fit_on_train_transform_test_and_aligned(rng: np.random.Generator) -> None:
    X, y = blobs(rng, 240)
    train, test = X[:180], X[180:]
    emb = umap_embed(X, random_state=0, backend="umap")
    assert emb.shape == (240, 2) and emb.dtype == np.float32
    assert clustering_score(emb, y) > 2.0
    atlas = AtlasUMAP(random_state=0, backend="umap").fit(train)
    assert atlas.backend_ == "umap" and atlas.embedding_.shape == (180, 2)
    placed = atlas.transform(test)
    assert placed.shape == (60, 2)
    assert clustering_score(np.vstack([atlas.embedding_, placed]), y) > 2.0
    np.testing.assert_allclose(
        umap_embed(test, fit_on=train, random_state=0, backend="umap"), placed, atol=1e-4
    )
    with pytest.raises(ValueError, match="`X` has 3 features, the map was fit on 10"):
        atlas.transform(test[:, :3])


@pytest.mark.slow
def test_aligned_umap_keeps_corresponding_points_together(rng: np.random.Generator) -> None:
    X, y = blobs(rng, 90)
    a, b = aligned_umap([X, X * 2.0 + 1.0], random_state=0, n_neighbors=10, n_epochs=50)
    assert a.shape == b.shape == (90, 2)
    assert clustering_score(a, y) > 2.0 and clustering_score(b, y) > 2.0


def test_errors() -> None:
    X = np.zeros((20, 3))
    with pytest.raises(ValueError, match=r"`backend` must be one of \['auto', 'umap', 'cuml'\]"):
        umap_embed(X, backend="gpu")
    with pytest.raises(ValueError, match=r"`n_neighbors` \(15\) must be smaller"):
        umap_embed(X[:10])
    with pytest.raises(ValueError, match="not fitted"):
        AtlasUMAP().transform(X)
    with pytest.raises(ValueError, match="at least 2 feature arrays"):
        aligned_umap([X])
    with pytest.raises(ValueError, match="different numbers of rows"):
        aligned_umap([X, X[:10]])


@pytest.mark.skipif(importlib.util.find_spec("cuml") is not None, reason="cuML is installed")
def test_cuml_missing_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"cyto\[cuml\]"):
        umap_embed(np.random.default_rng(0).normal(size=(30, 3)), backend="cuml")


def test_place_puts_points_among_their_nearest_fitted_points():
    """The fast path for 10⁶ points: no optimisation, the mean of the neighbours' places."""
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)) * 6
    lab = np.repeat(np.arange(4), 60)
    X = centers[lab] + rng.normal(size=(240, 8))
    atlas = AtlasUMAP(random_state=0, backend="umap").fit(X[::2])
    placed = atlas.place(X[1::2])
    assert placed.shape == (120, 2) and placed.dtype == np.float32
    # a fitted point placed again lands where its neighbourhood is
    fitted_means = np.stack([atlas.embedding_[lab[::2] == k].mean(axis=0) for k in range(4)])
    nearest = np.argmin(((placed[:, None] - fitted_means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == lab[1::2]).mean() > 0.95
    via = umap_embed(X[1::2], random_state=0, backend="umap", fit_on=X[::2], placement="neighbors")
    np.testing.assert_allclose(via, placed, atol=1e-5)
    with pytest.raises(ValueError, match="`placement` must be"):
        umap_embed(X, fit_on=X, placement="nearest")
    with pytest.raises(ValueError, match="has 3 features"):
        atlas.place(X[:, :3])
