"""``cyto explore EMBEDDINGS -o atlas.html``: the interactive atlas as one HTML file."""

from __future__ import annotations

import argparse
from typing import Any

from cyto._commands._common import add_allow_degenerate, add_overwrite, add_quiet

__all__ = ["add_parser"]

_EXAMPLE = """example:
  cyto explore embeddings.h5 -o atlas.html --ground-truth annotations.csv
  (then open atlas.html in a browser; it needs no network and no server)"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``explore`` subcommand."""
    p = subparsers.add_parser(
        "explore",
        help="interactive atlas: one self-contained HTML file with crops on hover",
        description=(
            "Write the localization atlas of an embeddings file as one self-contained "
            "HTML page: every crop as a point of a UMAP (WebGL; pan and zoom), coloured "
            "by family, complex, feature cluster or plate; the crop under the cursor; a "
            "protein found by name; on click its feature spectrum, nearest proteins and "
            "crops. `cyto analyze` writes the same page beside its report."
        ),
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("embeddings", help="embeddings HDF5 file from `cyto embed`")
    p.add_argument("-o", "--output", required=True, help="output .html file")
    p.add_argument(
        "--ground-truth",
        help="annotation CSV (OpenCell format), ground_truth.csv or a complex table",
    )
    p.add_argument("--complexes", help="protein complex CSV (protein_id,complex)")
    p.add_argument("--crops", help="crop store for the thumbnails (default: the recorded one)")
    p.add_argument("--split", default="all", help="crops shown (default: all)")
    p.add_argument(
        "--max-thumbnails",
        type=int,
        default=5000,
        help="crop thumbnails embedded, spread over the proteins (default: 5000)",
    )
    p.add_argument(
        "--umap-sample",
        type=int,
        default=100_000,
        help="fit the UMAP on at most this many crops, transform the rest (default: 100000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of UMAP and sampling (default: 0)")
    add_allow_degenerate(p, "draw the atlas of")
    add_overwrite(p, "explorer page")
    add_quiet(p)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    from cyto.analysis import explore_embeddings

    for name in ("max_thumbnails", "umap_sample"):
        if getattr(args, name) < 0:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be >= 0, got {getattr(args, name)}")
    path = explore_embeddings(
        args.embeddings,
        args.output,
        ground_truth=args.ground_truth,
        complexes=args.complexes,
        crops=args.crops,
        split=None if args.split == "all" else args.split,
        max_thumbnails=args.max_thumbnails,
        umap_sample=args.umap_sample or None,
        seed=args.seed,
        verbose=not args.quiet,
        allow_degenerate=args.allow_degenerate,
        overwrite=args.overwrite,
    )
    print(f"explorer: {path}")
    return 0
