"""`cyto ablate`: the ablation table of model variants."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from cyto.workflows import (
    ABLATION_VARIANTS,
    DEMO_PRESETS,
    run_ablation,
)


@pytest.mark.slow
def test_ablation_table(tmp_path: Path) -> None:
    variants = ["full model", "no identification task"]
    # the table's plumbing, not the scores' quality: two epochs per model
    quick = dataclasses.replace(DEMO_PRESETS["tiny"], max_epochs=2)
    study = dict(preset=quick, variants=variants, seeds=(0,), umap_seeds=(0,), progress=False)
    result = run_ablation(tmp_path / "ablate", **study, echo=lambda _: None)
    assert result.table.variants == tuple(variants)
    assert result.table.levels == ("organelle", "complex")
    assert np.isfinite(result.table.mean).all()
    assert result.knn.levels == ("kNN cosine", "kNN Euclidean", "family mAP", "protein mAP")
    assert ((result.knn.mean >= 0) & (result.knn.mean <= 1)).all()
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
    # scores written before the kNN check existed get it on the rerun
    del scores["full model"]["seed0"]["knn_cosine"]
    del scores["full model"]["seed0"]["knn_euclidean"]
    # and those written before the mAP existed get it (without re-embedding the train split)
    del scores["no identification task"]["seed0"]["family_map"]
    scores_path.write_text(json.dumps(scores))
    again = run_ablation(tmp_path / "ablate", **study, echo=lambda _: None)
    np.testing.assert_array_equal(again.table.mean, result.table.mean)
    np.testing.assert_allclose(again.knn.mean, result.knn.mean)
    assert "seed7" in json.loads(scores_path.read_text())["full model"]  # kept, not used
    assert not list((tmp_path / "ablate/runs").rglob("embeddings_train*"))
    md = again.files["ablation.md"].read_text()
    assert "over 1 trained model × 1 UMAP; UMAPs aligned across the variants" in md
    tags = {json.loads(scores_path.read_text())[n]["seed0"]["umap"] for n in variants}
    assert tags == {"aligned:full model|no identification task"}
    # one UMAP per model instead: Γ is redone (no retraining), kNN and mAP are kept
    alone = run_ablation(tmp_path / "ablate", **study, umap="independent", echo=lambda _: None)
    assert "aligned" not in alone.files["ablation.md"].read_text()
    assert json.loads(scores_path.read_text())["full model"]["seed0"]["umap"] == "independent"
    np.testing.assert_allclose(alone.knn.mean, result.knn.mean)

    # on "your own data": a crop store and a ground-truth table with the organelle level only
    store = tmp_path / "ablate/crops_all.h5"
    labels = tmp_path / "labels.csv"
    rows = list(csv.DictReader(open(tmp_path / "ablate/atlas/ground_truth.csv")))
    labels.write_text(
        "protein_id,family\n" + "".join(f"{r['protein_id']},{r['family']}\n" for r in rows)
    )
    own = run_ablation(
        tmp_path / "own",
        data=store,
        ground_truth=labels,
        preset=quick,
        variants=["no nuclear channel"],
        seeds=(0,),
        umap_seeds=(0,),
        progress=False,
        echo=lambda _: None,
    )
    assert own.table.levels == ("organelle",) and np.isfinite(own.table.mean).all()
    assert "data crops_all.h5" in own.files["ablation.md"].read_text()
    with pytest.raises(ValueError, match="`ground_truth` or `complexes` is needed"):
        run_ablation(tmp_path / "own", data=store, preset=quick, progress=False)
    two = tmp_path / "ablate/crops_protein_distance.h5"
    with pytest.raises(ValueError, match=r"'nucleus without distance' needs \['nucleus'\]"):
        run_ablation(tmp_path / "own", data=two, ground_truth=labels, preset=quick, progress=False)
    strangers = tmp_path / "strangers.csv"
    strangers.write_text("protein_id,family\nNOPE1,er\n")
    with pytest.raises(ValueError, match=r"none of the .* proteins in the crops has a label"):
        run_ablation(
            tmp_path / "own",
            data=store,
            ground_truth=strangers,
            preset=quick,
            variants=["full model"],
            progress=False,
        )
