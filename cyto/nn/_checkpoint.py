"""Safe, atomic training checkpoints.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it
loads with ``torch.load(..., weights_only=True)``: opening one never runs code
from it. Files are written to a temporary name in the target folder, synced and
renamed over the target, so a crash leaves either the old or the new file, never
half of one. Random number generator states (Python, NumPy, torch CPU and CUDA)
are stored as tensors so a resumed run continues the same random streams.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cyto._atomic import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "get_rng_state",
    "load_checkpoint",
    "save_checkpoint",
    "seeded_global_rngs",
    "set_rng_state",
]

#: Value of the ``"format"`` key that marks a cyto checkpoint.
CHECKPOINT_FORMAT = "cyto-checkpoint-1"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename).

    Parameters
    ----------
    state : dict
        Tensors, numbers, strings and (nested) lists / dicts of those.
    path : str or PathLike
        Target file; its folder is created if needed.

    Returns
    -------
    path : Path
        The written file.

    Examples
    --------
    >>> import tempfile, os
    >>> p = save_checkpoint({"w": torch.ones(2)}, os.path.join(tempfile.mkdtemp(), "c.pt"))
    >>> load_checkpoint(p, check_format=False)["w"].tolist()
    [1.0, 1.0]
    """
    path = Path(path)
    with atomic_path(path, mkdir=True) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def load_checkpoint(
    path: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    check_format: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` (no code execution).

    Parameters
    ----------
    path : str or PathLike
        Checkpoint file.
    map_location : str or torch.device, default "cpu"
        Where to put the tensors.
    check_format : bool, default True
        Require the ``"format"`` marker of a cyto checkpoint.

    Returns
    -------
    state : dict

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable, safe cyto checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(
            f"{path} is not a loadable checkpoint (truncated, corrupted or unsafe "
            f"content refused by weights_only loading): {err}"
        ) from None
    if check_format and (not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT):
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} is not a cyto checkpoint: format {found!r}, expected {CHECKPOINT_FORMAT!r}"
        )
    return state


def get_rng_state() -> dict[str, Any]:
    """The Python, NumPy (legacy global) and torch RNG states as tensors/numbers.

    Examples
    --------
    >>> s = get_rng_state(); a = torch.rand(1); set_rng_state(s)
    >>> bool(torch.rand(1) == a)
    True
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python_version": int(version),
        "python": torch.tensor(internal, dtype=torch.int64),
        "python_gauss": gauss,
        "numpy_name": str(name),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached": float(cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed Python's and NumPy's global RNGs with ``seed``; restore the caller's on exit.

    Training seeds every generator it draws from, and these two are saved in its
    checkpoints; seeding them makes a checkpoint a function of the seed alone (two runs
    with one seed write checkpoints with one content hash).
    """
    py, npy = random.getstate(), np.random.get_state()  # noqa: NPY002
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)  # noqa: NPY002


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`get_rng_state`."""
    random.setstate(
        (state["python_version"], tuple(int(v) for v in state["python"]), state["python_gauss"])
    )
    np.random.set_state(  # noqa: NPY002
        (
            state["numpy_name"],
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_has_gauss"],
            state["numpy_cached"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
