"""cyto.analysis.handcrafted_features: shape, standardized columns, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from cyto.analysis import handcrafted_features


def _crops(n=12, s=16, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.random((n, s, s)), rng.uniform(-1, 1, (n, s, s))], axis=1)


def test_shape_and_standardized_columns():
    f = handcrafted_features(_crops())
    assert f.shape == (12, 44) and np.isfinite(f).all()
    np.testing.assert_allclose(f.mean(axis=0), 0, atol=1e-9)
    assert handcrafted_features(_crops(), distance_channel=None).shape == (12, 30)


def test_radial_features_see_where_the_signal_is():
    crops = _crops(n=2)
    inside = crops[:, 1] > 0
    crops[0, 0] = inside[0] * 1.0  # all signal inside the nucleus
    crops[1, 0] = (~inside[1]) * 1.0  # all outside
    f = handcrafted_features(np.concatenate([crops, _crops(n=6, seed=1)]))
    assert not np.allclose(f[0], f[1])


def test_bad_input_is_a_sentence():
    with pytest.raises(ValueError, match="`distance_channel` must be in"):
        handcrafted_features(_crops(), distance_channel=5)
    bad = _crops()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`crops` contains NaN or infinite values"):
        handcrafted_features(bad)
    with pytest.raises(ValueError):
        handcrafted_features(np.ones((3, 16, 16)))
