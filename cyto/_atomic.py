"""Atomic file writes shared by every layer (standard library only, no heavy imports)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "default_mode"]


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
