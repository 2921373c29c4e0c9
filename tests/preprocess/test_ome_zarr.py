"""OME-Zarr input (NGFF 0.4 and 0.5): HCS plates → wells → fields, plain images, plate
maps, metadata per crop, and the bad cases (missing well, unexpected axes, no label).
Test plates are written with ome-zarr, the library users write them with."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from cyto.data import CropStore
from cyto.preprocess import list_fovs, preprocess_dataset, read_stack

from ._synth import grid_centers, nuclei_field

zarr = pytest.importorskip("zarr")
with warnings.catch_warnings():  # ome-zarr warns about its own deprecated defaults
    warnings.simplefilter("ignore", DeprecationWarning)
    ome_format = pytest.importorskip("ome_zarr.format")
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image as _write_image
    from ome_zarr.writer import write_plate_metadata, write_well_metadata


def write_image(*args, **kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _write_image(*args, **kwargs)


CROP = 48


def _field(seed: int) -> np.ndarray:
    """(C=2, Z=2, 256, 256) uint16: Hoechst, protein; 9 nuclei."""
    hoechst, labels = nuclei_field((256, 256), grid_centers((256, 256), 70, 58), 16, seed=seed)
    protein = 200 + 800 * (labels > 0) + np.random.default_rng(seed).normal(0, 20, labels.shape)
    z = np.linspace(0.8, 1.0, 2)[:, None, None]
    return np.stack([hoechst * z, protein * z]).clip(0, 65535).astype(np.uint16)


def _fmt(version: str):
    return ome_format.FormatV04() if version == "0.4" else ome_format.FormatV05()


def _group(path: Path, version: str):
    store = parse_url(str(path), mode="w", fmt=_fmt(version)).store
    return zarr.group(store=store, **({} if version == "0.4" else {"zarr_format": 3}))


def write_plate(path: Path, version: str, *, missing: str | None = None) -> Path:
    """A plate with wells B/2, B/3, C/2, two fields each; ``missing`` is listed, not written."""
    fmt = _fmt(version)
    root = _group(path, version)
    wells = ["B/2", "B/3", "C/2"]
    write_plate_metadata(root, ["B", "C"], ["2", "3"], wells, fmt=fmt, name="plate1")
    omero = {"channels": [{"label": "protein-GFP"}, {"label": "Hoechst 33342"}]}
    for k, well in enumerate(wells):
        if well == missing:
            continue
        row, col = well.split("/")
        wg = root.require_group(row).require_group(col)
        write_well_metadata(wg, [{"path": "0"}, {"path": "1"}], fmt=fmt)
        for f in ("0", "1"):
            img = wg.require_group(f)
            # channels stored protein first: the OMERO labels say which is nuclear
            data = _field(10 * k + int(f))[::-1]
            write_image(data, img, axes="czyx", fmt=fmt, scaler=None)
            if version == "0.4":
                img.attrs["omero"] = omero
            else:
                img.attrs["ome"] = {**img.attrs["ome"], "omero": omero}
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_hcs_plate_to_crops_with_plate_well_field(tmp_path: Path, version: str) -> None:
    plate = write_plate(tmp_path / "plate.zarr", version, missing="C/2")
    (tmp_path / "map.csv").write_text("well,protein_id\nB02,ACTB\nB3,LMNB1\nC/2,TOMM20\n")
    specs = list_fovs(plate, plate_map=tmp_path / "map.csv")
    assert [s.fov_id for s in specs] == [
        "plate1/B2/0",
        "plate1/B2/1",
        "plate1/B3/0",
        "plate1/B3/1",
        "plate1/C2/0",
    ]
    assert (specs[0].protein_channel, specs[0].nucleus_channel) == (0, 1)  # from OMERO labels
    np.testing.assert_array_equal(read_stack(specs[1].path), _field(1)[::-1])
    rep = preprocess_dataset(
        plate,
        tmp_path / "crops.h5",
        plate_map=tmp_path / "map.csv",
        crop_size=CROP,
        workers=1,
        progress=False,
        on_error=lambda p, w: None,
    )
    # the missing well is skipped and reported; the other four fields go on
    assert rep.n_processed == 4 and rep.n_failed == 1
    assert "C2" in rep.failed[0][0] or "C/2" in rep.failed[0][0]
    assert "missing" in rep.failed[0][1]
    with CropStore(tmp_path / "crops.h5") as cs:
        obs, pids, fovs = cs.crop_obs(), cs.protein_ids, cs.fov_ids
    assert len(pids) == 36 and set(pids) == {"ACTB", "LMNB1"}
    assert set(obs["well"]) == {"B2", "B3"} and set(obs["plate"]) == {"plate1"}
    assert (obs["field"][fovs == "plate1/B3/1"] == "1").all()
    assert (pids[obs["well"] == "B3"] == "LMNB1").all()


def test_the_same_plate_through_a_dask_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    plate = write_plate(tmp_path / "plate.zarr", "0.5")
    pm = {"B2": "A", "B3": "B", "C2": "C"}
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        rep = preprocess_dataset(
            plate,
            tmp_path / "d.h5",
            plate_map=pm,
            crop_size=CROP,
            progress=False,
            scheduler=cluster.scheduler_address,
        )
    assert rep.n_processed == 6 and rep.n_failed == 0
    with CropStore(tmp_path / "d.h5") as cs:
        assert len(cs) == 54


def test_plain_image_in_a_manifest_and_well_labels_from_attributes(tmp_path: Path) -> None:
    img = _group(tmp_path / "one.zarr", "0.4")
    write_image(_field(3), img, axes="czyx", fmt=_fmt("0.4"), scaler=None)
    (tmp_path / "m.csv").write_text("path,protein_id\none.zarr,NPM1\n")
    rep = preprocess_dataset(
        tmp_path / "m.csv", tmp_path / "c.h5", crop_size=CROP, workers=1, progress=False
    )
    assert rep.n_crops == 9 and rep.failed == []
    # no plate map: the well groups' protein_id attributes label the wells
    plate = write_plate(tmp_path / "plate.zarr", "0.4")
    with pytest.raises(ValueError, match="well B2 has no protein label"):
        list_fovs(plate)
    for well, protein in (("B/2", "A"), ("B/3", "B"), ("C/2", "C")):
        zarr.open_group(str(plate / well), mode="r+").attrs["protein_id"] = protein
    assert [s.protein_id for s in list_fovs(plate)] == ["A", "A", "B", "B", "C", "C"]


def test_unexpected_axes_are_reported_per_field(tmp_path: Path) -> None:
    good = _group(tmp_path / "good.zarr", "0.4")
    write_image(_field(0), good, axes="czyx", fmt=_fmt("0.4"), scaler=None)
    bad = zarr.open_group(str(tmp_path / "bad.zarr"), mode="w", zarr_format=2)
    bad.create_array("0", shape=(2, 3, 64, 64), dtype="uint16")
    bad.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": n} for n in ("c", "q", "y", "x")],
            "datasets": [{"path": "0"}],
        }
    ]
    (tmp_path / "m.csv").write_text("path,protein_id\ngood.zarr,A\nbad.zarr,B\n")
    rep = preprocess_dataset(
        tmp_path / "m.csv",
        tmp_path / "c.h5",
        crop_size=CROP,
        workers=1,
        progress=False,
        on_error=lambda p, w: None,
    )
    assert rep.n_processed == 1 and rep.n_failed == 1
    assert "unexpected OME-Zarr axes ['c', 'q', 'y', 'x']" in rep.failed[0][1]


def test_without_the_zarr_extra_the_error_names_it(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate.zarr", "0.4")
    code = (
        "import sys; sys.modules['zarr'] = None\n"
        "from cyto.preprocess import list_fovs\n"
        "try:\n"
        f"    list_fovs({str(plate)!r})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "MissingExtraError" in out.stdout and "cyto[zarr]" in out.stdout
