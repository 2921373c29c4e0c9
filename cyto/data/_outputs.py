"""The one guard of every output cyto writes: what a path holds, and whether it may go.

Every command and every writer asks :func:`check_output` (a file) or enters
:func:`output_folder` (a folder) before it writes. The rules, the same everywhere:

- an output is never an input of the same command (compared as files, whatever the
  spelling of the path), never a crop store, checkpoint or run of another command;
- an existing output is replaced only with ``overwrite`` (``--overwrite``), and only
  when cyto wrote it and it is of the same kind — never a file cyto did not write;
- a folder output must be new, empty, or a cyto folder of that kind; replacing one
  removes the files the earlier run wrote (listed in its ``.cyto-output.json``), so no
  stale file of an earlier run stays beside the new ones; a command refused or failed
  before it wrote anything leaves no folder behind.

What a path holds is decided by content, never by its name (:func:`kind_of`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cyto._atomic import write_text_atomic

__all__ = [
    "FOLDER_KINDS",
    "MARKER",
    "OutputError",
    "check_output",
    "clear_folder",
    "kind_of",
    "output_folder",
    "same_file",
    "write_marker",
]

#: The file in every folder output that names its kind and the files written into it.
MARKER = ".cyto-output.json"

#: Folder kinds, with the file (and the keys in it) by which a folder that an older cyto
#: wrote without :data:`MARKER` is still recognised (None: the marker only).
FOLDER_KINDS: dict[str, tuple[str, tuple[str, ...]] | None] = {
    "report": None,
    "evaluation card": None,
    "ablation": None,
    "demo": ("demo.json", ("inputs",)),
    "synthetic atlas": ("synth.json", ("config",)),
    "run": ("config.json", ("train", "model")),
}

# outputs that no command other than their own may ever replace
_PROTECTED = ("crop store", "checkpoint", "run", "run's checkpoints folder")
_HTML_SIGN = b'<meta name="generator" content="cyto'


class OutputError(FileExistsError):
    """An output path that would destroy an input, a file of another kind, or one
    cyto did not write (a ``FileExistsError``: the command line's exit code 2)."""


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are the same existing file or folder (links, ``..``
    and case-insensitive file systems included).

    Examples
    --------
    >>> same_file(".", "./"), same_file(".", "/nonexistent-path")
    (True, False)
    """
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _hdf5_kind(path: Path) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            if attrs.get("format") is not None and str(attrs["format"]).startswith(
                "cyto-embeddings"
            ):
                return "embeddings file"
            if "format_version" in attrs and "crops" in f:
                return "crop store"
            if "uns" in f and "provenance" in f["uns"]:
                return "AnnData file"
            if "uns" in f or attrs.get("encoding-type") == "anndata":
                return "other AnnData file"
    except (OSError, ValueError):
        return None
    return "other HDF5 file"


def _file_kind(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return _hdf5_kind(path)
    if head.startswith(b"PK") and zipfile.is_zipfile(path):
        with contextlib.suppress(zipfile.BadZipFile, OSError):
            with zipfile.ZipFile(path) as z:
                if any(n.endswith("data.pkl") for n in z.namelist()):
                    return "checkpoint"
        return None
    if _HTML_SIGN in head:
        return "explorer page"
    return None


def _folder_kind(path: Path) -> str | None:
    marker = path / MARKER
    if marker.is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            return str(json.loads(marker.read_text(encoding="utf-8")).get("kind"))
    for kind, sign in FOLDER_KINDS.items():
        if sign is not None and _json_has(path / sign[0], sign[1]):
            return kind
    if _in_run(path / "x"):
        return "run's checkpoints folder"
    return None


def _json_has(path: Path, keys: tuple[str, ...]) -> bool:
    """True when ``path`` is a JSON object holding every key of ``keys``."""
    if not path.is_file():
        return False
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(path.read_text(encoding="utf-8"))
        return isinstance(record, dict) and all(k in record for k in keys)
    return False


def _in_run(path: Path) -> bool:
    """True when ``path`` lies in a run's ``checkpoints/`` folder."""
    parent = path.parent
    return parent.name == "checkpoints" and _folder_kind(parent.parent) == "run"


def kind_of(path: str | os.PathLike) -> str | None:
    """What cyto wrote at ``path``, by content: ``"crop store"``, ``"embeddings file"``,
    ``"checkpoint"``, ``"AnnData file"``, ``"explorer page"``, a folder kind of
    :data:`FOLDER_KINDS`, or None (absent, or nothing cyto wrote).

    Other HDF5 files answer ``"other HDF5 file"`` / ``"other AnnData file"``.

    Examples
    --------
    >>> kind_of("/nonexistent/file.h5") is None
    True
    """
    path = Path(path)
    if path.is_dir():
        return _folder_kind(path)
    if path.is_file():
        return _file_kind(path)
    return None


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiouAEIOU" else "a ") + kind


def _check_inputs(path: Path, inputs: Iterable[Any], flag: str) -> None:
    """Refuse an output that is an input of the same command."""
    for item in inputs:
        if item is None:
            continue
        what, other = item if isinstance(item, tuple) else ("an input of this command", item)
        if not isinstance(other, (str, os.PathLike)):
            continue  # an input given as data, not as a file
        if same_file(path, other) or path.resolve() == Path(other).resolve():
            raise OutputError(
                f"`{flag}` {path} is {what}; writing there would destroy it: choose another name"
            )


def check_output(
    path: str | os.PathLike,
    kind: str,
    *,
    inputs: Iterable[Any] = (),
    overwrite: bool = False,
    flag: str = "-o",
    resume: bool = False,
) -> bool:
    """Refuse an output path that would destroy anything; say whether it exists.

    Parameters
    ----------
    path : path-like
        The output (file or folder).
    kind : str
        What will be written there (e.g. ``"embeddings file"``, ``"report"``).
    inputs : iterable
        The command's inputs: paths, or ``(description, path)`` pairs for the message.
    overwrite : bool, default False
        Allow replacing an existing output of the same ``kind`` that cyto wrote.
    flag : str, default "-o"
        The option or argument naming ``path``, for the message.
    resume : bool, default False
        The command continues an output of the same kind (a crop store, a demo, a
        run): an existing one of that kind is accepted without ``overwrite``.

    Returns
    -------
    exists : bool
        True when ``path`` holds an output of ``kind`` that may be resumed or replaced.

    Raises
    ------
    OutputError
        With one sentence naming ``path``, what it holds and what to do.
    FileNotFoundError
        If the folder of a file output does not exist.
    """
    path = Path(path)
    folder = kind in FOLDER_KINDS
    _check_inputs(path, inputs, flag)
    if _in_run(path):
        raise OutputError(f"`{flag}` {path} is inside a run's checkpoints/ folder; write elsewhere")
    if not path.exists():
        if not folder and not path.parent.is_dir():
            raise FileNotFoundError(f"folder of `{flag}` does not exist: {path.parent}")
        return False
    if folder and not path.is_dir():
        raise OutputError(f"`{flag}` {path} is a file; {_a(kind)} is a folder: name a new one")
    if not folder and path.is_dir():
        raise OutputError(f"`{flag}` {path} is a folder; name the {kind} to write (a file)")
    if folder and _only_leftovers(path):
        return False  # empty, or only what a killed writer of cyto's left (locks, temporaries)
    found = kind_of(path)
    if found == kind:
        if resume or overwrite:
            return True
        raise OutputError(
            f"`{flag}` {path} already holds {_a(kind)}; pass --overwrite to replace it "
            "(or choose another name)"
        )
    if found in _PROTECTED or found in FOLDER_KINDS or (found and not found.startswith("other")):
        raise OutputError(
            f"`{flag}` {path} is {_a(found)}, not {_a(kind)}; cyto never writes over it: "
            "choose another name"
        )
    what = "a non-empty folder" if folder else "an existing file"
    raise OutputError(
        f"`{flag}` {path} is {what} that cyto did not write as {_a(kind)}; refusing to "
        "touch it (even with --overwrite): choose another name"
    )


def _only_leftovers(path: Path) -> bool:
    """True when a folder holds nothing but empty folders, lock files and the temporary
    files of cyto's atomic writes (``.NAME.XXXX.tmp``, ``.NAME.partial``)."""
    for p in path.rglob("*"):
        if p.is_dir():
            continue
        name = p.name
        temporary = name.startswith(".") and name.endswith((".tmp", ".partial"))
        if not (name == ".lock" or temporary):
            return False
    return True


def _listed(path: Path) -> list[str] | None:
    """The files an earlier run listed in the folder's marker (None: no list)."""
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        return [str(f) for f in json.loads((path / MARKER).read_text("utf-8"))["files"]]
    return None


def _files(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


def clear_folder(path: str | os.PathLike) -> None:
    """Remove what an earlier run of cyto wrote into ``path`` (the marker's list, or
    everything in a marker-less folder of an older cyto), and empty sub-folders.

    Call it only on a folder :func:`check_output` recognised as cyto's.

    Parameters
    ----------
    path : path-like
    """
    path = Path(path)
    listed = _listed(path)
    if listed is None:
        for p in path.iterdir():
            if p.name != ".lock":
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        return
    for name in [*listed, MARKER]:
        target = path / name
        if target.resolve().is_relative_to(path.resolve()):
            target.unlink(missing_ok=True)
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()  # only empty ones


def write_marker(path: str | os.PathLike, kind: str, files: Iterable[str]) -> None:
    """Write the folder's :data:`MARKER` (its kind and the files cyto wrote in it)."""
    path = Path(path)
    record = {"kind": kind, "files": sorted(set(files) - {MARKER, ".lock"})}
    write_text_atomic(path / MARKER, json.dumps(record, indent=1) + "\n")


@contextlib.contextmanager
def output_folder(
    path: str | os.PathLike,
    kind: str,
    *,
    inputs: Iterable[Any] = (),
    overwrite: bool = False,
    flag: str = "-o",
) -> Iterator[Path]:
    """Check a folder output, prepare it, and record what was written into it.

    A new folder is created (and removed again, with anything in it, if the body
    fails); an existing one of ``kind`` is cleared of the files its earlier run wrote
    (``overwrite`` needed); on success :data:`MARKER` lists the files now written.

    Parameters
    ----------
    path : path-like
    kind : str
        One of :data:`FOLDER_KINDS`.
    inputs, overwrite, flag
        As for :func:`check_output`.

    Yields
    ------
    folder : Path
    """
    path = Path(path)
    exists = check_output(path, kind, inputs=inputs, overwrite=overwrite, flag=flag)
    created = not path.exists()
    if exists:
        clear_folder(path)
    before = set() if created else _files(path)
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    write_marker(path, kind, _files(path) - before)
