"""The models cyto trains, by name: one registry from a saved config to its model.

Every model follows the contract of :mod:`cyto.nn._protocol` and is registered with
:func:`register_model` (cyto's own two are listed here); ``cyto train --model`` offers
:func:`list_models`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._protocol import CytoModel, ModelConfig

__all__ = [
    "build_model",
    "check_config",
    "config_from_saved",
    "list_models",
    "model_config",
    "model_name",
    "register_model",
    "saved_config",
]

# cyto's own models, imported on first use (listing them, as ``cyto --help`` does,
# imports no torch); their modules do not import this one
_MODELS: dict[str, tuple[type, type] | tuple[str, str]] = {
    "cytoself": ("._config:CytoselfConfig", "._model:Cytoself"),
    "paired_inpainting": ("._inpainting:PairedInpaintingConfig", "._inpainting:PairedInpainting"),
}


def register_model(name: str, config_cls: type, model_cls: type) -> None:
    """Make a model known to the trainer, the embedder and the CLI by ``name``.

    Parameters
    ----------
    name : str
        The name saved in its configs (``config_cls.model``) and given to ``--model``.
    config_cls : type
        A :class:`~cyto.nn._protocol.ModelConfig`.
    model_cls : type
        A :class:`~cyto.nn._protocol.CytoModel` built as ``model_cls(config)``.

    Raises
    ------
    ValueError
        If ``name`` is taken by other classes, or the config does not save ``name``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string, got {name!r}")
    if name in _MODELS and _classes(name) != (config_cls, model_cls):
        raise ValueError(f"a model named {name!r} is registered already")
    if getattr(config_cls, "model", None) != name:
        raise ValueError(
            f"`config_cls` {config_cls.__name__} must save model={name!r} in its configs"
        )
    _MODELS[name] = (config_cls, model_cls)


def list_models() -> tuple[str, ...]:
    """The registered model names, cytoself first."""
    return tuple(sorted(_MODELS, key=lambda n: (n != "cytoself", n)))


def _classes(name: str) -> tuple[type, type]:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices are {list(list_models())}")
    entry = _MODELS[name]
    if isinstance(entry[0], str):
        entry = tuple(_import(spec) for spec in entry)
        _MODELS[name] = entry
    return entry  # type: ignore[return-value]


def _import(spec: str) -> type:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module, __package__), attr)


def model_name(config: ModelConfig) -> str:
    """The registered name of a model config."""
    return str(config.model)


def model_config(preset: str, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    """The config of the model named by ``overrides["model"]`` (default cytoself),
    from ``preset`` with the other overrides applied."""
    rest = dict(overrides or {})
    config_cls, _ = _classes(str(rest.pop("model", "cytoself")))
    return config_cls.preset(preset, **rest)


def config_from_saved(values: Mapping[str, Any], *, trust_plugins: bool = False) -> ModelConfig:
    """Rebuild a saved model config of any registered model.

    A saved config may name only registered encoders: one spelled
    ``"package.module:factory"`` is imported only with ``trust_plugins`` (or once the
    user has registered it), so opening a file never runs code it names.
    """
    from ._encoders import no_plugin_imports

    config_cls, _ = _classes(str(values.get("model", "cytoself")))
    fields = {k: v for k, v in values.items() if k != "model"}
    if trust_plugins:
        return config_cls.from_saved(fields)
    with no_plugin_imports():
        return config_cls.from_saved(fields)


def saved_config(config: ModelConfig) -> dict[str, Any]:
    """What runs, checkpoints and embeddings files save of a model config: its fields
    and its registered name (``config_from_saved`` inverts it)."""
    return {**config.to_dict(), "model": model_name(config)}


def check_config(config: Any, what: str = "model_config") -> ModelConfig:
    """``config`` when it is the config of a registered model, else a TypeError."""
    known = {cfg for cfg, _ in (_classes(n) for n in list_models())}
    if type(config) not in known:
        names = sorted(c.__name__ for c in known)
        raise TypeError(f"`{what}` must be one of {names} or None; got {type(config).__name__}")
    return config


def build_model(config: ModelConfig) -> CytoModel:
    """The model of a config."""
    _, model_cls = _classes(model_name(config))
    return model_cls(config)
