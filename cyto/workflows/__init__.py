"""The main job, end to end: synthetic atlas → crops → training → embeddings → report.

This package is the thin glue that joins the layers (with the CLI, the only code that
imports more than one of them): ``_inputs`` (presets, input checks, ground-truth tables,
JSON records), ``_demo`` (the stages of :func:`run_demo` and its one-page report) and
``_ablate`` (:func:`run_ablation`); each stage is a few calls into the layers.

Every stage writes its output into one folder and a record ``stages/<name>.json``
(seconds, one-line summary, content hashes); a stage whose record exists is skipped, so a
stage can be rerun alone by naming it (its record and output are replaced) and a killed
demo continues where it stopped.

Stages of :func:`run_demo`:

``synth``       :func:`cyto.data.generate_atlas` → ``atlas/`` (TIFF stacks, manifest,
                ground truth)
``preprocess``  :func:`cyto.preprocess.preprocess_dataset` → ``crops.h5``
``train``       :func:`cyto.nn.train` → ``run/``
``embed``       :func:`cyto.nn.embed` → ``embeddings.h5`` (every crop, with its split)
``baselines``   raw-pixel and intensity-statistics baselines on the test crops →
                ``baselines.json``
``analyze``     :func:`cyto.analysis.analyze_embeddings` → ``analysis/``: its
                :class:`~cyto.analysis.Evaluation` (Γ, k-nearest-neighbour family
                accuracy, hidden proteins, baselines) → ``scores.json``, and the page
                ``report.html``.
"""

from cyto.analysis import baseline_scores, knn_family_accuracy, localize_hidden
from cyto.workflows._ablate import (
    ABLATION_VARIANTS,
    BASELINE_VARIANTS,
    AblationResult,
    AblationVariant,
    run_ablation,
)
from cyto.workflows._demo import run_demo, stage_hashes
from cyto.workflows._evaluate import card_markdown, evaluation_card
from cyto.workflows._export import export_anndata as export_anndata  # deprecated
from cyto.workflows._export import ground_truth_obs
from cyto.workflows._inputs import (
    DEMO_PRESETS,
    STAGES,
    DemoPreset,
    DemoResult,
    StageRecord,
)

__all__ = [
    "ABLATION_VARIANTS",
    "BASELINE_VARIANTS",
    "DEMO_PRESETS",
    "STAGES",
    "AblationResult",
    "AblationVariant",
    "DemoPreset",
    "DemoResult",
    "StageRecord",
    "baseline_scores",
    "card_markdown",
    "evaluation_card",
    "ground_truth_obs",
    "knn_family_accuracy",
    "localize_hidden",
    "run_ablation",
    "run_demo",
    "stage_hashes",
]
