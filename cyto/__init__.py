"""cyto: self-supervised profiling of protein subcellular localization.

A reimplementation of *cytoself* (Kobayashi, Cheveralls, Leonetti & Royer,
Nature Methods 2022, doi:10.1038/s41592-022-01541-z) in four layers that talk
through plain arrays and small dataclasses, joined only by the workflows and the CLI:

``cyto.preprocess``
    NumPy/SciPy/scikit-image: readers, projection, nucleus segmentation, signed
    distance, cropping, and the batch writer of the crop store.
``cyto.data``
    Every file format's one owner (crop store, embeddings file, run folder, output
    guard) and the synthetic atlas generator.
``cyto.nn``
    PyTorch: encoders, vector quantizers, decoders, heads, the models (one contract,
    one registry), training and embedding.
``cyto.analysis``
    Arrays in, arrays out: clustering score, UMAP, feature spectra, retrieval, the
    report and the explorer.
``cyto.workflows``
    Thin glue joining the layers: the demo, the ablation study, the evaluation card;
    the command line (``cyto.cli``, one module per command in ``cyto._commands``)
    calls it.

Importing :mod:`cyto` is cheap: subpackages load on first attribute access and
only :mod:`cyto.nn` imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from cyto._lock import LockedError

__version__ = "0.1.0"

_SUBMODULES = ("preprocess", "data", "nn", "analysis", "workflows")
__all__ = ["LockedError", "__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
