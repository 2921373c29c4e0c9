"""Nucleus segmenters: cyto's own by default, a user's (cellpose, StarDist...) by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from cyto._plugins import import_object, is_import_path
from cyto.preprocess._nuclei import segment_nuclei
from cyto.preprocess._validate import components_if_binary

__all__ = ["list_segmenters", "register_segmenter", "resolve_segmenter", "run_segmenter"]

Segmenter = Callable[..., np.ndarray]
_REGISTRY: dict[str, Segmenter] = {"cyto": segment_nuclei}


def register_segmenter(name: str, func: Segmenter, *, overwrite: bool = False) -> None:
    """Register a nucleus segmenter under ``name``.

    A segmenter is called as ``func(image)`` — ``image`` the (downsampled) Hoechst
    field, a 2-D float array — plus ``nucleus_diameter=`` (pixels of ``image``, or None)
    and ``min_contrast=`` when it accepts them, and returns a 2-D integer label image
    of the same shape (0 = background; a binary mask, e.g. 0/1 or 0/255, is labelled by
    connected components).

    Parameters
    ----------
    name : str
        The name used by ``segmenter=`` and ``cyto preprocess --segmenter``.
    func : callable
        The segmenter.
    overwrite : bool, default False
        Replace a segmenter already registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is taken (and not ``overwrite``) or ``func`` is not callable.
    """
    if not callable(func):
        raise ValueError(f"segmenter {name!r} must be callable, got {type(func).__name__}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a segmenter named {name!r} is already registered")
    _REGISTRY[name] = func


def list_segmenters() -> list[str]:
    """Names of the registered segmenters, sorted."""
    return sorted(_REGISTRY)


def resolve_segmenter(segmenter: str | Segmenter | None) -> tuple[str, Segmenter]:
    """The segmenter and its name from a registered name, an import path or a callable.

    Parameters
    ----------
    segmenter : str, callable or None
        ``None`` or ``"cyto"`` (the default, :func:`segment_nuclei`), another registered
        name, ``"package.module:function"`` (imported and registered), or a callable.

    Returns
    -------
    name : str
        What the crop store records (``module:qualname`` for a callable).
    func : callable

    Raises
    ------
    ValueError
        If the name is neither registered nor importable.

    Examples
    --------
    >>> resolve_segmenter(None)[0]
    'cyto'
    """
    if segmenter is None:
        segmenter = "cyto"
    if callable(segmenter):
        name = f"{segmenter.__module__}:{getattr(segmenter, '__qualname__', 'segmenter')}"
        return name, segmenter
    if not isinstance(segmenter, str) or not segmenter:
        raise ValueError(f"`segmenter` must be a name or a callable, got {segmenter!r}")
    if segmenter not in _REGISTRY:
        if not is_import_path(segmenter):
            raise ValueError(
                f"unknown segmenter {segmenter!r}; valid choices are {list_segmenters()}, "
                "or your own function as 'package.module:function'"
            )
        _REGISTRY[segmenter] = import_object(segmenter, "segmenter")
    return segmenter, _REGISTRY[segmenter]


def run_segmenter(
    segmenter: str | Segmenter | None, image: np.ndarray, **options: Any
) -> np.ndarray:
    """Segment ``image`` and check the labels (2-D, integer, same shape).

    ``options`` (``nucleus_diameter``, ``min_contrast``) are passed on when the
    segmenter accepts them.
    """
    name, func = resolve_segmenter(segmenter)
    try:
        params = inspect.signature(func).parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in options.items() if var_kw or k in params}
    except (TypeError, ValueError):  # builtins without a signature
        kwargs = {}
    labels = np.asarray(func(image, **kwargs))
    if labels.shape != image.shape or labels.dtype.kind not in "biu":
        raise ValueError(
            f"segmenter {name!r} returned {labels.dtype} labels of shape {labels.shape}; "
            f"expected integer labels of the image's shape {image.shape}"
        )
    components = components_if_binary(labels)  # a foreground mask: one label per component
    return components if components is not None else labels.astype(np.int32, copy=False)
