from __future__ import annotations

import numpy as np
import pytest

from cyto.analysis import baseline_features


def test_pixels_match_an_svd_pca(rng: np.random.Generator) -> None:
    x = rng.random((40, 8, 8))
    feats = baseline_features(x, pool=2, n_components=5)
    pooled = x.reshape(40, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(40, -1)
    pooled -= pooled.mean(axis=0)
    u, s, _ = np.linalg.svd(pooled, full_matrices=False)
    np.testing.assert_allclose(np.abs(feats["pixels"]), np.abs(u[:, :5] * s[:5]), atol=1e-9)


def test_intensity_statistics_are_standardized_and_separate_patterns(
    rng: np.random.Generator,
) -> None:
    dim = rng.random((10, 16, 16)) * 0.2
    bright = rng.random((10, 16, 16)) * 0.2 + 0.8
    f = baseline_features(np.concatenate([dim, bright]), n_components=3)["intensity"]
    np.testing.assert_allclose(f.mean(axis=0), 0.0, atol=1e-9)
    assert f[:10, 0].max() < f[10:, 0].min()  # mean intensity column


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        (np.zeros((4, 8)), {}, "`images` must be 3-D"),
        (np.full((2, 8, 8), np.nan), {}, "NaN"),
        (np.zeros((2, 9, 9)), {"pool": 2}, "`pool` must be a positive integer dividing"),
    ],
)
def test_bad_input(images: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        baseline_features(images, **kwargs)
