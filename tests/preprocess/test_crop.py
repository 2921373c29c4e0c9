"""crop_cells and normalize_crops."""

from __future__ import annotations

import numpy as np
import pytest

from cyto.preprocess import CellCrops, crop_cells, normalize_crops


def test_crops_are_centred_and_edges_skipped() -> None:
    lab = np.zeros((60, 80), np.int32)
    lab[28:33, 38:43] = 3  # centroid (30, 40): fits
    lab[0:4, 0:4] = 5  # corner: crop would leave the image
    lab[50:55, 70:75] = 7  # near the bottom-right edge: skipped
    img = np.arange(2 * 60 * 80, dtype=np.float32).reshape(2, 60, 80)
    out = crop_cells(img, lab, size=20, channels=("protein", "nucleus"))
    assert isinstance(out, CellCrops) and len(out) == 1
    assert out.crops.shape == (1, 2, 20, 20) and out.crops.dtype == np.float32
    assert out.centers.tolist() == [[30, 40]] and out.centers.dtype == np.int32
    assert out.nucleus_ids.tolist() == [3] and out.nucleus_ids.dtype == np.int32
    assert out.channels == ("protein", "nucleus")
    np.testing.assert_array_equal(out.crops[0], img[:, 20:40, 30:50])
    # odd size: the centre pixel is the middle one
    odd = crop_cells(img[0], lab, size=21)
    assert odd.crops.shape == (1, 1, 21, 21)
    assert odd.crops[0, 0, 10, 10] == img[0, 30, 40]


def test_crop_exactly_at_the_edge_is_kept() -> None:
    lab = np.zeros((20, 20), np.int32)
    lab[4:7, 4:7] = 1  # centre (5, 5): rows 0..9 with size 10
    assert len(crop_cells(np.ones((20, 20)), lab, size=10)) == 1
    assert len(crop_cells(np.ones((20, 20)), lab, size=12)) == 0


def test_no_nuclei_gives_empty_arrays() -> None:
    out = crop_cells(np.ones((3, 30, 30), np.float32), np.zeros((30, 30), np.int32), size=10)
    assert out.crops.shape == (0, 3, 10, 10) and out.centers.shape == (0, 2)
    assert out.nucleus_ids.shape == (0,)


@pytest.mark.parametrize(
    ("image", "labels", "kwargs", "exc", "match"),
    [
        (np.ones((30, 30)), np.zeros((30, 31), np.int32), {}, ValueError, "spatial shape"),
        (np.ones((2, 2, 30, 30)), np.zeros((30, 30), np.int32), {}, ValueError, "image"),
        (np.ones((30, 30)), np.zeros((30, 30), np.int32), {"size": 40}, ValueError, "smaller"),
        (np.ones((30, 30)), np.zeros((30, 30), np.int32), {"size": 0}, ValueError, "size"),
        (np.ones((30, 30)), np.zeros((30, 30)), {"size": 10}, TypeError, "integer label"),
        (
            np.ones((2, 30, 30)),
            np.zeros((30, 30), np.int32),
            {"size": 10, "channels": ("protein",)},
            ValueError,
            "channels",
        ),
    ],
)
def test_crop_errors(image, labels, kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        crop_cells(image, labels, **kwargs)


def test_normalize_ranges(rng) -> None:
    crops = np.stack(
        [
            rng.normal(500, 50, (4, 16, 16)),  # protein
            rng.normal(0, 10, (4, 16, 16)),  # distance
            rng.normal(900, 90, (4, 16, 16)),  # nucleus
        ],
        axis=1,
    ).astype(np.float32)
    out = normalize_crops(crops, channels=("protein", "distance", "nucleus"))
    assert out.dtype == np.float32 and out.shape == crops.shape
    for c in (0, 2):
        np.testing.assert_allclose(out[:, c].min(axis=(1, 2)), 0, atol=1e-6)
        np.testing.assert_allclose(out[:, c].max(axis=(1, 2)), 1, atol=1e-6)
    np.testing.assert_allclose(np.abs(out[:, 1]).max(axis=(1, 2)), 1, atol=1e-6)
    # the sign of the distance is kept, the input untouched
    assert ((out[:, 1] > 0) == (crops[:, 1] > 0)).all()
    assert crops[0, 0, 0, 0] > 1


def test_normalize_constant_planes_and_empty() -> None:
    out = normalize_crops(np.full((1, 2, 4, 4), 5.0), channels=("protein", "distance"))
    assert (out[:, 0] == 0).all() and (out[:, 1] == 1).all()
    assert (normalize_crops(np.zeros((1, 1, 4, 4)), channels=("distance",)) == 0).all()
    assert normalize_crops(np.zeros((0, 1, 4, 4)), channels=("protein",)).shape == (0, 1, 4, 4)


@pytest.mark.parametrize(
    ("crops", "channels", "exc", "match"),
    [
        (np.zeros((2, 4, 4)), ("protein",), ValueError, "4-D"),
        (np.zeros((1, 2, 4, 4)), ("protein",), ValueError, "names 1 channels"),
        (np.zeros((1, 1, 4, 4)), ("4dapi",), ValueError, "must be a non-empty sequence"),
        (np.zeros((1, 1, 4, 4)), "protein", TypeError, "sequence"),
        (np.full((1, 1, 4, 4), np.inf), ("protein",), ValueError, "non-finite"),
    ],
)
def test_normalize_errors(crops, channels, exc, match) -> None:
    with pytest.raises(exc, match=match):
        normalize_crops(crops, channels=channels)
