"""``cyto demo [-o DIR] [--data ...]``: the whole method, with an HTML report.

On the synthetic atlas by default; on the user's own images with ``--data``.
"""

from __future__ import annotations

import argparse
from typing import Any

from cyto._commands._common import add_preset, add_quiet
from cyto._commands._own_data import add_own_data_arguments, own_data_kwargs
from cyto.workflows import STAGES

__all__ = ["add_parser"]

_EXAMPLES = """\
examples:
  cyto demo -o cyto-demo                     # the synthetic atlas, small preset (CPU)
  cyto demo -o smoke --preset tiny           # about a minute
  cyto demo --data manifest.csv --ground-truth annotations.csv -o my-screen
  cyto demo -o cyto-demo --stages train      # retrain, then embed and analyse again
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        epilog=_EXAMPLES,
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
    add_preset(p, "small", "; the atlas grows with the preset")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="seed of the atlas, split and training")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="compute threads, fixed for the run (default 0: the CPUs this process may use); "
        "runs with one seed and one thread count give identical stage hashes (unless the "
        "training budget shortened the epochs: see run/summary.json)",
    )
    p.add_argument(
        "--train-budget",
        type=float,
        metavar="SECONDS",
        help="wall-time budget of training: a slower machine trains shorter epochs "
        "(default: the preset's, 300 for small; 0: full epochs whatever they take)",
    )
    p.add_argument(
        "--stages", nargs="+", choices=STAGES, metavar="STAGE", help=f"rerun: {', '.join(STAGES)}"
    )
    add_own_data_arguments(p, needs_truth=False)
    p.add_argument(
        "--batch-key",
        metavar="COLUMN",
        help="with --data: per-crop column (plate, well...) to score the encodings before "
        "and after per-batch correction",
    )
    p.add_argument(
        "--kind",
        choices=["atlas", "cellpainting"],
        default="atlas",
        help="atlas (default): the synthetic protein atlas; cellpainting: a synthetic Cell "
        "Painting screen of perturbations (5 stains, MoAs, DMSO wells), scored by "
        "phenotypic activity and consistency",
    )
    add_quiet(p)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    from cyto.workflows import run_demo

    result = run_demo(
        args.output,
        **own_data_kwargs(args),
        preset=args.preset,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        train_budget_s=args.train_budget,
        batch_key=args.batch_key,
        kind=args.kind,
        stages=args.stages,
        progress=not args.quiet,
    )
    print(result.report)
    return 0
