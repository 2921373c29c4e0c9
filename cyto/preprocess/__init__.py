"""From raw z-stacks to normalized, cell-centred crops (NumPy/SciPy/scikit-image only)."""

__all__: list[str] = []
