"""The main job end to end (`cyto demo`, `cyto ablate`) and its helpers."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cyto.pipeline import (
    ABLATION_VARIANTS,
    DEMO_PRESETS,
    STAGES,
    knn_family_accuracy,
    localize_hidden,
    run_ablation,
    run_demo,
)


def test_knn_family_accuracy_separates_clusters(rng: np.random.Generator) -> None:
    centres = np.array([[10.0, 10.0], [20.0, 0.0], [0.0, 20.0]])
    labels = np.repeat(["a", "b", "c"], 20)
    x = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 2))
    q = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 2))
    assert knn_family_accuracy(x, labels, q, labels, n_neighbors=5) == 1.0
    assert knn_family_accuracy(x, labels, q, labels, n_neighbors=5, metric="cosine") > 0.9
    shuffled = rng.permutation(labels)
    assert knn_family_accuracy(x, shuffled, q, labels, n_neighbors=5) < 0.7


def test_knn_family_accuracy_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError, match="same width"):
        knn_family_accuracy(np.zeros((4, 2)), list("aabb"), np.zeros((4, 3)), list("aabb"))
    with pytest.raises(ValueError, match="`metric` must be"):
        knn_family_accuracy(
            np.zeros((4, 2)), list("aabb"), np.zeros((4, 2)), list("aabb"), metric="l1"
        )
    with pytest.raises(ValueError, match="one label per row"):
        knn_family_accuracy(np.zeros((4, 2)), list("aab"), np.zeros((4, 2)), list("aabb"))


def test_localize_hidden_uses_only_the_other_proteins(rng: np.random.Generator) -> None:
    fam_profiles = {"er": np.r_[np.ones(5), np.zeros(5)], "golgi": np.r_[np.zeros(5), np.ones(5)]}
    proteins = ["p0", "p1", "p2", "p3", "p4", "p5"]
    families = {"p0": "er", "p1": "er", "p2": "er", "p3": "golgi", "p4": "golgi", "p5": "golgi"}
    spectra = np.stack([fam_profiles[families[p]] + 0.1 * rng.random(10) for p in proteins])
    rows = localize_hidden(spectra, proteins, families, hidden=["p0", "p5"])
    assert [r["predicted"] for r in rows] == ["er", "golgi"]
    assert all(r["hit"] for r in rows)
    with pytest.raises(ValueError, match="no spectrum"):
        localize_hidden(spectra, proteins, families, hidden=["zz"])


def test_run_demo_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`preset` must be one of"):
        run_demo(tmp_path, preset="huge")
    with pytest.raises(ValueError, match="`stages` must be names from"):
        run_demo(tmp_path, preset="tiny", stages=["fit"])
    with pytest.raises(ValueError, match="`variants` must be names from"):
        run_ablation(tmp_path, preset="tiny", variants=["no brain"])


def _chance_score(umap_csv: Path, level: str, seed: int = 0) -> tuple[float, float]:
    """Γ of the atlas and Γ with the labels permuted (chance)."""
    from cyto.analysis import clustering_score

    with open(umap_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    Y = np.array([[float(r["umap1"]), float(r["umap2"])] for r in rows])
    labels = np.array([r[level] or None for r in rows], dtype=object)
    perm = np.random.default_rng(seed).permutation(labels)
    return clustering_score(Y, labels), clustering_score(Y, perm)


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_demo(out, preset="tiny", progress=False, echo=lambda _: None)

    for rel in (
        "atlas/manifest.csv",
        "atlas/ground_truth.csv",
        "crops.h5",
        "run/checkpoints/best.pt",
        "run/metrics.jsonl",
        "embeddings.h5",
        "baselines.json",
        "analysis/report.html",
        "analysis/umap.csv",
        "report.html",
        "summary.json",
    ):
        assert (out / rel).exists(), rel
    assert [r.name for r in result.stages] == list(STAGES)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"]) == set(STAGES)
    assert all(s["seconds"] > 0 for s in summary["stages"].values())

    # scores are finite and above chance
    for level in ("organelle", "complex"):
        score = summary["scores"][level]["mean"]
        assert math.isfinite(score)
        atlas_score, chance = _chance_score(out / "analysis" / "umap.csv", level)
        assert atlas_score == pytest.approx(summary["scores"][level]["scores"][0])
        assert atlas_score > chance, (level, atlas_score, chance)
    n_families = len({r["family"] for r in csv.DictReader(open(out / "atlas/ground_truth.csv"))})
    assert set(summary["knn_family_accuracy"]) == {"euclidean", "cosine"}
    assert min(summary["knn_family_accuracy"].values()) > 1.0 / n_families
    for baseline in summary["baselines"].values():
        assert math.isfinite(baseline["organelle"]["mean"])
    html = (out / "report.html").read_text()
    for heading in ("Stages", "Clustering scores", "Localization of hidden proteins"):
        assert heading in html
    assert "data:image/png;base64" in html

    # a finished demo is not redone; a named stage is rerun with the ones after it
    again = run_demo(out, preset="tiny", progress=False, echo=lambda _: None, stages=["analyze"])
    assert [r.skipped for r in again.stages] == [True] * (len(STAGES) - 1) + [False]


@pytest.mark.slow
def test_ablation_table(tmp_path: Path) -> None:
    variants = ["full model", "no identification task"]
    # the table's plumbing, not the scores' quality: two epochs per model
    quick = dataclasses.replace(DEMO_PRESETS["tiny"], max_epochs=2)
    result = run_ablation(
        tmp_path / "ablate",
        preset=quick,
        variants=variants,
        seeds=(0,),
        umap_seeds=(0,),
        progress=False,
        echo=lambda _: None,
    )
    assert result.table.variants == tuple(variants)
    assert result.table.levels == ("organelle", "complex")
    assert np.isfinite(result.table.mean).all()
    for path in result.files.values():
        assert path.exists()
    assert "| no identification task |" in result.files["ablation.md"].read_text()
    # the variant switches reach the trained model
    cfg = json.loads(
        (tmp_path / "ablate/runs/no_identification_task/seed0/config.json").read_text()
    )
    assert cfg["model"]["classify"] is False
    assert set(ABLATION_VARIANTS) >= set(variants)

    # rerun: finished models are skipped, and the table holds the requested seeds only,
    # even when scores.json also keeps another seed from an earlier run
    scores_path = tmp_path / "ablate/scores.json"
    scores = json.loads(scores_path.read_text())
    for name in variants:
        scores[name]["seed7"] = {"organelle": [1e6], "complex": [1e6]}
    scores_path.write_text(json.dumps(scores))
    again = run_ablation(
        tmp_path / "ablate",
        preset=quick,
        variants=variants,
        seeds=(0,),
        umap_seeds=(0,),
        progress=False,
        echo=lambda _: None,
    )
    np.testing.assert_array_equal(again.table.mean, result.table.mean)
    assert "over 1 trained model × 1 UMAP)" in again.files["ablation.md"].read_text()


def test_pipeline_stops_when_preprocessing_made_no_crops(tmp_path: Path) -> None:
    from cyto.pipeline import _check_preprocessed
    from cyto.preprocess import BatchReport

    failed = [("a.tif", "worker process died"), ("b.tif", "unreadable")]
    with pytest.raises(ValueError, match=r"no crops .*2 of 2 fields failed.*a.tif: worker"):
        _check_preprocessed(BatchReport(tmp_path / "c.h5", n_fovs=2, failed=failed))
    ok = BatchReport(tmp_path / "c.h5", n_fovs=2, n_crops=5)
    assert _check_preprocessed(ok) is ok
