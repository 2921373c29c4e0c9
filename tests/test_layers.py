"""The layers stay apart: preprocess, data and analysis never import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "modules",
    ["cyto", "cyto.preprocess", "cyto.data", "cyto.analysis", "cyto.cli"],
)
def test_import_does_not_pull_torch(modules: str) -> None:
    code = (
        f"import sys, importlib\n"
        f"for m in {modules!r}.split(','):\n"
        f"    importlib.import_module(m)\n"
        "heavy = ('torch', 'triton', 'matplotlib', 'umap', 'dask')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        f"assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cyto", "--help"], check=True, capture_output=True, text=True
    )
    assert "usage: cyto" in out.stdout
