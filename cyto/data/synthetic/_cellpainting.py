"""A synthetic Cell Painting screen: 5-stain fields of perturbed cells on plates.

Every field is rendered by the synthetic atlas's cell model (the same layouts, nuclei,
optics and camera), with one image per stain instead of one tagged protein:

========  ==========================================  ====================================
stain     what it shows (the renderer's pattern)       what the perturbations change
========  ==========================================  ====================================
DNA       the Hoechst image: nuclei, chromatin         nucleus size (``tubulin``)
ER        ``er``: a perinuclear mesh                   spread, mesh, tubule width
          (``er_stress``)
RNA       ``nucleolus_gc``: nucleoli, nucleoplasm      nucleolar dispersal (``nucleolar``)
AGP       ``cytoskeleton``: actin fibres               fibre count, radial/cortical
          (``tubulin``, ``actin``)
Mito      ``mitochondria``: tubular mitochondria       fragmentation (``mito_uncoupler``)
========  ==========================================  ====================================

A perturbation belongs to one mechanism of action (MoA) and has a potency. Inactive
perturbations (``inactive_fraction``) carry their MoA's annotation but no phenotype, so
they look like controls. Control wells (``DMSO``) sit on every plate. Each plate has its
own gain per stain (the plate effect). The generator knows each perturbation's MoA and
whether it is active, and writes them beside the images.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MOAS", "STAINS", "CellPaintingConfig", "generate_cellpainting"]

#: The five Cell Painting stains, in the order of the images written.
STAINS = ("DNA", "ER", "RNA", "AGP", "Mito")

# the renderer's pattern family of each stain but DNA, and its brightness
_FAMILY = {"ER": "er", "RNA": "nucleolus_gc", "AGP": "cytoskeleton", "Mito": "mitochondria"}
_LEVEL = {"ER": 320.0, "RNA": 260.0, "AGP": 360.0, "Mito": 300.0}

#: What each MoA changes at full potency: stain -> {parameter: shift in half-ranges};
#: ``"nucleus"``: the factor on the nucleus diameter.
MOAS: dict[str, dict[str, Any]] = {
    "tubulin": {"AGP": {"radial": -0.9, "cortical": 0.8}, "nucleus": 1.3},
    "mito_uncoupler": {"Mito": {"length": -1.0, "count": 0.7}},
    "er_stress": {"ER": {"mesh": -1.6, "perinuclear": -1.6, "width": 1.6}},
    "nucleolar": {"RNA": {"nucleoplasm_frac": 2.0, "size": -1.6, "rim": 1.0}},
    "actin": {"AGP": {"count": 1.0, "cortical": -0.9, "size": 0.6}},
}


@dataclass(frozen=True)
class CellPaintingConfig:
    """Settings of a synthetic Cell Painting screen.

    Parameters
    ----------
    perturbations_per_moa : int
        Perturbations of each MoA in :data:`MOAS`.
    inactive_fraction : float
        Share of them with no phenotype (annotated, inactive).
    replicates : int
        Wells per perturbation, spread over the plates.
    control_wells : int
        DMSO wells per plate.
    plates : int
    fields_per_well : int
        Fields imaged per well (sites).
    field_size : int
        Field side in pixels (nuclei ≈ 15–20 px across at the default ``scale``).
    scale : float
        The atlas's pixel scale (0.5: half the OpenCell geometry).
    z_planes : int
    cells_per_field : (int, int)
    plate_effect : float
        Standard deviation of the per-plate, per-stain log gain.
    seed : int
    """

    perturbations_per_moa: int = 4
    inactive_fraction: float = 0.25
    replicates: int = 4
    control_wells: int = 8
    plates: int = 2
    fields_per_well: int = 2
    field_size: int = 256
    scale: float = 0.5
    z_planes: int = 3
    cells_per_field: tuple[int, int] = (14, 22)
    plate_effect: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "perturbations_per_moa",
            "replicates",
            "control_wells",
            "plates",
            "fields_per_well",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {getattr(self, name)!r}")
        if self.replicates < 2:
            raise ValueError("`replicates` must be >= 2 (activity compares replicate wells)")
        if not 0 <= self.inactive_fraction < 1:
            raise ValueError(f"`inactive_fraction` must be in [0, 1), got {self.inactive_fraction}")
        if self.field_size < 64 or self.z_planes < 1:
            raise ValueError("`field_size` must be >= 64 and `z_planes` >= 1")


def _perturbations(cfg: CellPaintingConfig, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Every perturbation: name, MoA, potency (0: inactive)."""
    out = []
    n_inactive = round(cfg.perturbations_per_moa * cfg.inactive_fraction)
    for moa in MOAS:
        for k in range(cfg.perturbations_per_moa):
            potency = 0.0 if k >= cfg.perturbations_per_moa - n_inactive else rng.uniform(0.6, 1)
            out.append({"name": f"{moa}_{k}", "moa": moa, "potency": float(potency)})
    return out


def _wells(cfg: CellPaintingConfig, perts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plate layout: controls on every plate, replicates round-robin over the plates."""
    wells: list[dict[str, Any]] = []
    count = [0] * cfg.plates

    def add(plate: int, pert: dict[str, Any]) -> None:
        row, col = divmod(count[plate], 24)
        count[plate] += 1
        wells.append({"plate": f"P{plate + 1}", "well": f"{'ABCDEFGHIJKLMNOP'[row]}{col + 1:02d}",
                      **pert})  # fmt: skip

    control = {"name": "DMSO", "moa": "", "potency": 0.0}
    for plate in range(cfg.plates):
        for _ in range(cfg.control_wells):
            add(plate, control)
    for p in perts:
        for r in range(cfg.replicates):
            add(r % cfg.plates, p)
    return wells


def _stain_params(moa: str, potency: float) -> dict[str, dict[str, float]]:
    """Each stain's pattern parameters: the family's mid-range, shifted by the MoA."""
    from cyto.data.synthetic._families import FAMILIES

    out = {}
    for stain, family in _FAMILY.items():
        params = {}
        for name, (lo, hi) in FAMILIES[family].params.items():
            shift = MOAS.get(moa, {}).get(stain, {}).get(name, 0.0) * potency
            value = (lo + hi) / 2 + shift * (hi - lo) / 2
            params[name] = float(np.clip(value, lo - 0.6 * (hi - lo), hi + 0.6 * (hi - lo)))
        out[stain] = params
    return out


def render_well_field(
    cfg: CellPaintingConfig, well: Mapping[str, Any], gains: np.ndarray, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """One field of a well: the (5, Z, H, W) uint16 stack and the true nucleus labels."""
    from cyto.data.synthetic._cells import layout_cells
    from cyto.data.synthetic._render import (
        FieldPhysics,
        _camera,
        _Ctx,
        _focus,
        _jitter_params,
        _render_hoechst,
        _render_protein,
    )

    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(7, index)))
    size, physics = cfg.field_size, FieldPhysics(z_planes=cfg.z_planes, param_jitter=0.08)
    grow = 1 + (MOAS.get(well["moa"], {}).get("nucleus", 1.0) - 1) * well["potency"]
    n_cells = int(rng.integers(cfg.cells_per_field[0], cfg.cells_per_field[1] + 1))
    cells = layout_cells(rng, size=size, scale=cfg.scale, n_cells=n_cells,
                         nucleus_diameter=(30.0 * grow, 40.0 * grow), mitotic_fraction=0.02,
                         clump=0.3)  # fmt: skip
    ctx = _Ctx(rng, cells, cfg.scale)
    hoechst, parts = _render_hoechst(ctx, rng, physics)
    images = [hoechst]
    for stain, params in _stain_params(well["moa"], well["potency"]).items():
        params = _jitter_params(rng, _FAMILY[stain], params, physics.param_jitter)
        level = _LEVEL[stain] * float(np.exp(rng.normal(0.0, 0.1)))
        images.append(_render_protein(ctx, rng, _FAMILY[stain], params, level, physics, parts))
    stack = np.stack(images).astype(np.float32) * gains[:, None, None]
    stack += rng.uniform(5.0, 15.0) * ctx.inside + rng.uniform(3.0, 10.0)
    signal, _ = _focus(ctx, rng, stack, physics)
    return _camera(rng, signal, physics), cells.nuclei


def _write_stains(out: Path, stem: str, stack: np.ndarray) -> list[str]:
    """One (Z, H, W) TIFF per stain, written atomically; their paths relative to ``out``."""
    import tifffile

    from cyto._atomic import atomic_path

    files = []
    for s, stain in enumerate(STAINS):
        rel = f"{stem}_{stain}.tif"
        with atomic_path(out / rel, mkdir=True, suffix=".tif") as tmp:
            tifffile.imwrite(tmp, stack[s], photometric="minisblack")
        files.append(rel)
    return files


def generate_cellpainting(
    out_dir: str | Path,
    config: CellPaintingConfig | None = None,
    *,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic Cell Painting screen: images, manifest and the truth.

    Parameters
    ----------
    out_dir : path-like
        Folder (created). It receives ``images/<plate>/<well>_s<site>_<stain>.tif``, one (Z, H, W)
        uint16 TIFF per stain and well; ``manifest.csv`` (wide layout: ``DNA, ER, RNA,
        AGP, Mito`` paths, ``protein_id`` = the perturbation, ``plate``, ``well``,
        ``Metadata_well_id`` (plate and well), ``Metadata_moa``, ``Metadata_active``);
        ``moa.csv`` (``protein_id,family``: each perturbation's MoA, the ground truth of
        ``cyto evaluate``); ``synth.json``.
    config : CellPaintingConfig, optional
    progress : bool, default False
    overwrite : bool, default False
        Replace a synthetic screen of other settings in ``out_dir`` (one of the same
        settings is written again: the output is a function of them).

    Returns
    -------
    Path
        The manifest, ready for ``cyto preprocess --channels DNA,ER,RNA,AGP,Mito
        --nucleus-channel DNA``.
    """

    from cyto._atomic import write_text_atomic
    from cyto.data._outputs import check_output

    cfg = config or CellPaintingConfig()
    out = Path(out_dir)
    check_output(out, "synthetic atlas", resume=True, flag="out_dir")
    saved = out / "synth.json"
    if saved.is_file() and not overwrite:
        old = json.loads(saved.read_text(encoding="utf-8")).get("config")
        if old != json.loads(json.dumps(asdict(cfg))):
            raise ValueError(
                f"`out_dir` {out} holds a synthetic dataset of other settings ({old}); "
                "choose another folder or pass overwrite=True (--overwrite)"
            )
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(6,)))
    perts = _perturbations(cfg, rng)
    wells = _wells(cfg, perts)
    gains = np.exp(rng.normal(0.0, cfg.plate_effect, (cfg.plates, len(STAINS))))
    rows = [
        "DNA,ER,RNA,AGP,Mito,protein_id,fov_id,plate,well,Metadata_well_id,Metadata_moa,"
        "Metadata_active"
    ]
    for i, w in enumerate(wells):
        for site in range(cfg.fields_per_well):
            index = i * cfg.fields_per_well + site
            stack, _ = render_well_field(cfg, w, gains[int(w["plate"][1:]) - 1], index)
            fov = f"{w['plate']}-{w['well']}-s{site + 1}"
            files = _write_stains(out, f"images/{w['plate']}/{w['well']}_s{site + 1}", stack)
            active = "" if w["name"] == "DMSO" else str(w["potency"] > 0).lower()
            well_id = f"{w['plate']}-{w['well']}"
            meta = [w["name"], fov, w["plate"], w["well"], well_id, w["moa"], active]
            rows.append(",".join([*files, *meta]))
        if progress:
            print(f"\r{i + 1}/{len(wells)} wells", end="", flush=True)
    write_text_atomic(out / "moa.csv", "protein_id,family\n"
                      + "".join(f"{p['name']},{p['moa']}\n" for p in perts))  # fmt: skip
    meta = {"config": asdict(cfg), "stains": list(STAINS), "perturbations": perts}
    write_text_atomic(out / "synth.json", json.dumps(meta, indent=1))
    return write_text_atomic(out / "manifest.csv", "\n".join(rows) + "\n")
