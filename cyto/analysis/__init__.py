"""Arrays in, arrays out: clustering score, UMAP atlas, feature spectra, figures (no torch)."""

__all__: list[str] = []
