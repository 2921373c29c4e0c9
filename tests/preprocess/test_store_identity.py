"""A crop store knows what went into it: one writer, no foreign fields, no repeated images."""

from __future__ import annotations

import os

import h5py
import pytest
from bad_inputs import hold

from cyto import LockedError
from cyto.cli import main
from cyto.data import CropStore
from cyto.preprocess import fingerprint, preprocess_dataset, read_manifest

from ._synth import CROP, _make_dataset, _write_fov


def _run(manifest, out, **kw):
    return preprocess_dataset(manifest, out, crop_size=CROP, workers=1, progress=False, **kw)


@pytest.fixture()
def dataset(tmp_path):
    return _make_dataset(tmp_path / "a", n_good=2, bad=False)


def test_second_writer_of_a_store_is_refused(tmp_path, dataset, capsys):
    out = tmp_path / "crops.h5"
    proc = hold(out)
    try:
        with pytest.raises(
            LockedError, match=rf"crop store .*crops.h5 is being written by pid {proc.pid}"
        ):
            _run(dataset, out)
        argv = ["preprocess", str(dataset), "-o", str(out), "--crop-size", str(CROP), "-q"]
        assert main(argv) == 4
        assert f"pid {proc.pid}" in capsys.readouterr().err
    finally:
        proc.kill()
        proc.wait()
    assert _run(dataset, out).n_processed == 2  # the lock died with its holder


def test_fields_of_another_dataset_under_the_same_ids_are_refused(tmp_path, dataset):
    out = tmp_path / "crops.h5"
    _run(dataset, out)
    with h5py.File(out, "r") as f:
        assert len(f["fovs/source"].asstr()[()][0]) == 32  # a fingerprint per field
    other = _make_dataset(tmp_path / "b", n_good=2, bad=False)  # same fov ids g0, g1
    for i in range(2):  # other images under the same names
        _write_fov(other.parent / f"good{i}.tif", seed=50 + i)
    before = out.read_bytes()
    with pytest.raises(ValueError, match=r"already holds field\(s\) 'g0' \(its image .* differs"):
        _run(other, out)
    assert out.read_bytes() == before  # nothing written
    relabelled = tmp_path / "relabelled.csv"
    relabelled.write_text(dataset.read_text().replace(",P0,", ",P7,"))
    os.symlink(dataset.parent / "good0.tif", tmp_path / "good0.tif")
    os.symlink(dataset.parent / "good1.tif", tmp_path / "good1.tif")
    with pytest.raises(ValueError, match=r"'g0' \(protein 'P0' in the store, 'P7' now\)"):
        _run(relabelled, out)


def test_the_same_image_twice_in_a_manifest_is_refused(tmp_path, dataset):
    twice = dataset.parent / "twice.csv"  # relative rows resolve next to it
    rows = dataset.read_text().splitlines()
    twice.write_text("\n".join([*rows, f"{dataset.parent}/good0.tif,P0,g0-again"]) + "\n")
    with pytest.raises(ValueError, match=r"same image more than once: fov ids 'g0' and 'g0-again'"):
        _run(twice, tmp_path / "crops.h5")
    assert not (tmp_path / "crops.h5").exists()
    # the same file with another channel as the protein is another field
    spec = read_manifest(dataset)[0]
    import dataclasses

    swapped = dataclasses.replace(spec, protein_channel=0, nucleus_channel=1)
    assert fingerprint(spec) != fingerprint(swapped)


def test_a_finished_store_in_a_read_only_folder_is_reported_done(tmp_path, dataset, monkeypatch):
    out = tmp_path / "crops.h5"
    first = _run(dataset, out)
    from cyto.preprocess import _batch

    def read_only(*args, **kwargs):  # what a read-only folder does to any write
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(_batch, "write_lock", read_only)
    monkeypatch.setattr(_batch, "_consolidate", read_only)
    again = _run(dataset, out)
    assert again.n_skipped == 2 and again.n_processed == 0 and again.n_crops == first.n_crops


def test_finished_store_is_not_touched_on_rerun(tmp_path, dataset):
    out = tmp_path / "crops.h5"
    _run(dataset, out)
    mtime = out.stat().st_mtime_ns
    report = _run(dataset, out)
    assert report.n_skipped == 2 and out.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.parts")) and not list(tmp_path.glob(".crops.h5.lock"))
    with CropStore(out) as store:
        assert len(store) == report.n_crops


def test_empty_manifest_and_no_crops_are_errors(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("path,protein_id\n")
    assert main(["preprocess", str(empty), "-o", str(tmp_path / "e.h5"), "-q"]) == 2
    assert "lists no field of view" in capsys.readouterr().err
    import numpy as np
    import tifffile

    tifffile.imwrite(tmp_path / "dark.tif", np.zeros((2, 1, 128, 128), np.uint16))
    (tmp_path / "dark.csv").write_text("path,protein_id\ndark.tif,P0\n")
    argv = ["preprocess", str(tmp_path / "dark.csv"), "-o", str(tmp_path / "d.h5"), "-q"]
    assert main([*argv, "--crop-size", "32"]) == 1
    assert "no crops were made from 1 field(s)" in capsys.readouterr().err


def test_a_full_disk_stops_at_once_and_keeps_what_was_done(tmp_path, monkeypatch, capsys):
    import errno

    from cyto.preprocess import _batch

    dataset = _make_dataset(tmp_path / "a", n_good=4, bad=False)
    original = _batch._atomic_savez
    calls = {"n": 0}

    def savez(target, **arrays):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return original(target, **arrays)

    monkeypatch.setattr(_batch, "_atomic_savez", savez)
    out = tmp_path / "crops.h5"
    argv = ["preprocess", str(dataset), "-o", str(out), "--crop-size", str(CROP), "-q", "-j", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "1 field(s) done and kept" in err
    assert calls["n"] == 2  # stopped at the first full write, not one failure per field
    with CropStore(out) as store:
        assert set(store.fov_ids.astype(str)) == {"g0"}
    monkeypatch.undo()
    report = _run(dataset, out)  # space freed: the same command resumes
    assert report.n_skipped == 1 and report.n_processed == 3
