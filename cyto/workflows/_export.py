"""``cyto embed EMB.h5 --h5ad``: the ground truth's labels for an AnnData export."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from cyto.analysis import GroundTruth, anndata_labels
from cyto.data import Embeddings, export_h5ad

__all__ = ["ground_truth_obs"]


def ground_truth_obs(
    embeddings: str | os.PathLike,
    *,
    ground_truth: str | os.PathLike | None = None,
    complexes: str | os.PathLike | None = None,
    min_grade: int = 2,
) -> dict[str, list]:
    """``family`` and ``complex`` of every crop of an embeddings file, for the ``obs`` of
    :func:`cyto.data.export_h5ad` (None where a protein is not annotated).

    With them, ``sc.pl.umap(adata, color="family")`` works after
    ``sc.pp.neighbors(adata); sc.tl.umap(adata)``.

    Parameters
    ----------
    embeddings : path-like
        File written by ``cyto embed``.
    ground_truth, complexes : path-like, optional
        As for :func:`cyto.analysis.GroundTruth.read` (neither: no columns).
    min_grade : int, default 2

    Returns
    -------
    obs : dict of str to list
    """
    gt = GroundTruth.read(ground_truth, complexes, min_grade=min_grade)
    with Embeddings(embeddings) as emb:
        pids = np.asarray(emb.protein_ids)
    return anndata_labels(gt, pids)


def export_anndata(
    embeddings: str | os.PathLike,
    out: str | os.PathLike,
    *,
    ground_truth: str | os.PathLike | None = None,
    complexes: str | os.PathLike | None = None,
    min_grade: int = 2,
    overwrite: bool = False,
) -> Path:
    """Deprecated: ``cyto.data.export_h5ad(embeddings, out, obs=ground_truth_obs(...))``."""
    warnings.warn(
        "cyto.workflows.export_anndata is replaced by cyto.data.export_h5ad with "
        "obs=cyto.workflows.ground_truth_obs(...)",
        DeprecationWarning,
        stacklevel=2,
    )
    obs = ground_truth_obs(
        embeddings, ground_truth=ground_truth, complexes=complexes, min_grade=min_grade
    )
    return export_h5ad(embeddings, out, obs=obs, overwrite=overwrite)
