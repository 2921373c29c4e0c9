"""TIFF / OME-TIFF readers and dataset listings."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from cyto.preprocess import FovSpec, list_fovs, read_manifest, read_stack


@pytest.fixture
def czyx(rng) -> np.ndarray:
    return rng.integers(0, 4000, (2, 5, 16, 18)).astype(np.uint16)


def test_ome_imagej_and_plain(tmp_path, czyx) -> None:
    tifffile.imwrite(tmp_path / "a.ome.tif", czyx, ome=True, metadata={"axes": "CZYX"})
    np.testing.assert_array_equal(read_stack(tmp_path / "a.ome.tif"), czyx)
    zcyx = czyx.transpose(1, 0, 2, 3)
    tifffile.imwrite(tmp_path / "ij.tif", zcyx, imagej=True, metadata={"axes": "ZCYX"})
    np.testing.assert_array_equal(read_stack(tmp_path / "ij.tif"), czyx)
    tifffile.imwrite(tmp_path / "ozc.ome.tif", zcyx, ome=True, metadata={"axes": "ZCYX"})
    np.testing.assert_array_equal(read_stack(tmp_path / "ozc.ome.tif"), czyx)
    # no axes metadata: 4-D is CZYX unless told otherwise
    tifffile.imwrite(tmp_path / "plain.tif", czyx, photometric="minisblack")
    np.testing.assert_array_equal(read_stack(tmp_path / "plain.tif"), czyx)
    tifffile.imwrite(tmp_path / "plain_zc.tif", zcyx, photometric="minisblack")
    np.testing.assert_array_equal(read_stack(tmp_path / "plain_zc.tif", axes="ZCYX"), czyx)


def test_lower_dimensional_files(tmp_path, czyx) -> None:
    tifffile.imwrite(tmp_path / "zyx.tif", czyx[0], photometric="minisblack")
    assert read_stack(tmp_path / "zyx.tif").shape == (1, 5, 16, 18)
    tifffile.imwrite(tmp_path / "cyx.tif", czyx[:, 0], photometric="minisblack")
    assert read_stack(tmp_path / "cyx.tif").shape == (2, 1, 16, 18)
    tifffile.imwrite(tmp_path / "yx.tif", czyx[0, 0])
    assert read_stack(tmp_path / "yx.tif").shape == (1, 1, 16, 18)
    tifffile.imwrite(tmp_path / "t.ome.tif", czyx[None], ome=True, metadata={"axes": "TCZYX"})
    assert read_stack(tmp_path / "t.ome.tif").shape == (2, 5, 16, 18)


def test_read_errors(tmp_path, czyx) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_stack(tmp_path / "missing.tif")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="cannot read as TIFF"):
        read_stack(tmp_path / "junk.tif")
    tifffile.imwrite(tmp_path / "ok.tif", czyx, photometric="minisblack")
    with pytest.raises(ValueError, match="name 3 dimensions"):
        read_stack(tmp_path / "ok.tif", axes="ZYX")
    with pytest.raises(ValueError, match="not supported"):
        read_stack(tmp_path / "ok.tif", axes="TZYX")
    two_t = np.zeros((2, 3, 8, 8), np.uint16)
    tifffile.imwrite(tmp_path / "tt.ome.tif", two_t, ome=True, metadata={"axes": "TZYX"})
    with pytest.raises(ValueError, match="axis 'T' of size 2"):
        read_stack(tmp_path / "tt.ome.tif")


def test_manifest(tmp_path) -> None:
    (tmp_path / "m.csv").write_text(
        "path,protein_id,fov_id,protein_channel,nucleus_channel,axes\n"
        "x/a.tif,P1,,,,\n"
        f"{tmp_path / 'b.ome.tif'},P2,fovB,2,1,ZCYX\n"
        "x/a.tif,P1,,,,\n"
    )
    specs = read_manifest(tmp_path / "m.csv")
    assert specs[0] == FovSpec(tmp_path / "x" / "a.tif", "P1", "a", 1, 0, None)
    assert specs[1] == FovSpec(tmp_path / "b.ome.tif", "P2", "fovB", 2, 1, "ZCYX")
    assert specs[2].fov_id == "a_1"  # implicit ids are made unique
    assert list_fovs(tmp_path / "m.csv") == specs


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("file,protein\na.tif,P\n", r"lacks column\(s\) \['path', 'protein_id'\]"),
        ("path,protein_id,protein_channel\na.tif,P,one\n", "line 2: column 'protein_channel'"),
        ("path,protein_id,nucleus_channel\na.tif,P,-1\n", "must be >= 0"),
        ("path,protein_id\na.tif,\n", "empty path or protein_id"),
        ("path,protein_id,fov_id\na.tif,P,f\nb.tif,P,f\n", "fov_id 'f' repeats line 2"),
    ],
)
def test_manifest_errors(tmp_path, text, match) -> None:
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_manifest(tmp_path / "m.csv")


def test_folder_layouts(tmp_path, czyx) -> None:
    for pid in ("RAB5", "ACTB"):
        (tmp_path / pid).mkdir()
        for k in range(2):
            tifffile.imwrite(tmp_path / pid / f"fov{k}.ome.tif", czyx)
    (tmp_path / "ACTB" / "notes.txt").write_text("ignored")
    specs = list_fovs(tmp_path)
    assert [s.fov_id for s in specs] == ["ACTB/fov0", "ACTB/fov1", "RAB5/fov0", "RAB5/fov1"]
    assert {s.protein_id for s in specs} == {"ACTB", "RAB5"}
    # a manifest.csv in the folder wins
    (tmp_path / "manifest.csv").write_text("path,protein_id\nRAB5/fov0.ome.tif,RAB5\n")
    assert [s.fov_id for s in list_fovs(tmp_path)] == ["fov0"]
    with pytest.raises(FileNotFoundError):
        list_fovs(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no manifest\.csv"):
        list_fovs(empty)
    with pytest.raises(ValueError, match=r"manifest \.csv"):
        list_fovs(tmp_path / "RAB5" / "fov0.ome.tif")
