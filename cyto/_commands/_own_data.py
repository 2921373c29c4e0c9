"""The ``--data`` options shared by ``cyto demo`` and ``cyto ablate``."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_own_data_arguments", "own_data_kwargs"]


def add_own_data_arguments(p: argparse.ArgumentParser, *, needs_truth: bool) -> None:
    """Add ``--data``, the ground-truth tables and the preprocessing options to ``p``."""
    own = p.add_argument_group("your own data (instead of the synthetic atlas)")
    own.add_argument(
        "--data",
        help="manifest CSV, folder of per-protein folders, or a crop store from cyto preprocess",
    )
    own.add_argument(
        "--ground-truth",
        help="organelle labels: OpenCell annotation CSV or protein_id,family[,complex] CSV"
        + (" (this or --complexes is required with --data)" if needs_truth else ""),
    )
    own.add_argument("--complexes", help="protein complex CSV (protein_id,complex)")
    own.add_argument("--crop-size", type=int, help="crop side in px (default 100)")
    own.add_argument("--downsample", type=int, help="block-mean factor (default 2)")
    own.add_argument(
        "--nucleus-diameter", type=float, help="nucleus diameter in input px (default: estimated)"
    )
    own.add_argument(
        "--masks", metavar="DIR", help="nucleus label images made elsewhere (see cyto preprocess)"
    )
    own.add_argument(
        "--segmenter", metavar="NAME", help="nucleus segmenter, e.g. 'package.module:function'"
    )


def own_data_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of run_demo / run_ablation from the parsed options."""
    options = {
        key: value
        for key, value in (
            ("crop_size", args.crop_size),
            ("downsample_factor", args.downsample),
            ("nucleus_diameter", args.nucleus_diameter),
            ("masks", args.masks),
            ("segmenter", args.segmenter),
        )
        if value is not None
    }
    return {
        "data": args.data,
        "ground_truth": args.ground_truth,
        "complexes": args.complexes,
        "preprocess_options": options or None,
    }
