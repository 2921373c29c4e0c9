"""Paired cell inpainting (Lu, Kraus, Cooper & Moses, PLoS Comput. Biol. 2019): the
self-supervised method the cytoself paper compares itself with (its Supp. Table 2).

Pairs of crops of the same protein are drawn (:class:`~cyto.nn.PairedCropDataset`).
The model sees the *source* crop (protein and nucleus channels) and the *target*
crop's nucleus channel, and paints the target's protein channel; the loss is the
pixel-wise mean squared error. Features for profiling are the source encoder's
layers, max-pooled per channel.

Architecture as published (their Keras model): a source encoder of five 3×3
convolutions (96, 256, 384, 384, 256 filters; ReLU then batch norm; 2×2 max pooling
after the first two), a target encoder of three (16, 32, 32; pooling after the first
two), their maps concatenated, and a decoder of five 3×3 convolutions (256, 384, 384,
256, 96; 2× upsampling before the last two) and a 1×1 output convolution. Choices the
paper leaves open for our crops (documented in ``docs/model.md``): crops of any side
divisible by 4 (100×100 by default, the cytoself crops); layer widths scaled by
``width`` for the CPU presets; the target encoder reads the store's second channel
(the distance map or the nucleus image, whichever the crop store holds).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ._protocol import ModelLoss

__all__ = ["InpaintingLoss", "InpaintingOutput", "PairedInpainting", "PairedInpaintingConfig"]

#: Layers whose max-pooled activations are the profiling features (Lu et al.'s conv3-5).
FEATURE_LAYERS = ("conv3", "conv4", "conv5")

_PRESETS: dict[str, dict[str, Any]] = {
    # the published widths, 100×100 crops
    "paper": {"width": 1.0, "image_size": 100},
    # an eighth of the widths: about the cytoself small preset's compute per crop
    "small": {"width": 0.125, "image_size": 100},
    # for tests
    "tiny": {"width": 0.0625, "image_size": 32},
}


@dataclass(frozen=True)
class PairedInpaintingConfig:
    """Configuration of :class:`PairedInpainting` (frozen, JSON-safe, with presets).

    Parameters
    ----------
    in_channels : int, default 2
        Channels of a crop; at least 2 (the protein, then the nucleus or distance map).
    image_size : int, default 100
        Crop side; divisible by 4.
    width : float, default 1.0
        Multiplier of every layer's width (1.0: the published 96...384 filters).
    source_widths, target_widths, decoder_widths : tuple of int
        Filters of the source encoder's five, the target encoder's three and the
        decoder's five convolutions at ``width=1``.
    feature_layer : {"conv3", "conv4", "conv5"}, default "conv4"
        The layer written as the ``global`` encoding by ``cyto embed`` (every layer is
        written as ``layer_<name>`` too).
    target_channel : int, default 1
        The crop channel the target encoder sees (the nucleus).
    """

    in_channels: int = 2
    image_size: int = 100
    width: float = 1.0
    source_widths: tuple[int, ...] = (96, 256, 384, 384, 256)
    target_widths: tuple[int, ...] = (16, 32, 32)
    decoder_widths: tuple[int, ...] = (256, 384, 384, 256, 96)
    feature_layer: str = "conv4"
    target_channel: int = 1
    model: str = "paired_inpainting"

    def __post_init__(self) -> None:
        for name in ("source_widths", "target_widths", "decoder_widths"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.model != "paired_inpainting":
            raise ValueError(f"`model` must be 'paired_inpainting', got {self.model!r}")
        if not isinstance(self.in_channels, int) or self.in_channels < 2:
            raise ValueError(
                "paired cell inpainting needs at least 2 channels (the protein and the "
                f"nucleus: the target encoder sees the nucleus); got in_channels="
                f"{self.in_channels!r}; make the crop store with a nuclear channel"
            )
        if not 0 < self.target_channel < self.in_channels:
            raise ValueError(
                f"`target_channel` must be a channel other than the protein (1..."
                f"{self.in_channels - 1}), got {self.target_channel}"
            )
        if not isinstance(self.image_size, int) or self.image_size < 8 or self.image_size % 4:
            raise ValueError(f"`image_size` must be a multiple of 4, >= 8; got {self.image_size!r}")
        if not (isinstance(self.width, (int, float)) and 0 < self.width <= 4):
            raise ValueError(f"`width` must be in (0, 4], got {self.width!r}")
        shapes = (len(self.source_widths), len(self.target_widths), len(self.decoder_widths))
        if shapes != (5, 3, 5):
            raise ValueError(
                f"`source_widths`, `target_widths`, `decoder_widths` must have 5, 3 and 5 "
                f"entries, got {shapes}"
            )
        if self.feature_layer not in FEATURE_LAYERS:
            raise ValueError(
                f"`feature_layer` must be one of {FEATURE_LAYERS}, got {self.feature_layer!r}"
            )

    def scaled(self, widths: tuple[int, ...]) -> list[int]:
        """``widths`` times :attr:`width`, at least 4 filters each."""
        return [max(4, round(w * self.width)) for w in widths]

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PairedInpaintingConfig:
        """A named configuration (``"paper"``, ``"small"``, ``"tiny"``), fields overridden.

        Examples
        --------
        >>> PairedInpaintingConfig.preset("small").width
        0.125
        """
        if name not in _PRESETS:
            raise ValueError(f"unknown preset {name!r}; valid choices are {list(_PRESETS)}")
        return cls.from_dict({**copy.deepcopy(_PRESETS[name]), **dict(overrides)})

    @classmethod
    def from_saved(cls, values: Mapping[str, Any]) -> PairedInpaintingConfig:
        """Rebuild the config saved with a run or checkpoint (earlier configs held
        an unused ``num_classes``, dropped here)."""
        return cls.from_dict({k: v for k, v in values.items() if k != "num_classes"})

    def for_data(
        self, *, in_channels: int, image_size: int, num_classes: int
    ) -> PairedInpaintingConfig:
        """This config fitted to a crop store's channels and crop side (the model
        identifies nothing: ``num_classes`` is not used)."""
        return self.replace(in_channels=in_channels, image_size=image_size)

    @property
    def codebook_sizes(self) -> tuple[int, int]:
        """``(0, 0)``: the model has no codebooks."""
        return (0, 0)

    @property
    def quantizer(self) -> None:
        """None: the model has no codebooks."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict (``from_dict`` inverts it)."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PairedInpaintingConfig:
        """Build a config from a dict such as ``to_dict()`` returns (unknown keys: error)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; valid fields are {names}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> PairedInpaintingConfig:
        """A copy with some fields changed (validated again)."""
        return self.from_dict({**self.to_dict(), **changes})


def _block(c_in: int, c_out: int, *, norm: bool = True) -> nn.Sequential:
    """3×3 convolution, ReLU, then batch norm (the published order)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


@dataclass
class InpaintingOutput:
    """Forward pass of :class:`PairedInpainting`.

    Attributes
    ----------
    prediction : (B, 1, H, W) Tensor
        The painted protein channel of the target crop.
    encoding : (B, D) Tensor
        The source crop's max-pooled ``feature_layer`` (for the encoding health checks).
    """

    prediction: torch.Tensor
    encoding: torch.Tensor


class InpaintingLoss(ModelLoss):
    """The loss: pixel-wise MSE of the painted protein channel, divided by the store's
    pixel variance (as cytoself's reconstruction term). Tensors, never read back."""


class PairedInpainting(nn.Module):
    """Lu et al.'s paired cell inpainting model.

    ``forward`` takes a pair as one tensor (B, 2C, H, W): the source crop's C channels,
    then the target crop's; :meth:`features` takes single crops (B, C, H, W).

    Parameters
    ----------
    config : PairedInpaintingConfig

    Examples
    --------
    >>> m = PairedInpainting(PairedInpaintingConfig.preset("tiny"))
    >>> m(torch.zeros(2, 4, 32, 32)).prediction.shape
    torch.Size([2, 1, 32, 32])
    >>> {k: v.shape[1] for k, v in m.features(torch.zeros(2, 2, 32, 32)).items()}
    {'conv3': 24, 'conv4': 24, 'conv5': 16}
    """

    #: learns from pairs of crops of one protein (the trainer serves pairs)
    paired: ClassVar[bool] = True

    def __init__(self, config: PairedInpaintingConfig) -> None:
        super().__init__()
        self.config = config
        s = config.scaled(config.source_widths)
        t = config.scaled(config.target_widths)
        d = config.scaled(config.decoder_widths)
        self.source = nn.ModuleDict(
            {
                "conv1": _block(config.in_channels, s[0]),
                "conv2": _block(s[0], s[1]),
                "conv3": _block(s[1], s[2]),
                "conv4": _block(s[2], s[3]),
                "conv5": _block(s[3], s[4]),
            }
        )
        self.target = nn.Sequential(
            _block(1, t[0]),
            nn.MaxPool2d(2),
            _block(t[0], t[1]),
            nn.MaxPool2d(2),
            _block(t[1], t[2]),
        )
        self.decoder = nn.Sequential(
            _block(s[4] + t[2], d[0], norm=False),
            _block(d[0], d[1], norm=False),
            _block(d[1], d[2], norm=False),
            nn.Upsample(scale_factor=2),
            _block(d[2], d[3], norm=False),
            nn.Upsample(scale_factor=2),
            _block(d[3], d[4], norm=False),
            nn.Conv2d(d[4], 1, 1),
        )
        self.pool = nn.MaxPool2d(2)
        self.feature_widths = {"conv3": s[2], "conv4": s[3], "conv5": s[4]}

    def _source_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The source encoder's feature maps by layer name."""
        maps = {}
        h = x
        for name, block in self.source.items():
            h = block(h)
            maps[name] = h
            if name in ("conv1", "conv2"):
                h = self.pool(h)
        return maps

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Max-pooled source-encoder features of single crops (B, C, H, W), per layer."""
        maps = self._source_maps(x)
        return {name: maps[name].amax(dim=(2, 3)) for name in FEATURE_LAYERS}

    def forward(self, pair: torch.Tensor) -> InpaintingOutput:
        c = self.config.in_channels
        if pair.ndim != 4 or pair.shape[1] != 2 * c:
            raise ValueError(
                f"expected pairs of shape (B, {2 * c}, H, W) (source, then target), got "
                f"{tuple(pair.shape)}"
            )
        source, target = pair[:, :c], pair[:, c:]
        maps = self._source_maps(source)
        nucleus = target[:, self.config.target_channel : self.config.target_channel + 1]
        joint = torch.cat([maps["conv5"], self.target(nucleus)], dim=1)
        encoding = maps[self.config.feature_layer].amax(dim=(2, 3))
        return InpaintingOutput(prediction=self.decoder(joint), encoding=encoding)

    def loss(
        self,
        pair: torch.Tensor,
        y: torch.Tensor,
        output: InpaintingOutput,
        *,
        reconstruction_scale: float = 1.0,
    ) -> InpaintingLoss:
        """MSE between the painted and the true target protein channel (per pixel)."""
        c = self.config.in_channels
        truth = pair[:, c : c + 1].float()
        mse = torch.mean((output.prediction.float() - truth) ** 2) / float(reconstruction_scale)
        return InpaintingLoss(total=mse, task=mse, terms={"reconstruction": mse})

    def health_arrays(self, output: InpaintingOutput) -> tuple[torch.Tensor, None]:
        """The source crops' encodings (no codebooks: no code indices)."""
        return output.encoding, None

    # ---------------------------------------------------------- what embed writes
    @property
    def global_shape(self) -> tuple[int, ...]:
        return (self.feature_widths[self.config.feature_layer],)

    @property
    def local_shape(self) -> tuple[int, ...]:
        return (0,)

    def embed_layout(
        self, *, logits: bool = False, local: bool = False, global_only: bool = False
    ) -> dict[str, tuple[int, np.dtype]]:
        """Datasets of the embeddings file: ``global`` (the feature layer) and every
        ``layer_<name>``."""
        f32 = np.dtype(np.float32)
        layout = {"global": (self.global_shape[0], f32)}
        layout.update({f"layer_{n}": (w, f32) for n, w in self.feature_widths.items()})
        return layout

    def embed_arrays(
        self,
        x: torch.Tensor,
        *,
        logits: bool = False,
        local: bool = False,
        global_only: bool = False,
    ) -> dict[str, np.ndarray]:
        """The rows of :meth:`embed_layout` for a batch of single crops (no logits, no
        local encodings: the options change nothing)."""
        feats = {k: v.float().cpu().numpy() for k, v in self.features(x).items()}
        out = {"global": feats[self.config.feature_layer]}
        out.update({f"layer_{n}": v for n, v in feats.items()})
        return out
