"""Synthetic cell atlas: procedural fluorescence fields with two-level ground truth.

Fields of view are two-channel z-stacks (Hoechst + tagged protein) of irregular cells
with known nuclei, rendered with one of the localization families of
:func:`list_families`. Proteins belong to complexes that share one parameter set;
complexes of one family differ subtly, so organelle-level separation is easy and
complex-level separation needs a good model. NumPy/SciPy only.

A second kind, a synthetic **Cell Painting screen** (:func:`generate_cellpainting`),
renders 5-stain fields of perturbed cells with known mechanisms of action.

See ``docs/synthetic.md`` for the layout of the output folder and the preprocessing
settings that match it.
"""

from cyto.data.synthetic._atlas import (
    SyntheticAtlasConfig,
    SyntheticField,
    SyntheticProtein,
    generate_atlas,
    make_catalog,
    make_field,
)
from cyto.data.synthetic._cellpainting import CellPaintingConfig, generate_cellpainting
from cyto.data.synthetic._families import list_families

__all__ = [
    "CellPaintingConfig",
    "SyntheticAtlasConfig",
    "SyntheticField",
    "SyntheticProtein",
    "generate_atlas",
    "generate_cellpainting",
    "list_families",
    "make_catalog",
    "make_field",
]
