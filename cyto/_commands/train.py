"""``cyto train``: train a cytoself model on a crop store (resumable, DDP via torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cyto._commands._common import add_preset, add_quiet, add_workers

__all__ = ["add_parser"]

_EPILOG = """\
examples:
  cyto train crops.h5 -o runs/a --preset small
  cyto train crops.h5 -o runs/m --encoder mypkg.encoders:my_pair   # your own encoder
  cyto train crops.h5 -o runs/a --config run.toml --max-epochs 50
  cyto train crops.h5 -o runs/p --codebook paper --monitor loss  # the published recipe
  cyto train crops.h5 -o runs/lu --model paired_inpainting --preset small  # Lu et al. 2019
  cyto train --resume runs/a                     # continue a killed run
  torchrun --nproc_per_node 4 -m cyto train crops.h5 -o runs/a   # 4 GPUs (DDP)

The TOML file has a [train] table (TrainConfig fields) and a [model] table
(CytoselfConfig fields overriding the preset, or preset = "small").
Flags override the file.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``cyto train``."""
    p = subparsers.add_parser(
        "train",
        help="train a model on a crop store",
        description="Train a model on an HDF5 crop store: cytoself (default), or Lu et al. "
        "2019's paired cell inpainting (--model paired_inpainting).",
        epilog=_EPILOG,
    )
    p.add_argument("crops", nargs="?", type=Path, help="HDF5 crop store (from `cyto preprocess`)")
    p.add_argument("-o", "--output", type=Path, metavar="RUN", help="run directory")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN",
        help="continue the run in RUN (or -o RUN) from its last checkpoint",
    )
    _model_options(p)
    p.add_argument(
        "--monitor",
        metavar="METRIC",
        help="validation metric of the best checkpoint and early stopping: task_loss "
        "(default: reconstruction + identification), loss (the paper), accuracy_global, ...",
    )
    p.add_argument(
        "--target",
        metavar="COLUMN",
        help="the per-crop label to identify: protein_id (default), or a label column of "
        "the store (perturbation, compound, gene, well, Metadata_*)",
    )
    p.add_argument("--max-epochs", type=int, metavar="N", help="most epochs (default: 100)")
    p.add_argument("--batch-size", type=int, metavar="N", help="crops per step (default: 32)")
    p.add_argument("--lr", type=float, metavar="LR", help="initial learning rate (default: 0.0004)")
    p.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="finish within this wall time: epochs shorten when full ones would not fit "
        "(default 0: no budget; one process only)",
    )
    p.add_argument(
        "--lr-schedule",
        choices=("plateau", "cosine"),
        help="plateau: lower the rate when validation stops improving (default); cosine: "
        "decay it every step to the floor at --max-epochs (for a fixed budget)",
    )
    _machine_options(p)
    p.set_defaults(func=run)
    return p


def _model_options(p: argparse.ArgumentParser) -> None:
    """Which model: configuration file, preset, model, codebook and encoder."""
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration")
    add_preset(p, None, " (default: paper, or the --config file's)")
    p.add_argument(
        "--codebook",
        choices=["ema", "paper"],
        help="how the codebooks learn: ema (default; moving averages, k-means start, "
        "dead-code restarts) or paper (the published loss-trained codes)",
    )
    p.add_argument(
        "--model",
        type=_registered_model,
        metavar="NAME",
        help="cytoself (default), paired_inpainting: Lu et al. 2019's paired cell "
        "inpainting, the paper's comparison (needs a nuclear channel), or a model "
        "registered with cyto.nn.register_model",
    )
    p.add_argument(
        "--encoder",
        metavar="NAME",
        help="encoder pair: efficientnet_b0 (default), resnet, or your own factory as "
        "package.module:factory",
    )


def _registered_model(name: str) -> str:
    """``name`` when a model of that name is registered (read when the flag is given:
    building the parser imports no torch)."""
    from cyto.nn import list_models

    if name not in list_models():
        raise argparse.ArgumentTypeError(
            f"unknown model {name!r} (choose from {', '.join(list_models())})"
        )
    return name


def _machine_options(p: argparse.ArgumentParser) -> None:
    """Where and how it runs: device, workers, threads, precision, logging, progress."""
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    add_workers(
        p,
        "DataLoader worker processes per rank (default -1: 0 on CPU, more on GPU)",
        None,
        "--num-workers",
    )
    p.add_argument("--seed", type=int, help="seed of the split and training (default: 0)")
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch compute threads (default 0: the CPUs this process may use)",
    )
    p.add_argument(
        "--amp", choices=["bf16", "fp16", "off"], help="mixed precision on CUDA (default: bf16)"
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory format on CUDA (default: on)",
    )
    p.add_argument(
        "--log-every", type=int, metavar="STEPS", help="steps between metric records (default: 10)"
    )
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        metavar="N",
        help="at most N steps per epoch, each epoch a fresh random subset (default 0: all)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="STEPS",
        help="also checkpoint every STEPS steps (default 0: at the end of each epoch only)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="compile the training step with torch.compile (worth it on a GPU)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also log to TensorBoard (RUN/tensorboard; needs tensorboard)",
    )
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    """Execute ``cyto train``."""

    from cyto.data import RunDir
    from cyto.nn import TrainConfig, read_config_file, resume_config, train

    resume = args.resume is not False
    run_dir = args.output
    if isinstance(args.resume, str):
        if run_dir is not None and Path(args.resume) != run_dir:
            raise ValueError(f"--resume {args.resume} and -o {run_dir} name different runs")
        run_dir = Path(args.resume)
    if run_dir is None:
        raise ValueError("the run directory is required: -o RUN (or --resume RUN)")
    overrides = {
        "preset": args.preset,
        "target": args.target,
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "time_budget_s": args.time_budget,
        "monitor": args.monitor,
        "device": args.device,
        "num_workers": args.workers,
        "seed": args.seed,
        "threads": args.threads,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "log_every": args.log_every,
        "checkpoint_every": args.checkpoint_every,
        "steps_per_epoch": args.steps_per_epoch,
        "tensorboard": args.tensorboard,
        "compile": args.compile,
        "progress": False if args.quiet else None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    model_overrides: dict = {}
    if resume:
        if args.config is not None or any(v is not None for v in (args.codebook, args.model)):
            raise ValueError(
                "--config, --model and --codebook cannot be combined with --resume (the run "
                "keeps its own)"
            )
        if not RunDir(run_dir).started:
            raise FileNotFoundError(f"no run to resume in {run_dir} (config.json missing)")
        saved = RunDir(run_dir).read_config()
        if args.encoder is not None:  # the run's plug-in encoder, named (trusted) by the user
            if args.encoder != saved.get("model", {}).get("encoder"):
                raise ValueError(
                    f"--encoder {args.encoder!r} with --resume must name the run's own encoder "
                    f"({saved.get('model', {}).get('encoder')!r})"
                )
            from cyto.nn import resolve_encoder

            resolve_encoder(args.encoder)
        config = resume_config(run_dir, **overrides)
        crops = args.crops  # None: the run's own store (RunDir.store_path)
    else:
        if args.crops is None:
            raise ValueError("the crop store CROPS is required (unless --resume)")
        if args.config is not None:
            base, model_overrides = read_config_file(args.config)
        else:
            base = TrainConfig()
        config = base.replace(**overrides)
        if args.codebook is not None:
            model_overrides["codebook"] = args.codebook
        if args.encoder is not None:
            model_overrides["encoder"] = args.encoder
        if args.model is not None:
            model_overrides["model"] = args.model
        crops = args.crops
    # a non-finite loss: exit code 3 (cyto.cli)
    out = train(crops, run_dir, config=config, model_overrides=model_overrides, resume=resume)
    print(f"run written to {out}")
    return 0
