"""``cyto analyze EMBEDDINGS -o REPORT_DIR``: atlas, clustering scores, spectra, HTML report."""

from __future__ import annotations

import argparse
from typing import Any

from cyto._commands._common import add_allow_degenerate, add_overwrite, add_quiet

__all__ = ["add_parser"]

_EXAMPLES = """\
examples:
  cyto analyze embeddings.h5 -o report --ground-truth annotations.csv --seeds 10
  cyto analyze full.h5 no_vq.h5 -o report --ground-truth ground_truth.csv   # variants side by side
  cyto analyze embeddings.h5 -o report --ground-truth annotations.csv --batch-key plate
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``analyze`` subcommand."""
    p = subparsers.add_parser(
        "analyze",
        epilog=_EXAMPLES,
        help="atlas UMAP, clustering scores, feature spectra and an HTML report",
        description=(
            "Analyse an embeddings file written by `cyto embed`: UMAP atlas coloured by "
            "localization, clustering score against ground truth, feature spectra with "
            "biclustering and localization of unannotated proteins; writes figures, "
            "scores.json/csv and one self-contained report.html."
        ),
    )
    p.add_argument(
        "embeddings",
        nargs="+",
        help="embeddings HDF5 file(s) from `cyto embed`; several files (model variants) "
        "are scored side by side, the first one gives the atlas and spectra",
    )
    p.add_argument("-o", "--output", required=True, help="report folder (created)")
    p.add_argument(
        "--ground-truth",
        help="annotation CSV (OpenCell format), ground_truth.csv or a complex table",
    )
    p.add_argument("--complexes", help="protein complex CSV (protein_id,complex)")
    p.add_argument("--split", default="test", help="crops in the atlas ('all' for every crop)")
    p.add_argument("--fit-split", help="fit the UMAP on this split and transform --split")
    p.add_argument("--seeds", type=int, default=1, help="number of UMAP seeds (0..N-1)")
    p.add_argument("--n-neighbors", type=int, default=15, help="UMAP neighbourhood size")
    p.add_argument("--min-dist", type=float, default=0.1, help="UMAP minimum distance")
    p.add_argument(
        "--backend",
        choices=("auto", "umap", "cuml"),
        default="auto",
        help="UMAP on the CPU (umap-learn) or the GPU (cuML); auto: cuML when present",
    )
    p.add_argument("--max-points", type=int, help="subsample the atlas to this many crops")
    p.add_argument("--clusters", type=int, default=11, help="top-level feature clusters")
    p.add_argument(
        "--min-grade",
        type=int,
        default=2,
        help="OpenCell annotation tables grade each localization 1 (low), 2 or 3 (high "
        "confidence): grades below this are ignored",
    )
    p.add_argument("--highlight", nargs="+", metavar="PROTEIN", help="proteins to highlight")
    p.add_argument("--crops", help="crop store for representative images")
    p.add_argument(
        "--batch-key",
        help="per-crop column (plate, well, Metadata_*): also score after per-batch correction",
    )
    p.add_argument(
        "--control",
        metavar="VALUE",
        help="perturbation screen: the control perturbation (e.g. DMSO); adds phenotypic "
        "activity and consistency on well profiles (a 'well' column) to the report",
    )
    p.add_argument(
        "--ablation",
        metavar="FILE",
        help="feature-ablation maps to show (Fig. 5): a NumPy .npz file holding "
        "'differences' (n, H, W) of reconstructions with one feature cluster zeroed, and "
        "optionally 'images' and 'titles' (as cyto.nn.CodeAblation writes)",
    )
    add_allow_degenerate(p, "analyse")
    add_overwrite(p, "report folder")
    add_quiet(p)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    """Execute ``cyto analyze`` (degenerate encodings: exit code 3, see ``cyto.cli``)."""
    from cyto.analysis import analyze_embeddings

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    report = analyze_embeddings(
        args.embeddings,
        args.output,
        ground_truth=args.ground_truth,
        complexes=args.complexes,
        split=None if args.split == "all" else args.split,
        fit_split=args.fit_split,
        umap_seeds=tuple(range(args.seeds)),
        n_neighbors=args.n_neighbors,
        min_dist=args.min_dist,
        backend=args.backend,
        max_points=args.max_points,
        n_clusters=args.clusters,
        min_grade=args.min_grade,
        highlight=args.highlight,
        crops=args.crops,
        ablation=args.ablation,
        verbose=not args.quiet,
        allow_degenerate=args.allow_degenerate,
        batch_key=args.batch_key,
        control=args.control,
        overwrite=args.overwrite,
    )
    if report.scores is not None:
        print(report.scores.to_markdown())
    print(f"report: {report.html}")
    return 0
