"""Nothing lost: runs and embeddings never clobber inputs, one writer, the right store."""

from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pytest
from bad_inputs import hold

from cyto import LockedError
from cyto.cli import EXIT_CODES, main
from cyto.data import CropStore, write_crop_store
from cyto.nn import embed as _embed
from cyto.nn import train

from .helpers import FAST, make_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# the tiny runs here are degenerate; these tests are about files, not encodings
embed = functools.partial(_embed, allow_degenerate=True, progress=False, num_workers=0)
CFG = dataclasses.replace(FAST, max_epochs=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("guards")
    store = make_store(root / "crops.h5")
    return store, train(store, root / "run", config=CFG)


# --------------------------------------------------------------------------- train
def test_second_trainer_of_a_run_folder_is_refused(tmp_path, capsys):
    store = make_store(tmp_path / "crops.h5")
    run = tmp_path / "run"
    run.mkdir()
    proc = hold(run)
    try:
        with pytest.raises(
            LockedError, match=rf"run folder .*run is being written by pid {proc.pid}"
        ):
            train(store, run, config=CFG)
        argv = ["train", str(store), "-o", str(run), "--preset", "tiny", "--quiet"]
        assert main(argv) == EXIT_CODES["busy"] == 4
        assert f"pid {proc.pid}" in capsys.readouterr().err
    finally:
        proc.kill()
        proc.wait()
    assert not (run / "checkpoints").exists()  # the refused runs wrote nothing
    train(store, run, config=CFG)
    assert not (run / ".lock").exists()  # released and removed


def test_train_into_an_existing_file_is_a_sentence(tmp_path, capsys):
    store = make_store(tmp_path / "crops.h5")
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["train", str(store), "-o", str(tmp_path / "notes.txt")]) == 2
    assert "is a file; a run is a folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(FileNotFoundError, match="no run to resume"):
        train(store, tmp_path / "nothing", resume=True)
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("change", ["pixels", "ids"])
def test_resume_refuses_another_store_of_the_same_shape(trained, tmp_path, change):
    store, run = trained
    with CropStore(store) as s:
        crops = s.read(slice(None)).astype(np.float32)
        pids, fovs = s.protein_ids.astype(str), s.fov_ids.astype(str)
    if change == "pixels":
        crops = crops * 0.1
    else:  # same proteins and counts, other crops under each id
        order = np.random.default_rng(0).permutation(len(fovs))
        fovs = fovs[order]
    other = write_crop_store(tmp_path / "other.h5", crops.astype(np.float16), pids, fov_ids=fovs)
    word = {"pixels": "pixels", "ids": "protein or field ids"}[change]
    with pytest.raises(ValueError, match=rf"not the store the run was trained on.*{word} differ"):
        train(other, run, resume=True, config=CFG.replace(max_epochs=2))


# --------------------------------------------------------------------------- embed
def test_embed_never_overwrites_its_inputs(trained, tmp_path, capsys):
    store, run = trained
    before = store.read_bytes()
    with pytest.raises(FileExistsError, match="is the crop store being encoded"):
        embed(run, store, store)
    assert store.read_bytes() == before
    ckpt = run / "checkpoints" / "last.pt"
    with pytest.raises(FileExistsError, match="is the checkpoint"):
        embed(run, store, ckpt, checkpoint="last")
    with pytest.raises(FileExistsError, match="checkpoints/ folder"):
        embed(run, store, run / "checkpoints" / "last.pt", overwrite=True)
    argv = ["embed", str(run), str(store), "-o", str(store), "--quiet"]
    assert main(argv) == 2 and "would destroy it" in capsys.readouterr().err


def test_embed_replaces_only_its_own_earlier_output_and_only_with_overwrite(trained, tmp_path):
    store, run = trained
    notes = tmp_path / "notes.h5"
    notes.write_text("my notes")
    for overwrite in (False, True):  # a file cyto did not write: never, whatever the flag
        with pytest.raises(FileExistsError, match="cyto did not write as an embeddings file"):
            embed(run, store, notes, overwrite=overwrite)
    assert notes.read_text() == "my notes"
    first = embed(run, store, tmp_path / "e.h5")
    stamp = first.stat().st_mtime_ns
    assert embed(run, store, first) == first  # the same job, finished: not redone
    assert first.stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="already holds an embeddings file of another"):
        embed(run, store, first, split="train")
    again = embed(run, store, first, split="train", overwrite=True)  # asked for
    import h5py

    with h5py.File(again, "r") as f:
        assert set(f["split"].asstr()[()]) == {"train"}
    with pytest.raises(FileExistsError, match="is a folder"):
        embed(run, store, tmp_path)


def test_embed_of_an_empty_split_is_an_error(tmp_path):
    store = make_store(tmp_path / "crops.h5", n_per_protein=2)  # 1-2 fields per protein
    run = train(store, tmp_path / "run", config=CFG.replace(batch_size=2))
    with np.load(run / "split.npz") as z:
        assert not (z["split"] == 2).any()
    with pytest.raises(ValueError, match=r"the run's 'test' split is empty"):
        embed(run, store, tmp_path / "e.h5", split="test")
    assert not (tmp_path / "e.h5").exists()


def test_second_embedder_of_a_file_is_refused(trained, tmp_path):
    store, run = trained
    out = tmp_path / "e.h5"
    proc = hold(out)
    try:
        with pytest.raises(LockedError, match="embeddings file"):
            embed(run, store, out)
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- CLI
def test_cli_errors_are_sentences_with_documented_codes(tmp_path, capsys, monkeypatch):
    import errno

    from cyto._commands import synth

    def boom(args):
        raise RuntimeError("unexpected")

    def denied(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.h5"))

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.h5"))

    argv = ["synth", "-o", str(tmp_path / "s")]
    for func, code, text in (
        (boom, EXIT_CODES["internal"], "RuntimeError: unexpected"),
        (denied, EXIT_CODES["error"], "permission denied writing or reading"),
        (full, EXIT_CODES["error"], "the disk is full while writing"),
    ):
        monkeypatch.setattr(synth, "_run", func)  # read when the parser is built
        assert main(argv) == code
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err
    monkeypatch.setattr(synth, "_run", boom)
    with pytest.raises(RuntimeError, match="unexpected"):
        main(["--debug", *argv])
    assert EXIT_CODES["internal"] == 70 and json.dumps(EXIT_CODES)


def test_a_damaged_store_stops_training_with_a_record(tmp_path, monkeypatch):
    from cyto.nn import CropDataset

    store = make_store(tmp_path / "crops.h5")
    run = tmp_path / "run"
    original = CropDataset.read
    calls = {"n": 0}

    def read(self, positions):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("crop store crops.h5: cannot read crops [5] of dataset /crops")
        return original(self, positions)

    monkeypatch.setattr(CropDataset, "read", read)
    with pytest.raises(OSError, match="cannot read crops"):
        train(store, run, config=CFG)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "error" and "cannot read crops [5]" in last["message"]


def test_temporary_files_of_a_killed_writer_are_removed_on_restart(tmp_path):
    store = make_store(tmp_path / "crops.h5")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = [run / "checkpoints" / ".last.pt.abc123.tmp", run / ".config.json.x1.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    train(store, run, config=CFG)
    assert not any(p.exists() for p in stale)
