"""Shared fixtures: the real images in ../shared/data, CPU determinism."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
