"""The model contract: what every model cyto trains and embeds provides.

The trainer, the embedder, the time budget and the CLI know a model only through this
contract (and find it by name in :mod:`cyto.nn._registry`); none of them asks a model
what it is. A new model implements :class:`ModelConfig` and :class:`CytoModel` and calls
:func:`~cyto.nn.register_model`; ``tests/nn/test_model_contract.py`` then trains it a
step, checkpoints, reloads and embeds it like every other model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["CytoModel", "ModelConfig", "ModelLoss"]


@dataclass
class ModelLoss:
    """One training step's loss, as tensors on the model's device (never read back).

    Attributes
    ----------
    total : scalar Tensor
        What the optimizer minimises.
    task : scalar Tensor
        The part of ``total`` whose scale the data fixes (the default criterion of the
        best checkpoint, ``task_loss``); ``total`` when every term is such a part.
    terms : dict of str to scalar Tensor
        Unweighted loss terms by name (logged as such).
    metrics : dict of str to scalar Tensor
        Detached numbers worth logging that are not losses (perplexities, accuracies).
    """

    total: torch.Tensor
    task: torch.Tensor | None = None
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    def values(self) -> dict[str, torch.Tensor]:
        """Everything logged for a step, by name: ``loss``, ``task_loss``, the terms and
        the metrics (detached tensors, in this order)."""
        task = self.task if self.task is not None else self.total
        out = {"loss": self.total.detach(), "task_loss": task.detach()}
        out.update({name: term.detach() for name, term in self.terms.items()})
        out.update(self.metrics)
        return out


@runtime_checkable
class ModelConfig(Protocol):
    """A model's configuration: frozen, validated, JSON-safe, with named presets.

    ``model`` is the registered name written into every saved config.
    """

    model: str
    in_channels: int
    image_size: int

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named configuration (at least ``"tiny"``, ``"small"``, ``"paper"``)."""
        ...

    @classmethod
    def from_saved(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config saved with a run, checkpoint or embeddings file."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict (``from_saved`` inverts it; the registry adds
        the ``model`` name when it saves one)."""
        ...

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with fields changed (validated again)."""
        ...

    def for_data(self, *, in_channels: int, image_size: int, num_classes: int) -> ModelConfig:
        """This config fitted to a crop store: its channels, crop side and classes."""
        ...

    @property
    def codebook_sizes(self) -> tuple[int, int]:
        """Codes of the local and the global codebook; ``(0, 0)`` without codebooks."""
        ...

    @property
    def quantizer(self) -> str | None:
        """The codebook update rule (``"ema"`` or ``"paper"``); None without codebooks."""
        ...


@runtime_checkable
class CytoModel(Protocol):
    """A model: a ``torch.nn.Module`` built from its :class:`ModelConfig`.

    ``paired`` models learn from pairs of crops of one protein (the trainer then serves
    :class:`~cyto.nn.PairedCropDataset`, whose items stack the two crops' channels).
    """

    paired: ClassVar[bool]
    config: Any

    def __call__(self, x: torch.Tensor) -> Any:
        """The forward pass: an output object the model's own :meth:`loss` reads."""
        ...

    def loss(
        self, x: torch.Tensor, y: torch.Tensor | None, output: Any, *, reconstruction_scale: float
    ) -> ModelLoss:
        """The loss of one forward pass; ``reconstruction_scale`` divides pixel MSEs."""
        ...

    def health_arrays(self, output: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The global encodings ``(B, D)`` of a forward pass and their code indices
        ``(B, k)`` (None without codebooks), for the encoding-health check."""
        ...

    @property
    def global_shape(self) -> tuple[int, ...]:
        """Shape of one crop's global encoding."""
        ...

    @property
    def local_shape(self) -> tuple[int, ...]:
        """Shape of one crop's local encoding (``(0,)`` when there is none)."""
        ...

    def embed_layout(
        self, *, logits: bool, local: bool, global_only: bool
    ) -> dict[str, tuple[int, np.dtype]]:
        """The datasets ``cyto embed`` writes: name to (row width, dtype); ``global`` is
        always one of them."""
        ...

    def embed_arrays(
        self, x: torch.Tensor, *, logits: bool, local: bool, global_only: bool
    ) -> dict[str, np.ndarray]:
        """The rows of :meth:`embed_layout` for a batch of single crops ``(B, C, S, S)``."""
        ...
