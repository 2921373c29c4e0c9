"""Inputs at the edges: huge finite values, absurd nucleus diameters."""

from __future__ import annotations

import numpy as np
import pytest

from cyto.preprocess import preprocess_fov, segment_nuclei


def _field(value: float) -> tuple[np.ndarray, np.ndarray]:
    hoechst = np.ones((1, 200, 200), np.float32)
    yy, xx = np.mgrid[:200, :200]
    for cy in (50, 150):
        for cx in (50, 150):
            hoechst[0][(yy - cy) ** 2 + (xx - cx) ** 2 < 144] = value
    protein = np.random.default_rng(0).random((1, 200, 200)).astype(np.float32) * value
    protein[0, 0, 0] = -value
    return protein, hoechst


def test_finite_values_near_the_float32_limit_are_processed_like_small_ones():
    big = preprocess_fov(*_field(3e38), crop_size=48, downsample_factor=1)
    small = preprocess_fov(*_field(3e3), crop_size=48, downsample_factor=1)
    assert big.crops.shape == small.crops.shape == (4, 2, 48, 48)
    assert np.isfinite(big.crops).all()
    np.testing.assert_allclose(big.centers, small.centers)


def test_nucleus_diameter_larger_than_the_image_is_a_sentence():
    with pytest.raises(ValueError, match=r"`nucleus_diameter` must be at most the image side"):
        segment_nuclei(np.random.default_rng(0).random((128, 128)), nucleus_diameter=1e6)
