"""``cyto embed EMB.h5 --h5ad``: AnnData from an embeddings file, with ground-truth labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cyto.analysis import GroundTruth, anndata_labels
from cyto.data import Embeddings, export_h5ad

__all__ = ["export_anndata"]


def export_anndata(
    embeddings: str | os.PathLike,
    out: str | os.PathLike,
    *,
    ground_truth: str | os.PathLike | None = None,
    complexes: str | os.PathLike | None = None,
    min_grade: int = 2,
    overwrite: bool = False,
) -> Path:
    """Export an embeddings file to ``.h5ad`` without re-embedding.

    ``X`` = global encodings; ``obs`` = what :func:`cyto.data.export_h5ad` writes plus
    ``family`` and ``complex`` from the ground truth (missing where a protein is not
    annotated), so ``sc.pl.umap(adata, color="family")`` works after
    ``sc.pp.neighbors(adata); sc.tl.umap(adata)``.

    Parameters
    ----------
    embeddings : path-like
        File written by ``cyto embed``.
    out : path-like
        Output ``.h5ad``.
    ground_truth, complexes : path-like, optional
        As for :func:`cyto.analysis.GroundTruth.read`.
    min_grade : int, default 2
    overwrite : bool, default False
        Replace an ``.h5ad`` file cyto exported earlier at ``out`` (never another file).

    Returns
    -------
    path : Path
    """
    gt = GroundTruth.read(ground_truth, complexes, min_grade=min_grade)
    with Embeddings(embeddings) as emb:
        pids = np.asarray(emb.protein_ids)
    return export_h5ad(embeddings, out, obs=anndata_labels(gt, pids), overwrite=overwrite)
