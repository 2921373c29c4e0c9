"""The synthetic Cell Painting screen: plate layout, truth tables, stains, determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cyto.cli import main
from cyto.data.synthetic import CellPaintingConfig, generate_cellpainting
from cyto.data.synthetic._cellpainting import MOAS, STAINS, _stain_params, render_well_field

SMALL = CellPaintingConfig(
    perturbations_per_moa=2, replicates=2, control_wells=2, plates=2, fields_per_well=1,
    field_size=96, z_planes=1, cells_per_field=(3, 5),
)  # fmt: skip


def test_layout_truth_and_stains(tmp_path: Path) -> None:
    manifest = generate_cellpainting(tmp_path / "s", SMALL)
    rows = list(csv.DictReader(open(manifest, encoding="utf-8")))
    # 2 DMSO wells a plate, 2 perturbations x 5 MoAs x 2 replicates, one field a well
    assert len(rows) == 2 * 2 + 2 * len(MOAS) * 2
    assert {r["plate"] for r in rows} == {"P1", "P2"}
    per_plate = {p: [r for r in rows if r["plate"] == p and r["protein_id"] == "DMSO"]
                 for p in ("P1", "P2")}  # fmt: skip
    assert all(len(v) == 2 for v in per_plate.values())
    truth = json.loads((tmp_path / "s" / "synth.json").read_text())["perturbations"]
    inactive = {p["name"] for p in truth if p["potency"] == 0}
    assert len(inactive) == len(MOAS) * round(2 * SMALL.inactive_fraction)
    flags = {r["protein_id"]: r["Metadata_active"] for r in rows if r["protein_id"] != "DMSO"}
    assert {p for p, f in flags.items() if f == "false"} == inactive
    moa = dict(csv.reader(open(tmp_path / "s" / "moa.csv", encoding="utf-8")))
    assert moa.pop("protein_id") == "family" and set(moa.values()) == set(MOAS)
    image = tifffile.imread(tmp_path / "s" / rows[0]["ER"])
    assert image.shape == (1, 96, 96) and image.dtype == np.uint16


def test_a_moa_changes_its_stain_and_not_the_others() -> None:
    well = {"name": "x", "moa": "mito_uncoupler", "potency": 1.0}
    base = {**well, "moa": "", "potency": 0.0}
    a, nuclei_a = render_well_field(SMALL, well, np.ones(len(STAINS)), 5)
    b, nuclei_b = render_well_field(SMALL, base, np.ones(len(STAINS)), 5)
    np.testing.assert_array_equal(nuclei_a, nuclei_b)  # the same cells
    assert a.shape == b.shape == (len(STAINS), 1, 96, 96)
    for moa, effect in MOAS.items():
        shifted, control = _stain_params(moa, 1.0), _stain_params("", 0.0)
        changed = {s for s in shifted if shifted[s] != control[s]}
        assert changed == {s for s in effect if s != "nucleus"}, moa
    weak = _stain_params("mito_uncoupler", 0.5)["Mito"]["length"]
    assert control["Mito"]["length"] > weak > _stain_params("mito_uncoupler", 1.0)["Mito"]["length"]


def test_the_command_writes_it_and_refuses_other_settings(tmp_path: Path, capsys) -> None:
    out = tmp_path / "screen"
    generate_cellpainting(out, SMALL)
    first = (out / "manifest.csv").read_text()
    generate_cellpainting(out, SMALL)  # the same settings: the same screen again
    assert (out / "manifest.csv").read_text() == first
    with pytest.raises(ValueError, match="other settings"):
        generate_cellpainting(out, CellPaintingConfig(seed=1, field_size=96))
    code = main(["synth", "--kind", "cellpainting", "-o", str(out), "-q", "--seed", "3"])
    assert code == 2 and "other settings" in capsys.readouterr().err
