"""The explorer's data, from an embeddings file (or an analysis in progress): positions,
colourings, thumbnails, spectra and neighbours, handed to the page writer
(:mod:`._explorer_page`)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cyto.analysis._explorer_page import (
    ExplorerData,
    crop_thumbnails,
    nearest_proteins,
    sample_per_group,
    write_explorer,
)
from cyto.analysis._ground_truth import LEVEL_COLUMNS, GroundTruth, anndata_labels
from cyto.analysis._spectra import (
    Biclusters,
    bicluster,
    cluster_shares,
    code_correlation,
    feature_spectra,
)
from cyto.data import check_output

__all__ = ["CodeClusters", "code_clusters", "explore_embeddings", "explorer_data"]

#: Per-crop metadata offered as colourings when present (and not all alike).
_OBS_COLORINGS = ("plate", "Metadata_Plate", "batch", "Metadata_Batch", "well")


@dataclass(frozen=True)
class CodeClusters:
    """Feature clusters of the local codes, as the analysis found them.

    Made by :func:`code_clusters` (the one place they are computed, for the report and
    the explorer alike), which also fills the optional fields.

    Parameters
    ----------
    order : (k,) int array
        The used codes in display order (biclustering order).
    cluster_of_code : (K,) int array
        Feature cluster of every code of the codebook, -1 for unused codes.
    used : (k,) int array, optional
        The codes that vary between proteins (the ones clustered), ascending.
    correlation : (k, k) float array, optional
        Correlation of the used codes across proteins (rows and columns as ``used``).
    biclusters : Biclusters, optional
        The biclustering of ``correlation`` (its indices count the used codes).
    """

    order: np.ndarray
    cluster_of_code: np.ndarray
    used: np.ndarray | None = field(default=None, repr=False)
    correlation: np.ndarray | None = field(default=None, repr=False)
    biclusters: Biclusters | None = field(default=None, repr=False)


def _crop_clusters(local_idx: np.ndarray, cluster_of_code: np.ndarray) -> np.ndarray:
    """The feature cluster most of a crop's local codes belong to (roman numeral)."""
    from cyto.analysis._figures import roman

    k = int(cluster_of_code.max()) + 1
    lut = np.where(cluster_of_code >= 0, cluster_of_code, k)  # unused codes: no cluster
    share = cluster_shares(local_idx, lut, k + 1)[:, :k]
    names = np.array([roman(c) for c in range(k)], dtype=object)
    return np.where(share.max(axis=1) > 0, names[share.argmax(axis=1)], None)


def _thumbnails(
    store: Any, crop_index: np.ndarray, pids: np.ndarray, max_n: int, size: int, seed: int
) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """Thumbnails of a per-protein sample of the atlas crops, read from the crop store."""
    from cyto.data import CropStore

    path = Path(str(store)) if store else None
    if path is None or not path.is_file() or max_n <= 0:
        return None, None, "no crop store: points have no thumbnails"
    points = sample_per_group(pids, max_n, seed=seed)
    wanted = crop_index[points]
    order = np.argsort(wanted, kind="stable")
    with CropStore(path) as s:
        thumbs = np.empty((points.size, size, size, 3), dtype=np.uint8)
        for a in range(0, points.size, 512):  # sorted, batched reads
            sel = order[a : a + 512]
            thumbs[sel] = crop_thumbnails(s.read(wanted[sel]), s.channels, size=size)
    note = (
        f"Thumbnails: {points.size} of {pids.size} crops (every crop)"
        if points.size == pids.size
        else f"Thumbnails: a sample of {points.size} of {pids.size} crops, spread evenly "
        "over the proteins; the other points show their protein and labels only."
    )
    return thumbs, points, note


def explorer_data(
    xy: np.ndarray,
    protein_ids: np.ndarray,
    encodings: np.ndarray,
    *,
    gt: GroundTruth,
    crop_index: np.ndarray,
    store: str | os.PathLike | None = None,
    obs: Mapping[str, np.ndarray] | None = None,
    local_idx: np.ndarray | None = None,
    spectra: Any = None,
    clusters: CodeClusters | None = None,
    max_thumbnails: int = 5000,
    thumbnail_size: int = 64,
    title: str = "cyto atlas",
    seed: int = 0,
) -> ExplorerData:
    """Assemble what the explorer shows for one atlas.

    Parameters
    ----------
    xy : (n, 2) array
        Atlas coordinates of the crops.
    protein_ids : (n,) array
    encodings : (n, d) array
        Global encodings (for each protein's nearest proteins).
    gt : GroundTruth
        Colourings per level (organelle → "family", complex) and per-protein facts.
    crop_index : (n,) int array
        Row of every crop in the crop store (thumbnails).
    store : path-like, optional
        The crop store; without it points have no thumbnails.
    obs : mapping, optional
        Per-crop metadata (plate, well...): plate/batch/well become colourings.
    local_idx : (n, ...) int array, optional
        Local code maps of the crops (colouring by feature cluster, with ``clusters``).
    spectra : FeatureSpectra, optional
        Per-protein feature spectra (shown on click, in ``clusters.order``).
    clusters : CodeClusters, optional
    max_thumbnails, thumbnail_size : int
        Largest number of thumbnails embedded (sampled evenly over proteins) and their side.
    title : str
    seed : int, default 0

    Returns
    -------
    data : ExplorerData
    """
    pids = np.asarray(protein_ids).astype(str)
    colorings: dict[str, Any] = dict(anndata_labels(gt, pids))
    if clusters is not None and local_idx is not None:
        colorings["feature cluster"] = _crop_clusters(local_idx, clusters.cluster_of_code)
    for key in _OBS_COLORINGS:
        values = (obs or {}).get(key)
        if values is not None and len(set(np.asarray(values).tolist()) - {""}) > 1:
            colorings[key] = np.asarray(values, dtype=object)
    colorings["protein"] = pids.astype(object)
    thumbs, points, note = _thumbnails(
        store, np.asarray(crop_index), pids, max_thumbnails, thumbnail_size, seed
    )
    info: dict[str, dict[str, str]] = {str(p): {} for p in np.unique(pids)}
    for lv in gt.levels:
        name = LEVEL_COLUMNS.get(lv, lv)
        for p in info:
            if p in gt.levels[lv]:
                info[p][name] = gt.levels[lv][p]
            elif p in gt.excluded.get(lv, {}):
                info[p][name] = f"left out ({gt.excluded[lv][p]})"
    data = ExplorerData(
        xy=xy,
        protein_ids=pids,
        colorings=colorings,
        thumbnails=thumbs,
        thumbnail_points=points,
        neighbours=nearest_proteins(encodings, pids, k=10),
        protein_info={p: v for p, v in info.items() if v},
        title=title,
        notes=[note] if note else [],
    )
    if spectra is not None and clusters is not None:
        data.spectra = spectra.spectra[:, clusters.order]
        data.spectrum_proteins = np.asarray(spectra.groups).astype(str)
        data.spectrum_clusters = clusters.cluster_of_code[clusters.order]
    data.notes.append(
        "Nearest proteins: cosine distance between the mean global encodings of their crops."
    )
    return data


def explore_embeddings(
    embeddings: str | os.PathLike,
    out: str | os.PathLike,
    *,
    ground_truth: str | os.PathLike | None = None,
    complexes: str | os.PathLike | None = None,
    crops: str | os.PathLike | None = None,
    split: str | None = None,
    max_points: int | None = None,
    max_thumbnails: int = 5000,
    thumbnail_size: int = 64,
    n_clusters: int = 11,
    min_grade: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    backend: str = "auto",
    umap_sample: int | None = 100_000,
    seed: int = 0,
    verbose: bool = True,
    allow_degenerate: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the interactive atlas of an embeddings file (``cyto explore``).

    Reads the file written by ``cyto embed``, computes a UMAP of the global encodings
    (fitted on a per-protein sample of at most ``umap_sample`` crops, the rest
    transformed into it), the feature spectra and feature clusters when local codes are
    present, each protein's nearest proteins, and thumbnails from the crop store; writes
    one self-contained HTML file (:func:`~cyto.analysis.write_explorer`).

    Parameters
    ----------
    embeddings : path-like
        Embeddings HDF5 file.
    out : path-like
        Output ``.html`` file.
    ground_truth, complexes : path-like, optional
        As for :func:`~cyto.analysis.analyze_embeddings`; colour by family and complex.
    crops : path-like, optional
        Crop store for the thumbnails (default: the store recorded in the file).
    split : str, optional
        Only the crops of this split (default: every crop).
    max_points : int, optional
        Subsample the atlas to this many crops (seeded).
    max_thumbnails, thumbnail_size : int
        Thumbnails embedded (sampled evenly over proteins) and their side in pixels.
    n_clusters : int, default 11
        Top-level feature clusters.
    min_grade : int, default 2
    n_neighbors, min_dist, backend
        UMAP options.
    umap_sample : int or None, default 100000
        Fit the UMAP on at most this many crops; None fits on all.
    seed : int, default 0
    verbose : bool, default True
    allow_degenerate : bool, default False
        Draw the atlas even of degenerate encodings (every crop alike); by default
        that is a :class:`~cyto.analysis.DegenerateEncodingError`.
    overwrite : bool, default False
        Replace an explorer page cyto wrote earlier at ``out`` (never another file).

    Returns
    -------
    path : Path
    """
    from cyto.analysis._evaluate import umap_replicates
    from cyto.analysis._reading import _ground_truth_of, _log, read_atlas

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        _log(verbose, msg, "explore")

    path = Path(embeddings)
    if not path.is_file():
        raise FileNotFoundError(f"`embeddings` file not found: {path}")
    inputs = [("the embeddings file", path), ("the crop store", crops)]
    inputs += [("the ground truth", ground_truth), ("the complex table", complexes)]
    check_output(out, "explorer page", inputs=inputs, overwrite=overwrite)
    main = read_atlas(
        path,
        split=split,
        fit_split=None,
        max_points=max_points,
        local=True,
        allow_degenerate=allow_degenerate,
        crops=crops,
    )
    rows = main.rows
    pids = main.pids
    gt = _ground_truth_of(ground_truth, complexes, min_grade, pids)
    fit = None
    if umap_sample is not None and rows.size > umap_sample:
        fit = main.X[sample_per_group(pids, int(umap_sample), seed=seed)]
    log(
        f"UMAP of {rows.size} crops" + (f" (fit on {fit.shape[0]})" if fit is not None else ""),
    )
    # a sampled fit places the other crops at their nearest fitted crops: umap-learn's
    # transform of 10^6 points takes half an hour on 2 cores (docs/scale.md)
    (xy,), _ = umap_replicates(
        main.X, [seed], fit=fit, n_neighbors=n_neighbors, min_dist=min_dist, backend=backend,
        placement="neighbors",
    )  # fmt: skip
    spectra = clusters = local = None
    if main.local_idx is not None and main.num_codes > 0:
        local = main.local_idx[rows]
        spectra = feature_spectra(local, pids, main.num_codes)
        clusters = code_clusters(spectra, n_clusters)
    log("thumbnails and nearest proteins")
    data = explorer_data(
        xy,
        pids,
        main.X,
        gt=gt,
        crop_index=main.crop_index[rows],
        store=main.store,
        obs=_obs_rows(path, rows),
        local_idx=local,
        spectra=spectra,
        clusters=clusters,
        max_thumbnails=max_thumbnails,
        thumbnail_size=thumbnail_size,
        title=f"cyto atlas — {main.variant}",
        seed=seed,
    )
    out_path = write_explorer(out, data, seed=seed)
    log(f"explorer written to {out_path} ({time.perf_counter() - t0:.1f} s)")
    return out_path


def code_clusters(spectra: Any, n_clusters: int = 11) -> CodeClusters | None:
    """Feature clusters of the codes that vary between proteins (None when < 2 do).

    The codes' correlation across proteins, biclustered into at most ``n_clusters``
    clusters; the one computation behind the report's feature-spectra section and the
    explorer's feature-cluster colouring.

    Parameters
    ----------
    spectra : FeatureSpectra
    n_clusters : int, default 11

    Returns
    -------
    clusters : CodeClusters or None
    """
    used = np.flatnonzero(spectra.spectra.std(axis=0) > 0)
    if used.size < 2:
        return None
    corr = code_correlation(spectra.spectra)[np.ix_(used, used)]
    bic = bicluster(corr, n_clusters=min(n_clusters, int(used.size)))
    cluster_of_code = np.full(spectra.spectra.shape[1], -1)
    cluster_of_code[used] = bic.labels
    return CodeClusters(
        order=used[bic.order],
        cluster_of_code=cluster_of_code,
        used=used,
        correlation=corr,
        biclusters=bic,
    )


def _obs_rows(path: Path, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The per-crop obs columns of an embeddings file, at ``rows``."""
    from cyto.data import Embeddings

    with Embeddings(path) as emb:
        return {k: v[rows] for k, v in emb.obs().items()}
