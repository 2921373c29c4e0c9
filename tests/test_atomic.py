"""cyto._atomic.atomic_path: all-or-nothing replacement, usual permissions, no leftovers."""

from __future__ import annotations

import doctest
import os
import stat

import pytest

from cyto import _atomic
from cyto._atomic import atomic_path


def test_replaces_on_success_with_umask_permissions(tmp_path) -> None:
    target = tmp_path / "a.json"
    target.write_text("old")
    umask = os.umask(0o022)
    try:
        with atomic_path(target, suffix=".npz") as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".npz") and tmp.exists()
            assert stat.S_IMODE(tmp.stat().st_mode) == 0o600  # mkstemp's private mode
            tmp.write_text("new")
            assert target.read_text() == "old"  # untouched until the block ends
    finally:
        os.umask(umask)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path, exc) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(exc), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise exc
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_mkdir_creates_the_folder(tmp_path) -> None:
    target = tmp_path / "x" / "y" / "f.bin"
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass
    with atomic_path(target, mkdir=True) as tmp:
        tmp.write_bytes(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_examples() -> None:
    result = doctest.testmod(_atomic, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_free_space_check_names_what_needs_how_much(tmp_path) -> None:
    import errno

    import pytest

    from cyto._atomic import check_free_space, human_bytes, io_failure

    check_free_space(tmp_path, 1, "a tiny file")
    with pytest.raises(OSError, match=r"the embeddings need at least .* are free") as info:
        check_free_space(tmp_path, float(2**70), "the embeddings")
    assert info.value.errno == errno.ENOSPC and io_failure(info.value) == "disk_full"
    assert human_bytes(2**50) == "1024.0 TiB"
    assert io_failure(RuntimeError("unable to open: errno = 30, Read-only file system")) == (
        "read_only"
    )
