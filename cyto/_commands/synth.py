"""``cyto synth``: write a synthetic cell atlas (TIFF stacks, manifest, ground truth)."""

from __future__ import annotations

import argparse

from cyto._commands._common import add_quiet, add_workers

_EXAMPLES = """\
examples:
  cyto synth -o atlas                       # 60 proteins in 14 families, 4 fields each
  cyto synth -o atlas --proteins 120 --fields 8 -j 2 --compress
  cyto synth --list-families
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cyto synth`` on ``subparsers``."""
    p = subparsers.add_parser(
        "synth",
        epilog=_EXAMPLES,
        help="generate a synthetic cell atlas with organelle- and complex-level ground truth",
        description=(
            "Generate fields of view (CZYX uint16 OME-TIFF: Hoechst, protein), manifest.csv, "
            "annotations.csv, complexes.csv, ground_truth.csv, true nuclear masks and "
            "synth.json (settings + preprocess_hint). Resumable: existing fields are kept."
        ),
    )
    p.add_argument("-o", "--output", help="output folder (required unless --list-families)")
    p.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    p.add_argument("--proteins", type=int, default=None, help="number of proteins (default 60)")
    p.add_argument(
        "--complexes-per-family", type=int, default=None, help="complexes per family (default 2)"
    )
    p.add_argument(
        "--families",
        default=None,
        help="comma-separated families (default all; see --list-families)",
    )
    p.add_argument("--fields", type=int, default=None, help="fields per protein (default 4)")
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help="1: 512x512 fields, nuclei 30-40 px (default); 2: 1024x1024, nuclei ~70 px",
    )
    p.add_argument("--z-planes", type=int, default=None, help="z planes per stack (default 8)")
    p.add_argument(
        "--complex-spread",
        type=float,
        default=None,
        help="fraction of each family's parameter range used by its complexes (default 0.6; "
        "smaller is harder, 1 is easiest)",
    )
    p.add_argument("--no-masks", action="store_true", help="do not write the true nuclear masks")
    p.add_argument("--compress", action="store_true", help="zlib-compress the stacks (~2x smaller)")
    add_workers(p, "worker processes writing fields", 1, "--jobs")
    p.add_argument(
        "--overwrite", action="store_true", help="allow a folder made with other settings"
    )
    add_quiet(p)
    p.add_argument("--list-families", action="store_true", help="print the families and exit")
    p.add_argument(
        "--kind",
        choices=["atlas", "cellpainting"],
        default="atlas",
        help="atlas (default): a protein localization atlas; cellpainting: a 5-stain "
        "Cell Painting screen of perturbations with known MoAs and control wells",
    )
    p.set_defaults(func=_run)
    return p


def _cellpainting(args: argparse.Namespace) -> int:
    """``cyto synth --kind cellpainting``: the synthetic Cell Painting screen."""
    from pathlib import Path

    from cyto.data.synthetic import CellPaintingConfig, generate_cellpainting

    cfg = CellPaintingConfig(seed=args.seed, z_planes=args.z_planes or 3)
    manifest = generate_cellpainting(
        args.output, cfg, progress=not args.quiet, overwrite=args.overwrite
    )
    out = Path(args.output)
    print(f"wrote {manifest}")
    print(
        f"next: cyto preprocess {manifest} -o {out / 'crops.h5'} --channels DNA,ER,RNA,AGP,Mito "
        f"--nucleus-channel DNA --crop-size 64; then cyto evaluate ... --ground-truth "
        f"{out / 'moa.csv'} --control DMSO"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from cyto.data.synthetic import SyntheticAtlasConfig, generate_atlas, list_families
    from cyto.data.synthetic._families import FAMILIES

    if args.list_families:
        for name in list_families():
            print(f"{name:18s} {FAMILIES[name].description}")
        return 0
    if not args.output:
        raise ValueError("`-o/--output` is required: the folder to write the atlas to")
    if args.kind == "cellpainting":
        return _cellpainting(args)
    kw: dict = {"seed": args.seed, "write_masks": not args.no_masks}
    if args.families:
        kw["families"] = tuple(f.strip() for f in args.families.split(",") if f.strip())
    for key, val in (
        ("n_proteins", args.proteins),
        ("complexes_per_family", args.complexes_per_family),
        ("fields_per_protein", args.fields),
        ("scale", args.scale),
        ("z_planes", args.z_planes),
        ("complex_spread", args.complex_spread),
    ):
        if val is not None:
            kw[key] = val
    if "n_proteins" not in kw and ("families" in kw or "complexes_per_family" in kw):
        kw["n_proteins"] = None  # draw complex sizes when the default total cannot apply
    flags = {
        "n_proteins": "--proteins",
        "complexes_per_family": "--complexes-per-family",
        "fields_per_protein": "--fields",
        "scale": "--scale",
        "z_planes": "--z-planes",
        "complex_spread": "--complex-spread",
        "families": "--families",
    }
    try:
        cfg = SyntheticAtlasConfig(**kw)
    except ValueError as err:  # speak the command line's names, not the config's
        message = str(err)
        for field, flag in flags.items():
            message = message.replace(f"`{field}`", f"`{flag}`")
        raise ValueError(message) from None
    manifest = generate_atlas(
        args.output,
        cfg,
        n_jobs=args.workers,
        compression="zlib" if args.compress else None,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    import json
    from pathlib import Path

    from cyto.data.synthetic import make_catalog

    opts = json.loads((Path(args.output) / "synth.json").read_text())["preprocess_args"]
    expected = len(make_catalog(cfg)) * cfg.fields_per_protein
    with open(manifest, encoding="utf-8") as fh:
        written = sum(1 for _ in fh) - 1
    print(f"wrote {manifest} ({written} of {expected} fields)")
    print(f"next: cyto preprocess {args.output} -o {Path(args.output) / 'crops.h5'} {opts}")
    return 0 if written == expected else 1  # the failed fields were each reported
