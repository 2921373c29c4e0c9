"""The models cyto trains, by name: one place that maps a saved config to its model.

A model class takes its config and provides ``forward(x)``, ``loss(x, y, output,
reconstruction_scale=)`` (tensors with ``total``, ``task`` and ``terms``), and, for
``cyto embed``, either the Cytoself encoding path or ``embed_layout()`` and
``embed_arrays(x)``. Its config has ``preset(name, **overrides)``, ``from_saved``,
``to_dict`` and ``replace``. A model that learns from pairs of crops sets
``PAIRED = True`` (the trainer then serves :class:`~cyto.nn.PairedCropDataset`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MODELS", "build_model", "config_from_saved", "model_config", "model_name"]

#: Registered model names (``cyto train --model``).
MODELS = ("cytoself", "paired_inpainting")


def _classes(name: str) -> tuple[Any, Any]:
    if name == "cytoself":
        from ._config import CytoselfConfig
        from ._model import Cytoself

        return CytoselfConfig, Cytoself
    if name == "paired_inpainting":
        from ._inpainting import PairedInpainting, PairedInpaintingConfig

        return PairedInpaintingConfig, PairedInpainting
    raise ValueError(f"unknown model {name!r}; valid choices are {list(MODELS)}")


def model_name(config: Any) -> str:
    """The registered name of a model config (``"cytoself"`` for CytoselfConfig)."""
    return str(getattr(config, "model", "cytoself"))


def model_config(preset: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The config of the model named by ``overrides["model"]`` (default cytoself),
    from ``preset`` with the other overrides applied."""
    rest = dict(overrides or {})
    name = str(rest.pop("model", "cytoself"))
    config_cls, _ = _classes(name)
    return config_cls.preset(preset, **rest)


def config_from_saved(values: Mapping[str, Any], *, trust_plugins: bool = False) -> Any:
    """Rebuild a saved model config of any registered model.

    A saved config may name only registered encoders: one spelled
    ``"package.module:factory"`` is imported only with ``trust_plugins`` (or once the
    user has registered it), so opening a file never runs code it names.
    """
    from ._encoders import no_plugin_imports

    config_cls, _ = _classes(str(values.get("model", "cytoself")))
    if trust_plugins:
        return config_cls.from_saved(values)
    with no_plugin_imports():
        return config_cls.from_saved(values)


def build_model(config: Any) -> Any:
    """The model of a config."""
    _, model_cls = _classes(model_name(config))
    return model_cls(config)


def is_paired(config: Any) -> bool:
    """True when the model learns from pairs of crops."""
    return model_name(config) == "paired_inpainting"
