"""Atomic file writes shared by every layer (standard library only, no heavy imports)."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "check_free_space",
    "default_mode",
    "human_bytes",
    "io_failure",
    "write_text_atomic",
]

# how HDF5 (through h5py) reports a full disk or a read-only folder: as text, often in a
# RuntimeError or an OSError without errno
_IO_SIGNS = {
    "disk_full": (errno.ENOSPC, ("no space left on device", "errno = 28")),
    "read_only": (errno.EROFS, ("read-only file system", "errno = 30")),
}


def io_failure(err: BaseException) -> str | None:
    """``"disk_full"``, ``"read_only"`` or None: what an I/O error (or its causes) means.

    Looks at the errno of the error and of its ``__cause__`` / ``__context__`` chain, and
    at their text (HDF5 reports these failures as text inside other exceptions).

    Examples
    --------
    >>> io_failure(OSError(errno.ENOSPC, "No space left on device"))
    'disk_full'
    >>> io_failure(RuntimeError("file write failed: errno = 28, error message = ..."))
    'disk_full'
    >>> io_failure(ValueError("bad")) is None
    True
    """
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e).lower()
        for kind, (code, signs) in _IO_SIGNS.items():
            if getattr(e, "errno", None) == code or any(s in text for s in signs):
                return kind
        e = e.__cause__ or e.__context__
    return None


def check_free_space(folder: str | os.PathLike, need: float, what: str) -> None:
    """Refuse, before anything is written, work whose output cannot fit in ``folder``.

    Parameters
    ----------
    folder : path-like
        Where the output goes (an existing folder).
    need : float
        Bytes the output needs at least (a lower bound: a refusal must be certain).
    what : str
        What would be written, for the message (e.g. ``"the embeddings"``).

    Raises
    ------
    OSError
        ``ENOSPC``, naming the bytes needed and free.
    """
    import shutil

    free = shutil.disk_usage(folder).free
    if need > free:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device: {what} need at least {human_bytes(need)}, "
            f"{human_bytes(free)} are free",
            str(folder),
        )


def human_bytes(n: float) -> str:
    """``n`` bytes as a short human-readable size (binary units).

    Examples
    --------
    >>> human_bytes(3 * 2**20), human_bytes(512), human_bytes(5.5 * 2**30)
    ('3.0 MiB', '512 B', '5.5 GiB')
    """
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def default_mode(path: str | os.PathLike) -> None:
    """Give a ``mkstemp`` file (mode 0600) the permissions of a normally created one."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_path(
    path: str | os.PathLike, *, suffix: str = ".tmp", mkdir: bool = False
) -> Iterator[Path]:
    """Yield a fresh temporary file next to ``path`` that replaces it on success.

    The caller writes the whole file to the yielded path (it exists, empty). On a
    normal exit it gets the permissions of a normally created file and is renamed
    onto ``path`` (``os.replace``: readers see the old file or the new one, never a
    partial one); on any exception, KeyboardInterrupt included, it is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    path : str or PathLike
        The file to (re)write.
    suffix : str, default ".tmp"
        Suffix of the temporary name (for writers that insist on an extension).
    mkdir : bool, default False
        Create the parent folder first.

    Examples
    --------
    >>> import tempfile, os
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text(), os.listdir(target.parent)
    ('done', ['a.txt'])
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str, *, mkdir: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`; the path.

    Readers see the old file or the whole new one, never part of it.

    Examples
    --------
    >>> import tempfile
    >>> write_text_atomic(Path(tempfile.mkdtemp()) / "a.json", "{}").read_text()
    '{}'
    """
    with atomic_path(path, mkdir=mkdir) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
