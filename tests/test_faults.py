"""Fault injection across preprocess, train and embed, run as a user would (the CLI).

Each command is killed with SIGKILL at random moments of its work (several seeds); a
full disk and a read-only folder are real (a small tmpfs, remounted read-only) where
this machine lets the tests mount one; two writers race for one output. After every
fault each output either opens and is complete (or, for a store, holds only complete
fields), or the next command refuses it with a sentence; and rerunning the command
finishes with the same content hash as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from cyto._provenance import content_hash
from cyto.data import CropStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
KILL_SEEDS = (0, 1, 2)
TRAIN = ["--preset", "tiny", "--max-epochs", "2", "--batch-size", "16", "--threads", "1"]
TRAIN += ["--checkpoint-every", "3", "--quiet"]
# a two-epoch model's encodings are often degenerate: files, not quality, are tested here
EMBED = ["--threads", "1", "--allow-degenerate", "--quiet"]


def _cyto(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "cyto", *map(str, args)]


def _run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(_cyto(*args), env=ENV, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"cyto {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stderr}")
    return proc


def _kill_during(args: list, started: Path, delay: float) -> None:
    """Start ``cyto args``, wait until ``started`` exists, sleep ``delay`` s, SIGKILL it."""
    proc = subprocess.Popen(
        _cyto(*args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _work_seconds(args: list, started: Path) -> float:
    """Wall time of ``cyto args`` from the moment ``started`` appears until it exits."""
    proc = subprocess.Popen(
        _cyto(*args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    while not started.exists() and proc.poll() is None:
        time.sleep(0.005)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return time.monotonic() - t0


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip(), "a failure must say why"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> dict:
    """A small atlas and the uninterrupted preprocess → train → embed of it."""
    from cyto.data import SyntheticAtlasConfig, generate_atlas

    d = tmp_path_factory.mktemp("faults")
    cfg = SyntheticAtlasConfig(
        seed=3,
        families=("nucleolus_gc", "er", "mitochondria"),
        complexes_per_family=1,
        complex_size=(2, 2),
        n_proteins=None,
        fields_per_protein=5,
        field_size=256,
        z_planes=2,
    )
    generate_atlas(d / "atlas", cfg, n_jobs=1, progress=False)
    hint = json.loads((d / "atlas" / "synth.json").read_text())["preprocess_args"].split()
    pre = [d / "atlas" / "manifest.csv", *hint, "-j", "1", "-q"]
    store, run, emb = d / "crops.h5", d / "run", d / "emb.h5"
    t_pre = _work_seconds(["preprocess", *pre, "-o", store], Path(f"{store}.parts"))
    t_train = _work_seconds(["train", store, "-o", run, *TRAIN], run / "config.json")
    t_emb = _work_seconds(
        ["embed", run, store, "-o", emb, *EMBED],
        emb.with_name(f".{emb.name}.partial"),
    )
    return {
        "dir": d,
        "pre": pre,
        "store": store,
        "run": run,
        "emb": emb,
        "seconds": {"preprocess": t_pre, "train": t_train, "embed": t_emb},
        "hash": {
            "store": content_hash(store),
            "last": content_hash(run / "checkpoints" / "last.pt"),
            "best": _maybe_hash(run / "checkpoints" / "best.pt"),
            "emb": content_hash(emb),
        },
    }


def _maybe_hash(path: Path) -> str | None:
    return content_hash(path) if path.exists() else None


def _check_store(path: Path) -> int:
    """A store left by a fault opens and holds only whole fields; its crop count."""
    with CropStore(path) as s, h5py.File(path, "r") as f:
        counts = dict(zip(f["fovs/fov_id"].asstr()[()], f["fovs/n_crops"][()]))
        ids, n = np.unique(s.fov_ids.astype(str), return_counts=True)
        assert dict(zip(ids, n)) == {k: v for k, v in counts.items() if v}
        return len(s)


def _check_run(run: Path) -> None:
    """Every checkpoint a fault left loads; every metrics record is whole JSON."""
    from cyto.nn import load_checkpoint

    for ckpt in (run / "checkpoints").glob("*.pt"):
        assert load_checkpoint(ckpt)["step"] >= 0
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            json.loads(line)


# --------------------------------------------------------------------------- kill -9
@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_preprocess_killed_anywhere_resumes_to_the_same_store(ref, tmp_path, seed) -> None:
    rng = np.random.default_rng([seed, 1])
    store = tmp_path / "crops.h5"
    delay = rng.uniform(0, ref["seconds"]["preprocess"])
    _kill_during(["preprocess", *ref["pre"], "-o", store], Path(f"{store}.parts"), delay)
    if store.exists():
        _check_store(store)
    _run("preprocess", *ref["pre"], "-o", store)
    assert content_hash(store) == ref["hash"]["store"]
    assert not Path(f"{store}.parts").exists()


@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_train_killed_anywhere_resumes_to_the_same_weights(ref, tmp_path, seed) -> None:
    rng = np.random.default_rng([seed, 2])
    run = tmp_path / "run"
    delay = rng.uniform(0, ref["seconds"]["train"])
    _kill_during(["train", ref["store"], "-o", run, *TRAIN], run / "config.json", delay)
    _check_run(run)
    # what a killed run is worth to the next command: encodings, or a sentence
    embed = _run("embed", run, ref["store"], "-o", tmp_path / "e.h5", *EMBED, check=False)
    if embed.returncode:
        _no_traceback(embed)
    _run("train", "--resume", run, "--threads", "1", "--quiet")
    assert content_hash(run / "checkpoints" / "last.pt") == ref["hash"]["last"]
    assert _maybe_hash(run / "checkpoints" / "best.pt") == ref["hash"]["best"]
    assert not list(run.rglob("*.tmp")) and not list(run.rglob("*.lock"))


@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_embed_killed_anywhere_resumes_to_the_same_file(ref, tmp_path, seed) -> None:
    rng = np.random.default_rng([seed, 3])
    emb = tmp_path / "emb.h5"
    args = ["embed", ref["run"], ref["store"], "-o", emb, *EMBED]
    partial = emb.with_name(f".{emb.name}.partial")
    _kill_during(args, partial, rng.uniform(0, ref["seconds"]["embed"]))
    if emb.exists():  # the final name only ever holds a complete file
        with h5py.File(emb, "r") as f:
            assert bool(f.attrs["complete"])
    analyze = _run("analyze", emb, "-o", tmp_path / "a", check=False)
    if not emb.exists():
        assert analyze.returncode != 0
        _no_traceback(analyze)
    _run(*args)
    assert content_hash(emb) == ref["hash"]["emb"]
    assert not partial.exists()


# --------------------------------------------------------------------------- interrupts
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_preprocess_interrupted_late_exits_130_and_resumes(ref, tmp_path, sig) -> None:
    """An interrupt near the end of the work (the final merge) is never success, never
    an "Exception ignored" report; what was finished is kept and the rerun completes."""
    rng = np.random.default_rng([int(sig), 4])
    store = tmp_path / "crops.h5"
    args = ["preprocess", *ref["pre"], "-o", store]
    proc = subprocess.Popen(_cyto(*args), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    parts = Path(f"{store}.parts")
    while not parts.exists() and proc.poll() is None:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.75, 1.0) * ref["seconds"]["preprocess"])
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Exception ignored" not in err and "Traceback" not in err, err
    if proc.returncode == 130:
        assert "interrupted" in err
    if store.exists():
        _check_store(store)
    _run(*args)
    assert content_hash(store) == ref["hash"]["store"]


# --------------------------------------------------------------------------- disk
@pytest.fixture
def small_disk():
    """A 3 MiB tmpfs (a disk that fills), unmounted afterwards; skips where mount fails."""
    mnt = Path(f"/tmp/cyto-faults-{uuid.uuid4().hex[:8]}")
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True
        ).returncode
    ):
        mnt.rmdir()
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(mnt, ignore_errors=True)


def test_a_full_disk_stops_every_command_with_a_sentence(ref, small_disk, tmp_path) -> None:
    # preprocess: the store does not fit in 3 MiB
    pre = _run("preprocess", *ref["pre"], "-o", small_disk / "crops.h5", check=False)
    assert pre.returncode != 0
    _no_traceback(pre)
    assert "space" in pre.stderr.lower()
    for leftover in small_disk.glob("crops.h5*"):
        if leftover.suffix == ".h5":
            _check_store(leftover)
    shutil.rmtree(small_disk / "crops.h5.parts", ignore_errors=True)
    for p in small_disk.glob("*"):
        p.unlink() if p.is_file() else shutil.rmtree(p)

    # train: a run directory on the full disk (the model does not fit beside the filler)
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * max(0, free - 64 * 1024))
    tr = _run("train", ref["store"], "-o", small_disk / "run", *TRAIN, check=False)
    assert tr.returncode != 0
    _no_traceback(tr)
    assert "space" in tr.stderr.lower()
    _check_run(small_disk / "run")
    # embed: an embeddings file on the full disk
    em = _run("embed", ref["run"], ref["store"], "-o", small_disk / "e.h5", *EMBED, check=False)
    assert em.returncode != 0
    _no_traceback(em)
    assert "space" in em.stderr.lower()
    assert not (small_disk / "e.h5").exists()
    # with space again, each command completes as if nothing had happened
    filler.unlink()
    shutil.rmtree(small_disk / "run", ignore_errors=True)
    _run("embed", ref["run"], ref["store"], "-o", small_disk / "e.h5", *EMBED)
    assert content_hash(small_disk / "e.h5") == ref["hash"]["emb"]


def test_a_read_only_folder_is_refused_with_a_sentence(ref, small_disk) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for args in (
        ["preprocess", *ref["pre"], "-o", small_disk / "crops.h5"],
        ["train", ref["store"], "-o", small_disk / "run", *TRAIN],
        ["embed", ref["run"], ref["store"], "-o", small_disk / "e.h5", *EMBED],
    ):
        proc = _run(*args, check=False)
        assert proc.returncode != 0, args[0]
        _no_traceback(proc)
        assert "read-only" in proc.stderr.lower() or "permission" in proc.stderr.lower(), (
            args[0],
            proc.stderr,
        )


# --------------------------------------------------------------------------- concurrency
def test_two_writers_one_output_one_wins_the_other_is_told(ref, tmp_path) -> None:
    for args, out in (
        (["preprocess", *ref["pre"]], tmp_path / "crops.h5"),
        (["train", ref["store"], *TRAIN], tmp_path / "run"),
        (["embed", ref["run"], ref["store"], *EMBED], tmp_path / "e.h5"),
    ):
        procs = [
            subprocess.Popen(
                _cyto(*args, "-o", out), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        results = [(p.wait(timeout=600), p.stderr.read().decode()) for p in procs]
        # one finishes; the other waited for nothing: it was refused while the first
        # wrote (exit 4, naming the holder) or found the work done or the output taken
        assert 0 in [code for code, _ in results], (args[0], results)
        for code, err in results:
            if code:
                assert "Traceback" not in err and err.strip(), err
            if code == 4:
                assert "pid" in err, err
    assert content_hash(tmp_path / "crops.h5") == ref["hash"]["store"]
    assert content_hash(tmp_path / "run" / "checkpoints" / "last.pt") == ref["hash"]["last"]
    assert content_hash(tmp_path / "e.h5") == ref["hash"]["emb"]
