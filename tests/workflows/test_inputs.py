"""The demo's checks of its inputs before any work, its options from the CLI, and the
deprecated `cyto.pipeline` name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cyto.workflows import (
    DEMO_PRESETS,
    run_ablation,
    run_demo,
    stage_hashes,
)


def test_run_demo_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`preset` must be one of"):
        run_demo(tmp_path, preset="huge")
    with pytest.raises(ValueError, match="`stages` must be names from"):
        run_demo(tmp_path, preset="tiny", stages=["fit"])
    with pytest.raises(ValueError, match="`variants` must be names from"):
        run_ablation(tmp_path, preset="tiny", variants=["no brain"])


def test_threads_and_stage_hashes_reject_bad_input(tmp_path: Path) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="`threads` must be an integer >= 0"):
            run_demo(tmp_path / "t", threads=bad)
    with pytest.raises(FileNotFoundError, match="not a demo folder"):
        stage_hashes(tmp_path)


def test_run_demo_checks_its_input_arguments(tmp_path: Path) -> None:
    import h5py

    with pytest.raises(FileNotFoundError, match=r"`data`: .*does not exist"):
        run_demo(tmp_path / "a", data=tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="`ground_truth` only apply with `data`"):
        run_demo(tmp_path / "a", ground_truth=__file__)
    with pytest.raises(ValueError, match="`preprocess_options` only apply with `data`"):
        run_demo(tmp_path / "a", preprocess_options={"crop_size": 64})
    store = tmp_path / "crops.h5"
    with h5py.File(store, "w"):
        pass
    with pytest.raises(ValueError, match="is a crop store, already preprocessed"):
        run_demo(tmp_path / "a", data=store, preprocess_options={"crop_size": 64})
    with pytest.raises(TypeError, match="`data` must be a path"):
        run_demo(tmp_path / "a", data=3)  # type: ignore[arg-type]
    # a folder with finished stages of another input is not mixed up with this one
    used = tmp_path / "used"
    (used / "stages").mkdir(parents=True)
    (used / "stages" / "synth.json").write_text("{}")
    (used / "demo.json").write_text(json.dumps({"inputs": {"data": None}}))
    with pytest.raises(ValueError, match="holds a demo of data=None"):
        run_demo(used, data=store)


@pytest.mark.slow
def test_demo_training_budget_reaches_the_trainer_and_its_summary() -> None:

    from cyto.workflows._demo import _budget_text
    from cyto.workflows._inputs import DEMO_PRESETS

    small = DEMO_PRESETS["small"]
    cfg = small.train_config(seed=0, device="cpu", progress=False)
    assert cfg.time_budget_s == small.train_budget_s == 300.0 and cfg.lr_schedule == "cosine"
    off = dataclasses.replace(small, train_budget_s=0.0).train_config(
        seed=0, device="cpu", progress=False
    )
    assert off.time_budget_s == 0.0
    text = _budget_text(
        {
            "budget_s": 300.0,
            "elapsed_s": 281.4,
            "measured_images_per_s": 51.7,
            "epoch_steps": [197, 190, 185],
        }
    )
    assert text == "; 281 s of a 300 s budget: steps per epoch 197, 190, 185, measured 52 images/s"
    assert _budget_text(None) == ""


def test_demo_batch_key_is_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synthetic atlas is imaged as one plate"):
        run_demo(tmp_path / "a", batch_key="plate")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,protein_id,axes,plate\nimg.tif,P1,CYX,1\n")
    with pytest.raises(ValueError, match=r"`batch_key` 'well' is not a column of .*'plate'"):
        run_demo(tmp_path / "b", data=manifest, batch_key="well")
    # only columns that follow the crops count: 'axes' is a reading option, not metadata
    with pytest.raises(ValueError, match=r"`batch_key` 'axes' is not a column of .*\['plate'\]"):
        run_demo(tmp_path / "b", data=manifest, batch_key="axes")
    with pytest.raises(ValueError, match="`batch_key` must be a column name"):
        run_demo(tmp_path / "c", data=manifest, batch_key="")
    assert not (tmp_path / "b").exists()  # refused before anything was written


@pytest.mark.slow
def test_demo_on_a_manifest_without_ground_truth(tmp_path: Path) -> None:
    from cyto.data import SyntheticAtlasConfig, generate_atlas

    atlas = tmp_path / "images"
    generate_atlas(atlas, SyntheticAtlasConfig(**DEMO_PRESETS["tiny"].atlas), progress=False)
    hint = json.loads((atlas / "synth.json").read_text())["preprocess_hint"]
    out = tmp_path / "own"
    result = run_demo(
        out,
        data=atlas / "manifest.csv",
        preprocess_options=hint,
        preset="tiny",
        progress=False,
        echo=lambda _: None,
    )
    assert (out / "crops.h5").exists() and (out / "report.html").exists()
    assert (out / "analysis/umap.csv").exists() and (out / "analysis/spectra.npz").exists()
    # without a ground truth nothing is scored, and the report says so
    assert result.summary["scores"] == {} and result.summary["baselines"] == {}
    assert result.summary["knn_family_accuracy"] == {}
    assert "not computed" in (out / "report.html").read_text()


def test_pipeline_stops_when_preprocessing_made_no_crops(tmp_path: Path) -> None:
    from cyto.preprocess import BatchReport
    from cyto.workflows._inputs import _check_preprocessed

    failed = [("a.tif", "worker process died"), ("b.tif", "unreadable")]
    with pytest.raises(ValueError, match=r"no crops .*2 of 2 fields failed.*a.tif: worker"):
        _check_preprocessed(BatchReport(tmp_path / "c.h5", n_fovs=2, failed=failed))
    ok = BatchReport(tmp_path / "c.h5", n_fovs=2, n_crops=5)
    assert _check_preprocessed(ok) is ok


def test_cli_passes_own_data_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cyto.workflows
    from cyto.cli import main

    seen: dict[str, object] = {}

    def fake(out_dir: object, **kwargs: object) -> object:
        seen.update(out_dir=out_dir, **kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(cyto.workflows, "run_demo", fake)
    argv = ["demo", "-o", str(tmp_path), "--data", "m.csv", "--ground-truth", "gt.csv"]
    assert main([*argv, "--nucleus-diameter", "40", "--downsample", "1"]) == 2
    assert "cyto demo: error: stop here" in capsys.readouterr().err
    assert seen["data"] == "m.csv" and seen["ground_truth"] == "gt.csv"
    assert seen["complexes"] is None
    assert seen["preprocess_options"] == {"nucleus_diameter": 40.0, "downsample_factor": 1}
    # the real function names the missing file
    monkeypatch.undo()
    assert main(["ablate", "-o", str(tmp_path), "--data", str(tmp_path / "nope.csv")]) == 2
    assert "`data`:" in capsys.readouterr().err


def test_the_old_module_name_warns_and_gives_the_same_names() -> None:
    import importlib
    import sys

    import cyto.workflows

    sys.modules.pop("cyto.pipeline", None)
    with pytest.warns(DeprecationWarning, match="import from cyto.workflows"):
        old = importlib.import_module("cyto.pipeline")
    assert old.run_demo is cyto.workflows.run_demo
    assert set(old.__all__) == set(cyto.workflows.__all__)
