"""Fixtures shared by the cyto.nn tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a whole test module, restored afterwards.

    These tests check logic on tiny models; on a shared 2-core machine every OpenMP
    parallel region can stall for a scheduler time slice (measured: 30-100x slower
    than one thread). Opt in with ``pytestmark = pytest.mark.usefixtures(...)``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
