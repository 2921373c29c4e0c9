"""The model configuration: a frozen, validated, JSON-safe dataclass with presets."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["CODEBOOKS", "CytoselfConfig"]

_BACKENDS = ("auto", "torch", "triton")

#: Codebook behaviours of both quantizers (``CytoselfConfig.codebook``): the
#: :class:`~cyto.nn.VectorQuantizer` options each one stands for. ``quantizer_options``
#: are applied on top.
CODEBOOKS: dict[str, dict[str, Any]] = {
    # The default. Codes are moving averages of the encoder outputs assigned to them, so
    # they follow the encoders however fast their outputs grow or move; k-means on the
    # first batch puts them where the data are; codes unused for about 300 steps restart
    # on a random encoder output. On real images the published codebook below lets
    # the global quantizer's loss run away and the global encoding collapse to a few
    # code maps (docs/training.md, benchmarks/results/real.md).
    "ema": {"update": "ema", "kmeans_init": True, "dead_code_threshold": 0.05},
    # The published model: codes are parameters trained by the codebook loss, drawn
    # uniformly in +-0.05, no restarts.
    "paper": {"update": "loss", "kmeans_init": False, "dead_code_threshold": 0.0},
}

_PRESETS: dict[str, dict[str, Any]] = {
    # The published model (paper Methods, Supp. Fig. 9).
    "paper": {},
    # Same topology, about a quarter of the compute: trains to a useful model on tens of
    # proteins x a few thousand crops in minutes on a 2-core CPU.
    "small": {
        "encoder_options": {"width": 0.5, "depth": 0.5},
        "num_embeddings_local": 512,
        "num_embeddings_global": 512,
        "embedding_dim": 32,
        "fc_hidden": 256,
        "fc_dropout": 0.3,
        "decoder_channels": 32,
        "decoder_min_channels": 16,
    },
    # For tests: builds and steps in milliseconds.
    "tiny": {
        "image_size": 32,
        "num_classes": 4,
        "encoder_options": {"width": 0.25, "depth": 0.25},
        "num_embeddings_local": 32,
        "num_embeddings_global": 32,
        "embedding_dim": 8,
        "fc_hidden": 16,
        "fc_dropout": 0.0,
        "decoder_channels": 16,
        "decoder_min_channels": 8,
    },
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_nonneg_number(value: Any) -> bool:
    """A finite int or float >= 0 (bools are not numbers here)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


@dataclass(frozen=True)
class CytoselfConfig:
    """Configuration of a :class:`~cyto.nn.Cytoself` model (validated on creation).

    The defaults are the published model (preset ``"paper"``): 100×100 crops, the
    EfficientNet-B0 split, local representation 25×25×64 quantized with 2048 codes,
    global representation 4×4×576 quantized with split 9 against 2048 codes, fc heads of
    1000 hidden units with dropout 0.5, every loss weight 1.

    Parameters
    ----------
    in_channels : int, default 2
        Image channels (decided by the data, e.g. protein + nuclear distance).
    num_classes : int, default 1311
        Number of protein identities for the identification heads.
    image_size : int, default 100
        Side of the square input crops.
    encoder : str, default "efficientnet_b0"
        Name of a registered encoder pair (:func:`~cyto.nn.list_encoders`), or your
        own factory as ``"package.module:factory"`` (imported and registered; see
        :func:`~cyto.nn.resolve_encoder`).
    encoder_options : dict, default {}
        Extra keyword options of the encoder factory (e.g. ``{"width": 0.5}``).
    num_embeddings_local, num_embeddings_global : int, default 2048
        Codebook sizes of VQ1 (local) and VQ2 (global).
    embedding_dim : int, default 64
        Channels of the local representation and dimension of each code.
    global_split : int, default 9
        Sub-vectors per global vector (split quantization).
    global_channels : int, optional
        Channels of the global representation; default ``embedding_dim * global_split``.
        Must be divisible by ``global_split``.
    beta : float, default 0.25
        Commitment cost.
    codebook : {"ema", "paper"}, default "ema"
        How the codebooks of both quantizers learn (:data:`CODEBOOKS`): ``"ema"``
        (moving-average codes, k-means initialisation, dead-code restarts; holds on
        real images) or ``"paper"`` (the published loss-trained codes from uniform
        ±0.05).
    quantizer_backend : {"auto", "torch", "triton"}, default "auto"
        Backend of both vector quantizers.
    quantizer_options : dict, default {}
        Extra keyword options for both :class:`~cyto.nn.VectorQuantizer` instances,
        applied over those of ``codebook``.
    quantize : bool, default True
        Ablation switch: False keeps continuous encodings (no VQ layers).
    split_quantization : bool, default True
        Ablation switch: False quantizes whole global vectors (split 1, codes of
        ``global_channels`` dimensions).
    classify : bool, default True
        Ablation switch: False removes the identification heads and their loss.
    decode : bool, default True
        Ablation switch: False removes both decoders and the reconstruction losses.
    w_reconstruction, w_vq, w_classification : float, default 1.0
        Loss weights.
    fc_hidden : int, default 1000
        Hidden units of the identification heads.
    fc_dropout : float, default 0.5
        Dropout after the hidden layer of the heads.
    decoder_channels : int, default 64
        Width of the decoders after their first convolution.
    decoder_min_channels : int, default 32
        Smallest decoder width (it halves at every ×2 upsampling).
    decoder_blocks : int, default 1
        Residual blocks per decoder resolution.
    detach_local_target : bool, default True
        Stop the gradient of the local reconstruction target (encoder1's output) so the
        decoder2 loss trains decoder2 and encoder2 but cannot shrink encoder1's output.

    Raises
    ------
    ValueError
        If a field is out of range, the encoder is unknown (the message lists the
        registered ones) or ``global_channels`` is not divisible by ``global_split``.

    Examples
    --------
    >>> cfg = CytoselfConfig.preset("paper", in_channels=1, num_classes=50)
    >>> cfg.global_channels, cfg.num_embeddings_local
    (576, 2048)
    >>> CytoselfConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    in_channels: int = 2
    num_classes: int = 1311
    image_size: int = 100
    encoder: str = "efficientnet_b0"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    num_embeddings_local: int = 2048
    num_embeddings_global: int = 2048
    embedding_dim: int = 64
    global_split: int = 9
    global_channels: int | None = None
    beta: float = 0.25
    codebook: str = "ema"
    quantizer_backend: str = "auto"
    quantizer_options: dict[str, Any] = field(default_factory=dict)
    quantize: bool = True
    split_quantization: bool = True
    classify: bool = True
    decode: bool = True
    w_reconstruction: float = 1.0
    w_vq: float = 1.0
    w_classification: float = 1.0
    fc_hidden: int = 1000
    fc_dropout: float = 0.5
    decoder_channels: int = 64
    decoder_min_channels: int = 32
    decoder_blocks: int = 1
    detach_local_target: bool = True

    PRESETS: ClassVar[tuple[str, ...]] = tuple(_PRESETS)
    #: The registered model name (:func:`cyto.nn.register_model`); saved configs
    #: without a ``model`` key are cytoself's.
    model: ClassVar[str] = "cytoself"

    def __post_init__(self) -> None:
        for name in (
            "in_channels",
            "num_classes",
            "image_size",
            "num_embeddings_local",
            "num_embeddings_global",
            "embedding_dim",
            "global_split",
            "fc_hidden",
            "decoder_channels",
            "decoder_min_channels",
            "decoder_blocks",
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")
        if self.image_size < 8:
            raise ValueError(f"`image_size` must be at least 8, got {self.image_size}")
        if self.classify and self.num_classes < 2:
            raise ValueError(
                f"`num_classes` must be >= 2 when classify=True, got {self.num_classes}"
            )
        if self.global_channels is None:
            object.__setattr__(self, "global_channels", self.embedding_dim * self.global_split)
        gc = self.global_channels
        if not _is_int(gc) or gc < 1:
            raise ValueError(f"`global_channels` must be a positive int, got {gc!r}")
        if gc % self.global_split:
            raise ValueError(
                f"`global_channels` ({gc}) must be divisible by `global_split` "
                f"({self.global_split})"
            )
        for name in ("quantize", "split_quantization", "classify", "decode", "detach_local_target"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be a bool, got {getattr(self, name)!r}")
        for name in ("beta", "w_reconstruction", "w_vq", "w_classification"):
            value = getattr(self, name)
            if not _is_nonneg_number(value):
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
        if not isinstance(self.fc_dropout, int | float) or not 0 <= self.fc_dropout < 1:
            raise ValueError(f"`fc_dropout` must be in [0, 1), got {self.fc_dropout!r}")
        if self.decoder_min_channels > self.decoder_channels:
            raise ValueError(
                f"`decoder_min_channels` ({self.decoder_min_channels}) must not exceed "
                f"`decoder_channels` ({self.decoder_channels})"
            )
        if self.codebook not in CODEBOOKS:
            raise ValueError(f"`codebook` must be one of {list(CODEBOOKS)}, got {self.codebook!r}")
        if self.quantizer_backend not in _BACKENDS:
            raise ValueError(
                f"`quantizer_backend` must be one of {list(_BACKENDS)}, "
                f"got {self.quantizer_backend!r}"
            )
        for name in ("encoder_options", "quantizer_options"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ValueError(f"`{name}` must be a dict, got {type(value).__name__}")
            try:
                json.dumps(dict(value))
            except TypeError as err:
                raise ValueError(f"`{name}` must be JSON-serialisable: {err}") from None
            object.__setattr__(self, name, copy.deepcopy(dict(value)))
        from ._encoders import resolve_encoder

        resolve_encoder(self.encoder)

    def __hash__(self) -> int:
        # the option dicts are unhashable; hash the canonical JSON instead
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    # ------------------------------------------------------------------ derived values
    @property
    def vq_options(self) -> dict[str, Any]:
        """Keyword options of both quantizers: ``codebook``'s, then ``quantizer_options``."""
        return {**CODEBOOKS[self.codebook], **self.quantizer_options}

    @property
    def global_embedding_dim(self) -> int:
        """Dimension of the codes of VQ2 (``global_channels / global_split``, or all of it)."""
        gc = int(self.global_channels)  # type: ignore[arg-type]
        return gc // self.global_split if self.split_quantization else gc

    @property
    def global_vq_split(self) -> int:
        """Sub-vectors per global vector as quantized by VQ2 (1 without split)."""
        return self.global_split if self.split_quantization else 1

    @property
    def codebook_sizes(self) -> tuple[int, int]:
        """Codes of VQ1 and VQ2; ``(0, 0)`` for a model that does not quantize."""
        if not self.quantize:
            return (0, 0)
        return (self.num_embeddings_local, self.num_embeddings_global)

    @property
    def quantizer(self) -> str | None:
        """The codebook update rule (``codebook``); None for a model that does not quantize."""
        return self.codebook if self.quantize else None

    def for_data(self, *, in_channels: int, image_size: int, num_classes: int) -> CytoselfConfig:
        """This config fitted to a crop store: its channels, crop side and proteins
        (at least 2 classes, so a one-protein store still builds a model)."""
        return self.replace(
            in_channels=in_channels, image_size=image_size, num_classes=max(num_classes, 2)
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> CytoselfConfig:
        """A named configuration, optionally with fields overridden.

        Parameters
        ----------
        name : {"paper", "small", "tiny"}
            ``"paper"``: the published model. ``"small"``: same topology at about a
            quarter of the compute (width/depth 0.5, 512 codes of 32 dims, 256 hidden
            units), trains in minutes on a CPU. ``"tiny"``: 32×32 crops, for tests.
        **overrides
            Field values replacing the preset's (e.g. ``in_channels=1``).

        Returns
        -------
        CytoselfConfig

        Raises
        ------
        ValueError
            If the preset or a field name is unknown, or a value is invalid.

        Examples
        --------
        >>> CytoselfConfig.preset("tiny").image_size
        32
        """
        if name not in _PRESETS:
            raise ValueError(f"unknown preset {name!r}; valid choices are {list(_PRESETS)}")
        values = copy.deepcopy(_PRESETS[name])
        if "encoder" in overrides and "encoder_options" not in overrides:
            # the preset's options (width, depth) belong to its own encoder
            values["encoder_options"] = {}
        values.update(overrides)
        return cls.from_dict(values)

    @classmethod
    def from_saved(cls, values: Mapping[str, Any]) -> CytoselfConfig:
        """Rebuild the config saved with a run or checkpoint.

        Configs written before the ``codebook`` field existed trained the published
        codebooks, so a missing ``codebook`` reads as ``"paper"``.

        Parameters
        ----------
        values : mapping
            A saved ``to_dict()``.

        Returns
        -------
        CytoselfConfig
        """
        return cls.from_dict({"codebook": "paper", **dict(values)})

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict (``from_dict`` inverts it).

        Returns
        -------
        dict

        Examples
        --------
        >>> CytoselfConfig().to_dict()["global_channels"]
        576
        """
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CytoselfConfig:
        """Build a config from a dict such as ``to_dict()`` returns.

        Parameters
        ----------
        values : mapping
            Field names to values; missing fields take their defaults.

        Returns
        -------
        CytoselfConfig

        Raises
        ------
        ValueError
            If a key is not a field (the message lists the valid ones).

        Examples
        --------
        >>> CytoselfConfig.from_dict({"in_channels": 1}).in_channels
        1
        """
        if not isinstance(values, Mapping):
            raise TypeError(f"`values` must be a mapping, got {type(values).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; valid fields are {names}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> CytoselfConfig:
        """A copy with some fields changed (validated again).

        Parameters
        ----------
        **changes
            Field values.

        Returns
        -------
        CytoselfConfig

        Examples
        --------
        >>> CytoselfConfig().replace(classify=False).classify
        False
        """
        values = self.to_dict()
        if "embedding_dim" in changes or "global_split" in changes:
            if "global_channels" not in changes:
                values["global_channels"] = None
        values.update(changes)
        return self.from_dict(values)
