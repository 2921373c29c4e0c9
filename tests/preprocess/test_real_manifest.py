"""Manifests over one-file-per-channel data (``nucleus_path``) and the real images.

The real-image test builds the manifests of docs/real_data.md over ``../shared/data``
(the OpenCell raw MicroManager stack and the CellProfiler example fields) and runs
``preprocess_dataset`` on them; it skips when those images are absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from cyto.data import CropStore
from cyto.preprocess import FovSpec, list_fovs, preprocess_dataset, read_manifest

from ._synth import grid_centers, nuclei_field

CROP = 32


def _write_channels(root: Path, stem: str, seed: int, shape=(160, 160)) -> None:
    """A field saved as two single-channel 2-D files, as CellProfiler examples are."""
    centers = grid_centers(shape, spacing=45, margin=35)
    hoechst, labels = nuclei_field(shape, centers, 10, seed=seed)
    protein = 200 + 600 * (labels > 0) + np.random.default_rng(seed).normal(0, 20, shape)
    tifffile.imwrite(root / f"{stem}_dna.tif", hoechst.clip(0, 65535).astype(np.uint16))
    tifffile.imwrite(root / f"{stem}_gfp.tif", protein.clip(0, 65535).astype(np.uint16))


def test_nucleus_path_column(tmp_path) -> None:
    (tmp_path / "m.csv").write_text(
        "path,nucleus_path,protein_id,protein_channel,nucleus_channel\n"
        "img/a_gfp.tif,img/a_dna.tif,P1,,\n"
        f"b.tif,{tmp_path / 'dna' / 'b.tif'},P2,2,1\n"
        "c.ome.tif,,P3,,\n"
    )
    a, b, c = read_manifest(tmp_path / "m.csv")
    # paths resolve like `path`; both channels default to 0 with a separate nucleus file
    assert a == FovSpec(
        tmp_path / "img" / "a_gfp.tif", "P1", "a_gfp", 0, 0, None, tmp_path / "img" / "a_dna.tif"
    )
    assert (b.nucleus_path, b.protein_channel, b.nucleus_channel) == (tmp_path / "dna/b.tif", 2, 1)
    # without nucleus_path nothing changes: one file, protein 1, Hoechst 0
    assert (c.nucleus_path, c.protein_channel, c.nucleus_channel) == (None, 1, 0)


def test_nucleus_path_same_file(tmp_path) -> None:
    (tmp_path / "m.csv").write_text("path,nucleus_path,protein_id\na.tif,./a.tif,P\n")
    with pytest.raises(ValueError, match=r"line 2: nucleus_path '\./a\.tif' is the same file"):
        read_manifest(tmp_path / "m.csv")


def test_preprocess_separate_channel_files(tmp_path) -> None:
    for i in range(2):
        _write_channels(tmp_path, f"f{i}", seed=i)
    tifffile.imwrite(tmp_path / "small_dna.tif", np.zeros((100, 100), np.uint16))
    (tmp_path / "manifest.csv").write_text(
        "path,nucleus_path,protein_id,nucleus_channel\n"
        "f0_gfp.tif,f0_dna.tif,P0,\n"
        "f1_gfp.tif,f1_dna.tif,P1,\n"
        "f0_gfp.tif,missing_dna.tif,P0,\n"  # fov id f0_gfp_1
        "f1_gfp.tif,small_dna.tif,P1,\n"  # f1_gfp_1
        "f1_gfp.tif,f0_dna.tif,P1,1\n"  # f1_gfp_2: a 2-D file has one channel
    )
    errors: list[tuple[str, str]] = []
    out = tmp_path / "crops.h5"
    report = preprocess_dataset(
        tmp_path, out, crop_size=CROP, downsample_factor=1, workers=1, progress=False,
        on_error=lambda path, reason: errors.append((path, reason)),
    )  # fmt: skip
    assert report.n_processed == 2
    reasons = {Path(p).name: r for p, r in errors}
    assert set(reasons) == {"f0_gfp.tif", "f1_gfp.tif"}
    joined = " | ".join(r for _, r in errors)
    assert "image file not found" in joined and "missing_dna.tif" in joined
    assert "f1_gfp.tif is (160, 160) (Y, X) but the nucleus image small_dna.tif is (100, 100)" in (
        joined
    )
    assert "f0_dna.tif has 1 channel(s) (shape CZYX (1, 1, 160, 160))" in joined
    with CropStore(out) as store:
        assert set(store.fov_ids) == {"f0_gfp", "f1_gfp"}
        assert len(store) == report.n_crops > 0
        crops = store.read(slice(None))
    # protein from the GFP file: brighter in the nucleus (distance > 0) than outside
    protein, distance = crops[:, 0].astype(np.float32), crops[:, 1].astype(np.float32)
    assert protein[distance > 0].mean() > protein[distance < 0].mean() + 0.3


def _real_manifests(data: Path, root: Path) -> tuple[Path, Path]:
    opencell = data / "opencell" / "raw_zstack_mock" / "A1_1_ATL2__mock.ome.tif"
    human = data / "cellprofiler" / "ExampleHuman" / "AS_09125_050116030001_D03f00"
    fly = data / "cellprofiler" / "ExampleFly" / "01_POS002"
    speckles = data / "cellprofiler" / "ExampleSpeckles" / "1-162hr"
    files = [opencell, Path(f"{fly}_D.TIF"), Path(f"{human}d0.tif"), Path(f"{speckles}hoe2.tif")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        pytest.skip(f"real images not available: {missing}")
    (root / "opencell.csv").write_text(f"path,protein_id,fov_id\n{opencell},ATL2,opencell/A1_1\n")
    (root / "cellprofiler.csv").write_text(
        "path,nucleus_path,protein_id,fov_id\n"
        f"{human}d1.tif,{human}d0.tif,PH3,human/D03f00-d1\n"
        f"{human}d2.tif,{human}d0.tif,actin,human/D03f00-d2\n"
        f"{fly}_F.TIF,{fly}_D.TIF,fly_F,fly/POS002-F\n"
        f"{speckles}h2ax2.tif,{speckles}hoe2.tif,gH2AX,speckles/1-162hr\n"
    )
    return root / "opencell.csv", root / "cellprofiler.csv"


def test_real_images_manifest(shared_data, tmp_path) -> None:
    opencell, cellprofiler = _real_manifests(shared_data, tmp_path)
    assert [s.nucleus_path is None for s in list_fovs(cellprofiler)] == [False] * 4
    options = {"crop_size": CROP, "downsample_factor": 1, "workers": 1, "progress": False}
    # the 10x-downsampled OpenCell stack: nuclei ~7 px, too small for the estimate
    a = preprocess_dataset(opencell, tmp_path / "opencell.h5", nucleus_diameter=7, **options)
    b = preprocess_dataset(cellprofiler, tmp_path / "cellprofiler.h5", **options)
    assert a.failed == [] and b.failed == []
    with CropStore(tmp_path / "opencell.h5") as store:
        assert store.read(slice(None)).shape[1:] == (2, CROP, CROP)
        per_fov_a = dict(zip(*np.unique(store.fov_ids, return_counts=True)))
    with CropStore(tmp_path / "cellprofiler.h5") as store:
        per_fov_b = dict(zip(*np.unique(store.fov_ids, return_counts=True)))
        pids = dict(zip(store.fov_ids, store.protein_ids))
        crops = store.read(np.arange(0, len(store), 25))
    assert np.isfinite(crops.astype(np.float32)).all()
    assert crops[:, 0].min() >= 0 and crops[:, 0].max() <= 1
    assert pids["human/D03f00-d1"] == "PH3" and pids["speckles/1-162hr"] == "gH2AX"
    # every source makes crops, in proportion to its nuclei (ATL2: ~50 nuclei, few far
    # enough from the 103-px field's edge; HT29: ~270; Kc167: ~260; speckles: ~8 large)
    assert 8 <= per_fov_a["opencell/A1_1"] <= 30
    assert 200 <= per_fov_b["human/D03f00-d1"] == per_fov_b["human/D03f00-d2"] <= 320
    assert 150 <= per_fov_b["fly/POS002-F"] <= 320
    assert 3 <= per_fov_b["speckles/1-162hr"] <= 10
