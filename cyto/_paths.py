"""Paths stored in output files, so that a moved folder still finds its inputs.

Every file that names another (an embeddings file its crop store and run, a run its crop
store) records the absolute path, for provenance, and the path relative to its own
folder; :func:`locate` tries the relative one first, so a demo or screen folder that is
moved or copied whole keeps working.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["locate", "relative_to"]


def relative_to(target: str | os.PathLike, folder: str | os.PathLike) -> str:
    """``target`` relative to ``folder`` (POSIX separators), or its absolute path when
    no relative path exists (another drive on Windows).

    Examples
    --------
    >>> relative_to("/data/screen/crops.h5", "/data/screen/run")
    '../crops.h5'
    """
    try:
        rel = os.path.relpath(Path(target).resolve(), Path(folder).resolve())
    except ValueError:
        return str(Path(target).resolve())
    return Path(rel).as_posix()


def locate(
    absolute: str | os.PathLike | None,
    relative: str | os.PathLike | None,
    folder: str | os.PathLike,
) -> Path | None:
    """The file a record names: ``folder/relative`` when it exists, else ``absolute``
    when it exists, else None (neither recorded nor found).

    Examples
    --------
    >>> locate("/nowhere/crops.h5", None, "/tmp") is None
    True
    """
    if relative:
        candidate = Path(folder) / str(relative)
        if candidate.exists():
            return candidate.resolve()
    if absolute and Path(str(absolute)).exists():
        return Path(str(absolute))
    return None
