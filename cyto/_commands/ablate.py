"""``cyto ablate``: retrain the paper's model variants and tabulate their clustering scores."""

from __future__ import annotations

import argparse
from typing import Any

from cyto._commands._common import add_preset, add_quiet
from cyto._commands._own_data import add_own_data_arguments, own_data_kwargs
from cyto.workflows._ablate import ABLATION_VARIANTS, ALL_VARIANTS

__all__ = ["add_parser"]

_EXAMPLES = """\
examples:
  cyto ablate -o ablation                    # every variant, 3 seeds x 3 UMAPs (small preset)
  cyto ablate -o ablation --seeds 5 --umap-seeds 10 --preset paper   # the paper's protocol
  cyto ablate -o ablation --with-baselines   # + Lu et al. 2019, one row per layer
  cyto ablate -o abl --variants "full model" "no decoder" --data crops.h5 --ground-truth gt.csv
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``ablate`` subcommand."""
    p = subparsers.add_parser(
        "ablate",
        epilog=_EXAMPLES,
        help="retrain the paper's ablation variants and write the Supp. Table 1-style table",
        description=(
            "Train the full model and its ablation variants (without the nuclear channel, "
            "nucleus without distance transform, without vector quantization, without the "
            "identification task, without split quantization, without decoder) on the "
            "synthetic atlas, or on your images with --data and a ground truth, several "
            "seeds each; score each test split over several UMAP seeds; write "
            "ablation.md/csv/json and the Fig. 6-style chart ablation.png. Finished models "
            "and scores are kept, so an interrupted study resumes."
        ),
    )
    p.add_argument("-o", "--output", default="cyto-ablate", help="output folder")
    add_preset(p, "small", "; every variant and seed trains with it")
    p.add_argument(
        "--variants",
        nargs="+",
        metavar="NAME",
        choices=list(ALL_VARIANTS),
        help="subset of: " + "; ".join(ABLATION_VARIANTS) + " (default: all)",
    )
    p.add_argument(
        "--with-baselines",
        action="store_true",
        help="also train Lu et al. 2019's paired cell inpainting on the same crops, "
        "split, preset and seeds, and add one row per feature layer (conv3-5; the "
        "paper's Supp. Table 2)",
    )
    p.add_argument("--seeds", type=int, default=3, help="trained models per variant")
    p.add_argument("--umap-seeds", type=int, default=3, help="UMAPs per trained model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--umap",
        choices=("aligned", "independent"),
        default="aligned",
        help="one AlignedUMAP of all variants per seed (the paper's; default) or one UMAP "
        "per model",
    )
    add_own_data_arguments(p, needs_truth=True)
    add_quiet(p)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    from cyto.workflows import run_ablation

    if args.seeds < 1 or args.umap_seeds < 1:
        raise ValueError(
            f"--seeds and --umap-seeds must be >= 1, got {args.seeds}, {args.umap_seeds}"
        )
    result = run_ablation(
        args.output,
        **own_data_kwargs(args),
        preset=args.preset,
        variants=args.variants,
        seeds=tuple(range(args.seeds)),
        umap_seeds=tuple(range(args.umap_seeds)),
        umap=args.umap,
        with_baselines=args.with_baselines,
        device=args.device,
        progress=not args.quiet,
    )
    print(result.files["ablation.md"])
    return 0
