"""User code by name: ``"package.module:attribute"`` → the object (standard library only).

The one way cyto imports a user's plug-in (an encoder factory, a nucleus segmenter), so
every registry accepts the same spelling and gives the same errors.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_object", "is_import_path"]


def is_import_path(name: str) -> bool:
    """True when ``name`` is spelled ``"package.module:attribute"``."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr)


def import_object(name: str, what: str) -> Any:
    """Import the callable named ``"package.module:attribute"`` (dotted attributes allowed).

    Parameters
    ----------
    name : str
        The import path.
    what : str
        What the object is for, used in error messages (e.g. ``"encoder"``).

    Returns
    -------
    obj : callable

    Raises
    ------
    ValueError
        If the module cannot be imported, lacks the attribute, or the attribute is not
        callable.

    Examples
    --------
    >>> import_object("os.path:join", "joiner")("a", "b")
    'a/b'
    """
    module, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as err:
        raise ValueError(
            f"{what} {name!r}: cannot import {module!r} ({err}); is it installed, or on PYTHONPATH?"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what} {name!r}: {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{what} {name!r} is a {type(obj).__name__}, not a callable")
    return obj
