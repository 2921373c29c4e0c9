"""The run directory's owner: file names in one place, readers that need no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cyto.data import RunDir


def test_run_dir_names_every_file_and_reads_them(tmp_path) -> None:
    run = RunDir(tmp_path / "run")
    assert not run.started and not run.finished and not run.resumable
    with pytest.raises(FileNotFoundError, match=r"config\.json missing"):
        run.read_config()
    with pytest.raises(FileNotFoundError, match="has not finished"):
        run.read_summary()
    with pytest.raises(FileNotFoundError, match=r"split\.npz missing"):
        run.read_split()
    run.checkpoints.mkdir(parents=True)
    run.config_file.write_text(json.dumps({"train": {"seed": 1}}))
    run.summary_file.write_text(json.dumps({"best_epoch": 2}))
    np.savez(run.split_file, split=np.array([0, 1, 2, 0]), classes=np.array(["a"]))
    run.last.write_bytes(b"")
    assert run.started and run.finished and run.resumable
    assert run.read_config()["train"]["seed"] == 1
    assert run.read_summary()["best_epoch"] == 2
    assert run.read_split().dtype == np.int8 and run.read_split().tolist() == [0, 1, 2, 0]
    assert run.checkpoint("best") == run.best == run.path / "checkpoints" / "best.pt"


def test_run_dir_and_pipeline_import_without_torch() -> None:
    code = "import sys, cyto.data, cyto.workflows; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
