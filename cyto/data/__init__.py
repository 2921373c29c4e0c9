"""The HDF5 crop store and the synthetic cell atlas (no torch)."""

from cyto.data._store import CHANNEL_NAMES, FORMAT_VERSION, CropStore, write_crop_store

__all__: list[str] = ["CHANNEL_NAMES", "FORMAT_VERSION", "CropStore", "write_crop_store"]
