"""The public names of :mod:`cyto.workflows` (``cyto demo`` and ``cyto ablate``), under
the module name they have always had; the CLI calls the workflows through it."""

from cyto.workflows import (
    ABLATION_VARIANTS,
    DEMO_PRESETS,
    STAGES,
    AblationResult,
    AblationVariant,
    DemoPreset,
    DemoResult,
    StageRecord,
    baseline_scores,
    knn_family_accuracy,
    localize_hidden,
    run_ablation,
    run_demo,
    stage_hashes,
)
from cyto.workflows._inputs import _check_preprocessed  # noqa: F401  (tests)

__all__ = [
    "ABLATION_VARIANTS",
    "DEMO_PRESETS",
    "STAGES",
    "AblationResult",
    "AblationVariant",
    "DemoPreset",
    "DemoResult",
    "StageRecord",
    "baseline_scores",
    "knn_family_accuracy",
    "localize_hidden",
    "run_ablation",
    "run_demo",
    "stage_hashes",
]
