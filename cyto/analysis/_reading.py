"""Reading an embeddings file for an analysis: the atlas rows, their encodings (checked
for degeneracy), local codes, the crop store (checked against the recorded fingerprint)
and the ground truth (checked to label the atlas). Shared by ``cyto analyze`` and
``cyto explore``, so neither imports the other.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cyto._health import EncodingHealth
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


@dataclass(frozen=True, eq=False)
class AtlasInput:
    """What an analysis reads from one embeddings file: the atlas rows and their encodings.

    Made by :func:`read_atlas`; a modified copy (another variant name, corrected
    encodings) is made with :func:`dataclasses.replace`, never by changing this one.

    Attributes
    ----------
    path : Path
        The embeddings file.
    variant : str
        Name of the model variant: the run folder's name, else the file's stem.
    n_all : int
        Crops in the file.
    pids_all, split_all, fov_all : (n_all,) str ndarray
        Protein, split and field of view of every crop of the file.
    crop_index : (n_all,) int ndarray
        Row of every crop in the crop store.
    store : Path or None
        The crop store (checked against the recorded fingerprint), None when not found.
    split_used : str
        The split the atlas shows (``"all"`` for every crop).
    rows : (n,) int ndarray
        Sorted rows of the file in the atlas.
    X : (n, d) float32 ndarray
        Global encodings of the atlas rows.
    health : EncodingHealth
        Their health (degenerate ones only with ``allow_degenerate``).
    X_fit : (m, d) float32 ndarray or None
        Global encodings of the ``fit_split`` crops the UMAP is fitted on.
    local_idx : LazyRows or None
        Local code maps of every crop of the file, read lazily (None without local codes
        or when they were not asked for).
    num_codes : int
        Local codebook size (0 without local codes).
    reference : tuple of (ndarray, ndarray) or None
        Global encodings and proteins of the training crops, the k-NN reference of a
        test-split atlas.
    """

    path: Path
    variant: str
    n_all: int
    pids_all: np.ndarray
    split_all: np.ndarray
    fov_all: np.ndarray
    crop_index: np.ndarray
    store: Path | None
    split_used: str
    rows: np.ndarray
    X: np.ndarray
    health: EncodingHealth
    X_fit: np.ndarray | None = None
    local_idx: LazyRows | None = None
    num_codes: int = 0
    reference: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def pids(self) -> np.ndarray:
        """Proteins of the atlas rows."""
        return self.pids_all[self.rows]


def _fit_encodings(emb: Embeddings, fit_split: str | None) -> np.ndarray | None:
    """Global encodings of the ``fit_split`` crops (None without one)."""
    if fit_split is None:
        return None
    available = sorted(set(emb.split.tolist()))
    if fit_split not in available:
        raise ValueError(
            f"`fit_split` {fit_split!r} not in the embeddings file {emb.path.name}; "
            f"it has {available}"
        )
    fit_rows = np.flatnonzero(emb.split == fit_split)
    return emb.read("global", fit_rows).astype(np.float32, copy=False)


def read_atlas(
    path: Path,
    *,
    split: str | None,
    fit_split: str | None,
    max_points: int | None,
    local: bool,
    allow_degenerate: bool = False,
    crops: str | os.PathLike | None = None,
    reference: bool | None = None,
) -> AtlasInput:
    """Open an embeddings file, pick the atlas rows and read what an analysis needs.

    The one reader of an embeddings file for ``cyto analyze``, ``cyto evaluate`` and
    ``cyto explore``.

    Parameters
    ----------
    path : Path
        The embeddings file (``cyto embed``).
    split : str or None
        The split of the atlas rows; None or ``"all"``: every crop.
    fit_split : str or None
        Also read this split's encodings (to fit a UMAP on).
    max_points : int or None
        Subsample the atlas rows to at most this many (seeded).
    local : bool
        Read the local code maps (lazily) and the local codebook size too.
    allow_degenerate : bool, default False
        Return degenerate encodings instead of raising.
    crops : path-like, optional
        The crop store (default: the one the file records), checked against the
        recorded fingerprint.
    reference : bool, optional
        Read the training crops' encodings, the k-NN reference of a test-split atlas
        (default: ``local``).

    Returns
    -------
    AtlasInput

    Raises
    ------
    DegenerateEncodingError
        (a ValueError) If the atlas rows' global encodings are degenerate, unless
        ``allow_degenerate``.
    ValueError
        If a split is not in the file, or ``crops`` (or the recorded store) is not the
        store the file was embedded from.
    """
    with Embeddings(path) as emb:
        run = emb.attrs.get("run")
        file_wide = {
            "n_all": emb.n,
            "pids_all": emb.protein_ids,
            "split_all": emb.split,
            "fov_all": emb.fov_ids,
            "crop_index": emb.crop_index,
            "store": emb.crop_store(crops),
            "variant": Path(str(run)).name if run else path.stem,
        }
        rows, split_used = _atlas_rows(emb, split, max_points)
        X = emb.read("global", rows).astype(np.float32, copy=False)
        health = emb.check_health(rows, X, allow=allow_degenerate)
        X_fit = _fit_encodings(emb, fit_split)
        local_idx, num_codes = _local_codes(emb) if local else (None, 0)
        ref = None
        if (local if reference is None else reference) and split_used == "test":
            ref_rows = np.flatnonzero(emb.split == "train")
            if ref_rows.size:
                ref = (emb.read("global", ref_rows), file_wide["pids_all"][ref_rows])
    return AtlasInput(
        path=path,
        split_used=split_used,
        rows=rows,
        X=X,
        health=health,
        X_fit=X_fit,
        local_idx=local_idx,
        num_codes=num_codes,
        reference=ref,
        **file_wide,
    )


def _obs(atlas: AtlasInput) -> dict[str, Any]:
    with Embeddings(atlas.path) as emb:  # read here: only a batch or well key needs them
        return emb.obs()


def _column(atlas: AtlasInput, obs: dict[str, Any], key: str) -> np.ndarray:
    if key not in obs:
        raise ValueError(
            f"`batch_key` {key!r} is not a per-crop column of {atlas.path.name}; it has "
            f"{sorted(obs)} (columns come from the manifest: plate, well, Metadata_*)"
        )
    return np.asarray(obs[key])[atlas.rows]


def batch_column(atlas: AtlasInput, key: str) -> np.ndarray:
    """The per-crop column ``key`` of the atlas's embeddings file, at the atlas rows."""
    return _column(atlas, _obs(atlas), key)


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


def well_column(atlas: AtlasInput, key: str = "well") -> np.ndarray:
    """Each atlas crop's well, as ``plate/well`` when the file has a ``plate`` column (one
    well name is used on every plate of a screen)."""
    obs = _obs(atlas)
    wells = _column(atlas, obs, key).astype(str)
    if "plate" in obs and key != "plate":
        plates = np.asarray(obs["plate"])[atlas.rows].astype(str)
        wells = np.char.add(np.char.add(plates, "/"), wells)
    return wells
