"""One writer at a time: advisory locks on crop stores, run folders and embeddings files.

A writer holds an exclusive ``fcntl.flock`` on a small file next to what it writes
(``<name>.lock``), which records who holds it (pid, host, start time, command). A second
writer fails at once with :class:`LockedError` naming the holder. The kernel drops the
lock when the holding process dies, however it dies (kill -9 included), so a lock file
left behind by a dead process is reclaimed by the next writer without anyone deleting
it; after a normal end the file is removed. Standard library only; on systems without
``fcntl`` (Windows) locking is skipped.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockedError", "lock_path", "write_lock"]


class LockedError(RuntimeError):
    """Another process is writing the same output (``.holder`` says who)."""

    def __init__(self, message: str, holder: dict | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: ``<folder>/.<name>.lock`` beside it (inside a folder
    target: ``<folder>/.lock``)."""
    target = Path(target)
    if target.is_dir():
        return target / ".lock"
    return target.with_name(f".{target.name}.lock")


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (no details recorded)"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {when}"
        f" ({holder.get('command', '?')})"
    )


def _read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def write_lock(target: str | os.PathLike, *, what: str = "output") -> Iterator[Path]:
    """Hold the exclusive writer lock of ``target`` for the duration of the block.

    Parameters
    ----------
    target : str or PathLike
        The file or folder about to be written (it need not exist; its folder must).
    what : str, default "output"
        What ``target`` is, for the error message (e.g. ``"crop store"``).

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    LockedError
        If another live process holds the lock; the message names it (pid, host, start
        time, command).

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "crops.h5"
    >>> with write_lock(target, what="crop store") as lock:
    ...     lock.name
    '.crops.h5.lock'
    """
    path = lock_path(target)
    if fcntl is None:  # pragma: no cover - Windows
        yield path
        return
    fd = _acquire(path, target, what)
    try:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        yield path
    finally:
        # remove the file while still holding it: a waiting writer sees the inode change
        # and retries on a fresh file, so no stale file is left after a normal end
        try:
            path.unlink()
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(path: Path, target: str | os.PathLike, what: str) -> int:
    """Open and flock ``path``; retry while another writer replaces the file under us."""
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = _read_holder(path)
            raise LockedError(
                f"{what} {target} is being written by {_describe(holder)}; wait for it to "
                f"finish or stop it (the lock is {path}; it is released when that process "
                "ends)",
                holder,
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed it as we opened it: start again
    raise LockedError(f"could not lock {what} {target}: {path} keeps being replaced")
