"""signed_distance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cyto.preprocess import signed_distance


def test_disk_matches_euclidean_distance() -> None:
    rows, cols = np.indices((64, 64))
    disk = (rows - 32) ** 2 + (cols - 30) ** 2 <= 15**2
    d = signed_distance(disk.astype(np.int32))
    assert d.dtype == np.float32 and d.shape == disk.shape
    assert (d[disk] >= 1).all() and (d[~disk] <= -1).all()
    # inside: distance to the background, outside: minus distance to the disk
    np.testing.assert_allclose(d[disk], ndi.distance_transform_edt(disk)[disk], atol=1.0)
    np.testing.assert_allclose(d[~disk], -ndi.distance_transform_edt(~disk)[~disk], atol=1.0)
    assert d[32, 30] == pytest.approx(16, abs=1)
    assert d[0, 0] == pytest.approx(-np.hypot(32, 30) + 15, abs=1.5)


def test_touching_nuclei_have_their_own_boundary() -> None:
    lab = np.zeros((9, 21), np.int32)
    lab[:, 1:10] = 1
    lab[:, 10:20] = 2
    d = signed_distance(lab)
    # the shared border is a boundary: values fall to 1 on both sides of it
    assert d[4, 9] == 1 and d[4, 10] == 1
    assert d[4, 5] == 5
    assert d[4, 0] == -1 and d[4, 20] == -1
    # a single merged nucleus would have no boundary in the middle
    assert signed_distance(lab > 0)[4, 10] > 5


def test_no_nuclei_and_bool() -> None:
    d = signed_distance(np.zeros((4, 5), np.int32))
    assert (d == -9).all()
    assert signed_distance(np.ones((3, 3), bool)).min() >= 1


@pytest.mark.parametrize(
    ("labels", "exc", "match"),
    [
        (np.zeros((2, 3, 3), np.int32), ValueError, "2-D"),
        (np.zeros((3, 3), np.float32), TypeError, "integer label image"),
        (np.full((3, 3), -1), ValueError, "non-negative"),
    ],
)
def test_errors(labels, exc, match) -> None:
    with pytest.raises(exc, match=match):
        signed_distance(labels)
