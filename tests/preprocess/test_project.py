"""max_projection and downsample."""

from __future__ import annotations

import numpy as np
import pytest

from cyto.preprocess import downsample, max_projection


def test_max_projection_axes(rng) -> None:
    stack = rng.integers(0, 1000, (2, 5, 6, 7)).astype(np.uint16)
    out = max_projection(stack, axis=1)
    assert out.shape == (2, 6, 7) and out.dtype == np.uint16
    np.testing.assert_array_equal(out, stack.max(axis=1))
    np.testing.assert_array_equal(max_projection(stack[0]), stack[0].max(axis=0))
    np.testing.assert_array_equal(max_projection(stack[0], axis=-1), stack[0].max(axis=-1))


@pytest.mark.parametrize(
    ("stack", "kwargs", "exc", "match"),
    [
        (np.zeros(5), {}, ValueError, "at least 2-D"),
        (np.zeros((3, 4, 4)), {"axis": 3}, ValueError, "out of range"),
        (np.zeros((3, 4, 4)), {"axis": 0.0}, TypeError, "axis"),
        (np.zeros((0, 4, 4)), {}, ValueError, "no planes"),
        (np.zeros((2, 4, 4), complex), {}, TypeError, "real numbers"),
    ],
)
def test_max_projection_errors(stack, kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        max_projection(stack, **kwargs)


@pytest.mark.parametrize("factor", [1, 2, 3, 5])
def test_downsample_block_mean(rng, factor: int) -> None:
    img = rng.integers(0, 60000, (2, 31, 47)).astype(np.uint16)
    out = downsample(img, factor)
    h, w = 31 // factor, 47 // factor
    assert out.shape == (2, h, w) and out.dtype == np.float32
    ref = img[:, : h * factor, : w * factor].astype(np.float64)
    ref = ref.reshape(2, h, factor, w, factor).mean(axis=(2, 4))
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    # float64 in, float64 out
    assert downsample(img.astype(np.float64), factor).dtype == np.float64


def test_downsample_large_factor_and_mean_preserved() -> None:
    img = np.full((64, 64), 40000, np.uint16)
    np.testing.assert_array_equal(downsample(img, 32), np.full((2, 2), 40000.0, np.float32))


@pytest.mark.parametrize(
    ("image", "factor", "exc", "match"),
    [
        (np.zeros((8, 8)), 0, ValueError, "positive"),
        (np.zeros((8, 8)), 1.5, TypeError, "factor"),
        (np.zeros((8, 8)), "2", TypeError, "factor"),
        (np.zeros((8, 8)), 9, ValueError, "larger than the image"),
        (np.zeros(8), 2, ValueError, "at least 2-D"),
        (np.zeros((8, 8), bool), 2, TypeError, "real numbers"),
    ],
)
def test_downsample_errors(image, factor, exc, match) -> None:
    with pytest.raises(exc, match=match):
        downsample(image, factor)
