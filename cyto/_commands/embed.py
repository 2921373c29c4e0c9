"""``cyto embed``: write localization encodings of a crop store with a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from cyto._commands._common import add_allow_degenerate, add_quiet, add_workers

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``cyto embed``."""
    p = subparsers.add_parser(
        "embed",
        help="encode crops with a trained model",
        description=(
            "Stream the quantized global (and optionally local) encodings, VQ index maps "
            "and per-crop code histograms of a crop store to an HDF5 file. Given an "
            "embeddings file instead of RUN CROPS, only export it to AnnData (--h5ad), "
            "without re-embedding."
        ),
        epilog=(
            "examples:\n"
            "  cyto embed runs/a crops.h5 -o embeddings.h5 --split test --h5ad\n"
            "  cyto embed embeddings.h5 --h5ad atlas.h5ad --ground-truth annotations.csv"
        ),
    )
    p.add_argument(
        "run", type=Path, help="run directory (from `cyto train`), or an embeddings file"
    )
    p.add_argument("crops", type=Path, nargs="?", help="HDF5 crop store")
    p.add_argument("-o", "--output", type=Path, metavar="OUT.h5", help="embeddings file")
    p.add_argument("--split", choices=["train", "val", "test"], help="only this split")
    p.add_argument("--checkpoint", default="best", help="best (default), last, or a file")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="crops per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="torch compute threads (default 0: the CPUs this process may use)",
    )
    add_workers(p, "DataLoader worker processes (-1: 0 on CPU, more on GPU)", -1, "--num-workers")
    p.add_argument("--logits", action="store_true", help="also write classifier logits")
    p.add_argument("--local", action="store_true", help="also write quantized local encodings")
    p.add_argument(
        "--global-only",
        action="store_true",
        help="only the global encodings, indices and histograms (skips the local, "
        "25x25 quantization and its codes: faster)",
    )
    p.add_argument(
        "--h5ad",
        nargs="?",
        const=True,
        default=False,
        metavar="FILE",
        help="also export AnnData (default: OUT.h5ad): X = global encodings, obs = "
        "protein, field, plate/well/field, crop centre (+ family/complex with "
        "--ground-truth), uns = provenance",
    )
    p.add_argument(
        "--ground-truth",
        help="with --h5ad: annotation CSV or ground_truth.csv, adds obs['family'] (and 'complex')",
    )
    p.add_argument("--complexes", help="with --h5ad: protein complex CSV, adds obs['complex']")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an embeddings file (and .h5ad) that cyto wrote earlier at OUT.h5 "
        "(never an input, a crop store, a checkpoint or a file cyto did not write)",
    )
    add_allow_degenerate(p, "write")
    p.add_argument(
        "--encoder",
        metavar="MODULE:FACTORY",
        help="the plug-in encoder the run was trained with: imported because you name it "
        "(a checkpoint alone never makes cyto import code)",
    )
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Execute ``cyto embed`` (degenerate encodings: exit code 3, see ``cyto.cli``)."""
    from cyto.data import Embeddings

    if Embeddings.is_embeddings_file(args.run):
        return _export_only(args)
    if args.crops is None or args.output is None:
        raise ValueError(
            "give RUN CROPS -o OUT.h5 to embed a crop store, or an embeddings file with "
            f"--h5ad to export it; got run={args.run} crops={args.crops} -o {args.output}"
        )
    from cyto.nn import embed, resolve_encoder

    if args.encoder:
        resolve_encoder(args.encoder)  # the user named it: import and register it

    labels = bool(args.h5ad and (args.ground_truth or args.complexes))
    if labels:  # exported below with the labels: checked here, before any work
        _check_h5ad(args.output, args, "the embeddings file this command writes (-o)")
    out = embed(
        args.run,
        args.crops,
        args.output,
        split=args.split,
        batch_size=args.batch_size,
        checkpoint=args.checkpoint,
        device=args.device,
        logits=args.logits,
        local=args.local,
        global_only=args.global_only,
        num_workers=args.workers,
        h5ad=False if labels else args.h5ad,
        progress=not args.quiet,
        allow_degenerate=args.allow_degenerate,
        overwrite=args.overwrite,
        threads=args.threads,
    )
    print(f"embeddings written to {out}")
    if labels:
        _export(Path(out), args)
    elif args.h5ad:
        print(f"AnnData written to {_h5ad_target(Path(out), args)}")
    return 0


def _h5ad_target(embeddings: Path, args: argparse.Namespace) -> Path:
    """The ``.h5ad`` file of ``--h5ad [FILE]`` (default: beside the embeddings file)."""
    return embeddings.with_suffix(".h5ad") if args.h5ad is True else Path(args.h5ad)


def _check_h5ad(embeddings: Path, args: argparse.Namespace, role: str) -> None:
    """Refuse, before any work, an ``--h5ad`` target that is one of the command's inputs
    (``embeddings`` in its ``role``, the store, the run, the tables) or that would
    replace a file it must not (:func:`cyto.data.check_output`)."""
    from cyto.data import check_output

    inputs = [(role, embeddings), args.crops, args.run, args.ground_truth, args.complexes]
    target = _h5ad_target(embeddings, args)
    check_output(target, "AnnData file", inputs=inputs, overwrite=args.overwrite, flag="--h5ad")


def _export_only(args: argparse.Namespace) -> int:
    """``cyto embed EMB.h5 --h5ad [FILE]``: the AnnData export of an embeddings file."""
    if not args.h5ad:
        raise ValueError(
            f"{args.run} is an embeddings file already: add --h5ad [FILE] to export it "
            "to AnnData, or give a run directory and a crop store to embed"
        )
    if args.crops is not None:
        raise ValueError(f"an embeddings file ({args.run}) takes no crop store; got {args.crops}")
    _check_h5ad(args.run, args, "the embeddings file being exported")
    _export(args.run, args)
    return 0


def _export(embeddings: Path, args: argparse.Namespace) -> None:
    from cyto.data import export_h5ad
    from cyto.workflows import ground_truth_obs

    obs = ground_truth_obs(embeddings, ground_truth=args.ground_truth, complexes=args.complexes)
    path = export_h5ad(
        embeddings, _h5ad_target(embeddings, args), obs=obs, overwrite=args.overwrite
    )
    print(f"AnnData written to {path}")
