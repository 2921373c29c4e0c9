"""`cyto demo` end to end on the tiny preset: one demo per module, small tests of it.

The demo runs once (a module fixture, about two minutes on 2 cores); each test checks
one behaviour of what it wrote, so a failure names the behaviour and no single test
carries the whole job's time.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from cyto.cli import main
from cyto.data import CropStore
from cyto.workflows import STAGES, run_demo, stage_hashes

pytestmark = pytest.mark.slow


def _quiet(**kw):
    return {"preset": "tiny", "progress": False, "echo": lambda _: None, **kw}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    return out, run_demo(out, **_quiet())


@pytest.fixture(scope="module")
def own(demo, tmp_path_factory):
    """The same job on "your own data": the demo's crop store and its tables."""
    out, _ = demo
    store = out / "crops.h5"
    digest = hashlib.sha256(store.read_bytes()).hexdigest()
    mine = tmp_path_factory.mktemp("own") / "own"
    result = run_demo(
        mine,
        data=store,
        ground_truth=out / "atlas/annotations.csv",
        complexes=out / "atlas/complexes.csv",
        **_quiet(),
    )
    return mine, result, digest


def _chance_score(umap_csv: Path, level: str, seed: int = 0) -> tuple[float, float]:
    """Γ of the atlas and Γ with the labels permuted (chance)."""
    from cyto.analysis import clustering_score

    with open(umap_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    Y = np.array([[float(r["umap1"]), float(r["umap2"])] for r in rows])
    labels = np.array([r[level] or None for r in rows], dtype=object)
    perm = np.random.default_rng(seed).permutation(labels)
    return clustering_score(Y, labels), clustering_score(Y, perm)


def test_every_stage_writes_its_outputs(demo) -> None:
    out, result = demo
    for rel in (
        "atlas/manifest.csv",
        "atlas/ground_truth.csv",
        "crops.h5",
        "run/checkpoints/best.pt",
        "run/metrics.jsonl",
        "embeddings.h5",
        "baselines.json",
        "analysis/sections.json",
        "analysis/umap.csv",
        "report.html",
        "summary.json",
    ):
        assert (out / rel).exists(), rel
    assert [r.name for r in result.stages] == list(STAGES)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"]) == set(STAGES)
    assert all(s["seconds"] > 0 for s in summary["stages"].values())


def test_scores_are_finite_and_above_chance(demo) -> None:
    out, _ = demo
    summary = json.loads((out / "summary.json").read_text())
    for level in ("organelle", "complex"):
        assert math.isfinite(summary["scores"][level]["mean"])
        atlas_score, chance = _chance_score(out / "analysis" / "umap.csv", level)
        assert atlas_score == pytest.approx(summary["scores"][level]["values"][0])
        assert atlas_score > chance, (level, atlas_score, chance)
    n_families = len({r["family"] for r in csv.DictReader(open(out / "atlas/ground_truth.csv"))})
    assert set(summary["knn_family_accuracy"]) == {"euclidean", "cosine"}
    assert min(summary["knn_family_accuracy"].values()) > 1.0 / n_families
    for baseline in summary["baselines"].values():
        assert math.isfinite(baseline["organelle"]["mean"])


def test_the_report_is_one_page_with_baselines_training_and_explorer(demo) -> None:
    out, _ = demo
    html = (out / "report.html").read_text()
    for heading in ("Stages", "Clustering score", "Localization of hidden proteins"):
        assert heading in html
    assert "baseline: pixels" in html and "k-nearest-neighbour" in html
    assert "data:image/png;base64" in html
    for heading in ("Localization atlas", "Clustering score", "Feature spectra"):
        assert f">{heading}</h2>" in html
    assert not (out / "analysis" / "report.html").exists()
    assert ">Training</h2>" in html and (out / "analysis/figures/training.svg").is_file()
    assert 'href="analysis/explorer.html"' in html and (out / "analysis/explorer.html").is_file()


def test_synthetic_stacks_are_compressed(demo) -> None:
    import tifffile

    out, _ = demo
    first = next((out / "atlas" / "images").rglob("*.tif"))
    with tifffile.TiffFile(first) as tif:
        assert tif.pages[0].compression != tifffile.COMPRESSION.NONE


def test_a_moved_demo_folder_finds_its_store_and_run(demo, tmp_path) -> None:
    out, _ = demo
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    hidden = tmp_path / "hidden"
    out.rename(hidden)  # the absolute paths recorded in the copy now lead nowhere
    try:
        run_demo(moved, **_quiet(stages=["analyze"]))
        page = (moved / "report.html").read_text()
        assert "representative_crops" in page  # the crops came from the moved store
        assert '"thumbs":{' in (moved / "analysis/explorer.html").read_text()
    finally:
        hidden.rename(out)


def test_finished_stages_are_skipped_and_a_named_one_reruns(demo) -> None:
    out, _ = demo
    again = run_demo(out, **_quiet(stages=["analyze"]))
    assert [r.skipped for r in again.stages] == [True] * (len(STAGES) - 1) + [False]


def test_own_data_runs_the_same_job(own) -> None:
    mine, result, _ = own
    assert not (mine / "atlas").exists() and not (mine / "crops.h5").exists()
    assert "user data" in result.stages[0].summary
    for level in ("organelle", "complex"):
        assert math.isfinite(result.summary["scores"][level]["mean"])
        assert math.isfinite(result.summary["baselines"]["pixels"][level]["mean"])
    assert set(result.summary["knn_family_accuracy"]) == {"euclidean", "cosine"}
    assert "cyto demo: crops.h5" in (mine / "report.html").read_text()


def test_one_store_one_seed_gives_the_same_weights_and_encodings(demo, own) -> None:
    (out, _), (mine, _, _) = demo, own
    ours, theirs = stage_hashes(out), stage_hashes(mine)
    assert ours["train"] == theirs["train"] and ours["embed"] == theirs["embed"]
    assert set(ours) == set(STAGES) and all(ours[s] for s in STAGES)
    rec = json.loads((out / "stages" / "train.json").read_text())
    assert rec["threads"] >= 1 and rec["versions"]["torch"]


def test_rerunning_preprocess_never_touches_the_users_store(demo, own) -> None:
    (out, _), (mine, _, digest) = demo, own
    store = out / "crops.h5"
    run_demo(
        mine,
        data=store,
        ground_truth=out / "atlas/annotations.csv",
        **_quiet(stages=["preprocess"]),
    )
    assert hashlib.sha256(store.read_bytes()).hexdigest() == digest
    # with organelle labels only, only the organelle level is scored
    rerun = json.loads((mine / "summary.json").read_text())
    levels = set(rerun["baselines"]["pixels"]) - {"retrieval"}  # Γ levels, then mAP
    assert set(rerun["scores"]) == {"organelle"} == levels


def test_a_demo_folder_of_other_data_is_refused(demo, own) -> None:
    (out, _), (mine, _, _) = demo, own
    with pytest.raises(ValueError, match="holds a demo of data="):
        run_demo(out, data=out / "crops.h5", **_quiet())
    with pytest.raises(ValueError, match="`train_budget_s` must be a number of seconds >= 0"):
        run_demo(mine, data=out / "crops.h5", preset="tiny", train_budget_s=-1.0)


@pytest.mark.slow
def test_the_cell_painting_demo_scores_the_screen(tmp_path) -> None:
    """``cyto demo --kind cellpainting --preset tiny``: the synthetic screen through every
    stage, held-out wells, the JUMP metrics in the report and in scores.json."""
    out = tmp_path / "cp"
    assert main(["demo", "--kind", "cellpainting", "--preset", "tiny", "-o", str(out), "-q",
                 "--threads", "2"]) == 0  # fmt: skip
    screen = json.loads((out / "analysis" / "scores.json").read_text())["screen"]
    assert screen["n_wells"] >= 20 and 0 < screen["activity_map"] <= 1
    assert "Perturbation screen (JUMP metrics)" in (out / "report.html").read_text()
    with CropStore(out / "crops.h5") as store:
        assert store.channels == ("DNA", "ER", "RNA", "AGP", "Mito")
    with pytest.raises(SystemExit):
        main(["demo", "--kind", "screen", "-o", str(out)])
    # a folder of the atlas demo is not continued as a screen
    assert main(["demo", "--preset", "tiny", "-o", str(out), "-q"]) == 2
