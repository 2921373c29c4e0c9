"""Batch preprocessing into one crop store: resume, bad files, kill safety, pool, Dask, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from cyto.cli import main
from cyto.data import CropStore
from cyto.preprocess import preprocess_dataset, preprocess_fov, read_stack

from ._synth import CROP, _make_dataset, _write_fov


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _make_dataset(tmp_path_factory.mktemp("ds"))


@pytest.fixture(scope="module")
def expected(dataset) -> dict[str, np.ndarray]:
    """Crops of each good field computed directly with preprocess_fov."""
    out = {}
    for i in range(4):
        stack = read_stack(dataset.parent / f"good{i}.tif")
        out[f"g{i}"] = preprocess_fov(stack[1], stack[0], crop_size=CROP).crops
    return out


def _check_store(path: Path, expected: dict[str, np.ndarray]) -> None:
    with CropStore(path) as s:
        assert s.channels == ("protein", "distance") and s.crop_size == CROP
        assert s.params["crop_size"] == CROP and s.params["downsample_factor"] == 2
        for fov, crops in expected.items():
            idx = np.flatnonzero(s.fov_ids == fov)
            assert len(idx) == len(crops) > 0
            np.testing.assert_allclose(s.read(idx), crops, atol=2e-3)  # float16 storage
            assert set(s.protein_ids[idx]) == {f"P{int(fov[1:]) % 2}"}
        assert len(s) == sum(len(c) for c in expected.values())


def test_inline_run_reports_bad_files_and_resumes(tmp_path, dataset, expected) -> None:
    out = tmp_path / "crops.h5"
    errors: list[tuple[str, str]] = []
    report = preprocess_dataset(
        dataset,
        out,
        crop_size=CROP,
        workers=1,
        progress=False,
        on_error=lambda p, r: errors.append((p, r)),
    )
    assert report.n_fovs == 9 and report.n_processed == 4 and report.n_skipped == 0
    reasons = {Path(p).name: r for p, r in report.failed}
    assert errors == report.failed
    assert set(reasons) == {"junk.tif", "nan.tif", "one_channel.tif", "time.ome.tif", "missing.tif"}
    assert "cannot read as TIFF" in reasons["junk.tif"]
    assert "all NaN" in reasons["nan.tif"]
    assert "wrong channel count" in reasons["one_channel.tif"]
    assert "axis 'T' of size 2" in reasons["time.ome.tif"]
    assert "not found" in reasons["missing.tif"]
    _check_store(out, expected)
    with h5py.File(out, "r") as f:
        assert sorted(f["fovs/fov_id"].asstr()[()]) == ["g0", "g1", "g2", "g3"]
    assert not (tmp_path / "crops.h5.parts").exists()
    before = out.stat().st_mtime_ns
    again = preprocess_dataset(dataset, out, crop_size=CROP, workers=1, progress=False)
    assert again.n_skipped == 4 and again.n_processed == 0 and again.n_failed == 5
    assert again.n_crops == report.n_crops
    _check_store(out, expected)
    assert out.stat().st_mtime_ns >= before
    with pytest.raises(ValueError, match="other preprocessing parameters"):
        preprocess_dataset(dataset, out, crop_size=CROP + 2, workers=1, progress=False)
    not_a_store = tmp_path / "other.h5"
    not_a_store.write_text("x")
    with pytest.raises(FileExistsError, match="cyto did not write as a crop store"):
        preprocess_dataset(dataset, not_a_store, crop_size=CROP, workers=1, progress=False)
    assert not_a_store.read_text() == "x"


def test_option_errors(tmp_path, dataset) -> None:
    with pytest.raises(ValueError, match="normalize"):
        preprocess_dataset(dataset, tmp_path / "a.h5", normalize="x", progress=False)
    with pytest.raises(ValueError, match="dtype"):
        preprocess_dataset(dataset, tmp_path / "a.h5", dtype="int8", progress=False)
    with pytest.raises(ValueError, match="float16 range"):
        preprocess_dataset(dataset, tmp_path / "a.h5", normalize="none", progress=False)
    with pytest.raises(ValueError, match="workers"):
        preprocess_dataset(dataset, tmp_path / "a.h5", workers=0, progress=False)
    with pytest.raises(ValueError, match=r"`compression` must be one of \['lzf', None\]"):
        preprocess_dataset(dataset, tmp_path / "a.h5", compression="gzip", progress=False)
    assert not (tmp_path / "a.h5").exists()
    from cyto.preprocess import FovSpec

    twice = [FovSpec(Path("a.tif"), "P", "x"), FovSpec(Path("b.tif"), "P", "x")]
    with pytest.raises(ValueError, match=r"repeats fov ids \['x'\]"):
        preprocess_dataset(twice, tmp_path / "a.h5", progress=False)
    with pytest.raises(TypeError, match="FovSpec"):
        preprocess_dataset([("a.tif", "P")], tmp_path / "a.h5", progress=False)
    with pytest.raises(FileNotFoundError, match="folder of `out`"):
        preprocess_dataset(dataset, tmp_path / "no" / "a.h5", progress=False)


@pytest.mark.slow
def test_process_pool_matches_inline(tmp_path, dataset, expected) -> None:
    report = preprocess_dataset(dataset, tmp_path / "p.h5", crop_size=CROP, workers=2)
    assert report.n_processed == 4 and report.n_failed == 5
    _check_store(tmp_path / "p.h5", expected)


@pytest.mark.slow
def test_dask_local_cluster(tmp_path, dataset, expected) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        report = preprocess_dataset(
            dataset, tmp_path / "d.h5", crop_size=CROP, scheduler=cluster.scheduler_address
        )
    assert report.n_processed == 4 and report.n_failed == 5
    _check_store(tmp_path / "d.h5", expected)


@pytest.mark.slow
def test_cli_scheduler_address(tmp_path, dataset, expected, capsys) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        out = tmp_path / "c.h5"
        args = ["preprocess", str(dataset), "-o", str(out), "--crop-size", str(CROP), "-q"]
        assert main([*args, "--scheduler", cluster.scheduler_address]) == 1
    assert "4 fields processed" in capsys.readouterr().out
    _check_store(out, expected)


@pytest.mark.slow
def test_kill_at_any_moment_leaves_a_valid_store(tmp_path) -> None:
    manifest = _make_dataset(tmp_path / "ds", n_good=14, bad=False)
    out = tmp_path / "k.h5"
    parts = tmp_path / "k.h5.parts"
    cmd = [sys.executable, "-m", "cyto", "preprocess", str(manifest), "-o", str(out)]
    cmd += ["--crop-size", str(CROP), "-j", "1", "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("*.npz"))) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the store exists, opens, and holds only complete fields (here: none yet)
    with CropStore(out) as s:
        n_killed = len(s)
        with h5py.File(out, "r") as f:
            counts = dict(zip(f["fovs/fov_id"].asstr()[()], f["fovs/n_crops"][()]))
        for fov, n in counts.items():
            assert (s.fov_ids == fov).sum() == n
        assert set(s.fov_ids) <= set(counts)
    n_shards = len(list(parts.glob("*.npz")))
    assert n_shards >= 3 and n_killed == 0
    # the next run resumes from the shards and completes
    report = preprocess_dataset(manifest, out, crop_size=CROP, workers=1, progress=False)
    assert report.n_skipped >= 3 and report.n_processed == 14 - report.n_skipped
    clean = preprocess_dataset(manifest, tmp_path / "clean.h5", crop_size=CROP, workers=1)
    with CropStore(out) as a, CropStore(tmp_path / "clean.h5") as b:
        assert len(a) == len(b) == report.n_crops == clean.n_crops
        np.testing.assert_array_equal(a.fov_ids, b.fov_ids)
        np.testing.assert_array_equal(a.read(slice(None)), b.read(slice(None)))


def test_cli(tmp_path, dataset, capsys) -> None:
    out = tmp_path / "cli.h5"
    code = main(
        [
            "preprocess",
            str(dataset),
            "-o",
            str(out),
            "--crop-size",
            str(CROP),
            "--channels",
            "protein",
            "--dtype",
            "float32",
            "-j",
            "1",
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1  # some files were bad
    assert "skipped" in captured.err and "junk.tif" in captured.err
    assert "4 fields processed" in captured.out and "5 failed" in captured.out
    with CropStore(out) as s:
        assert s.channels == ("protein",) and s.dtype == np.float32 and len(s) > 0
    assert main(["preprocess", str(tmp_path / "nothing"), "-o", str(out)]) == 2
    with pytest.raises(SystemExit):
        main(["preprocess", str(dataset), "-o", str(out), "--channels", "4dapi"])
    code = main(["preprocess", str(dataset), "-o", str(tmp_path / "d.h5"), "--channels", "dapi",
                 "--nucleus-channel", "dapi"])  # fmt: skip
    assert code == 2 and not (tmp_path / "d.h5").exists()


def test_crash_while_merging_keeps_the_old_store(tmp_path, monkeypatch) -> None:
    from cyto.data import _store

    manifest = _make_dataset(tmp_path / "ds", n_good=3, bad=False)
    out = tmp_path / "m.h5"
    first = preprocess_dataset(manifest, out, crop_size=CROP, workers=1, progress=False)
    # two more fields arrive; the merge of the second run dies half-way
    _write_fov(tmp_path / "ds" / "late0.tif", seed=50)
    _write_fov(tmp_path / "ds" / "late1.tif", seed=51)
    with open(manifest, "a") as f:
        f.write("late0.tif,P0,l0\nlate1.tif,P1,l1\n")
    original = _store.CropStoreWriter.append
    calls = {"n": 0}

    def dying_append(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C or a kill during the merge
        return original(self, *args)

    monkeypatch.setattr(_store.CropStoreWriter, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):
        preprocess_dataset(manifest, out, crop_size=CROP, workers=1, progress=False)
    monkeypatch.undo()
    with CropStore(out) as s:  # the previous store, untouched
        assert len(s) == first.n_crops and set(s.fov_ids) == {"g0", "g1", "g2"}
    assert not list(tmp_path.glob(".m.h5.*.tmp"))
    assert len(list((tmp_path / "m.h5.parts").glob("*.npz"))) == 2
    again = preprocess_dataset(manifest, out, crop_size=CROP, workers=1, progress=False)
    assert again.n_skipped == 5 and again.n_processed == 0
    with CropStore(out) as s:
        assert set(s.fov_ids) == {"g0", "g1", "g2", "l0", "l1"} and len(s) == again.n_crops
