"""Lazy imports of optional dependencies with an error that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str, *, purpose: str | None = None) -> ModuleType:
    """Import an optional dependency or fail with installation advice.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"matplotlib.pyplot"``.
    extra : str
        Name of the cyto extra that provides it, e.g. ``"plot"``.
    purpose : str, optional
        What the caller needs it for, added to the error message.

    Returns
    -------
    module : ModuleType
        The imported module.

    Raises
    ------
    MissingExtraError
        (an ImportError) If the module cannot be imported; the message says which
        extra to install.

    Examples
    --------
    >>> np = require("numpy", "core")
    >>> np.__name__
    'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"{module!r} is needed{what} but is not installed; "
            f'install it with `pip install "cyto[{extra}]"`'
        ) from err
