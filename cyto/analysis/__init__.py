"""Arrays in, arrays out: clustering score, UMAP atlas, feature spectra, figures (no torch).

Importing this package is cheap: umap-learn, cuML and matplotlib are imported inside the
functions that need them.
"""

from cyto.analysis._score import ScoreTable, class_medians, clustering_score, clustering_score_table
from cyto.analysis._umap import AtlasUMAP, aligned_umap, umap_embed

__all__ = [
    "AtlasUMAP",
    "ScoreTable",
    "aligned_umap",
    "class_medians",
    "clustering_score",
    "clustering_score_table",
    "umap_embed",
]
