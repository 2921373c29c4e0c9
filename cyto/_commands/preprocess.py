"""``cyto preprocess INPUT -o crops.h5``: raw z-stacks to one HDF5 crop store."""

from __future__ import annotations

import argparse
from typing import Any

from cyto._commands._common import add_quiet, add_workers

__all__ = ["add_parser"]

_EXAMPLES = """\
examples:
  cyto preprocess manifest.csv -o crops.h5            # columns: path, protein_id[, plate, well...]
  cyto preprocess images/ -o crops.h5 -j 2            # one sub-folder per protein
  cyto preprocess plate.zarr --plate-map wells.csv -o crops.h5   # an OME-Zarr HCS plate
  cyto preprocess manifest.csv --masks masks/ -o crops.h5        # your own nucleus masks
"""


def _channel_options(p: argparse.ArgumentParser) -> None:
    """Which channels the crops hold, and which one holds the nuclei."""
    p.add_argument(
        "--channels",
        default=("protein", "distance"),
        type=_channel_list,
        metavar="LIST",
        help="crop channels in order, comma-separated: protein, nucleus, distance (signed "
        "distance to the nucleus), or any stain named in the manifest, e.g. "
        "DNA,ER,RNA,AGP,Mito (default: protein,distance)",
    )
    p.add_argument(
        "--nucleus-channel",
        metavar="NAME",
        help="with named stains: the one holding the nuclei (e.g. DNA)",
    )


def _channel_list(value: str) -> tuple[str, ...]:
    """``--channels``: comma-separated names, checked as a store checks them."""
    from cyto.data import check_channels

    try:
        return check_channels([c.strip() for c in value.split(",")])
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).replace("`channels`", "--channels")) from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``preprocess`` subcommand."""
    p = subparsers.add_parser(
        "preprocess",
        epilog=_EXAMPLES,
        help="segment nuclei and cut normalized cell crops into one HDF5 store",
        description=(
            "Max-project each field of view, downsample, segment the nuclei in the Hoechst "
            "channel and cut crops centred on them (protein scaled to [0, 1], signed nuclear "
            "distance to [-1, 1]) into one HDF5 crop store. INPUT is a manifest CSV (columns "
            "path, protein_id, optional fov_id, protein_channel, nucleus_channel, axes, "
            "nucleus_path for a separate Hoechst file) or a "
            "folder with manifest.csv or one sub-folder of TIFFs per protein id. Any stain "
            "set (Cell Painting: --channels DNA,ER,RNA,AGP,Mito --nucleus-channel DNA) is "
            "read from manifest columns named like the stains, or from path,channel rows. "
            "Re-running resumes; unreadable files are reported and skipped."
        ),
    )
    p.add_argument("input", help="manifest CSV, dataset folder, or OME-Zarr plate/image (.zarr)")
    p.add_argument("-o", "--output", required=True, help="crop store to write (.h5)")
    _channel_options(p)
    p.add_argument("--crop-size", type=int, default=100, help="crop side in px (default 100)")
    p.add_argument(
        "--downsample", type=int, default=2, help="block-mean factor after projection (default 2)"
    )
    p.add_argument(
        "--nucleus-diameter",
        type=float,
        help="typical nucleus diameter in input px (default: estimated per field)",
    )
    p.add_argument(
        "--normalize",
        choices=("crop", "field", "none"),
        default="crop",
        help="scale intensities per crop (default), per field, or not at all",
    )
    p.add_argument(
        "--dtype", choices=("float16", "float32"), default="float16", help="crop storage type"
    )
    p.add_argument(
        "--store-compression",
        choices=("lzf", "none"),
        default="lzf",
        help="compression of the stored crops: lzf (default) or none (~1.45x the disk, "
        "fastest training reads)",
    )
    add_workers(p, "local worker processes (default: all cores)", None)
    p.add_argument(
        "--scheduler", help="Dask scheduler address (e.g. tcp://host:8786); needs cyto[dask]"
    )
    p.add_argument(
        "--masks",
        metavar="DIR",
        help="folder of nucleus label images made elsewhere (CellProfiler, cellpose, "
        "StarDist), one per field, named after the field or its image (e.g. f1.tif, "
        "f1_cp_masks.png): segmentation is skipped (per row: the manifest's mask_path)",
    )
    p.add_argument(
        "--segmenter",
        metavar="NAME",
        help="nucleus segmenter: 'cyto' (default) or your function as "
        "'package.module:function' (image -> labels), e.g. a cellpose wrapper",
    )
    p.add_argument(
        "--plate-map",
        metavar="CSV",
        help="well,protein_id table of an OME-Zarr HCS plate (input plate.zarr)",
    )
    add_quiet(p)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    import signal
    import sys

    from cyto.preprocess import preprocess_dataset

    def _term(signum, frame):  # a polite kill still merges the finished fields
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)
    try:
        report = preprocess_dataset(
            args.input,
            args.output,
            channels=args.channels,
            nucleus_channel=args.nucleus_channel,
            crop_size=args.crop_size,
            downsample_factor=args.downsample,
            nucleus_diameter=args.nucleus_diameter,
            normalize=args.normalize,
            dtype=args.dtype,
            compression=None if args.store_compression == "none" else "lzf",
            workers=args.workers,
            scheduler=args.scheduler,
            progress=not args.quiet,
            on_error=lambda path, reason: print(f"skipped {path}: {reason}", file=sys.stderr),
            masks=args.masks,
            segmenter=args.segmenter,
            plate_map=args.plate_map,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(
        f"{report.path}: {report.n_crops} crops; {report.n_processed} fields processed, "
        f"{report.n_skipped} already done, {report.n_failed} failed "
        f"({report.seconds:.1f} s)"
    )
    if report.n_crops == 0:
        print(
            f"cyto preprocess: error: no crops were made from {report.n_fovs} field(s): no "
            "nucleus was found whose crop fits in its field (check the nucleus and protein "
            "channels, --nucleus-diameter, --downsample and --crop-size)",
            file=sys.stderr,
        )
        return 1
    return 0 if report.n_failed == 0 else 1
