"""The HDF5 crop store and the synthetic cell atlas (no torch)."""

from cyto.data._store import CHANNEL_NAMES, FORMAT_VERSION, CropStore, write_crop_store
from cyto.data.synthetic import (
    SyntheticAtlasConfig,
    SyntheticField,
    SyntheticProtein,
    generate_atlas,
    list_families,
    make_catalog,
    make_field,
)

__all__: list[str] = [
    "CHANNEL_NAMES",
    "FORMAT_VERSION",
    "CropStore",
    "SyntheticAtlasConfig",
    "SyntheticField",
    "SyntheticProtein",
    "generate_atlas",
    "list_families",
    "make_catalog",
    "make_field",
    "write_crop_store",
]
