"""cyto._lock: one writer at a time, stale locks reclaimed, holders named."""

from __future__ import annotations

import os
import signal
import time

import pytest
from bad_inputs import hold

from cyto import LockedError
from cyto._lock import lock_path, write_lock


def test_second_writer_is_refused_with_the_holder_named(tmp_path):
    target = tmp_path / "crops.h5"
    proc = hold(target)
    try:
        with pytest.raises(LockedError, match=rf"crop store .* pid {proc.pid} on ") as info:
            with write_lock(target, what="crop store"):
                pass
        assert info.value.holder["pid"] == proc.pid and "started" in info.value.holder
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_reclaimed(tmp_path):
    target = tmp_path / "crops.h5"
    proc = hold(target)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lock_path(target).exists()  # left behind by the dead process
    with write_lock(target) as lock:  # the kernel dropped its flock
        assert lock == lock_path(target)


def test_lock_is_released_after_the_block_and_on_error(tmp_path):
    target = tmp_path / "e.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with write_lock(target):
            raise RuntimeError("boom")
    t = time.perf_counter()
    with write_lock(target):
        pass
    assert time.perf_counter() - t < 1.0


def test_folder_targets_lock_inside(tmp_path):
    assert lock_path(tmp_path) == tmp_path / ".lock"
    assert lock_path(tmp_path / "x.h5") == tmp_path / ".x.h5.lock"
