"""Localization families of the synthetic atlas and their complex-level parameters.

Each family is one generative pattern (rendered in :mod:`._render`). A family declares
the continuous parameters that distinguish its complexes, each with a range; the
complexes of a family draw their parameters inside these ranges (spread apart by a
farthest-point choice), so complexes of one family differ in puncta size and number,
texture scale, perinuclear bias, nuclear/cytoplasmic ratio, rim thickness and so on.
Lengths are in pixels at ``scale=1`` (512×512 fields, nuclei ≈ 30–40 px across).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FAMILIES", "FamilySpec", "list_families", "sample_complex_params"]


@dataclass(frozen=True)
class FamilySpec:
    """One localization family: its name, a description and its parameter ranges.

    Attributes
    ----------
    name : str
        Family name, following the OpenCell annotation vocabulary where one exists.
    description : str
        What the pattern looks like.
    params : dict of str to (float, float)
        Range ``(low, high)`` of each complex-level parameter.
    nuclear : bool
        True for patterns that live inside the interphase nucleus; in mitotic cells
        (no nuclear envelope) such proteins spread through the whole cell.
    """

    name: str
    description: str
    params: dict[str, tuple[float, float]]
    nuclear: bool = False


_SPECS = (
    FamilySpec(
        "nucleoplasm",
        "diffuse nuclear signal with fine texture, dimmer in nucleoli",
        {
            "texture": (0.08, 0.4),
            "texture_scale": (0.8, 2.6),
            "nucleolar_exclusion": (0.3, 0.9),
            "cyto_frac": (0.0, 0.12),
        },
        nuclear=True,
    ),
    FamilySpec(
        "nucleolus_gc",
        "a few bright blobs inside the nucleus (granular component), "
        "optionally with inner puncta (fibrillar centres)",
        {
            "nucleoplasm_frac": (0.03, 0.2),
            "rim": (0.0, 0.7),
            "puncta_frac": (0.0, 0.5),
            "size": (0.8, 1.3),
        },
        nuclear=True,
    ),
    FamilySpec(
        "nuclear_membrane",
        "a thin rim at the nuclear boundary, smooth or punctate (pores)",
        {
            "thickness": (0.7, 1.9),
            "pore_contrast": (0.0, 0.9),
            "nucleoplasm_frac": (0.0, 0.15),
            "er_frac": (0.0, 0.15),
        },
        nuclear=True,
    ),
    FamilySpec(
        "chromatin",
        "nuclear texture that follows the Hoechst chromatin texture; "
        "stays on the condensed chromosomes in mitosis",
        {
            "contrast": (0.6, 1.7),
            "nucleolar_exclusion": (0.4, 0.95),
            "bg_frac": (0.0, 0.12),
        },
    ),
    FamilySpec(
        "nuclear_punctae",
        "speckles inside the nucleus over a dim nucleoplasm",
        {
            "count": (6.0, 40.0),
            "size": (0.7, 1.6),
            "bg_frac": (0.05, 0.35),
            "spread": (0.2, 0.9),
        },
        nuclear=True,
    ),
    FamilySpec(
        "cytoplasmic",
        "diffuse cytoplasm, excluded from the nucleus",
        {
            "nuclear_frac": (0.0, 0.2),
            "edge_falloff": (0.3, 2.0),
            "texture": (0.0, 0.3),
            "perinuclear": (0.0, 0.6),
        },
    ),
    FamilySpec(
        "er",
        "reticular network, denser near the nucleus, continuous with the envelope",
        {
            "mesh": (1.6, 3.2),
            "width": (0.25, 0.6),
            "perinuclear": (0.2, 0.9),
            "envelope": (0.0, 0.4),
            "diffuse_frac": (0.05, 0.25),
        },
    ),
    FamilySpec(
        "mitochondria",
        "short tubules scattered in the cytoplasm",
        {
            "count": (20.0, 70.0),
            "length": (3.0, 12.0),
            "size": (0.7, 1.3),
            "perinuclear": (0.0, 0.7),
        },
    ),
    FamilySpec(
        "vesicles",
        "many small cytoplasmic puncta of varied brightness",
        {
            "count": (30.0, 180.0),
            "size": (0.6, 1.4),
            "perinuclear": (0.0, 0.8),
            "spread": (0.2, 1.0),
            "diffuse_frac": (0.05, 0.3),
        },
    ),
    FamilySpec(
        "golgi",
        "compact perinuclear ribbon on one side of the nucleus",
        {
            "extent": (0.5, 1.6),
            "thickness": (1.0, 3.0),
            "stacks": (2.0, 8.0),
            "gap": (0.5, 4.0),
            "diffuse_frac": (0.05, 0.25),
        },
    ),
    FamilySpec(
        "membrane",
        "plasma membrane: the cell boundary over a dim cytoplasm",
        {
            "thickness": (0.7, 1.8),
            "cyto_frac": (0.05, 0.35),
            "puncta_frac": (0.0, 0.5),
        },
    ),
    FamilySpec(
        "centrosome",
        "one or two bright dots next to the nucleus, with satellites",
        {
            "size": (0.8, 1.6),
            "satellites": (0.0, 25.0),
            "dot_frac": (0.01, 0.05),
            "gap": (1.0, 5.0),
        },
    ),
    FamilySpec(
        "cytoskeleton",
        "filaments across the cell, radial from the centrosome or cortical",
        {
            "count": (8.0, 40.0),
            "radial": (0.0, 1.0),
            "size": (0.6, 1.3),
            "cortical": (0.0, 0.8),
            "diffuse_frac": (0.1, 0.3),
        },
    ),
    FamilySpec(
        "mixed",
        "diffuse nuclear and cytoplasmic signal on a continuum of nuclear/cytoplasmic "
        "ratios (the paper's grey band)",
        {
            "nuclear_ratio": (0.12, 0.88),
            "texture": (0.0, 0.2),
        },
        nuclear=True,
    ),
)

FAMILIES: dict[str, FamilySpec] = {spec.name: spec for spec in _SPECS}


def list_families() -> list[str]:
    """Names of the localization families of the synthetic atlas.

    Returns
    -------
    names : list of str
        Family names in a fixed order; ``"mixed"`` is last.

    Examples
    --------
    >>> from cyto.data import list_families
    >>> len(list_families()) >= 13, list_families()[-1]
    (True, 'mixed')
    """
    return list(FAMILIES)


def sample_complex_params(
    family: str, n_complexes: int, rng: np.random.Generator, *, spread: float = 1.0
) -> list[dict[str, float]]:
    """Draw parameter sets for the complexes of one family, spread apart.

    Parameters are drawn in the unit cube of the family's ranges (shrunk around the
    centre by ``spread``), choosing each complex as the farthest of 32 candidates from
    the complexes already chosen, so complexes are distinct but stay within the family.
    For ``"mixed"`` the nuclear ratio is laid out on an even grid (a continuum).
    """
    spec = FAMILIES[family]
    names = list(spec.params)
    lo = np.array([spec.params[k][0] for k in names])
    hi = np.array([spec.params[k][1] for k in names])
    chosen: list[np.ndarray] = []
    for _ in range(n_complexes):
        cand = 0.5 + spread * (rng.random((32, len(names))) - 0.5)
        if chosen:
            dist = np.min(np.linalg.norm(cand[:, None, :] - np.array(chosen)[None], axis=2), axis=1)
            pick = cand[int(np.argmax(dist))]
        else:
            pick = cand[0]
        chosen.append(pick)
    unit = np.array(chosen)
    if family == "mixed" and n_complexes > 0:
        j = names.index("nuclear_ratio")
        grid = (np.arange(n_complexes) + 0.5) / n_complexes
        unit[:, j] = 0.5 + spread * (grid[rng.permutation(n_complexes)] - 0.5)
    values = lo + unit * (hi - lo)
    return [{k: float(v) for k, v in zip(names, row)} for row in values]
