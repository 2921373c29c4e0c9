"""The synthetic cell atlas: determinism, ground truth, geometry, files, segmentation."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cyto.data import (
    SyntheticAtlasConfig,
    generate_atlas,
    list_families,
    make_catalog,
    make_field,
)
from cyto.data.synthetic._families import FAMILIES

SMALL = {"field_size": 128, "z_planes": 3, "cells_per_field": (4, 8)}


def _tiny_atlas(**kw) -> SyntheticAtlasConfig:
    base = {
        "families": ("er", "nucleolus_gc", "mixed"),
        "complexes_per_family": 2,
        "complex_size": (2, 3),
        "n_proteins": 13,
        "fields_per_protein": 1,
        **SMALL,
    }
    base.update(kw)
    return SyntheticAtlasConfig(**base)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- families and catalogue ------------------------------------------------------------


def test_families_cover_the_paper_localizations():
    fams = list_families()
    assert len(fams) >= 13 and fams[-1] == "mixed"
    for name in ("nucleoplasm", "er", "golgi", "mitochondria", "vesicles", "centrosome"):
        assert name in fams


def test_catalog_ground_truth_is_consistent():
    cfg = SyntheticAtlasConfig(seed=3)
    cat = make_catalog(cfg)
    assert len(cat) == 60
    assert len({p.protein_id for p in cat}) == len(cat)
    by_complex: dict[str, list] = {}
    for p in cat:
        by_complex.setdefault(p.complex, []).append(p)
    assert len(by_complex) == len(FAMILIES) * cfg.complexes_per_family
    for members in by_complex.values():
        assert 2 <= len(members) <= 4
        assert len({m.family for m in members}) == 1
        assert all(m.params == members[0].params for m in members)
    for fam in FAMILIES:
        params = [m[0].params for m in by_complex.values() if m[0].family == fam]
        assert len(params) == 2 and params[0] != params[1]
        for prm in params:  # complex parameters stay inside the family's ranges
            for k, (lo, hi) in FAMILIES[fam].params.items():
                assert lo <= prm[k] <= hi
    # mixed complexes sit on a continuum of nuclear/cytoplasmic ratios
    ratios = sorted(
        m[0].params["nuclear_ratio"] for m in by_complex.values() if m[0].family == "mixed"
    )
    assert ratios[0] < 0.5 < ratios[-1]


def test_catalog_is_deterministic_and_seed_dependent():
    a = make_catalog(SyntheticAtlasConfig(seed=1))
    b = make_catalog(SyntheticAtlasConfig(seed=1))
    c = make_catalog(SyntheticAtlasConfig(seed=2))
    assert a == b
    assert [p.family for p in a] != [p.family for p in c]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"families": ("er", "nope")}, "`families` must be"),
        ({"n_proteins": 5}, "`n_proteins` must lie between"),
        ({"complex_size": (3, 2)}, "`complex_size`"),
        ({"scale": 0.1}, "`field_size`\\*`scale`"),
        ({"z_planes": 0}, "`z_planes` must be a positive integer"),
        ({"mitotic_fraction": 1.5}, "`mitotic_fraction` must be in"),
        ({"complex_spread": 0.0}, "`complex_spread`"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        SyntheticAtlasConfig(**kw)


def test_config_round_trips_through_dict():
    cfg = _tiny_atlas(seed=9)
    assert SyntheticAtlasConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown SyntheticAtlasConfig keys"):
        SyntheticAtlasConfig.from_dict({"sead": 1})


# --- single fields -------------------------------------------------------------------


def test_field_layout_and_camera_model():
    cfg = SyntheticAtlasConfig(field_size=192, z_planes=4)
    f = make_field("vesicles", config=cfg, n_cells=10)
    assert f.image.shape == (2, 4, 192, 192) and f.image.dtype == np.uint16
    assert f.nuclei.shape == f.cells.shape == (192, 192)
    # every nucleus lies inside the territory of the cell with the same label
    inside = f.nuclei > 0
    assert np.array_equal(f.nuclei[inside], f.cells[inside])
    # camera offset ≈ 250 in the background, signal above it in nuclei (Hoechst)
    bg = f.image[:, :, f.cells == 0]
    assert 240 < np.median(bg) < 262
    hoechst = f.image[0].max(0)
    assert np.median(hoechst[inside]) > np.median(hoechst[~inside]) + 500


def test_field_is_deterministic_and_varies_with_index():
    cfg = SyntheticAtlasConfig(**SMALL)
    a = make_field("golgi", config=cfg, field_index=2)
    b = make_field("golgi", config=cfg, field_index=2)
    c = make_field("golgi", config=cfg, field_index=3)
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.nuclei, b.nuclei)
    assert a.image.tobytes() != c.image.tobytes()


def test_every_family_renders_signal_where_it_should():
    cfg = SyntheticAtlasConfig(field_size=160, z_planes=2, out_of_focus_fraction=0.0)
    nuclear = {"nucleoplasm", "nucleolus_gc", "chromatin", "nuclear_punctae"}
    for fam in list_families():
        f = make_field(fam, config=cfg, n_cells=8)
        prot = f.image[1].max(0).astype(float) - 250
        nuc = f.nuclei > 0
        cyto = (f.cells > 0) & ~nuc
        ratio = prot[nuc].mean() / max(prot[cyto].mean(), 1e-3)
        if fam in nuclear:
            assert ratio > 1.5, fam
        elif fam in {"cytoplasmic", "er", "golgi", "mitochondria", "vesicles"}:
            assert ratio < 1.0, fam
        assert prot[f.cells > 0].mean() > prot[f.cells == 0].mean(), fam


def test_scale_two_doubles_the_geometry():
    f1 = make_field("er", config=SyntheticAtlasConfig(field_size=160, z_planes=2), n_cells=6)
    f2 = make_field(
        "er", config=SyntheticAtlasConfig(field_size=160, z_planes=2, scale=2.0), n_cells=6
    )
    assert f2.image.shape[-1] == 320
    d1 = np.sqrt(np.bincount(f1.nuclei.ravel())[1:].mean())
    d2 = np.sqrt(np.bincount(f2.nuclei.ravel())[1:].mean())
    assert 1.6 < d2 / d1 < 2.4
    assert SyntheticAtlasConfig(scale=2.0).preprocess_hint["downsample_factor"] == 2


def test_make_field_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown family 'golgy'"):
        make_field("golgy")
    with pytest.raises(TypeError, match="`protein` must be"):
        make_field(3)
    with pytest.raises(ValueError, match="`field_index` must be >= 0"):
        make_field("er", field_index=-1)


# --- the atlas on disk ----------------------------------------------------------------


def test_atlas_files_and_ground_truth_tables(tmp_path):
    cfg = _tiny_atlas()
    manifest = generate_atlas(tmp_path, cfg, progress=False)
    rows = _read_csv(manifest)
    assert list(rows[0]) == [
        "path",
        "protein_id",
        "fov_id",
        "protein_channel",
        "nucleus_channel",
        "axes",
    ]
    assert len(rows) == 13
    gt = {r["protein_id"]: r for r in _read_csv(tmp_path / "ground_truth.csv")}
    ann = _read_csv(tmp_path / "annotations.csv")
    cx = {r["protein_id"]: r["complex"] for r in _read_csv(tmp_path / "complexes.csv")}
    assert list(ann[0]) == ["ensg_id", "target_name", "annotation_name", "annotation_grade"]
    single = {k: v["family"] for k, v in gt.items() if v["family"] != "mixed"}
    assert {a["target_name"]: a["annotation_name"] for a in ann if a["target_name"] in single} == (
        single
    )
    for k in set(gt) - set(single):  # mixed proteins: nuclear and cytoplasmic
        assert sorted(a["annotation_name"] for a in ann if a["target_name"] == k) == [
            "cytoplasmic",
            "nucleoplasm",
        ]
    assert cx == {k: v["complex"] for k, v in gt.items()}
    meta = json.loads((tmp_path / "synth.json").read_text())
    assert meta["preprocess_hint"] == {
        "downsample_factor": 1,
        "crop_size": 100,
        "nucleus_diameter": 35.0,
    }
    for r in rows:
        assert r["protein_id"] in gt and r["axes"] == "CZYX"
        with tifffile.TiffFile(tmp_path / r["path"]) as tif:
            assert tif.series[0].axes == "CZYX"
            img = tif.series[0].asarray()
        assert img.shape == (2, 3, 128, 128) and img.dtype == np.uint16
        mask = tifffile.imread(tmp_path / "masks" / r["protein_id"] / f"{r['fov_id']}.tif")
        assert mask.shape == (128, 128) and mask.max() >= 1


def test_atlas_bytes_do_not_depend_on_parallelism(tmp_path):
    cfg = _tiny_atlas(families=("golgi", "mixed"), n_proteins=None, complex_size=(2, 2))
    generate_atlas(tmp_path / "serial", cfg, progress=False)
    generate_atlas(tmp_path / "parallel", cfg, progress=False, n_jobs=2)
    assert _digest(tmp_path / "serial") == _digest(tmp_path / "parallel")


def test_atlas_resumes_and_refuses_other_settings(tmp_path):
    cfg = _tiny_atlas(families=("centrosome",), n_proteins=None, complex_size=(2, 2))
    generate_atlas(tmp_path, cfg, progress=False)
    before = _digest(tmp_path)
    first = sorted((tmp_path / "images").rglob("*.tif"))
    first[0].unlink()
    kept = first[1].stat().st_mtime_ns
    generate_atlas(tmp_path, cfg, progress=False)
    assert _digest(tmp_path) == before
    assert first[1].stat().st_mtime_ns == kept  # untouched, not rewritten
    with pytest.raises(ValueError, match="other settings"):
        generate_atlas(tmp_path, _tiny_atlas(families=("centrosome",), n_proteins=None, seed=5))


def test_generate_atlas_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="`n_jobs` must be a positive integer"):
        generate_atlas(tmp_path, _tiny_atlas(), n_jobs=0)
    with pytest.raises(ValueError, match="`compression` must be None or 'zlib'"):
        generate_atlas(tmp_path, _tiny_atlas(), compression="lzw")


def test_cli_synth_writes_an_atlas(tmp_path, capsys):
    from cyto.cli import main

    code = main(
        [
            "synth",
            "-o",
            str(tmp_path),
            "--families",
            "er,golgi",
            "--complexes-per-family",
            "1",
            "--fields",
            "1",
            "--z-planes",
            "2",
            "--quiet",
            "--seed",
            "4",
        ]
    )
    assert code == 0
    assert "--downsample 1 --crop-size 100 --nucleus-diameter 35" in capsys.readouterr().out
    assert len(_read_csv(tmp_path / "manifest.csv")) >= 4


# --- agreement with cyto.preprocess -----------------------------------------------------


@pytest.mark.slow
def test_true_masks_match_segment_nuclei():
    from cyto.preprocess import segment_nuclei, segmentation_f1

    cfg = SyntheticAtlasConfig(seed=11)
    cat = make_catalog(cfg)
    scores = []
    for k, protein in enumerate(cat[:6]):
        f = make_field(protein, config=cfg, field_index=k)
        pred = segment_nuclei(
            f.image[0].max(0), nucleus_diameter=cfg.preprocess_hint["nucleus_diameter"]
        )
        scores.append(segmentation_f1(f.nuclei, pred, ignore_border=True).f1)
    assert np.mean(scores) >= 0.9, scores
    assert min(scores) >= 0.8, scores


def test_atlas_round_trips_through_preprocess_readers(tmp_path):
    pre = pytest.importorskip("cyto.preprocess")
    needed = ("read_manifest", "read_stack", "list_fovs", "preprocess_dataset")
    if not all(hasattr(pre, name) for name in needed):
        pytest.skip("the readers of cyto.preprocess are not available yet")
    from cyto.data import CropStore

    cfg = _tiny_atlas(
        families=("er", "mixed"),
        n_proteins=None,
        complex_size=(2, 2),
        complexes_per_family=1,
        field_size=256,
        cells_per_field=(12, 16),
    )
    manifest = generate_atlas(tmp_path / "atlas", cfg, progress=False)
    specs = pre.read_manifest(manifest)
    assert [s.fov_id for s in pre.list_fovs(tmp_path / "atlas")] == [s.fov_id for s in specs]
    catalog = {p.protein_id: p for p in make_catalog(cfg)}
    assert {s.protein_id for s in specs} == set(catalog)
    for spec in specs:
        assert (spec.protein_channel, spec.nucleus_channel) == (1, 0)
        expected = make_field(catalog[spec.protein_id], config=cfg, field_index=0).image
        np.testing.assert_array_equal(pre.read_stack(spec.path, axes=spec.axes), expected)
        np.testing.assert_array_equal(pre.read_stack(spec.path), expected)  # axes from file
    report = pre.preprocess_dataset(
        manifest, tmp_path / "crops.h5", workers=1, progress=False, **cfg.preprocess_hint
    )
    assert report is not None
    with CropStore(tmp_path / "crops.h5") as store:
        assert len(store) > 0 and store.crop_size == 100
        assert set(store.protein_ids) <= set(catalog)


def test_plates_and_a_simulated_plate_effect(tmp_path):
    """Fields spread over plates get a `plate` column; plate 2's protein channel is
    defocused and brighter, its nuclear channel and plate 1 untouched; atlases without
    plates keep their settings (and their content hash)."""
    from cyto.data import SyntheticAtlasConfig, make_catalog, make_field

    base = dict(
        families=("er", "golgi"), complex_size=(2, 2), n_proteins=None, field_size=128, z_planes=2
    )
    assert "plates" not in SyntheticAtlasConfig(**base).to_dict()
    plain = SyntheticAtlasConfig(plates=2, **base)
    hit = SyntheticAtlasConfig(plates=2, plate_effect=1.5, **base)
    protein = make_catalog(plain)[0]
    a0, b0 = (make_field(protein, config=c, field_index=0).image for c in (plain, hit))
    a1, b1 = (make_field(protein, config=c, field_index=1).image for c in (plain, hit))
    np.testing.assert_array_equal(a0, b0)  # plate 1
    np.testing.assert_array_equal(a1[0], b1[0])  # Hoechst of plate 2
    assert not np.array_equal(a1[1], b1[1])

    # defocus: less high-frequency energy per unit of contrast (the gain cancels out)
    def sharpness(img):
        img = img.astype(float)
        return np.abs(np.diff(img, axis=-1)).mean() / img.std()

    assert sharpness(b1[1]) < 0.8 * sharpness(a1[1])  # measured 0.055 vs 0.077
    assert b1[1].astype(float).std() > a1[1].astype(float).std()  # and brighter
    with pytest.raises(ValueError, match="`plates` must be a positive integer"):
        SyntheticAtlasConfig(plates=0)
    with pytest.raises(ValueError, match="`plate_effect` must be >= 0"):
        SyntheticAtlasConfig(plate_effect=-1.0)
    # an arrayed screen: every field of a protein on the plate of that protein
    arrayed = SyntheticAtlasConfig(plates=2, plate_effect=1.5, plate_layout="protein", **base)
    second = make_catalog(arrayed)[1]
    assert [arrayed.plate_of(k, protein.index) for k in range(3)] == [0, 0, 0]
    assert [arrayed.plate_of(k, second.index) for k in range(3)] == [1, 1, 1]
    np.testing.assert_array_equal(make_field(protein, config=arrayed, field_index=1).image, a1)
    assert SyntheticAtlasConfig.from_dict(arrayed.to_dict()) == arrayed
    assert "plate_layout" not in hit.to_dict()  # the default keeps older content hashes
    with pytest.raises(ValueError, match="`plate_layout` must be 'field' or 'protein'"):
        SyntheticAtlasConfig(plate_layout="well")


def test_overwrite_with_other_settings_leaves_no_old_image(tmp_path):
    """--overwrite with another seed: labels and pixels both of the new atlas."""
    old = _tiny_atlas(families=("centrosome",), n_proteins=None, complex_size=(2, 2))
    new = _tiny_atlas(families=("centrosome",), n_proteins=None, complex_size=(2, 2), seed=5)
    generate_atlas(tmp_path / "a", old, progress=False)
    generate_atlas(tmp_path / "a", new, progress=False, overwrite=True)
    generate_atlas(tmp_path / "fresh", new, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "fresh")


def test_a_full_disk_is_an_error_not_an_empty_manifest(tmp_path, monkeypatch):
    import errno

    from cyto.cli import main
    from cyto.data.synthetic import _atlas

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atlas, "_write_tiff", full)
    cfg = _tiny_atlas(families=("centrosome",), n_proteins=None, complex_size=(2, 2))
    with pytest.raises(OSError, match="No space left on device"):
        generate_atlas(tmp_path / "a", cfg, progress=False)
    assert not (tmp_path / "a" / "manifest.csv").exists()
    code = main(["synth", "--families", "centrosome", "-o", str(tmp_path / "b"), "-q", "-j", "1"])
    assert code == 2 and not (tmp_path / "b" / "manifest.csv").exists()
