"""``cyto evaluate EMBEDDINGS --ground-truth ... -o CARD_DIR``: the evaluation card."""

from __future__ import annotations

import argparse
from typing import Any

from cyto._commands._common import add_allow_degenerate, add_overwrite, add_quiet

__all__ = ["add_parser"]

_EXAMPLES = """\
examples:
  cyto evaluate embeddings.h5 -o card --ground-truth annotations.csv
  cyto evaluate embeddings.h5 -o card --ground-truth annotations.csv --batch-key plate --seeds 5
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        epilog=_EXAMPLES,
        help="evaluation card: Γ, mAP, complex recall, k-NN, vs baselines, batch-corrected",
        description=(
            "Score an embeddings file against a ground truth the way the profiling field "
            "does: clustering score Γ, family and protein mAP with permutation p-values "
            "and FDR, complex recall and k-NN family accuracy, for cyto's encodings and "
            "for raw-pixel and intensity baselines on the same crops, before and after "
            "per-batch correction. Writes evaluation.json and evaluation.md."
        ),
    )
    p.add_argument("embeddings", help="embeddings HDF5 file from `cyto embed`")
    p.add_argument("-o", "--output", required=True, help="card folder (created)")
    p.add_argument(
        "--ground-truth",
        help="annotation CSV (OpenCell format), ground_truth.csv or a complex table",
    )
    p.add_argument("--complexes", help="protein complex CSV (protein_id,complex)")
    p.add_argument("--crops", help="crop store for the baselines (default: the recorded one)")
    p.add_argument(
        "--batch-key",
        help="per-crop column to correct for (plate, well, Metadata_*: from the manifest)",
    )
    p.add_argument(
        "--corrections",
        nargs="+",
        choices=("center_scale", "harmony"),
        default=["center_scale"],
        metavar="NAME",
        help="with --batch-key: corrections scored beside the uncorrected rows: center_scale "
        "(per-batch centring and scaling, default), harmony (needs cyto[harmony])",
    )
    p.add_argument(
        "--split", choices=("test", "all"), default="test", help="crops evaluated (default test)"
    )
    p.add_argument(
        "--control",
        metavar="VALUE",
        help="perturbation screen: the control perturbation (e.g. DMSO; protein_id holds "
        "the perturbation); adds the JUMP metrics on well profiles: phenotypic activity "
        "and consistency (perturbations of one MoA, the ground truth's family)",
    )
    p.add_argument(
        "--well-key",
        default="well",
        metavar="COLUMN",
        help="with --control: the per-crop column naming the well (default: well)",
    )
    p.add_argument(
        "--cellprofiler",
        action="store_true",
        help="also score CellProfiler features of every stain (cp-measure; pip install "
        '"cyto[cellprofiler]") as a baseline',
    )
    p.add_argument("--seeds", type=int, default=1, help="number of UMAP seeds (0..N-1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation nulls")
    add_allow_degenerate(p, "score")
    add_overwrite(p, "card folder")
    add_quiet(p)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    from cyto.workflows import card_markdown, evaluation_card

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    card = evaluation_card(
        args.embeddings,
        args.output,
        ground_truth=args.ground_truth,
        complexes=args.complexes,
        crops=args.crops,
        batch_key=args.batch_key,
        umap_seeds=tuple(range(args.seeds)),
        seed=args.seed,
        split=args.split,
        corrections=tuple(args.corrections),
        allow_degenerate=args.allow_degenerate,
        overwrite=args.overwrite,
        control=args.control,
        well_key=args.well_key,
        cellprofiler=args.cellprofiler,
        echo=(lambda msg: None) if args.quiet else None,
    )
    print(card_markdown(card))
    return 0
