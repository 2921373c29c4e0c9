"""Collapse is an error, not a result: codebook defaults, model selection, health checks."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from cyto.analysis import DegenerateEncodingError, analyze_embeddings
from cyto.cli import main
from cyto.data import CropStore, write_crop_store
from cyto.nn import (
    CODEBOOKS,
    Cytoself,
    CytoselfConfig,
    TermWatch,
    TrainConfig,
    TrainingWarning,
    embed,
    train,
)

from .helpers import make_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REAL = Path(__file__).resolve().parents[3] / "shared" / "data"
TINY = TrainConfig(
    preset="tiny", batch_size=8, max_epochs=2, num_workers=0, log_every=1, progress=False
)


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory):
    """A tiny run of a few steps: its encodings are degenerate (every crop alike)."""
    root = tmp_path_factory.mktemp("collapse")
    store = make_store(root / "crops.h5")
    with pytest.warns(TrainingWarning, match="degenerate after epoch 1"):
        run = train(store, root / "run", config=TINY)
    return store, run


# --------------------------------------------------------------------------- defaults
def test_default_codebook_is_ema_and_the_paper_one_stays_available():
    cfg = CytoselfConfig()
    assert cfg.codebook == "ema"
    assert cfg.vq_options == {"update": "ema", "kmeans_init": True, "dead_code_threshold": 0.05}
    vq = Cytoself(CytoselfConfig.preset("tiny")).vq_global
    assert vq.update == "ema" and vq.kmeans_init and vq.dead_code_threshold == 0.05
    paper = Cytoself(CytoselfConfig.preset("tiny", codebook="paper")).vq_global
    assert paper.update == "loss" and not paper.kmeans_init and paper.init_scale == 0.05
    # quantizer_options still win over the codebook's
    cfg = CytoselfConfig(quantizer_options={"dead_code_threshold": 1.0})
    assert cfg.vq_options["dead_code_threshold"] == 1.0 and cfg.vq_options["update"] == "ema"
    with pytest.raises(ValueError, match=r"`codebook` must be one of \['ema', 'paper'\]"):
        CytoselfConfig(codebook="kmeans")
    assert set(CODEBOOKS) == {"ema", "paper"}


def test_configs_saved_before_the_codebook_field_read_as_paper():
    saved = CytoselfConfig.preset("tiny").to_dict()
    del saved["codebook"]
    assert CytoselfConfig.from_saved(saved).codebook == "paper"
    assert CytoselfConfig.from_saved({**saved, "codebook": "ema"}).codebook == "ema"


def test_default_monitor_is_the_task_loss():
    assert TrainConfig().monitor == "task_loss" and TrainConfig().skip_degenerate


# --------------------------------------------------------------------------- training
def test_training_never_selects_a_degenerate_epoch(collapsed):
    _, run = collapsed
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert all(r["val_global_degenerate"] for r in epochs)
    assert all(not r["improved"] for r in epochs) and epochs[-1]["monitor"] == "val_task_loss"
    for key in ("val_global_distinct_maps", "val_global_codes_used", "val_global_code_perplexity"):
        assert key in epochs[0]
    warnings = [r for r in recs if r["kind"] == "warning"]
    assert [w["term"] for w in warnings] == ["val_global_encoding"]  # once per run
    assert not (run / "checkpoints" / "best.pt").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] == -1 and summary["codebook"] == "ema"
    assert "no epoch qualified as best" in summary["selection"]
    assert summary["warnings"][0]["term"] == "val_global_encoding"


def test_summary_states_the_selection(tmp_path):
    store = make_store(tmp_path / "crops.h5")
    cfg = TINY.replace(skip_degenerate=False)
    run = train(store, tmp_path / "run", config=cfg)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selection"].startswith("checkpoints/best.pt (the default of `cyto embed`)")
    assert "validation task_loss" in summary["selection"]


def test_term_watch_flags_a_growing_term_once_with_advice():
    w = TermWatch()
    out = [w.update({"vq_global": v, "cls_global": 1.0}) for v in (0.1, 0.2, 0.4, 0.8, 1.6)]
    assert [len(o) for o in out] == [0, 0, 0, 1, 0]
    term, message = out[3][0]
    assert term == "vq_global" and "0.1 -> 0.8" in message and "--codebook ema" in message
    w.update({"vq_global": 0.5})  # it fell: armed again
    assert [len(w.update({"vq_global": v})) for v in (0.6, 0.7, 0.9)] == [0, 0, 1]
    # slow growth (< 1.5x over the streak) is not flagged
    assert not any(TermWatch().update({"loss": v}) for v in (1.0, 1.01, 1.02, 1.03, 1.04))
    restored = TermWatch()
    restored.load_state_dict(json.loads(json.dumps(w.state_dict())))
    assert restored == w


@pytest.mark.filterwarnings("always::cyto.nn.TrainingWarning")
def test_cli_train_takes_codebook_and_monitor(tmp_path, capsys):
    store = make_store(tmp_path / "crops.h5")
    run = tmp_path / "run"
    argv = ["train", str(store), "-o", str(run), "--preset", "tiny", "--max-epochs", "1"]
    argv += ["--batch-size", "8", "--workers", "0", "--quiet"]
    assert main([*argv, "--codebook", "paper", "--monitor", "loss"]) == 0
    # cyto's warnings print as one plain line, not a Python warning with a source line
    assert "cyto train: warning: epoch 1: the global encodings" in capsys.readouterr().err
    meta = json.loads((run / "config.json").read_text())
    assert meta["model"]["codebook"] == "paper" and meta["train"]["monitor"] == "loss"
    assert main(["train", "--resume", str(run), "--codebook", "ema"]) == 2


# --------------------------------------------------------------------------- embed / analyze
def test_cli_embed_on_a_collapsed_run_exits_3_and_writes_nothing(collapsed, tmp_path, capsys):
    store, run = collapsed
    out = tmp_path / "emb.h5"
    argv = ["embed", str(run), str(store), "-o", str(out), "--workers", "0", "--quiet"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "cyto embed: error: the global encodings of checkpoint" in err
    assert str(run / "checkpoints" / "last.pt") in err  # no best epoch: last is the default
    assert "all 32 crops have the same code map" in err and "--allow-degenerate" in err
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
    assert main([*argv, "--allow-degenerate"]) == 0
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["health"])["degenerate"] is True


def test_analyze_refuses_degenerate_encodings(collapsed, tmp_path, capsys):
    store, run = collapsed
    emb = embed(run, store, tmp_path / "e.h5", progress=False, allow_degenerate=True)
    with pytest.raises(DegenerateEncodingError, match=r"degenerate.*same code map"):
        analyze_embeddings(emb, tmp_path / "rep", verbose=False)
    assert main(["analyze", str(emb), "-o", str(tmp_path / "rep2"), "-q"]) == 3
    assert "cyto analyze: error:" in capsys.readouterr().err


# --------------------------------------------------------------------------- real images
@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason="real images not found at ../shared/data")
def test_default_path_on_a_few_dozen_real_crops_gives_a_healthy_embedding(tmp_path):
    """96 real fly crops (2 stains x 2 fields): `cyto train --preset small` defaults."""
    from cyto.preprocess import preprocess_dataset

    base = REAL / "cellprofiler" / "ExampleFly" / "01_POS"
    lines = ["path,nucleus_path,protein_id,fov_id"]
    for pos in ("002", "218"):
        for ch in ("F", "R"):
            lines.append(f"{base}{pos}_{ch}.TIF,{base}{pos}_D.TIF,{ch},POS{pos}-{ch}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    preprocess_dataset(
        tmp_path / "m.csv", tmp_path / "all.h5", crop_size=32, downsample_factor=1,
        workers=1, progress=False,
    )  # fmt: skip
    with CropStore(tmp_path / "all.h5") as s:
        fov = s.fov_ids.astype(str)
        rng = np.random.default_rng(0)
        fields = np.unique(fov)  # sorted: a set's order changes from run to run
        picks = [rng.choice(np.flatnonzero(fov == f), 24, replace=False) for f in fields]
        keep = np.sort(np.concatenate(picks))
        few = write_crop_store(
            tmp_path / "few.h5", s.read(keep), s.protein_ids[keep], fov_ids=fov[keep]
        )
    # one thread: the same arithmetic whatever else the machine is doing (the adaptive
    # default changes the thread count, and with it the rounding, under load)
    cfg = TrainConfig(
        preset="small", split=(0.5, 0.5, 0.0), num_workers=0, progress=False, threads=1
    )
    run = train(few, tmp_path / "run", config=cfg)
    # the default checkpoint of `cyto embed` (raises if degenerate)
    out = embed(run, few, tmp_path / "emb.h5", progress=False, num_workers=0, threads=1)
    with h5py.File(out, "r") as f:
        health = json.loads(f.attrs["health"])
    # Measured over seeds 0-3 of this run: 2-16 distinct code maps of the 96 crops, 3-10
    # codes used, relative variance 0.03-0.15; a collapsed run has 1 map, 1-2 codes and a
    # relative variance near 0.
    assert not health["degenerate"]
    assert health["codes_used"] >= 3 and health["relative_variance"] > 0.01
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] >= 0 and (run / "checkpoints" / "best.pt").exists()
    vq = [
        json.loads(line)["val_vq_global"]
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if '"kind": "epoch"' in line
    ]
    assert max(vq) < 10 * vq[0]  # the global quantizer's loss stays bounded


def test_collapse_advice_fits_the_situation():
    """The degenerate-epoch warning never tells an EMA run to switch to EMA; the
    degenerate-embed hint never suggests --checkpoint last when last is in use."""
    from cyto._health import HealthAccumulator
    from cyto.nn._embed import _degenerate_message
    from cyto.nn._monitors import _collapse_message

    acc = HealthAccumulator(num_codes=4)
    acc.update(np.zeros((8, 3), np.float32), np.zeros((8, 2), np.int64))
    health = acc.result()
    assert health.degenerate
    ema = _collapse_message(health, 0, skipped=True, codebook="ema")
    paper = _collapse_message(health, 0, skipped=True, codebook="paper")
    assert "--codebook ema" not in ema and "lower learning rate" in ema
    assert "--codebook ema" in paper
    last = _degenerate_message(health, Path("run/checkpoints/last.pt"), 8, "ema")
    best = _degenerate_message(health, Path("run/checkpoints/best.pt"), 8, "ema")
    assert "--checkpoint last" not in last and "--checkpoint last" in best
