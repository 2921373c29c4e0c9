"""The public names of :mod:`cyto.workflows` (``cyto demo`` and ``cyto ablate``), under
the module name they have always had; the CLI calls the workflows through it."""

from cyto.workflows import *  # noqa: F403  (the same names, listed once there)
from cyto.workflows import __all__  # noqa: F401
from cyto.workflows._inputs import _check_preprocessed  # noqa: F401  (tests)
