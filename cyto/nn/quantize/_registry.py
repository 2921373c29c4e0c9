"""Registry of quantizer factories (register, create, list)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from ._module import VectorQuantizer

__all__ = ["create_quantizer", "list_quantizers", "register_quantizer"]

QuantizerFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, QuantizerFactory] = {}


def register_quantizer(
    name: str, factory: QuantizerFactory | None = None, *, overwrite: bool = False
) -> Any:
    """Register a quantizer factory under ``name`` (usable as a decorator).

    The factory is called as ``factory(num_embeddings, embedding_dim, *, split=..., beta=...,
    **kwargs)`` and must return an ``nn.Module`` whose ``forward(z)`` takes
    ``(B, split * embedding_dim, H, W)`` and returns a :class:`VQOutput`, and which has a
    ``lookup(indices)`` method.

    Parameters
    ----------
    name : str
        Registry key.
    factory : callable, optional
        Class or function building the quantizer; omit to use as a decorator.
    overwrite : bool, default False
        Allow replacing an existing entry.

    Returns
    -------
    factory or decorator

    Raises
    ------
    ValueError
        If ``name`` is already registered and ``overwrite`` is False.

    Examples
    --------
    >>> @register_quantizer("vq_wide_commit", overwrite=True)
    ... def _wide(num_embeddings, embedding_dim, **kwargs):
    ...     return VectorQuantizer(num_embeddings, embedding_dim, **{"beta": 1.0, **kwargs})
    >>> "vq_wide_commit" in list_quantizers()
    True
    >>> _ = _REGISTRY.pop("vq_wide_commit")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty str, got {name!r}")

    def decorator(fn: QuantizerFactory) -> QuantizerFactory:
        if not callable(fn):
            raise TypeError(f"`factory` must be callable, got {type(fn).__name__}")
        if name in _REGISTRY and not overwrite:
            raise ValueError(
                f"quantizer {name!r} is already registered; pass overwrite=True to replace it"
            )
        _REGISTRY[name] = fn
        return fn

    return decorator if factory is None else decorator(factory)


def list_quantizers() -> list[str]:
    """Sorted names of the registered quantizers.

    Examples
    --------
    >>> {"vq", "vq_ema"} <= set(list_quantizers())
    True
    """
    return sorted(_REGISTRY)


def create_quantizer(
    name: str | QuantizerFactory, num_embeddings: int, embedding_dim: int, **kwargs: Any
) -> nn.Module:
    """Build a quantizer from a registered name, a class or a factory.

    Parameters
    ----------
    name : str or callable
        Registered name (see :func:`list_quantizers`) or a factory/class.
    num_embeddings, embedding_dim : int
        Codebook size and code dimension.
    **kwargs
        Passed to the factory (``split``, ``beta``, ``backend``, ...).

    Returns
    -------
    nn.Module

    Raises
    ------
    ValueError
        If ``name`` is not registered (the message lists the registered names).

    Examples
    --------
    >>> vq = create_quantizer("vq_ema", 32, 8, split=2, backend="torch")
    >>> vq.update
    'ema'
    """
    if callable(name):
        return name(num_embeddings, embedding_dim, **kwargs)
    if name not in _REGISTRY:
        raise ValueError(f"unknown quantizer {name!r}; registered: {list_quantizers()}")
    return _REGISTRY[name](num_embeddings, embedding_dim, **kwargs)


register_quantizer("vq", VectorQuantizer)
register_quantizer("vq_ema", partial(VectorQuantizer, update="ema"))
