"""Training loop: loss goes down, resume == uninterrupted, faults stop cleanly, CLI."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from cyto.cli import main
from cyto.nn import (
    CropDataset,
    NonFiniteLossError,
    PlateauState,
    TrainConfig,
    TrainingWarning,
    cosine_lr,
    load_checkpoint,
    load_model,
    read_config_file,
    train,
)

from .helpers import FAST, assert_same_weights, epochs, make_store

# dropout makes the result depend on the restored torch RNG state
DROP = {"fc_dropout": 0.5}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store") / "crops.h5")


@pytest.fixture(scope="module")
def reference_run(store, tmp_path_factory):
    """An uninterrupted 3-epoch run (shared by several tests)."""
    return train(store, tmp_path_factory.mktemp("ref") / "run", config=FAST, model_overrides=DROP)


def _interrupt_after(monkeypatch, reads):
    """Make the training dataset raise KeyboardInterrupt at its ``reads``-th batch read."""
    original = CropDataset.read
    count = {"n": 0}

    def read(self, positions):
        if self.augment is not None:
            count["n"] += 1
            if count["n"] == reads:
                raise KeyboardInterrupt("simulated kill")
        return original(self, positions)

    monkeypatch.setattr(CropDataset, "read", read)


# ----------------------------------------------------------------------------- config
def test_config_validation_toml_and_plateau(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"batchsize": 3})
    toml = tmp_path / "run.toml"
    toml.write_text('[train]\nlr = 1e-4\nsplit = [0.7, 0.2, 0.1]\n[model]\npreset = "tiny"\n')
    cfg, model = read_config_file(toml)
    assert (cfg.lr, cfg.split, cfg.preset, model) == (1e-4, (0.7, 0.2, 0.1), "tiny", {})
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    toml.write_text("[trian]\nlr = 1\n")
    with pytest.raises(ValueError, match="unknown table"):
        read_config_file(toml)

    # paper schedule: x0.1 after 4 epochs without improvement, stop after 12
    s, paper = PlateauState(), TrainConfig()
    events = [s.update(v, epoch=i, config=paper) for i, v in enumerate([5.0] + [6.0] * 12)]
    assert [i for i, e in enumerate(events) if e[1]] == [4, 8, 12]
    assert [i for i, e in enumerate(events) if e[2]] == [12]
    # an improvement restarts both counters (the reference forgot the LR counter)
    s = PlateauState()
    vals = [5.0, 6.0, 6.0, 6.0, 4.0, 6.0, 6.0, 6.0, 6.0]
    events = [s.update(v, epoch=i, config=paper) for i, v in enumerate(vals)]
    assert [i for i, e in enumerate(events) if e[1]] == [8]


# ----------------------------------------------------------------------------- training
@pytest.mark.slow
def test_short_run_lowers_loss_and_writes_the_run(reference_run, store):
    run = reference_run
    recs = epochs(run)
    assert [r["epoch"] for r in recs] == [0, 1, 2]
    assert recs[-1]["train_loss"] < recs[0]["train_loss"]
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in steps if r["kind"] == "step")
    for key in (
        "loss",
        "reconstruction",
        "vq_local",
        "cls_global",
        "perplexity_local",
        "perplexity_global",
        "accuracy_global",
        "lr",
        "images_per_s",
    ):
        assert key in step, key
    meta = json.loads((run / "config.json").read_text())
    assert meta["model"]["in_channels"] == 2 and meta["model"]["num_classes"] == 4
    assert meta["reconstruction_scale"] > 0 and meta["classes"] == ["P0", "P1", "P2", "P3"]
    with np.load(run / "split.npz") as z:
        split = z["split"]
    assert split.shape == (32,) and set(np.unique(split)) == {0, 1, 2}
    last = load_checkpoint(run / "checkpoints" / "last.pt")  # weights_only=True
    assert last["epoch"] == 3 and last["step"] == 9
    assert set(last) >= {"optimizer", "plateau", "rng", "loader_generator", "split", "config"}
    np.testing.assert_array_equal(last["split"].numpy(), split)
    summary = json.loads((run / "summary.json").read_text())
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    # the default criterion: validation task_loss (reconstruction + identification)
    best_task = int(np.argmin([r["val_task_loss"] for r in recs]))
    assert summary["best_epoch"] == best["epoch"] == best_task
    model = load_model(run)
    assert not model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, best["model"][k])
    with pytest.raises(ValueError, match="already holds a run"):
        train(store, run, config=FAST)
    with pytest.raises(ValueError, match="changed training option"):
        train(store, run, config=FAST.replace(batch_size=4), resume=True)


@pytest.mark.slow
@pytest.mark.parametrize(("checkpoint_every", "kill_at"), [(0, 5), (2, 6)])
def test_resume_after_kill_matches_uninterrupted(
    reference_run, store, tmp_path, monkeypatch, checkpoint_every, kill_at
):
    """Kill mid-epoch 1 (after the epoch-0 checkpoint, or after a mid-epoch one), resume."""
    run = tmp_path / "run"
    cfg = FAST.replace(checkpoint_every=checkpoint_every)
    _interrupt_after(monkeypatch, kill_at)
    with pytest.raises(KeyboardInterrupt):
        train(store, run, config=cfg, model_overrides=DROP)
    monkeypatch.undo()
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    assert saved["step"] == (3 if checkpoint_every == 0 else 4)
    train(store, run, resume=True)
    assert_same_weights(run / "checkpoints" / "last.pt", reference_run / "checkpoints" / "last.pt")
    assert_same_weights(run / "checkpoints" / "best.pt", reference_run / "checkpoints" / "best.pt")
    got, want = epochs(run), epochs(reference_run)
    assert [r["epoch"] for r in got] == [0, 1, 2]  # no duplicated records
    np.testing.assert_allclose([r["val_loss"] for r in got], [r["val_loss"] for r in want])
    np.testing.assert_allclose([r["train_loss"] for r in got], [r["train_loss"] for r in want])


@pytest.mark.slow
def test_run_killed_before_first_checkpoint_starts_over(store, tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = FAST.replace(max_epochs=1)
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(store, run, config=cfg)
    monkeypatch.undo()
    assert (run / "metrics.jsonl").exists() and not (run / "checkpoints" / "last.pt").exists()
    # --resume has nothing to resume from: it starts the run over with its saved settings
    with pytest.warns(TrainingWarning, match="stopped before its first checkpoint"):
        train(store, run, resume=True)
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    steps = [r["step"] for r in records if r["kind"] != "warning"]
    assert steps == [1, 2, 3, 3]  # the killed attempt's records are gone
    # without its settings (config.json) there is nothing to start over from
    other = tmp_path / "other"
    (other / "checkpoints").mkdir(parents=True)
    (other / "metrics.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match="start it again without resuming"):
        train(store, other, resume=True)


@pytest.mark.slow
def test_nan_in_data_stops_and_keeps_last_good_checkpoint(store, tmp_path, monkeypatch):
    run = tmp_path / "run"
    original = CropDataset.read
    count = {"n": 0}

    def read(self, positions):
        x, y = original(self, positions)
        if self.augment is not None:
            count["n"] += 1
            if count["n"] == 5:  # second batch of epoch 1 (global step 5)
                x[0, 0, 0, 0] = np.nan
        return x, y

    monkeypatch.setattr(CropDataset, "read", read)
    with pytest.raises(NonFiniteLossError, match=r"step 5 \(epoch 1\).*last good checkpoint"):
        train(store, run, config=FAST)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and last["step"] == 3
    good = last["model"]
    assert all(torch.isfinite(v).all() for v in good.values() if v.is_floating_point())
    errors = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert errors[-1]["kind"] == "error" and errors[-1]["step"] == 5


def test_bad_stores_rejected_before_training(store, tmp_path):
    with pytest.raises(FileNotFoundError, match="crop store not found"):
        train(tmp_path / "missing.h5", tmp_path / "r0", config=FAST)
    truncated = tmp_path / "trunc.h5"
    data = store.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated|damaged|not a readable"):
        train(truncated, tmp_path / "r1", config=FAST)
    not_h5 = tmp_path / "text.h5"
    not_h5.write_text("hello")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        train(not_h5, tmp_path / "r2", config=FAST)
    nan_store = make_store(tmp_path / "nan.h5", nan_row=0)
    with pytest.raises(
        ValueError, match=r"holds non-finite pixels \(crops \[0\]\); training would diverge"
    ):
        train(nan_store, tmp_path / "r3", config=FAST)
    for r in ("r0", "r1", "r2", "r3"):
        assert not (tmp_path / r / "checkpoints").exists()
    with pytest.raises(ValueError, match="device"):
        train(store, tmp_path / "r4", config=FAST.replace(device="tpu"))
    assert not (tmp_path / "r4" / "config.json").exists()
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ImportError, match=r"cyto\[tensorboard\]"):
            train(store, tmp_path / "r5", config=FAST.replace(tensorboard=True))
        assert not (tmp_path / "r5").exists()


def test_checkpoints_refuse_code_execution(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "cyto-checkpoint-1", "x": Evil()}))
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        load_checkpoint(path)


@pytest.mark.slow
def test_cli_train_with_config_then_resume(store, tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('[train]\nbatch_size = 8\nnum_workers = 0\n[model]\npreset = "tiny"\n')
    run = tmp_path / "run"
    argv = [
        "train",
        str(store),
        "-o",
        str(run),
        "--config",
        str(toml),
        "--max-epochs",
        "1",
        "--quiet",
    ]
    assert main(argv) == 0
    assert len(epochs(run)) == 1
    assert json.loads((run / "config.json").read_text())["train"]["batch_size"] == 8
    assert main(["train", "--resume", str(run), "--max-epochs", "2", "--quiet"]) == 0
    assert [r["epoch"] for r in epochs(run)] == [0, 1]
    assert main(["train", str(tmp_path / "none.h5"), "-o", str(tmp_path / "r2")]) == 2
    assert "crop store not found" in capsys.readouterr().err


@pytest.mark.gpu
def test_cuda_mixed_precision_run(store, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    run = train(store, tmp_path / "run", config=FAST.replace(max_epochs=1, device="cuda"))
    assert np.isfinite(epochs(run)[0]["train_loss"])
    assert load_model(run, device="cuda").encoder1 is not None
    shutil.rmtree(run)


def test_monitor_selects_the_metric_of_early_stopping(store, tmp_path):
    cfg = dataclasses.replace(FAST, max_epochs=2, monitor="accuracy_global")
    run = train(store, tmp_path / "acc", config=cfg)
    recs = epochs(run)
    assert {r["monitor"] for r in recs} == {"val_accuracy_global"}
    best = max(range(len(recs)), key=lambda i: (recs[i]["val_accuracy_global"], -i))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["monitor"] == "accuracy_global"
    assert summary["best_epoch"] == recs[best]["epoch"]

    bad = dataclasses.replace(FAST, max_epochs=1, monitor="cls_global")
    with pytest.raises(ValueError, match=r"`monitor` 'cls_global' is not a metric.*'loss'"):
        train(store, tmp_path / "bad", config=bad, model_overrides={"classify": False})
    with pytest.raises(ValueError, match="`monitor` must be a metric name"):
        TrainConfig(monitor="")


def test_cosine_schedule_sets_every_step_and_ignores_plateaus(store, tmp_path):
    """3 epochs x 3 steps: step k trains at cosine_lr(k - 1, total=9); no plateau drop."""
    cfg = FAST.replace(lr_schedule="cosine", lr=1e-3, min_lr=1e-5, lr_patience=1)
    run = train(store, tmp_path / "cos", config=cfg)
    steps = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if '"kind": "step"' in line
    ]
    assert [s["step"] for s in steps] == list(range(1, 10))
    want = [cosine_lr(k, total=9, lr=1e-3, min_lr=1e-5) for k in range(9)]
    np.testing.assert_allclose([s["lr"] for s in steps], want, rtol=1e-12)
    assert want[0] == 1e-3 and want[-1] < 0.05 * 1e-3
    assert not any("lr_next" in r for r in epochs(run))
    with pytest.raises(ValueError, match="`lr_schedule` must be one of"):
        TrainConfig(lr_schedule="linear")


def test_time_budget_shortens_epochs_and_resumes_with_its_plan(store, tmp_path):
    """A budget nothing fits in: one step per epoch, and training stops (with a warning)
    once the budget is spent; a roomy one changes nothing."""
    cfg = FAST.replace(lr_schedule="cosine", time_budget_s=0.01, max_epochs=2)
    with pytest.warns(TrainingWarning, match=r"time budget of 0.01 s is spent after 1 of 2"):
        run = train(store, tmp_path / "tight", config=cfg)
    recs = epochs(run)
    assert [r["step"] for r in recs] == [1] and [r["planned_steps"] for r in recs] == [1]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_reason"] == "time_budget"
    assert summary["time_budget"]["epoch_steps"] == [1]
    assert summary["time_budget"]["measured_images_per_s"] > 0
    # resumed for more epochs: the budget's clock and plans carry over, so the run
    # trains one more epoch and stops again (a budget is kept to within one epoch)
    spent = load_checkpoint(run / "checkpoints" / "last.pt")["budget"]["spent_s"]
    assert spent > 0
    with pytest.warns(TrainingWarning, match=r"is spent after 2 of 3 epochs"):
        train(store, run, config=cfg.replace(max_epochs=3), resume=True)
    again = json.loads((run / "summary.json").read_text())["time_budget"]
    assert again["epoch_steps"] == [1, 1] and again["elapsed_s"] > spent
    roomy = train(store, tmp_path / "roomy", config=cfg.replace(time_budget_s=3600.0))
    assert [r["planned_steps"] for r in epochs(roomy)] == [3, 3]
    plain = train(store, tmp_path / "plain", config=cfg.replace(time_budget_s=0.0))
    assert [r["step"] for r in epochs(plain)] == [r["step"] for r in epochs(roomy)]
    np.testing.assert_allclose(
        [r["train_loss"] for r in epochs(plain)],
        [r["train_loss"] for r in epochs(roomy)],
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="`time_budget_s` must be a finite number >= 0"):
        TrainConfig(time_budget_s=-1.0)


def test_steps_per_epoch_caps_each_epoch_to_a_fresh_subset(store, tmp_path):
    """24 training crops, batch 8: 3 steps per full epoch; capped at 1, each epoch one."""
    run = train(store, tmp_path / "cap", config=FAST.replace(steps_per_epoch=1))
    recs = epochs(run)
    assert [r["step"] for r in recs] == [1, 2, 3]
    steps = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if '"kind": "step"' in line
    ]
    assert [s["step"] for s in steps] == [1, 2, 3]
    with pytest.raises(ValueError, match="`steps_per_epoch` must be an int >= 0"):
        TrainConfig(steps_per_epoch=-1)


def test_resume_config_allows_only_changes_that_keep_the_result(reference_run):
    from cyto.nn import resume_config

    assert resume_config(reference_run) == FAST
    assert resume_config(reference_run, max_epochs=9).max_epochs == 9
    with pytest.raises(ValueError, match=r"changed training option\(s\) \['lr'\]"):
        resume_config(reference_run, lr=0.5)
    with pytest.raises(FileNotFoundError, match=r"config\.json missing"):
        resume_config(reference_run / "nowhere")
