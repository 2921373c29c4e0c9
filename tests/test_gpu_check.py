"""``benchmarks/gpu_check.sh --dry-run``: the GPU host's script keeps working (on CPU).

The GPU host has no package index, so the run must need nothing beyond numpy, scipy,
torch, triton, h5py, scikit-image, scikit-learn, tifffile (and tqdm, pytest). The dry run
here hides every other installed package cyto may use (stand-ins that fail on import,
first on the path), so a new import on the GPU path fails this test rather than the GPU run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STAGES = ("environment", "tests", "bench_quantize", "bench_train", "bench_gpu", "end_to_end")
#: installed here, absent on the GPU host
HIDDEN = (
    "umap", "pynndescent", "numba", "imagecodecs", "pandas", "pyarrow", "matplotlib",
    "anndata", "scanpy", "dask", "distributed", "zarr", "ome_zarr", "playwright", "copairs",
    "harmonypy", "jinja2",
)  # fmt: skip

#: what a hidden package's stand-in raises on import
STAND_IN = 'raise ModuleNotFoundError("No module named {name!r} (hidden: not on the GPU host)")\n'


def _hide(folder: Path) -> None:
    """Stand-in packages that shadow the hidden ones: found (torch._dynamo asks
    ``find_spec`` about several of them) but failing on import."""
    for name in HIDDEN:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(STAND_IN.format(name=name))


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.timeout(900)
def test_dry_run_passes_every_stage_with_only_the_gpu_hosts_packages(tmp_path):
    hide = tmp_path / "hide"
    _hide(hide)
    env = {**os.environ, "PYTHONPATH": str(hide), "PYTHON": "python"}
    out = tmp_path / "results"
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = (out / "gpu_check_dry_run.log").read_text() if out.exists() else ""
    assert result.returncode == 0, result.stdout + log[-4000:]
    table = (out / "gpu_check_dry_run.md").read_text()
    for stage in STAGES:
        assert f"| {stage} | ok |" in table, table
    assert "hidden: not on the GPU host" not in log
    # the stand-ins really hide them
    probe = subprocess.run(
        ["python", "-c", "import pandas"], env=env, capture_output=True, text=True
    )
    assert "hidden: not on the GPU host" in probe.stderr
    assert (out / "gpu_dry_run.json").exists() and (out / "train_dry_run.json").exists()
