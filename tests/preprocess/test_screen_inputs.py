"""Real-screen inputs: compressed TIFFs, user masks (nuclei, cells), pluggable segmenters,
metadata that follows every crop. Each input kind → crops, and each bad input skipped and
reported while the rest of the batch goes on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cyto.cli import main
from cyto.data import CropStore
from cyto.preprocess import (
    attach_masks,
    list_segmenters,
    preprocess_dataset,
    preprocess_fov,
    read_labels,
    read_manifest,
    resolve_segmenter,
)

from ._synth import grid_centers, nuclei_field

CROP = 48
# lossless TIFF compressions a screening export may use (imagecodecs decodes them)
COMPRESSIONS = ("lzw", "zlib", "deflate", "zstd", "jpeg2000", "packbits", "lzma")


def _field(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(C=2, Z=2, 256, 256) uint16 Hoechst + protein stack and its true nucleus labels."""
    centers = grid_centers((256, 256), spacing=70, margin=58)
    hoechst, labels = nuclei_field((256, 256), centers, 16, seed=seed)
    protein = 200 + 800 * (labels > 0) + np.random.default_rng(seed).normal(0, 20, labels.shape)
    z = np.linspace(0.8, 1.0, 2)[:, None, None]
    return np.stack([hoechst * z, protein * z]).clip(0, 65535).astype(np.uint16), labels


def threshold_segmenter(image: np.ndarray) -> np.ndarray:
    """A user's segmenter: bright pixels, labelled by connected components."""
    return (image > image.mean() + image.std()).astype(np.uint8)


def _crops(store: Path) -> dict[str, np.ndarray]:
    with CropStore(store) as cs:
        fovs, crops = cs.fov_ids, cs.read(slice(None)).astype(np.float32)
    return {f: crops[fovs == f] for f in np.unique(fovs)}


def test_every_lossless_tiff_compression_gives_the_same_crops(tmp_path: Path) -> None:
    stack, _ = _field()
    rows = ["path,protein_id,fov_id", "none.tif,P0,none"]
    tifffile.imwrite(tmp_path / "none.tif", stack, photometric="minisblack")
    for comp in COMPRESSIONS:
        tifffile.imwrite(
            tmp_path / f"{comp}.tif", stack, photometric="minisblack", compression=comp
        )
        rows.append(f"{comp}.tif,P0,{comp}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    rep = preprocess_dataset(
        tmp_path / "manifest.csv", tmp_path / "crops.h5", crop_size=CROP, workers=1, progress=False
    )
    assert rep.failed == [] and rep.n_processed == 1 + len(COMPRESSIONS)
    by_fov = _crops(tmp_path / "crops.h5")
    assert len(by_fov["none"]) == 9
    for comp in COMPRESSIONS:
        np.testing.assert_array_equal(by_fov[comp], by_fov["none"], err_msg=comp)


def test_a_compression_without_its_codec_is_skipped_with_what_to_install(tmp_path: Path) -> None:
    stack, _ = _field()
    tifffile.imwrite(tmp_path / "lzw.tif", stack, photometric="minisblack", compression="lzw")
    tifffile.imwrite(tmp_path / "plain.tif", stack, photometric="minisblack")
    (tmp_path / "m.csv").write_text("path,protein_id\nlzw.tif,A\nplain.tif,B\n")
    code = (
        "import sys; sys.modules['imagecodecs'] = None\n"  # as on a machine without it
        "from cyto.preprocess import preprocess_dataset\n"
        f"r = preprocess_dataset({str(tmp_path / 'm.csv')!r}, {str(tmp_path / 'c.h5')!r}, "
        f"crop_size={CROP}, workers=1, progress=False, on_error=lambda p, w: None)\n"
        "print(r.n_processed); print(r.failed[0][1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n_ok, reason = out.stdout.strip().splitlines()
    assert n_ok == "1"  # the plain field went on
    assert "LZW-compressed" in reason and "pip install imagecodecs" in reason
    with CropStore(tmp_path / "c.h5") as cs:
        assert set(cs.protein_ids) == {"B"}


def test_user_masks_replace_segmentation_and_bad_masks_are_reported(tmp_path: Path) -> None:
    stack, labels = _field()
    # the user's mask labels only the first 4 nuclei: the crops follow the mask
    mask = np.where(np.isin(labels, [1, 2, 3, 4]), labels, 0).astype(np.uint16)
    tifffile.imwrite(tmp_path / "f.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "f_mask.tif", mask)
    tifffile.imwrite(tmp_path / "small_mask.tif", mask[:200])
    tifffile.imwrite(tmp_path / "float_mask.tif", mask.astype(np.float32) / 3)
    rows = [
        "path,protein_id,fov_id,mask_path",
        "f.tif,A,good,f_mask.tif",
        "f.tif,A,segmented,",
        "f.tif,A,wrong_shape,small_mask.tif",
        "f.tif,A,float,float_mask.tif",
        "f.tif,A,missing,nowhere.tif",
    ]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    failed: dict[str, str] = {}
    rep = preprocess_dataset(
        tmp_path / "m.csv",
        tmp_path / "c.h5",
        crop_size=CROP,
        workers=1,
        progress=False,
        on_error=lambda p, why: failed.setdefault(Path(p).name, why),
    )
    assert rep.n_processed == 2 and rep.n_failed == 3
    reasons = sorted(why for _, why in rep.failed)
    assert any("small_mask.tif is (200, 256)" in r and "(256, 256)" in r for r in reasons)
    assert any("float32" in r and "integer labels" in r for r in reasons)
    assert any("mask file not found" in r and "nowhere.tif" in r for r in reasons)
    by_fov = _crops(tmp_path / "c.h5")
    assert len(by_fov["good"]) == 4 and len(by_fov["segmented"]) == 9
    with CropStore(tmp_path / "c.h5") as cs:
        ids = cs.nucleus_ids[cs.fov_ids == "good"]
    assert sorted(ids.tolist()) == [1, 2, 3, 4]  # the user's own label ids


def test_masks_folder_finds_cellpose_and_plain_names(tmp_path: Path) -> None:
    labels = _field()[1]
    masks = tmp_path / "masks"
    masks.mkdir()
    rows = ["path,protein_id"]
    for seed, name in enumerate("ab"):
        tifffile.imwrite(tmp_path / f"{name}.tif", _field(seed)[0], photometric="minisblack")
        rows.append(f"{name}.tif,P")
    from skimage.io import imsave

    imsave(masks / "a_cp_masks.png", labels.astype(np.uint16), check_contrast=False)
    tifffile.imwrite(masks / "B.TIF", labels.astype(np.int32))
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    specs = attach_masks(read_manifest(tmp_path / "m.csv"), masks)
    assert [s.mask_path.name for s in specs] == ["a_cp_masks.png", "B.TIF"]
    np.testing.assert_array_equal(read_labels(specs[0].mask_path), labels)
    assert (
        main(
            [
                "preprocess",
                str(tmp_path / "m.csv"),
                "-o",
                str(tmp_path / "c.h5"),
                "--masks",
                str(masks),
                "--crop-size",
                str(CROP),
                "-j",
                "1",
                "-q",
            ]
        )
        == 0
    )
    assert {k: len(v) for k, v in _crops(tmp_path / "c.h5").items()} == {"a": 9, "b": 9}
    # a field without its mask in the folder fails, naming what was looked for
    (masks / "B.TIF").unlink()
    rep = preprocess_dataset(
        tmp_path / "m.csv",
        tmp_path / "d.h5",
        crop_size=CROP,
        workers=1,
        progress=False,
        masks=masks,
        on_error=lambda p, w: None,
    )
    assert rep.n_failed == 1 and "b.tif" in rep.failed[0][1]


def test_a_cell_mask_centres_crops_on_cells() -> None:
    stack, labels = _field()
    cells = np.zeros_like(labels)
    cells[30:110, 20:120] = 7  # one cell holding nuclei 1 and 2 (largest overlap wins)
    cells[150:250, 150:250] = 9
    out = preprocess_fov(
        stack[1], stack[0], crop_size=CROP, nuclei=labels, cells=cells, downsample_factor=2
    )
    assert out.nucleus_ids.tolist() == [1, 9]  # nucleus 2 shares cell 7 with nucleus 1
    assert out.centers.tolist() == [[35, 35], [100, 100]]  # the cells' centroids (÷2)
    with pytest.raises(ValueError, match="`cells` must be a 2-D integer label image"):
        preprocess_fov(stack[1], stack[0], crop_size=CROP, cells=cells.astype(float))


def test_a_users_segmenter_plugs_in_by_name(tmp_path: Path) -> None:
    stack, _ = _field()
    name = "tests.preprocess.test_screen_inputs:threshold_segmenter"
    assert resolve_segmenter(name)[1] is threshold_segmenter and name in list_segmenters()
    a = preprocess_fov(stack[1], stack[0], crop_size=CROP, segmenter=name)
    assert len(a) == 9
    tifffile.imwrite(tmp_path / "f.tif", stack, photometric="minisblack")
    (tmp_path / "m.csv").write_text("path,protein_id\nf.tif,A\n")
    assert (
        main(
            [
                "preprocess",
                str(tmp_path / "m.csv"),
                "-o",
                str(tmp_path / "c.h5"),
                "--segmenter",
                name,
                "--crop-size",
                str(CROP),
                "-j",
                "1",
                "-q",
            ]
        )
        == 0
    )
    with CropStore(tmp_path / "c.h5") as cs:
        assert len(cs) == 9 and cs.params["segmenter"] == name
    with pytest.raises(ValueError, match="unknown segmenter 'nope'"):
        resolve_segmenter("nope")
    with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
        resolve_segmenter("no_such_module:f")
    with pytest.raises(ValueError, match="returned float32 labels"):
        preprocess_fov(stack[1], stack[0], crop_size=CROP, segmenter=lambda im: im * 1.0)
    with pytest.raises(ValueError, match="cannot be imported by worker processes"):
        preprocess_dataset(
            tmp_path / "m.csv",
            tmp_path / "x.h5",
            crop_size=CROP,
            workers=2,
            progress=False,
            segmenter=lambda im: im > 0,
        )


def test_plate_well_field_metadata_follow_every_crop(tmp_path: Path) -> None:
    for seed in range(3):
        tifffile.imwrite(tmp_path / f"f{seed}.tif", _field(seed)[0], photometric="minisblack")
    rows = ["path,protein_id,fov_id,plate,well,field,Metadata_treatment,notes"]
    rows += ["f0.tif,A,p1-B02-1,plate1,B02,1,DMSO,x", "f1.tif,B,p1-C03-2,plate1,C03,2,drug,y"]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    preprocess_dataset(
        tmp_path / "m.csv", tmp_path / "c.h5", crop_size=CROP, workers=1, progress=False
    )
    with CropStore(tmp_path / "c.h5") as cs:
        table = cs.fov_table()
        obs = cs.crop_obs()
        fovs = cs.fov_ids
    assert table["well"].tolist() == ["B02", "C03"] and "notes" not in table
    assert set(obs) == {
        "center_row",
        "center_col",
        "nucleus_id",
        "plate",
        "well",
        "field",
        "Metadata_treatment",
    }
    assert (obs["well"][fovs == "p1-C03-2"] == "C03").all()
    assert (obs["Metadata_treatment"][fovs == "p1-B02-1"] == "DMSO").all()
    # a resumed run with one more field keeps the old fields' metadata
    rows.append("f2.tif,C,p2-A01-1,plate2,A01,1,DMSO,z")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    preprocess_dataset(
        tmp_path / "m.csv", tmp_path / "c.h5", crop_size=CROP, workers=1, progress=False
    )
    with CropStore(tmp_path / "c.h5") as cs:
        assert cs.fov_metadata()["p1-B02-1"]["well"] == "B02"
        assert cs.fov_metadata()["p2-A01-1"]["plate"] == "plate2"


def test_vendor_files_need_the_vendor_extra(tmp_path: Path, monkeypatch) -> None:
    import importlib.util
    import types

    stack, _ = _field()
    (tmp_path / "f.nd2").write_bytes(b"not really nd2")
    tifffile.imwrite(tmp_path / "g.tif", _field(1)[0], photometric="minisblack")
    (tmp_path / "m.csv").write_text("path,protein_id\nf.nd2,A\ng.tif,B\n")
    if importlib.util.find_spec("bioio") is None:
        rep = preprocess_dataset(
            tmp_path / "m.csv",
            tmp_path / "c.h5",
            crop_size=CROP,
            workers=1,
            progress=False,
            on_error=lambda p, w: None,
        )
        assert rep.n_processed == 1 and rep.n_failed == 1  # the TIFF went on
        assert "cyto[vendor]" in rep.failed[0][1]

    class FakeBioImage:  # stands in for bioio.BioImage: cyto's glue, not bioio, is tested
        def __init__(self, path):
            self.path = path

        def get_image_data(self, order, T=0):
            assert order == "CZYX" and T == 0
            return stack

    monkeypatch.setitem(sys.modules, "bioio", types.SimpleNamespace(BioImage=FakeBioImage))
    rep = preprocess_dataset(
        tmp_path / "m.csv", tmp_path / "d.h5", crop_size=CROP, workers=1, progress=False
    )
    assert rep.failed == [] and rep.n_crops == 18


def test_cellprofiler_masks_of_a_real_cell_painting_plate(shared_data: Path, tmp_path: Path):
    """Five real Cell Painting wells (deflate TIFFs, one file per channel) with the binary
    nucleus masks CellProfiler exported: found by --masks, labelled by components, and
    the well follows every crop."""
    root = shared_data / "cellpainting_nf1"
    rows = ["path,nucleus_path,protein_id,well,plate"]
    for dapi in sorted((root / "images").glob("*_DAPI_001.tif")):
        well = dapi.name.split("_")[0]
        gfp = next((root / "images").glob(f"{well}_01_2_*_GFP_001.tif"))
        rows.append(f"{gfp},{dapi},ER-{well},{well},NF1-2")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    specs = attach_masks(read_manifest(tmp_path / "m.csv"), root / "masks")
    assert all(s.mask_path.name.endswith("_DAPI_001_MaskNuclei.tiff") for s in specs)
    n_nuclei = {s.fov_id: int(read_labels(s.mask_path).max()) for s in specs}
    assert all(n > 5 for n in n_nuclei.values())  # 0/255 masks → one label per nucleus
    rep = preprocess_dataset(specs, tmp_path / "c.h5", crop_size=64, workers=1, progress=False)
    assert rep.failed == [] and rep.n_processed == 5
    with CropStore(tmp_path / "c.h5") as cs:
        obs, fovs, ids = cs.crop_obs(), cs.fov_ids, cs.nucleus_ids
    assert set(obs["well"]) == {s.fov_id.split("_")[0] for s in specs}
    for fov, n in n_nuclei.items():  # crops only from the user's nuclei
        assert 0 < (fovs == fov).sum() <= n and ids[fovs == fov].max() <= n


def test_a_segmenter_returning_0_255_gets_one_label_per_nucleus() -> None:
    stack, _ = _field()
    out = preprocess_fov(
        stack[1],
        stack[0],
        crop_size=CROP,
        segmenter=lambda im: 255 * threshold_segmenter(im),  # uint8 0/255, as cv2 writes
    )
    assert len(out) == 9 and sorted(out.nucleus_ids.tolist()) == list(range(1, 10))
