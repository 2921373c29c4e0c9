"""`cyto analyze` end to end on a small fake embeddings file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cyto.analysis import analyze_embeddings
from cyto.cli import main


@pytest.mark.slow
def test_analyze_cli_writes_report(
    fake_embeddings: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "report"
    ablation = tmp_path / "ablation.npz"
    rng = np.random.default_rng(0)
    np.savez(
        ablation,
        images=rng.random((16, 16)),
        differences=rng.normal(size=(2, 16, 16)),
        titles=np.array(["code 3", "cluster ii"]),
    )
    # a second "model variant" whose global encodings carry no localization signal
    import h5py

    shuffled = tmp_path / "no_pretext.h5"
    with h5py.File(fake_embeddings["embeddings"], "r") as src, h5py.File(shuffled, "w") as dst:
        for key in ("protein_id", "split", "crop_index"):
            src.copy(key, dst)
        dst.create_dataset("global", data=rng.normal(size=src["global"].shape))
    code = main(
        [
            "analyze",
            str(fake_embeddings["embeddings"]),
            str(shuffled),
            "-o",
            str(out),
            "--ground-truth",
            str(fake_embeddings["annotations"]),
            "--complexes",
            str(fake_embeddings["complexes"]),
            "--seeds",
            "2",
            "--clusters",
            "4",
            "--n-neighbors",
            "10",
            "--ablation",
            str(ablation),
            "-q",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| model variant | organelle | complex |" in printed
    summary = json.loads((out / "scores.json").read_text())
    assert summary["atlas_split"] == "test" and summary["atlas_crops"] == 64
    by_level = {r["level"]: r for r in summary["scores"] if r["variant"] == "run_full"}
    assert by_level["organelle"]["n"] == 2 and by_level["organelle"]["mean"] > 3.0
    noise = {r["level"]: r for r in summary["scores"] if r["variant"] == "no_pretext"}
    assert noise["organelle"]["mean"] < by_level["organelle"]["mean"] / 3
    assert summary["feature_clusters"] == 4
    assert summary["localization_accuracy_loo"] == 1.0
    with open(out / "scores.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 8  # 2 variants x 2 levels x 2 seeds
    with open(out / "localization.csv") as fh:
        loc = {r["protein_id"]: r for r in csv.DictReader(fh)}
    # unannotated proteins (P?3) are localized to their family from the spectrum
    families = ("er", "nucleolus_gc", "mitochondria", "chromatin")
    for f, fam in enumerate(families):
        assert loc[f"P{f}3"]["annotated"] == ""
        assert loc[f"P{f}3"]["best"].startswith(fam + " ")
    with open(out / "feature_clusters.csv") as fh:
        clusters = {int(r["code"]): r["cluster"] for r in csv.DictReader(fh)}
    for block in range(4):  # each family's 16 planted codes form one feature cluster
        assert len({clusters[c] for c in range(16 * block, 16 * block + 16)}) == 1
    names = {p.name for p in (out / "figures").iterdir()}
    assert {
        "atlas.png",
        "highlights.png",
        "code_correlation.png",
        "family_spectra.png",
        "representative_crops.png",
        "clustering_scores.png",
        "difference_maps.png",
    } <= names
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 8
    assert "src='figures/" not in page and "http" not in page  # self-contained
    with open(out / "umap.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 64 and {"umap1", "umap2", "organelle", "complex"} <= set(rows[0])


def test_analyze_errors(fake_embeddings: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="embeddings file not found"):
        analyze_embeddings(tmp_path / "missing.h5", tmp_path / "r")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        analyze_embeddings(bad, tmp_path / "r")
    with pytest.raises(ValueError, match=r"`split` 'val' not in the embeddings file"):
        analyze_embeddings(fake_embeddings["embeddings"], tmp_path / "r", split="val")
    assert main(["analyze", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "r")]) == 2
