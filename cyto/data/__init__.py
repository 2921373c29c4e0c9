"""The HDF5 crop store and the synthetic cell atlas (no torch)."""

__all__: list[str] = []
