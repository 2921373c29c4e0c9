"""Shared fixtures: the real images in ../shared/data, CPU determinism."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# tools/bad_inputs.py (the bad-inputs cases and their helpers) is imported by tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

# Keep the suite deterministic and friendly to a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")

_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_DATA = Path(os.environ.get("CYTO_SHARED_DATA", _SHARED))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of real microscopy images (``../shared/data``); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real images not available: {SHARED_DATA} does not exist")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for the module (the command-line cases are many and small)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The inputs of the bad-inputs cases (``tools/bad_inputs.py``), built on first use."""
    from bad_inputs import Workspace

    return Workspace(tmp_path_factory.mktemp("workspace"))
