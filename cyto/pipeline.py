"""Deprecated: the old name of :mod:`cyto.workflows` (``cyto demo``, ``cyto ablate``,
``cyto evaluate``). Importing it warns; import from :mod:`cyto.workflows` instead."""

import warnings

from cyto.workflows import *  # noqa: F403  (the same names, listed once there)
from cyto.workflows import __all__  # noqa: F401

warnings.warn(
    "cyto.pipeline is deprecated and will be removed: import from cyto.workflows (the same names)",
    DeprecationWarning,
    stacklevel=2,
)
