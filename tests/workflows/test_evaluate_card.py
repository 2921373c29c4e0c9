"""`cyto evaluate`: the evaluation card, and a plate effect that correction removes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cyto.cli import main
from cyto.data import EmbeddingsWriter


def _write(path: Path, X: np.ndarray, proteins: np.ndarray, fovs: np.ndarray, obs: dict) -> Path:
    """A finished embeddings file of test-split crops with these encodings and columns."""
    w = EmbeddingsWriter(path, {"format": "test"})
    w.create(
        {"global": (X.shape[1], np.dtype(np.float32))},
        protein_ids=proteins,
        fov_ids=np.array([f"{f}-f0" for f in fovs]),
        split=np.full(proteins.size, "test"),
        crop_index=np.arange(proteins.size),
        classes=sorted(set(proteins)),
        attrs={},
        obs=obs,
    )
    w.write({"global": X.astype(np.float32)})
    w.finish({})
    return w.commit()


def _embeddings(path: Path, *, plate_shift: float, seed: int = 0) -> Path:
    """24 proteins in 4 families, 10 crops each, on 2 plates; plate 2 is shifted."""
    rng = np.random.default_rng(seed)
    proteins = np.repeat([f"P{i:02d}" for i in range(24)], 10)
    family = np.arange(proteins.size) // 10 % 4
    # every family has proteins on both plates (plate and family independent)
    plate = np.where(np.arange(24) // 4 % 2 == 0, "plate1", "plate2")[
        np.arange(proteins.size) // 10
    ]
    X = 3.0 * np.eye(16)[family] + rng.normal(size=(proteins.size, 16))
    X[plate == "plate2"] += plate_shift * rng.normal(size=16)  # a plate-wide offset
    gt = path.parent / "gt.csv"
    gt.write_text("protein_id,family\n" + "".join(f"P{i:02d},fam{i % 4}\n" for i in range(24)))
    return _write(path, X, proteins, proteins, {"plate": plate})


def test_card_with_batch_correction_recovers_the_family_map(tmp_path: Path) -> None:
    emb = _embeddings(tmp_path / "emb.h5", plate_shift=6.0)
    argv = ["evaluate", str(emb), "-o", str(tmp_path / "card"), "--ground-truth"]
    assert main([*argv, str(tmp_path / "gt.csv"), "--batch-key", "plate"]) == 0
    card = json.loads((tmp_path / "card" / "evaluation.json").read_text())
    rows = {(r["representation"], r["correction"]): r for r in card["rows"]}
    raw = rows[("cyto (global encodings)", "none")]
    fixed = rows[("cyto (global encodings)", "center_scale")]
    # the plate offset splits each family in two; centring per plate joins it again
    assert raw["family_map"] < 0.8 < fixed["family_map"]
    assert fixed["gamma"]["organelle"] > raw["gamma"]["organelle"]
    table = (tmp_path / "card" / "evaluation.md").read_text()
    assert "| cyto (global encodings) | center_scale |" in table
    profiles = (tmp_path / "card" / "profiles.csv").read_text().splitlines()
    assert profiles[0].startswith(
        "Metadata_protein_id,Metadata_organelle,Metadata_n_crops,feature_0"
    )
    assert len(profiles) == 25 and profiles[1].startswith("P00,fam0,10,")
    # the same table as Parquet, pycytominer's format (when pyarrow is installed)
    if importlib.util.find_spec("pyarrow") is not None:
        import pandas as pd

        table = pd.read_parquet(tmp_path / "card" / "profiles.parquet")
        assert list(table.columns[:4]) == [
            "Metadata_protein_id",
            "Metadata_organelle",
            "Metadata_n_crops",
            "feature_0",
        ]
        assert table.shape[0] == 24 and table.iloc[0]["Metadata_protein_id"] == "P00"
        assert table.iloc[0]["Metadata_n_crops"] == 10
    # no crop store: the baselines are left out, and the card says nothing false about them
    assert all(not r["representation"].startswith("baseline") for r in card["rows"])


def test_card_scores_harmony_beside_centring(tmp_path: Path, capsys) -> None:
    emb = _embeddings(tmp_path / "emb.h5", plate_shift=6.0)
    argv = ["evaluate", str(emb), "-o", str(tmp_path / "card"), "--ground-truth"]
    argv += [str(tmp_path / "gt.csv"), "--batch-key", "plate", "--corrections"]
    if importlib.util.find_spec("harmonypy") is None:
        assert main([*argv, "harmony"]) == 2
        assert "cyto[harmony]" in capsys.readouterr().err
        return
    assert main([*argv, "center_scale", "harmony"]) == 0
    card = json.loads((tmp_path / "card" / "evaluation.json").read_text())
    rows = {(r["representation"], r["correction"]): r for r in card["rows"]}
    assert set(rows) == {
        ("cyto (global encodings)", c) for c in ("none", "center_scale", "harmony")
    }
    raw, fixed = (
        rows[("cyto (global encodings)", "none")],
        rows[("cyto (global encodings)", "harmony")],
    )
    # Harmony ran on the principal components (its defaults do not undo an offset this
    # large: benchmarks/results/plate_effect.md measures it on the synthetic plates)
    assert np.isfinite(fixed["family_map"]) and fixed["family_map"] != raw["family_map"]
    assert (
        "| cyto (global encodings) | harmony |" in (tmp_path / "card" / "evaluation.md").read_text()
    )
    with pytest.raises(SystemExit) as exc:  # argparse names the choices
        main([*argv, "combat"])
    assert exc.value.code == 2
    assert "invalid choice: 'combat'" in capsys.readouterr().err


def test_card_refuses_an_unknown_batch_key(tmp_path: Path, capsys) -> None:
    emb = _embeddings(tmp_path / "emb.h5", plate_shift=0.0)
    argv = ["evaluate", str(emb), "-o", str(tmp_path / "card"), "--ground-truth"]
    assert main([*argv, str(tmp_path / "gt.csv"), "--batch-key", "well"]) == 2
    assert "`batch_key` 'well' is not a per-crop column" in capsys.readouterr().err


def test_analyze_reports_before_and_after_batch_correction(tmp_path: Path) -> None:
    emb = _embeddings(tmp_path / "emb.h5", plate_shift=6.0)
    argv = ["analyze", str(emb), "-o", str(tmp_path / "rep"), "--ground-truth"]
    assert main([*argv, str(tmp_path / "gt.csv"), "--batch-key", "plate", "-q"]) == 0
    scores = json.loads((tmp_path / "rep" / "scores.json").read_text())
    before = scores["evaluation"]["retrieval"]["family"]["map"]
    after = scores["evaluation_corrected"]["retrieval"]["family"]["map"]
    assert scores["evaluation_corrected"]["batch_key"] == "plate"
    assert before < 0.8 < after  # the same numbers as the card's
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Batch correction (plate)" in html and "per-plate centring and scaling" in html
    bad = ["analyze", str(emb), "-o", str(tmp_path / "rep2"), "--ground-truth"]
    assert main([*bad, str(tmp_path / "gt.csv"), "--batch-key", "well", "-q"]) == 2


def _screen_embeddings(path: Path, seed: int = 0) -> Path:
    """A compound screen: 12 DMSO wells, 6 compounds x 3 wells (2 MoAs), 6 crops a well;
    the 4 compounds of MoA 'tub' and 'hdac' move their wells, 'inert' ones do not."""
    rng = np.random.default_rng(seed)
    moa = {"c0": "tub", "c1": "tub", "c2": "hdac", "c3": "hdac", "c4": "inert", "c5": "inert"}
    wells = [(f"D{k}", "DMSO") for k in range(12)]
    wells += [(f"{c}w{r}", c) for c in moa for r in range(3)]
    pert = np.repeat([p for _, p in wells], 6)
    well = np.repeat([w for w, _ in wells], 6)
    X = rng.normal(size=(pert.size, 16))
    for c, m in moa.items():
        if m != "inert":
            X[pert == c, {"tub": 0, "hdac": 1}[m]] += 2.5
    (path.parent / "moa.csv").write_text(
        "protein_id,family\n" + "".join(f"{c},{m}\n" for c, m in moa.items())
    )
    return _write(path, X, pert, well, {"well": well})


def test_card_of_a_compound_screen_scores_activity_and_consistency(tmp_path: Path) -> None:
    emb = _screen_embeddings(tmp_path / "emb.h5")
    argv = ["evaluate", str(emb), "-o", str(tmp_path / "card"), "--ground-truth",
            str(tmp_path / "moa.csv"), "--control", "DMSO"]  # fmt: skip
    assert main(argv) == 0
    card = json.loads((tmp_path / "card" / "evaluation.json").read_text())
    row = next(r for r in card["rows"] if r["representation"].startswith("cyto"))
    # the 4 compounds that change their wells are found active at q < 0.05
    assert {"c0", "c1", "c2", "c3"} <= set(row["active"])
    assert row["activity_significant"] == pytest.approx(len(row["active"]) / 6)
    assert row["n_wells"] == 30 and row["consistency_map"] > 0.5
    table = (tmp_path / "card" / "evaluation.md").read_text()
    assert "activity mAP (active at q<0.05)" in table
    argv[argv.index("DMSO")] = "PBS"
    assert main([*argv[:3], str(tmp_path / "card2"), *argv[4:]]) == 2
