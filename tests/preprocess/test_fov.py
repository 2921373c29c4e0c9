"""preprocess_fov: the paper's pipeline for one field of view."""

from __future__ import annotations

import numpy as np
import pytest

from cyto.preprocess import preprocess_fov, read_stack

from ._synth import grid_centers, nuclei_field


@pytest.fixture(scope="module")
def field() -> tuple[np.ndarray, np.ndarray]:
    """A (Z, 400, 400) two-channel field with 9 nuclei ~36 px across (18 after x2)."""
    centers = grid_centers((400, 400), spacing=110, margin=90)
    hoechst, labels = nuclei_field((400, 400), centers, 18, seed=5)
    rng = np.random.default_rng(6)
    protein = np.where(labels > 0, 50.0, 400.0) + rng.normal(0, 20, labels.shape)
    z = np.linspace(0.6, 1.0, 4)[:, None, None]
    return (protein * z).astype(np.float32), (hoechst * z).astype(np.float32)


@pytest.mark.parametrize(
    "channels",
    [("protein", "distance"), ("protein",), ("protein", "nucleus"), ("distance", "protein")],
)
def test_channel_sets(field, channels) -> None:
    protein, hoechst = field
    out = preprocess_fov(protein, hoechst, channels=channels, crop_size=64)
    assert out.channels == channels
    assert out.crops.shape == (9, len(channels), 64, 64) and out.crops.dtype == np.float32
    assert out.labels.shape == (200, 200) and out.labels.max() == 9
    for c, name in enumerate(channels):
        x = out.crops[:, c]
        if name == "distance":
            np.testing.assert_allclose(np.abs(x).max(axis=(1, 2)), 1, atol=1e-6)
            assert (x[:, 32, 32] > 0).all()  # the centre lies inside the nucleus
            assert (x[:, 0, 0] < 0).all()
        else:
            np.testing.assert_allclose(x.min(axis=(1, 2)), 0, atol=1e-6)
            np.testing.assert_allclose(x.max(axis=(1, 2)), 1, atol=1e-6)
    # centres in the downsampled field, on the nuclei
    assert (out.labels[out.centers[:, 0], out.centers[:, 1]] == out.nucleus_ids).all()


def test_normalize_modes_and_projection(field) -> None:
    protein, hoechst = field
    raw = preprocess_fov(protein, hoechst, crop_size=64, normalize="none")
    # 'none' keeps the projected, x2 block-mean intensities and pixel distances
    top = protein.max(axis=0)
    r, c = raw.centers[0]
    block = top[2 * r - 64 : 2 * r, 2 * c - 64 : 2 * c].reshape(32, 2, 32, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(raw.crops[0, 0, :32, :32], block, rtol=1e-5)
    assert raw.crops[:, 1].max() > 5
    per_field = preprocess_fov(protein, hoechst, crop_size=64, normalize="field")
    assert per_field.crops[:, 0].max() <= 1 and per_field.crops[:, 0].min() >= 0
    assert per_field.crops[:, 1].min() >= -1
    # projected 2-D input gives the same result as the z-stack
    flat = preprocess_fov(protein.max(0), hoechst.max(0), crop_size=64)
    np.testing.assert_array_equal(flat.crops, preprocess_fov(protein, hoechst, crop_size=64).crops)
    # downsample 1 with a known diameter works at full resolution
    full = preprocess_fov(protein, hoechst, crop_size=100, downsample_factor=1, nucleus_diameter=36)
    assert full.labels.shape == (400, 400) and len(full) == 9


def test_empty_field_gives_no_crops() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(300, 20, (256, 256)).astype(np.float32)
    out = preprocess_fov(noise, noise.copy(), crop_size=64)
    assert out.crops.shape == (0, 2, 64, 64) and out.labels.max() == 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"hoechst": np.zeros((100, 100))}, ValueError, r"same shape"),
        ({"protein": np.zeros((2, 3, 120, 120))}, ValueError, r"`protein` must be 2-D"),
        ({"protein": np.full((120, 120), np.nan)}, ValueError, "non-finite"),
        ({"crop_size": 100}, ValueError, r"smaller than one crop"),
        ({"channels": ("protein", "dapi")}, ValueError, "channels"),
        ({"normalize": "global"}, ValueError, "normalize"),
        ({"downsample_factor": 0}, ValueError, "downsample_factor"),
        ({"nucleus_diameter": "auto"}, TypeError, "nucleus_diameter"),
        ({"z_axis": None}, TypeError, "z_axis"),
        ({"bogus": 1}, TypeError, "bogus"),
    ],
)
def test_bad_input(kwargs, exc, match) -> None:
    args = {"protein": np.zeros((120, 120)), "hoechst": np.zeros((120, 120))}
    args.update(kwargs)
    protein, hoechst = args.pop("protein"), args.pop("hoechst")
    with pytest.raises(exc, match=match):
        preprocess_fov(protein, hoechst, **{"crop_size": 32, **args})


def test_real_micromanager_stack(shared_data) -> None:
    path = shared_data / "opencell" / "raw_zstack_mock" / "A1_1_ATL2__mock.ome.tif"
    stack = read_stack(path)
    assert stack.shape == (2, 51, 103, 103) and stack.dtype == np.uint16
    hoechst, protein = stack[0], stack[1]
    # channel split: pages 0-50 Hoechst, 51-101 mNeonGreen-ATL2
    import tifffile

    with tifffile.TiffFile(path) as tif:
        np.testing.assert_array_equal(hoechst[7], tif.pages[7].asarray())
        np.testing.assert_array_equal(protein[7], tif.pages[51 + 7].asarray())
    proj = hoechst.max(axis=0)
    assert proj.shape == (103, 103) and proj.max() == hoechst.max()
    # 10x downsampled: nuclei ~6-7 px; no x2 here, crops of 32 px
    out = preprocess_fov(protein, hoechst, downsample_factor=1, crop_size=32)
    assert out.labels.max() >= 3
    assert out.crops.shape[1:] == (2, 32, 32)


def test_any_named_stains_crop_like_protein_and_nucleus(field) -> None:
    """Cell Painting-style stains by name: the nuclear stain segmented, every stain
    cropped and scaled as the protein is (same numbers for the same images)."""
    protein, hoechst = field
    er = protein[:, ::-1].copy()
    stains = {"DNA": hoechst, "ER": er, "Mito": protein}
    out = preprocess_fov(
        stains=stains, nucleus_channel="DNA", channels=("DNA", "ER", "Mito"), crop_size=64
    )
    ref = preprocess_fov(protein, hoechst, channels=("nucleus", "protein"), crop_size=64)
    assert out.channels == ("DNA", "ER", "Mito") and out.crops.shape == (9, 3, 64, 64)
    np.testing.assert_array_equal(out.crops[:, 0], ref.crops[:, 0])
    np.testing.assert_array_equal(out.crops[:, 2], ref.crops[:, 1])
    np.testing.assert_array_equal(out.centers, ref.centers)
    with_distance = preprocess_fov(
        stains=stains, nucleus_channel="DNA", channels=("ER", "distance"), crop_size=64
    )
    assert with_distance.channels == ("ER", "distance")
    with pytest.raises(ValueError, match=r"name \['AGP'\], not among the images given"):
        preprocess_fov(stains=stains, nucleus_channel="DNA", channels=("AGP",), crop_size=64)
    with pytest.raises(ValueError, match=r"name \['Hoechst'\]"):
        preprocess_fov(stains=stains, nucleus_channel="Hoechst", channels=("ER",), crop_size=64)
    with pytest.raises(TypeError, match="not both"):
        preprocess_fov(protein, hoechst, stains=stains, channels=("ER",))
    with pytest.raises(ValueError, match="one shape after projection"):
        preprocess_fov(stains={"DNA": hoechst, "ER": er[:, :200]}, nucleus_channel="DNA")
