"""Reading an embeddings file for an analysis: the atlas rows, their encodings (checked
for degeneracy), local codes, the crop store (checked against the recorded fingerprint)
and the ground truth (checked to label the atlas). Shared by ``cyto analyze`` and
``cyto explore``, so neither imports the other.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cyto.analysis._ground_truth import GroundTruth
from cyto.data._embeddings import Embeddings, LazyRows


def _log(verbose: bool, msg: str, command: str = "analyze") -> None:
    if verbose:
        print(f"[cyto {command}] {msg}", file=sys.stderr, flush=True)


def _atlas_rows(emb: Embeddings, split: str | None, max_points: int | None) -> tuple:
    """Rows of the atlas (``split``, or every row) and the split actually used."""
    if max_points is not None and (isinstance(max_points, bool) or int(max_points) < 1):
        raise ValueError(f"`max_points` must be >= 1 (or None for every crop), got {max_points}")
    available = sorted(set(emb.split.tolist()))
    if split in (None, "all"):
        rows, used = np.arange(emb.n), "all"
    elif split in available:
        rows, used = np.flatnonzero(emb.split == split), split
    else:
        raise ValueError(
            f"`split` {split!r} not in the embeddings file {emb.path.name}; it has "
            f"{available}: choose one of them, or 'all' (None) for every crop"
        )
    if max_points is not None and rows.size > max_points:
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(rows, size=int(max_points), replace=False))
    return rows, used


def _local_codes(emb: Embeddings) -> tuple[LazyRows | None, int]:
    """Local VQ index maps (None if absent), read lazily: the spectra and cluster shares
    walk them block by block, so 10⁶ maps never sit in memory; the local codebook size."""
    idx = emb.lazy("local_indices") if "local_indices" in emb else None
    if "local_hist" in emb:
        return idx, emb.shape("local_hist")[1]
    if "num_embeddings_local" in emb.attrs:
        return idx, int(emb.attrs["num_embeddings_local"])
    if idx is None:
        return None, 0
    step = 4096
    top = max((int(idx[a : a + step].max()) for a in range(0, len(idx), step)), default=-1)
    return idx, top + 1


def _read_embeddings(
    path: Path,
    *,
    split: str | None,
    fit_split: str | None,
    max_points: int | None,
    local: bool,
    allow_degenerate: bool = False,
    crops: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Open an embeddings file, pick the atlas rows and read what the analysis needs.

    Raises :class:`~cyto.analysis.DegenerateEncodingError` when the atlas rows' global
    encodings are degenerate, unless ``allow_degenerate``; a ValueError when ``crops``
    (or the recorded store) is not the store the file was embedded from.
    """
    with Embeddings(path) as emb:
        run = emb.attrs.get("run")
        out: dict[str, Any] = {
            "n_all": emb.n,
            "pids_all": emb.protein_ids,
            "split_all": emb.split,
            "fov_all": emb.fov_ids,
            "crop_index": emb.crop_index,
            "store": emb.crop_store(crops),
            "variant": Path(str(run)).name if run else path.stem,
        }
        rows, out["split_used"] = _atlas_rows(emb, split, max_points)
        out["rows"] = rows
        out["X"] = emb.read("global", rows).astype(np.float32, copy=False)
        out["health"] = emb.check_health(rows, out["X"], allow=allow_degenerate)
        out["X_fit"] = None
        if fit_split is not None:
            available = sorted(set(emb.split.tolist()))
            if fit_split not in available:
                raise ValueError(
                    f"`fit_split` {fit_split!r} not in the embeddings file {path.name}; "
                    f"it has {available}"
                )
            fit_rows = np.flatnonzero(emb.split == fit_split)
            out["X_fit"] = emb.read("global", fit_rows).astype(np.float32, copy=False)
        out["local_idx"], out["num_codes"] = _local_codes(emb) if local else (None, 0)
        out["reference"] = None
        out["path"] = path
        if local and out["split_used"] == "test" and (emb.split == "train").any():
            ref_rows = np.flatnonzero(emb.split == "train")
            out["reference"] = (emb.read("global", ref_rows), out["pids_all"][ref_rows])
    return out


def _embedding_inputs(path: Path) -> dict[str, Any]:
    """What an embeddings file came from (its ``inputs`` attribute, when written)."""
    with Embeddings(path) as emb:
        return emb.inputs()


def _embedding_paths(embeddings: Any) -> list[Path]:
    """The embeddings argument as a non-empty list of existing files."""
    if isinstance(embeddings, (str, os.PathLike)):
        paths = [Path(embeddings)]
    else:
        paths = [Path(p) for p in embeddings]
    if not paths:
        raise ValueError("`embeddings` must name at least one embeddings file")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"embeddings file not found: {p}")
    return paths


def _ground_truth_of(
    ground_truth: Any, complexes: Any, min_grade: int, pids: np.ndarray
) -> GroundTruth:
    """The ground truth, checked to label some of the atlas proteins."""
    gt = GroundTruth.read(ground_truth, complexes, min_grade=min_grade)
    gt.check_covers(pids)
    return gt
