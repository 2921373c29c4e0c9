"""Light residual decoders: a first convolution, then one residual stack per upsampling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResidualBlock", "ResidualDecoder", "upsampling_sizes"]


def upsampling_sizes(source: int, target: int) -> list[int]:
    """Spatial sizes of a ×2 upsampling path from ``source`` to exactly ``target``.

    The number of steps is ``round(log2(target / source))`` (at least one when the sizes
    differ); intermediate sizes are ``ceil(target / 2**k)``, mirroring an encoder whose
    stride-2 layers round up.

    Parameters
    ----------
    source, target : int
        Input and output sizes, ``0 < source <= target``.

    Returns
    -------
    list of int
        Sizes after each step, ending with ``target`` (empty when ``source == target``).

    Raises
    ------
    ValueError
        If ``source`` is not in ``(0, target]``.

    Examples
    --------
    >>> upsampling_sizes(4, 25)
    [7, 13, 25]
    >>> upsampling_sizes(25, 100)
    [50, 100]
    """
    if not 0 < source <= target:
        raise ValueError(f"`source` must be in (0, target={target}], got {source}")
    if source == target:
        return []
    steps = max(1, round(math.log2(target / source)))
    return [math.ceil(target / 2**k) for k in range(steps - 1, -1, -1)]


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` (the VQ-VAE residual block).

    Parameters
    ----------
    channels : int
        Input and output channels.
    hidden : int, optional
        Channels between the two convolutions (default ``channels``; the decoders use
        ``channels // 2``, the VQ-VAE bottleneck, which halves the cost of the 3×3 conv).
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x)), inplace=True))


class ResidualDecoder(nn.Module):
    """First convolution to ``channels``, then per upsampling a residual stack.

    The first convolution is 1×1, followed by a residual stack at the input resolution;
    the width halves at every upsampling step down to ``min_channels``, each step being
    a 1×1 width reduction, a nearest-neighbour upsampling and a residual stack (blocks
    with a bottleneck of half the width); a last 3×3 convolution maps to
    ``out_channels`` (for decoder2 this is the paper's *mse-lyr1* adapter to the shape of
    encoder1's output).

    With ``context_channels > 0`` the decoder takes a second, coarser input (decoder1's
    global representation): the first convolution acts on the concatenation of ``x`` and
    the context resized bilinearly to the size of ``x``. Because bilinear resizing
    (weights summing to one) commutes with a 1×1 convolution, it is computed as
    ``conv_x(x) + resize(conv_c(context))``: exactly the same function, without ever
    materialising the upsampled context (576 channels at 25×25 for the paper model).

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    sizes : sequence of int
        Spatial size after each nearest-neighbour upsampling step (see
        :func:`upsampling_sizes`); empty for no upsampling.
    context_channels : int, default 0
        Channels of the optional context input.
    channels : int, default 64
        Width after the first convolution.
    min_channels : int, default 32
        Smallest width.
    blocks : int, default 1
        Residual blocks per resolution (including the input resolution).

    Examples
    --------
    >>> import torch
    >>> dec = ResidualDecoder(64, 2, [50, 100], context_channels=576)
    >>> dec(torch.zeros(1, 64, 25, 25), torch.zeros(1, 576, 4, 4)).shape
    torch.Size([1, 2, 100, 100])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        sizes: Sequence[int],
        *,
        context_channels: int = 0,
        channels: int = 64,
        min_channels: int = 32,
        blocks: int = 1,
    ) -> None:
        super().__init__()
        self.sizes = [int(s) for s in sizes]
        self.stem = nn.Conv2d(in_channels, channels, 1)
        self.context = (
            nn.Conv2d(context_channels, channels, 1, bias=False) if context_channels else None
        )
        self.stages = nn.ModuleList([self._stack(channels, blocks)])
        self.reduce = nn.ModuleList()
        width = channels
        for _ in self.sizes:
            new = max(min_channels, width // 2)
            self.reduce.append(nn.Conv2d(width, new, 1) if new != width else nn.Identity())
            self.stages.append(self._stack(new, blocks))
            width = new
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)

    @staticmethod
    def _stack(channels: int, blocks: int) -> nn.Sequential:
        return nn.Sequential(*(ResidualBlock(channels, channels // 2) for _ in range(blocks)))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if (context is None) != (self.context is None):
            raise ValueError(
                "`context` must be given exactly when the decoder has context_channels > 0"
            )
        h = self.stem(x)
        if self.context is not None:
            c = self.context(context)
            h = h + F.interpolate(c, size=h.shape[-2:], mode="bilinear", align_corners=False)
        h = self.stages[0](h)
        for size, reduce, stage in zip(self.sizes, self.reduce, self.stages[1:]):
            # reduce before upsampling: the 1x1 conv costs 4x less at the low resolution
            h = stage(F.interpolate(reduce(h), size=(size, size), mode="nearest"))
        return self.head(F.relu(h))
