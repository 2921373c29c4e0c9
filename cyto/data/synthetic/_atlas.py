"""Configuration, protein catalogue, single fields and the atlas writer."""

from __future__ import annotations

import csv
import errno
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from cyto._atomic import atomic_path, write_text_atomic
from cyto.data._outputs import check_output, clear_folder, write_marker
from cyto.data.synthetic._cells import layout_cells
from cyto.data.synthetic._families import FAMILIES, sample_complex_params

__all__ = [
    "SyntheticAtlasConfig",
    "SyntheticField",
    "SyntheticProtein",
    "generate_atlas",
    "make_catalog",
    "make_field",
]

_FORMAT_VERSION = 1
# spawn keys of the SeedSequence tree (seed, key...): 0 = catalogue, 1 = fields
_KEY_CATALOG = 0
_KEY_FIELDS = 1


@dataclass(frozen=True)
class SyntheticAtlasConfig:
    """Settings of a synthetic cell atlas (validated on construction).

    Parameters
    ----------
    seed : int
        Root seed; every field derives its own stream from it, so the output is the
        same whatever the order or parallelism of generation.
    families : tuple of str
        Localization families to include (see :func:`list_families`).
    complexes_per_family : int
        Number of complexes per family.
    complex_size : (int, int)
        Smallest and largest number of proteins per complex.
    n_proteins : int or None
        Total number of proteins. Complex sizes start at ``complex_size[0]`` and
        randomly chosen complexes grow until the total is reached. ``None`` draws each
        size uniformly in ``complex_size``.
    fields_per_protein : int
        Fields of view generated per protein.
    scale : float
        Pixel scale: 1 gives 512×512 fields with nuclei 30–40 px across (the OpenCell
        geometry after ×2 downsampling), 2 gives 1024×1024 fields with nuclei ≈ 70 px
        (the raw OpenCell geometry).
    field_size : int
        Field side at ``scale=1``; the written fields are ``round(field_size*scale)``.
    z_planes : int
        Number of z planes per stack.
    cells_per_field : (int, int)
        Range of the number of cells per field (drawn log-uniformly: from sparse to
        confluent).
    nucleus_diameter : (float, float)
        Range of nucleus diameters at ``scale=1`` (px).
    mitotic_fraction : float
        Probability that a cell is mitotic (small, bright, condensed chromatin).
    out_of_focus_fraction : float
        Probability that a cell lies 3–5 planes away from the focal plane of the field.
    clumpiness : float
        Probability that a cell is placed in a colony rather than uniformly.
    expression_sigma : float
        Standard deviation of the per-cell log expression level.
    protein_sigma : float
        Standard deviation of the per-protein log expression level (proteins of one
        complex do not share expression).
    complex_spread : float
        Fraction (0–1] of each family parameter range used by its complexes; smaller is
        harder.
    param_jitter : float
        Per-field log-normal jitter of the complex parameters.
    background : float
        Camera offset (ADU).
    write_masks : bool
        Also write the true nuclear masks (``masks/``).
    plates : int
        Plates the fields are spread over; the manifest then has a ``plate`` column.
        1 (default): no plates.
    plate_layout : {"field", "protein"}
        ``"field"`` (default): field k of every protein on plate ``k % plates`` (each
        protein on every plate); ``"protein"``: every field of protein i on plate
        ``i % plates``, as in an arrayed screen where a well holds one protein (the
        plate is then confounded with the protein, as in real screens).
    plate_effect : float
        Strength of a simulated plate effect on the protein channel of plates 2.. (a
        batch effect to test corrections): plate p is defocused (Gaussian blur of
        ``2 × e`` px, ``e = plate_effect × p / (plates − 1)``) and brighter (gain
        ``1 + e``). Per-crop normalization cancels a pure gain; the blur survives it.

    Examples
    --------
    >>> from cyto.data import SyntheticAtlasConfig
    >>> cfg = SyntheticAtlasConfig(seed=1, fields_per_protein=2)
    >>> cfg.image_size, cfg.preprocess_hint["downsample_factor"]
    (512, 1)
    """

    seed: int = 0
    families: tuple[str, ...] = tuple(FAMILIES)
    complexes_per_family: int = 2
    complex_size: tuple[int, int] = (2, 4)
    n_proteins: int | None = 60
    fields_per_protein: int = 4
    scale: float = 1.0
    field_size: int = 512
    z_planes: int = 8
    cells_per_field: tuple[int, int] = (15, 90)
    nucleus_diameter: tuple[float, float] = (30.0, 40.0)
    mitotic_fraction: float = 0.03
    out_of_focus_fraction: float = 0.08
    clumpiness: float = 0.8
    expression_sigma: float = 0.5
    protein_sigma: float = 0.6
    complex_spread: float = 0.6
    param_jitter: float = 0.12
    background: float = 250.0
    write_masks: bool = True
    plates: int = 1
    plate_effect: float = 0.0
    plate_layout: str = "field"

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", tuple(self.families))
        object.__setattr__(self, "complex_size", tuple(int(v) for v in self.complex_size))
        object.__setattr__(self, "cells_per_field", tuple(int(v) for v in self.cells_per_field))
        object.__setattr__(self, "nucleus_diameter", tuple(float(v) for v in self.nucleus_diameter))
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(
                f"`families` must be a non-empty subset of {list(FAMILIES)}, got {self.families!r}"
            )
        if len(set(self.families)) != len(self.families):
            raise ValueError(f"`families` has duplicates: {self.families!r}")
        for name in ("complexes_per_family", "fields_per_protein", "z_planes", "field_size"):
            val = getattr(self, name)
            if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {val!r}")
        if self.field_size * self.scale < 128:
            raise ValueError(
                f"`field_size`*`scale` must be at least 128 px, got {self.field_size * self.scale}"
            )
        lo, hi = self.complex_size
        if not 1 <= lo <= hi:
            raise ValueError(
                f"`complex_size` must be (low, high) with 1 <= low <= high, got {self.complex_size}"
            )
        n_cx = len(self.families) * self.complexes_per_family
        if self.n_proteins is not None and not n_cx * lo <= self.n_proteins <= n_cx * hi:
            raise ValueError(
                f"`n_proteins` must lie between {n_cx * lo} and {n_cx * hi} for "
                f"{n_cx} complexes of size {self.complex_size}, got {self.n_proteins}"
            )
        if not self.scale > 0:
            raise ValueError(f"`scale` must be positive, got {self.scale}")
        if not 1 <= self.cells_per_field[0] <= self.cells_per_field[1]:
            raise ValueError(
                f"`cells_per_field` must be (low, high) with 1 <= low <= high, "
                f"got {self.cells_per_field}"
            )
        if not 4 <= self.nucleus_diameter[0] <= self.nucleus_diameter[1]:
            raise ValueError(
                f"`nucleus_diameter` must be (low, high) with 4 <= low <= high, "
                f"got {self.nucleus_diameter}"
            )
        for name in ("mitotic_fraction", "out_of_focus_fraction", "clumpiness"):
            val = getattr(self, name)
            if not 0.0 <= val <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {val}")
        if not 0.0 < self.complex_spread <= 1.0:
            raise ValueError(f"`complex_spread` must be in (0, 1], got {self.complex_spread}")
        for name in ("expression_sigma", "protein_sigma", "param_jitter", "background"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        if not isinstance(self.plates, (int, np.integer)) or self.plates < 1:
            raise ValueError(f"`plates` must be a positive integer, got {self.plates!r}")
        if self.plate_layout not in ("field", "protein"):
            raise ValueError(
                f"`plate_layout` must be 'field' or 'protein', got {self.plate_layout!r}"
            )
        if not self.plate_effect >= 0:
            raise ValueError(f"`plate_effect` must be >= 0, got {self.plate_effect}")

    @property
    def image_size(self) -> int:
        """Side of the written fields in pixels."""
        return round(self.field_size * self.scale)

    @property
    def preprocess_hint(self) -> dict[str, Any]:
        """Keyword arguments of ``cyto.preprocess.preprocess_fov`` matching these fields.

        Fields are made at the processed (post-downsampling) OpenCell geometry times
        ``scale``, so a block-mean downsampling by ``round(scale)`` after the maximum
        projection brings nuclei back to ≈ 35 px and 100×100 crops hold 1–3 cells, as
        in the paper. ``nucleus_diameter`` is in pixels of the written fields.
        """
        down = max(1, round(self.scale))
        diameter = 0.5 * (self.nucleus_diameter[0] + self.nucleus_diameter[1]) * self.scale
        return {"downsample_factor": down, "crop_size": 100, "nucleus_diameter": diameter}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of the settings."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        if self.plates == 1 and self.plate_effect == 0:  # atlases without plates read as before
            del d["plates"], d["plate_effect"]
        if self.plate_layout == "field":  # the default: atlases made before it read the same
            del d["plate_layout"]
        return d

    def plate_of(self, field_index: int, protein_index: int = 0) -> int:
        """Plate (0-based) of field ``field_index`` of protein ``protein_index``."""
        k = int(protein_index) if self.plate_layout == "protein" else int(field_index)
        return k % self.plates

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyntheticAtlasConfig:
        """Inverse of :meth:`to_dict` (unknown keys raise ``ValueError``)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown SyntheticAtlasConfig keys {unknown}; valid: {sorted(names)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)

    def physics(self):
        """Acquisition settings for the renderer (imports SciPy on first use)."""
        from cyto.data.synthetic._render import FieldPhysics

        return FieldPhysics(
            z_planes=self.z_planes,
            expression_sigma=self.expression_sigma,
            param_jitter=self.param_jitter,
            out_of_focus_fraction=self.out_of_focus_fraction,
            background=self.background,
        )


@dataclass(frozen=True)
class SyntheticProtein:
    """One protein of the atlas: id, family, complex, expression and pattern parameters."""

    protein_id: str
    ensg_id: str
    family: str
    complex: str
    expression: float
    params: dict[str, float] = field(hash=False)
    index: int = 0


@dataclass
class SyntheticField:
    """One generated field of view.

    Attributes
    ----------
    image : (2, Z, H, W) uint16 ndarray
        Channel 0 Hoechst, channel 1 the tagged protein (axes CZYX).
    nuclei : (H, W) int32 ndarray
        True nucleus labels (0 = background), one per cell.
    cells : (H, W) int32 ndarray
        True cell territories, same label as the cell's nucleus.
    protein : SyntheticProtein
        The protein shown in the field.
    info : dict
        ``n_cells``, ``mitotic`` and ``out_of_focus`` labels, the jittered ``params``.
    """

    image: np.ndarray
    nuclei: np.ndarray
    cells: np.ndarray
    protein: SyntheticProtein
    info: dict


def make_catalog(config: SyntheticAtlasConfig | None = None) -> list[SyntheticProtein]:
    """Draw the proteins of an atlas: families, complexes and their parameter sets.

    Protein ids (``SYN001`` …) and complex ids (``CPX01`` …) are assigned in a shuffled
    order so they carry no information about the localization.

    Parameters
    ----------
    config : SyntheticAtlasConfig, optional
        Atlas settings; defaults to ``SyntheticAtlasConfig()``.

    Returns
    -------
    proteins : list of SyntheticProtein
        Sorted by protein id; members of a complex share ``family`` and ``params``.

    Examples
    --------
    >>> from cyto.data import SyntheticAtlasConfig, make_catalog
    >>> cat = make_catalog(SyntheticAtlasConfig(seed=0))
    >>> len(cat), cat[0].protein_id
    (60, 'SYN001')
    """
    cfg = SyntheticAtlasConfig() if config is None else config
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_KEY_CATALOG,)))
    complexes = []
    for fam in cfg.families:
        for params in sample_complex_params(
            fam, cfg.complexes_per_family, rng, spread=cfg.complex_spread
        ):
            complexes.append((fam, params))
    lo, hi = cfg.complex_size
    n_cx = len(complexes)
    if cfg.n_proteins is None:
        sizes = rng.integers(lo, hi + 1, n_cx)
    else:
        sizes = np.full(n_cx, lo)
        while sizes.sum() < cfg.n_proteins:
            open_ = np.flatnonzero(sizes < hi)
            sizes[rng.choice(open_)] += 1
    cx_ids = rng.permutation(n_cx)
    members = [(j, m) for j in range(n_cx) for m in range(sizes[j])]
    order = rng.permutation(len(members))
    width = max(3, len(str(len(members))))
    cwidth = max(2, len(str(n_cx)))
    expression = np.exp(rng.normal(0.0, cfg.protein_sigma, len(members)))
    proteins = []
    for rank, k in enumerate(order):
        j, _ = members[k]
        fam, params = complexes[j]
        proteins.append(
            SyntheticProtein(
                protein_id=f"SYN{rank + 1:0{width}d}",
                ensg_id=f"ENSGSYN{rank + 1:08d}",
                family=fam,
                complex=f"CPX{cx_ids[j] + 1:0{cwidth}d}",
                expression=float(expression[k]),
                params=dict(params),
                index=rank,
            )
        )
    return proteins


def _field_rng(seed: int, protein_index: int, field_index: int) -> np.random.Generator:
    ss = np.random.SeedSequence(seed, spawn_key=(_KEY_FIELDS, protein_index, field_index))
    return np.random.default_rng(ss)


def make_field(
    protein: SyntheticProtein | str,
    *,
    config: SyntheticAtlasConfig | None = None,
    field_index: int = 0,
    n_cells: int | None = None,
) -> SyntheticField:
    """Generate one field of view of a protein.

    Parameters
    ----------
    protein : SyntheticProtein or str
        A protein from :func:`make_catalog`, or a family name: then the first complex
        parameter set drawn for that family with ``config.seed`` is used.
    config : SyntheticAtlasConfig, optional
        Atlas settings (geometry, noise, seed); defaults to ``SyntheticAtlasConfig()``.
    field_index : int
        Index of the field for this protein; with the seed and the protein index it
        determines the random stream.
    n_cells : int, optional
        Number of cells to place; by default drawn from ``config.cells_per_field``.

    Returns
    -------
    field : SyntheticField
        The (2, Z, H, W) uint16 stack, the true nuclei and cell labels.

    Raises
    ------
    ValueError
        If ``protein`` names no family, or ``field_index``/``n_cells`` is negative.

    Examples
    --------
    >>> from cyto.data import SyntheticAtlasConfig, make_field
    >>> f = make_field("golgi", config=SyntheticAtlasConfig(field_size=128, z_planes=3))
    >>> f.image.shape, f.image.dtype.name, int(f.nuclei.max()) > 0
    ((2, 3, 128, 128), 'uint16', True)
    """
    cfg = SyntheticAtlasConfig() if config is None else config
    if isinstance(protein, str):
        if protein not in FAMILIES:
            raise ValueError(f"unknown family {protein!r}; expected one of {list(FAMILIES)}")
        rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(2,)))
        params = sample_complex_params(protein, 1, rng, spread=cfg.complex_spread)[0]
        protein = SyntheticProtein(protein, "", protein, "", 1.0, params, index=0)
    elif not isinstance(protein, SyntheticProtein):
        raise TypeError(
            f"`protein` must be a SyntheticProtein or a family name, got {type(protein).__name__}"
        )
    if field_index < 0:
        raise ValueError(f"`field_index` must be >= 0, got {field_index}")
    rng = _field_rng(cfg.seed, protein.index, field_index)
    size = cfg.image_size
    if n_cells is None:
        lo, hi = cfg.cells_per_field
        area = (size / cfg.scale / 512.0) ** 2
        n_cells = round(np.exp(rng.uniform(np.log(lo), np.log(hi))) * area)
    elif n_cells < 0:
        raise ValueError(f"`n_cells` must be >= 0, got {n_cells}")
    cells = layout_cells(
        rng,
        size=size,
        scale=cfg.scale,
        n_cells=max(int(n_cells), 1),
        nucleus_diameter=cfg.nucleus_diameter,
        mitotic_fraction=cfg.mitotic_fraction,
        clump=cfg.clumpiness,
    )
    from cyto.data.synthetic._render import render_field  # SciPy: imported on first use

    level = 300.0 * protein.expression * float(np.exp(rng.normal(0.0, 0.2)))
    stack, info = render_field(
        rng,
        cells,
        family=protein.family,
        params=protein.params,
        protein_level=level,
        scale=cfg.scale,
        physics=cfg.physics(),
    )
    plate = cfg.plate_of(field_index, protein.index)
    if plate > 0 and cfg.plate_effect > 0:
        stack = _plate_effect(stack, cfg.plate_effect * plate / max(cfg.plates - 1, 1))
    return SyntheticField(
        image=stack, nuclei=cells.nuclei, cells=cells.labels, protein=protein, info=info
    )


def _plate_effect(stack: np.ndarray, strength: float) -> np.ndarray:
    """Defocus and brighten the protein channel (channel 1) of a (2, Z, H, W) stack."""
    from scipy import ndimage as ndi

    out = stack.copy()
    protein = stack[1].astype(np.float32)
    background = float(np.median(protein))
    blurred = ndi.gaussian_filter(protein, sigma=(0, 2.0 * strength, 2.0 * strength))
    out[1] = np.clip(background + (1.0 + strength) * (blurred - background), 0, 65535)
    return out


# --------------------------------------------------------------------------------------
# writing


def _annotation_rows(p: SyntheticProtein) -> list[list[Any]]:
    """OpenCell-style annotation rows: one per localization.

    A ``mixed`` protein is both nuclear and cytoplasmic, so it gets two grade-3 rows
    (``nucleoplasm`` and ``cytoplasmic``); organelle-level ground truth that keeps
    single-localization proteins only (as the paper's does) leaves it out.
    """
    if p.family == "mixed":
        return [[p.ensg_id, p.protein_id, loc, 3] for loc in ("nucleoplasm", "cytoplasmic")]
    return [[p.ensg_id, p.protein_id, p.family, 3]]


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with atomic_path(path, mkdir=True) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)


def _write_tiff(path: Path, data: np.ndarray, axes: str, compression: str | None) -> None:
    import tifffile

    kw: dict[str, Any] = {}
    if compression == "zlib":
        kw = {"compression": "zlib", "compressionargs": {"level": 1}, "predictor": True}
    # plain TIFF with tifffile's JSON shape/axes description: byte-for-byte
    # reproducible (OME-XML would embed a random UUID)
    with atomic_path(path, suffix=".tif", mkdir=True) as tmp:
        tifffile.imwrite(tmp, data, photometric="minisblack", metadata={"axes": axes}, **kw)


def _preprocess_args(cfg: SyntheticAtlasConfig) -> str:
    """The ``cyto preprocess`` options matching ``cfg.preprocess_hint``."""
    h = cfg.preprocess_hint
    return (
        f"--downsample {h['downsample_factor']} --crop-size {h['crop_size']} "
        f"--nucleus-diameter {h['nucleus_diameter']:g}"
    )


def _field_paths(protein_id: str, field_index: int) -> tuple[str, str, str]:
    fov = f"{protein_id}_F{field_index:03d}"
    return fov, f"images/{protein_id}/{fov}.tif", f"masks/{protein_id}/{fov}.tif"


def _generate_one(job) -> tuple[str, str | None]:
    """Worker: generate and write one field unless it already exists."""
    out_dir, cfg_dict, protein, k, compression = job
    cfg = SyntheticAtlasConfig.from_dict(cfg_dict)
    fov, img_rel, mask_rel = _field_paths(protein.protein_id, k)
    img_path = Path(out_dir) / img_rel
    mask_path = Path(out_dir) / mask_rel
    if img_path.exists() and (not cfg.write_masks or mask_path.exists()):
        return fov, None
    try:
        f = make_field(protein, config=cfg, field_index=k)
        if cfg.write_masks:
            _write_tiff(mask_path, f.nuclei.astype(np.uint16), "YX", compression="zlib")
        _write_tiff(img_path, f.image, "CZYX", compression)
    except Exception as err:  # reported, never aborts the other fields
        return fov, f"{type(err).__name__}: {err}"
    return fov, None


def _check_same_settings(out: Path, cfg: SyntheticAtlasConfig, *, overwrite: bool) -> None:
    """Refuse a folder that is not a new one or an atlas of these settings; with
    ``overwrite``, clear an atlas of other settings first (no old image may stay
    beside the new labels)."""
    if not check_output(out, "synthetic atlas", resume=True, flag="out_dir"):
        return
    old = json.loads((out / "synth.json").read_text())["config"]
    if old == cfg.to_dict():
        return  # the same atlas: finish what is missing
    if not overwrite:
        raise ValueError(
            f"{out} holds an atlas made with other settings; use another folder or "
            "--overwrite (overwrite=True) to replace it"
        )
    clear_folder(out)


def _write_tables(out: Path, cfg: SyntheticAtlasConfig, catalog: Sequence[Any]) -> None:
    """``synth.json`` (settings, proteins) and the ground-truth tables."""
    from cyto import __version__

    meta = {
        "format_version": _FORMAT_VERSION,
        "cyto_version": __version__,
        "config": cfg.to_dict(),
        "image_size": cfg.image_size,
        "preprocess_hint": cfg.preprocess_hint,
        "preprocess_args": _preprocess_args(cfg),
        "channels": ["hoechst", "protein"],
        "proteins": [
            {
                "protein_id": p.protein_id,
                "family": p.family,
                "complex": p.complex,
                "expression": p.expression,
                "params": p.params,
            }
            for p in catalog
        ],
    }
    write_text_atomic(out / "synth.json", json.dumps(meta, indent=1), mkdir=True)
    _write_csv(
        out / "annotations.csv",
        ["ensg_id", "target_name", "annotation_name", "annotation_grade"],
        [row for p in catalog for row in _annotation_rows(p)],
    )
    _write_csv(
        out / "complexes.csv",
        ["protein_id", "complex"],
        [[p.protein_id, p.complex] for p in catalog],
    )
    _write_csv(
        out / "ground_truth.csv",
        ["protein_id", "family", "complex"],
        [[p.protein_id, p.family, p.complex] for p in catalog],
    )


def _render_fields(
    out: Path,
    cfg: SyntheticAtlasConfig,
    catalog: Sequence[Any],
    n_jobs: int,
    compression: str | None,
    progress: bool,
) -> dict[str, str]:
    """Render and write every field (in ``n_jobs`` processes); ``{fov_id: error}`` of failures."""
    from tqdm.auto import tqdm

    cfg_dict = cfg.to_dict()
    jobs = [
        (str(out), cfg_dict, p, k, compression)
        for p in catalog
        for k in range(cfg.fields_per_protein)
    ]
    failed: dict[str, str] = {}
    with tqdm(total=len(jobs), desc="cyto synth", unit="field", disable=not progress) as bar:
        if n_jobs == 1:
            results: Any = map(_generate_one, jobs)
            for fov, err in results:
                if err:
                    failed[fov] = err
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=n_jobs) as pool:
                for fov, err in pool.map(_generate_one, jobs, chunksize=2):
                    if err:
                        failed[fov] = err
                    bar.update()
    return failed


def _raise_if_none_written(out: Path, failed: Mapping[str, str], n: int) -> None:
    """A full disk, or no field written at all, is an error (not a warning beside an
    empty manifest); the fields written are kept for the rerun."""
    full = [k for k, v in failed.items() if "No space left" in v or "Errno 28" in v]
    if full:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device: {len(full)} of {n} synthetic fields could not be written",
            str(out),
        )
    if failed and len(failed) == n:
        first = next(iter(failed.items()))
        raise RuntimeError(f"no synthetic field could be written (e.g. {first[0]}: {first[1]})")


def _written_files(out: Path) -> list[str]:
    """What an atlas folder holds that cyto wrote (its tables, images and masks)."""
    return [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]


def _write_manifest(
    out: Path, cfg: SyntheticAtlasConfig, catalog: Sequence[Any], failed: Mapping[str, str]
) -> Path:
    """``fields.csv`` and ``manifest.csv`` of the fields that were written."""
    manifest_rows, field_rows = [], []
    for p in catalog:
        for k in range(cfg.fields_per_protein):
            fov, img_rel, mask_rel = _field_paths(p.protein_id, k)
            if fov in failed:
                continue
            plate = [f"plate{cfg.plate_of(k, p.index) + 1}"] if cfg.plates > 1 else []
            manifest_rows.append([img_rel, p.protein_id, fov, 1, 0, "CZYX", *plate])
            mask = mask_rel if cfg.write_masks else ""
            field_rows.append([fov, p.protein_id, p.family, p.complex, k, img_rel, mask])
    _write_csv(
        out / "fields.csv",
        ["fov_id", "protein_id", "family", "complex", "field_index", "path", "mask_path"],
        field_rows,
    )
    manifest = out / "manifest.csv"
    _write_csv(
        manifest,
        ["path", "protein_id", "fov_id", "protein_channel", "nucleus_channel", "axes"]
        + (["plate"] if cfg.plates > 1 else []),
        manifest_rows,
    )
    return manifest


def generate_atlas(
    out_dir: str | os.PathLike,
    config: SyntheticAtlasConfig | None = None,
    *,
    n_jobs: int = 1,
    compression: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic atlas: TIFF stacks, manifest and ground-truth tables.

    The folder receives

    - ``images/<protein_id>/<fov_id>.tif``: (2, Z, H, W) uint16 stacks, axes CZYX (in
      the TIFF description and the manifest),
      channel 0 Hoechst, channel 1 the protein;
    - ``manifest.csv`` (``path,protein_id,fov_id,protein_channel,nucleus_channel,axes``);
    - ``annotations.csv`` (OpenCell shape:
      ``ensg_id,target_name,annotation_name,annotation_grade``),
      ``complexes.csv`` (``protein_id,complex``), ``ground_truth.csv``
      (``protein_id,family,complex``);
    - ``masks/<protein_id>/<fov_id>.tif``: true nucleus labels (if ``write_masks``);
    - ``fields.csv`` (one row per field with its mask path) and ``synth.json`` (the
      settings, the per-protein parameters, ``preprocess_hint``: keyword arguments of
      ``cyto.preprocess.preprocess_fov``/``preprocess_dataset``, and ``preprocess_args``:
      the matching ``cyto preprocess`` options).

    Generation is resumable: fields whose files exist are skipped (files are written
    atomically, so an existing file is complete). A field that fails is reported and
    left out of the manifest; the others are still written.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    config : SyntheticAtlasConfig, optional
        Settings; defaults to ``SyntheticAtlasConfig()``.
    n_jobs : int
        Worker processes (fields are independent; the bytes do not depend on it).
    compression : {None, "zlib"}
        TIFF compression of the stacks (zlib level 1 with a predictor: ≈2× smaller,
        slower).
    progress : bool
        Show a progress bar.
    overwrite : bool
        Allow writing into a folder made with different settings.

    Returns
    -------
    manifest : Path
        Path of ``manifest.csv``.

    Raises
    ------
    ValueError
        If the folder holds an atlas made with other settings (and not ``overwrite``),
        or ``n_jobs``/``compression`` is invalid.

    Examples
    --------
    >>> import tempfile
    >>> from cyto.data import SyntheticAtlasConfig, generate_atlas
    >>> cfg = SyntheticAtlasConfig(families=("er", "golgi"), complexes_per_family=1,
    ...     complex_size=(2, 2), n_proteins=None, fields_per_protein=1, field_size=128,
    ...     z_planes=2)
    >>> path = generate_atlas(tempfile.mkdtemp(), cfg, progress=False)
    >>> path.name
    'manifest.csv'
    """
    cfg = SyntheticAtlasConfig() if config is None else config
    if not isinstance(cfg, SyntheticAtlasConfig):
        raise TypeError(f"`config` must be a SyntheticAtlasConfig, got {type(cfg).__name__}")
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"`n_jobs` must be a positive integer, got {n_jobs!r}")
    if compression not in (None, "zlib"):
        raise ValueError(f"`compression` must be None or 'zlib', got {compression!r}")
    out = Path(out_dir)
    catalog = make_catalog(cfg)
    _check_same_settings(out, cfg, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    _write_tables(out, cfg, catalog)
    failed = _render_fields(out, cfg, catalog, n_jobs, compression, progress)
    _raise_if_none_written(out, failed, len(catalog) * cfg.fields_per_protein)
    manifest = _write_manifest(out, cfg, catalog, failed)
    write_marker(out, "synthetic atlas", _written_files(out))
    if failed:
        lines = "\n".join(f"  {k}: {v}" for k, v in sorted(failed.items()))
        import warnings

        warnings.warn(
            f"{len(failed)} synthetic field(s) failed and are left out of the manifest:\n{lines}",
            RuntimeWarning,
            stacklevel=2,
        )
    return manifest
