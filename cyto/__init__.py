"""cyto: self-supervised profiling of protein subcellular localization.

A reimplementation of *cytoself* (Kobayashi, Cheveralls, Leonetti & Royer,
Nature Methods 2022, doi:10.1038/s41592-022-01541-z) in four layers that talk
through plain arrays:

``cyto.preprocess``
    NumPy/SciPy/scikit-image: projection, nucleus segmentation, signed distance,
    cropping, readers and the batch writer of the crop store.
``cyto.data``
    The HDF5 crop store and the synthetic atlas generator.
``cyto.nn``
    PyTorch: encoders, vector quantizers, decoders, heads, the model, training
    and embedding.
``cyto.analysis``
    Arrays in, arrays out: clustering score, UMAP, feature spectra, figures.

Importing :mod:`cyto` is cheap: subpackages load on first attribute access and
only :mod:`cyto.nn` imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from cyto._lock import LockedError

__version__ = "0.1.0"

_SUBMODULES = ("preprocess", "data", "nn", "analysis")
__all__ = ["LockedError", "__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
