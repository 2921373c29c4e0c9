"""Arrays in, arrays out: clustering score, UMAP atlas, feature spectra, figures (no torch).

Importing this package is cheap: umap-learn, cuML and matplotlib are imported inside the
functions that need them.
"""

from cyto._health import THRESHOLDS, DegenerateEncodingError, EncodingHealth, HealthAccumulator
from cyto.analysis._baselines import baseline_features, handcrafted_features
from cyto.analysis._evaluate import (
    Evaluation,
    baseline_scores,
    choose_hidden,
    evaluate,
    gamma_over_umaps,
    knn_both_metrics,
    knn_family_accuracy,
    localize_hidden,
    retrieval_scores,
    umap_replicates,
)
from cyto.analysis._figures import (
    plot_atlas,
    plot_correlation_heatmap,
    plot_crop_grid,
    plot_difference_maps,
    plot_family_spectra,
    plot_localization,
    plot_protein_highlights,
    plot_scores,
    save_figure,
)
from cyto.analysis._ground_truth import (
    GroundTruth,
    labels_for,
    load_annotations,
    load_complexes,
    load_ground_truth,
)
from cyto.analysis._profiles import (
    aggregate,
    center_scale_by_batch,
    drop_constant,
    harmony,
    sphere,
)
from cyto.analysis._report import (
    AnalysisReport,
    analyze_embeddings,
    load_sections,
    write_report,
)
from cyto.analysis._retrieval import (
    RetrievalResult,
    average_precision,
    benjamini_hochberg,
    complex_recall,
    mean_average_precision,
)
from cyto.analysis._score import (
    ScoreTable,
    class_medians,
    clustering_score,
    clustering_score_table,
    mean_sem,
    merge_score_tables,
)
from cyto.analysis._spectra import (
    Biclusters,
    FeatureSpectra,
    bicluster,
    code_correlation,
    code_histograms,
    feature_spectra,
    localize,
    mean_by_label,
    representative_images,
)
from cyto.analysis._umap import AtlasUMAP, aligned_umap, umap_embed

__all__ = [
    "THRESHOLDS",
    "AnalysisReport",
    "AtlasUMAP",
    "Biclusters",
    "DegenerateEncodingError",
    "EncodingHealth",
    "Evaluation",
    "FeatureSpectra",
    "GroundTruth",
    "HealthAccumulator",
    "RetrievalResult",
    "ScoreTable",
    "aggregate",
    "aligned_umap",
    "analyze_embeddings",
    "average_precision",
    "baseline_features",
    "baseline_scores",
    "benjamini_hochberg",
    "bicluster",
    "center_scale_by_batch",
    "choose_hidden",
    "class_medians",
    "clustering_score",
    "clustering_score_table",
    "code_correlation",
    "code_histograms",
    "complex_recall",
    "drop_constant",
    "evaluate",
    "feature_spectra",
    "gamma_over_umaps",
    "handcrafted_features",
    "harmony",
    "knn_both_metrics",
    "knn_family_accuracy",
    "labels_for",
    "load_annotations",
    "load_complexes",
    "load_ground_truth",
    "load_sections",
    "localize",
    "localize_hidden",
    "mean_average_precision",
    "mean_by_label",
    "mean_sem",
    "merge_score_tables",
    "plot_atlas",
    "plot_correlation_heatmap",
    "plot_crop_grid",
    "plot_difference_maps",
    "plot_family_spectra",
    "plot_localization",
    "plot_protein_highlights",
    "plot_scores",
    "representative_images",
    "retrieval_scores",
    "save_figure",
    "sphere",
    "umap_embed",
    "umap_replicates",
    "write_report",
]
