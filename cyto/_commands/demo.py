"""``cyto demo [-o DIR] [--data ...]``: the whole method, with an HTML report.

On the synthetic atlas by default; on the user's own images with ``--data``.
"""

from __future__ import annotations

import argparse
from typing import Any

from cyto._commands._own_data import add_own_data_arguments, own_data_kwargs
from cyto.pipeline import DEMO_PRESETS, STAGES

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole method, on the synthetic atlas or your data (→ report)",
        description=(
            "Generate the synthetic cell atlas (or take your images with --data), "
            "preprocess it into a crop store, train the model, embed every crop, score "
            "simple baselines, analyse the test split and write report.html. Each stage "
            "keeps its output in the folder; finished stages are skipped when the command "
            "is run again, and --stages reruns the named stages (and those after them)."
        ),
    )
    p.add_argument("-o", "--output", default="cyto-demo", help="demo folder (default: cyto-demo)")
    p.add_argument(
        "--preset",
        default="small",
        choices=sorted(DEMO_PRESETS),
        help="tiny: smoke test (~1 min); small: default, <= 10 min on 2 CPU cores; "
        "gpu: the paper's model on a larger atlas",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="seed of the atlas, split and training")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="compute threads, fixed for the run (default 0: the CPUs this process may use); "
        "runs with one seed and one thread count give identical stage hashes",
    )
    p.add_argument(
        "--stages", nargs="+", choices=STAGES, metavar="STAGE", help=f"rerun: {', '.join(STAGES)}"
    )
    add_own_data_arguments(p, needs_truth=False)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    from cyto.pipeline import run_demo

    result = run_demo(
        args.output,
        **own_data_kwargs(args),
        preset=args.preset,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        stages=args.stages,
        progress=not args.quiet,
    )
    print(result.report)
    return 0
