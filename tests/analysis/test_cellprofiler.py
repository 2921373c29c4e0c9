"""CellProfiler features (cp-measure) of crops: the centred nucleus, every stain."""

from __future__ import annotations

import numpy as np
import pytest

from cyto.analysis import cellprofiler_features
from cyto.analysis._cellprofiler import nucleus_mask

pytest.importorskip("cp_measure")


def _crops(n: int = 4, seed: int = 0) -> np.ndarray:
    """DNA (a centred disk), ER (bright outside it, brighter in odd crops), Mito (noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    disk = ((yy - 24) ** 2 + (xx - 24) ** 2 < 10**2).astype(np.float32)
    x = rng.normal(0, 0.05, (n, 3, 48, 48)).astype(np.float32)
    x[:, 0] += disk
    x[:, 1] += (1 - disk) * (1 + np.arange(n) % 2)[:, None, None]
    return x


def test_features_of_every_stain_on_the_centred_nucleus() -> None:
    crops = _crops()
    X, names = cellprofiler_features(crops, ("DNA", "ER", "Mito"))
    assert X.shape == (4, len(names)) and np.isfinite(X).all()
    assert {n.split("_")[0] for n in names} == {"DNA", "ER", "Mito", "Nucleus"}
    area = X[:, names.index("Nucleus_Area")]
    assert np.allclose(area, np.pi * 100, rtol=0.1)  # the disk of radius 10
    # the ER stain's brightness on the nucleus border separates odd from even crops
    er = X[:, [k for k, n in enumerate(names) if n.startswith("ER_Intensity")]]
    assert not np.allclose(er[0], er[1])


def test_the_mask_comes_from_the_distance_channel_when_there_is_one() -> None:
    crop = np.zeros((2, 32, 32), np.float32)
    crop[1] = -1.0
    crop[1, 10:22, 12:20] = 1.0  # inside the nucleus
    mask = nucleus_mask(crop, ("protein", "distance"))
    assert mask.sum() == 12 * 8 and mask[16, 16] == 1
    with pytest.raises(ValueError, match=r"C = 2 channels"):
        cellprofiler_features(np.zeros((1, 3, 8, 8)), ("protein", "distance"))
    with pytest.raises(ValueError, match="unknown"):
        cellprofiler_features(np.zeros((1, 1, 8, 8)), ("DNA",), measurements=("colour",))
