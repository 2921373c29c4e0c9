"""Encoder pairs: a registry plus the EfficientNet-B0 split and a ResNet-style pair.

An *encoder pair* is two modules: ``encoder1`` maps an image ``(B, C, S, S)`` to the
local representation ``(B, local_channels, h, w)`` and ``encoder2`` maps that (unquantized)
local representation to the global one ``(B, global_channels, h2, w2)``. A factory
registered with :func:`register_encoder` builds such a pair from keyword arguments.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cyto._plugins import import_object, is_import_path

__all__ = [
    "EncoderPair",
    "create_encoder",
    "list_encoders",
    "register_encoder",
    "resolve_encoder",
]

EncoderFactory = Callable[..., tuple[nn.Module, nn.Module]]
_REGISTRY: dict[str, EncoderFactory] = {}
# > 0 while a config read from a file is being rebuilt: its names may not import code
_FROM_FILE = [0]


@contextlib.contextmanager
def no_plugin_imports() -> Iterator[None]:
    """Within this block :func:`resolve_encoder` imports nothing: a config read from a
    file (a checkpoint, a run's ``config.json``) may name only registered encoders, so
    opening a file never runs code it names."""
    _FROM_FILE[0] += 1
    try:
        yield
    finally:
        _FROM_FILE[0] -= 1


class EncoderPair(nn.Module):
    """Two chained encoders: ``encoder1`` (image → local), ``encoder2`` (local → global).

    Parameters
    ----------
    encoder1 : nn.Module
        Maps ``(B, C, S, S)`` images to the local representation.
    encoder2 : nn.Module
        Maps the unquantized local representation to the global representation.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> pair = EncoderPair(nn.Conv2d(2, 8, 3, stride=4, padding=1), nn.Conv2d(8, 18, 3, stride=2))
    >>> [t.shape[1:] for t in pair(torch.zeros(1, 2, 32, 32))]
    [torch.Size([8, 8, 8]), torch.Size([18, 3, 3])]
    """

    def __init__(self, encoder1: nn.Module, encoder2: nn.Module) -> None:
        super().__init__()
        self.encoder1 = encoder1
        self.encoder2 = encoder2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        local = self.encoder1(x)
        return local, self.encoder2(local)


def register_encoder(
    name: str, factory: EncoderFactory | None = None, *, overwrite: bool = False
) -> Any:
    """Register a factory that builds an encoder pair; usable as a decorator.

    The factory is called as ``factory(in_channels=..., local_channels=...,
    global_channels=..., **options)`` and must return ``(encoder1, encoder2)``:
    ``encoder1`` maps ``(B, in_channels, S, S)`` images to ``(B, local_channels, h, w)``
    and ``encoder2`` maps that to ``(B, global_channels, h2, w2)`` with ``h2 <= h``.
    The model probes the shapes once when it is built.

    Parameters
    ----------
    name : str
        Registry name, used as ``CytoselfConfig(encoder=name)``.
    factory : callable, optional
        The factory. When omitted, returns a decorator.
    overwrite : bool, default False
        Replace an existing entry of the same name instead of raising.

    Returns
    -------
    factory or decorator
        The factory itself (so the decorator leaves the function unchanged).

    Raises
    ------
    ValueError
        If ``name`` is already registered and ``overwrite`` is False.
    TypeError
        If ``name`` is not a string or ``factory`` is not callable.

    Examples
    --------
    >>> from torch import nn
    >>> @register_encoder("doc_pair", overwrite=True)
    ... def doc_pair(*, in_channels, local_channels, global_channels):
    ...     enc1 = nn.Conv2d(in_channels, local_channels, 4, stride=4)
    ...     enc2 = nn.Conv2d(local_channels, global_channels, 2, stride=2)
    ...     return enc1, enc2
    >>> "doc_pair" in list_encoders()
    True
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty str, got {name!r}")

    def _register(fn: EncoderFactory) -> EncoderFactory:
        if not callable(fn):
            raise TypeError(f"`factory` must be callable, got {type(fn).__name__}")
        if name in _REGISTRY and not overwrite:
            raise ValueError(
                f"encoder {name!r} is already registered; pass overwrite=True to replace it"
            )
        _REGISTRY[name] = fn
        return fn

    if factory is None:
        return _register
    return _register(factory)


def resolve_encoder(name: str) -> str:
    """Make sure the encoder ``name`` is registered; import it when it is a path.

    A registered name is returned as is. A name ``"package.module:factory"`` (the
    factory may be a dotted attribute path) imports the module, registers the factory
    under that name and returns it: this is how your own encoder plugs in from
    ``CytoselfConfig(encoder=...)``, the TOML ``[model]`` table and ``cyto train
    --encoder``. Its output shapes are checked when the model is built.

    Parameters
    ----------
    name : str
        A registered name or ``"package.module:factory"``.

    Returns
    -------
    name : str

    Raises
    ------
    ValueError
        If the name is neither registered nor importable, or names something that is
        not callable; the message lists the registered names.

    Examples
    --------
    >>> resolve_encoder("resnet")
    'resnet'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`encoder` must be a non-empty str, got {name!r}")
    if name in _REGISTRY:
        return name
    if not is_import_path(name):
        raise ValueError(
            f"unknown encoder {name!r}; valid choices are {list_encoders()}, or your own "
            "factory as 'package.module:factory'"
        )
    if _FROM_FILE[0]:
        raise ValueError(
            f"the saved model names the plug-in encoder {name!r}, code outside cyto: opening "
            "a checkpoint or run never imports code it names. If you trust it, name it "
            f"yourself: `--encoder {name}` on the command line, or trust_plugins=True "
            "(or cyto.nn.resolve_encoder) in Python"
        )
    try:
        obj = import_object(name, "encoder")
    except ValueError as err:
        if "not a callable" in str(err):
            what = str(err).split(" is a ")[-1].split(",")[0]
            raise ValueError(
                f"encoder {name!r} is a {what}: not a factory returning (encoder1, encoder2) "
                "modules"
            ) from None
        raise
    _REGISTRY[name] = obj
    return name


def list_encoders() -> list[str]:
    """Names of the registered encoder pairs, sorted.

    Returns
    -------
    list of str

    Examples
    --------
    >>> {"efficientnet_b0", "resnet"} <= set(list_encoders())
    True
    """
    return sorted(_REGISTRY)


def create_encoder(
    name: str,
    *,
    in_channels: int,
    local_channels: int = 64,
    global_channels: int = 576,
    **options: Any,
) -> EncoderPair:
    """Build a registered encoder pair.

    Parameters
    ----------
    name : str
        A name from :func:`list_encoders`.
    in_channels : int
        Image channels.
    local_channels, global_channels : int
        Channels of the local and global representations.
    **options
        Factory-specific options (e.g. ``width`` and ``depth`` multipliers).

    Returns
    -------
    EncoderPair

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the valid ones), an option is not
        accepted by the factory, or the factory does not return two modules.

    Examples
    --------
    >>> import torch
    >>> pair = create_encoder("efficientnet_b0", in_channels=2)
    >>> local, global_ = pair(torch.zeros(1, 2, 100, 100))
    >>> tuple(local.shape), tuple(global_.shape)
    ((1, 64, 25, 25), (1, 576, 4, 4))
    """
    factory = _REGISTRY[resolve_encoder(name)]
    kwargs = dict(
        in_channels=in_channels,
        local_channels=local_channels,
        global_channels=global_channels,
        **options,
    )
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            accepted = sorted(
                k for k in params if k not in ("in_channels", "local_channels", "global_channels")
            )
            raise ValueError(
                f"encoder {name!r} does not accept option(s) {unknown}; "
                f"accepted options are {accepted}"
            )
    pair = factory(**kwargs)
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(m, nn.Module) for m in pair)
    ):
        raise ValueError(
            f"encoder factory {name!r} must return (encoder1, encoder2) nn.Modules, "
            f"got {type(pair).__name__}"
        )
    return EncoderPair(pair[0], pair[1])


# --------------------------------------------------------------------------- blocks


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` (EfficientNet rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class SiLU(nn.Module):
    """SiLU that works in place only when no gradient is recorded.

    An in-place SiLU under autograd must clone its input (its derivative needs it), so
    in training the out-of-place version is cheaper; in inference in place saves memory.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x, inplace=not torch.is_grad_enabled())


class ConvBNAct(nn.Sequential):
    """Convolution (no bias) → BatchNorm → optional SiLU.

    In eval mode the BatchNorm is an affine map with fixed statistics and is folded into
    the convolution's weights on the fly (exact, weight-sized work instead of a pass over
    the activations: about 20% faster inference).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        *,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act:
            layers.append(SiLU())
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn = self[0], self[1]
        if bn.training or bn.running_mean is None or bn.running_var is None:
            y = bn(conv(x))
        else:
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            weight = conv.weight * scale.reshape(-1, 1, 1, 1)
            bias = bn.bias - bn.running_mean * scale
            y = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        return self[2](y) if len(self) > 2 else y


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation on a pooled vector (two Linear layers, no 1×1 convs)."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Linear(channels, reduced)
        self.expand = nn.Linear(reduced, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3))
        s = torch.sigmoid(self.expand(F.silu(self.reduce(s))))
        return x * s[:, :, None, None]


class MBConv(nn.Module):
    """Inverted residual block with squeeze-excitation (EfficientNet MBConv)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        expand: int,
        kernel: int,
        stride: int,
        se_ratio: float = 0.25,
    ) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = ConvBNAct(in_ch, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid)
        self.se = (
            SqueezeExcite(mid, max(1, int(in_ch * se_ratio))) if se_ratio > 0 else nn.Identity()
        )
        self.project = ConvBNAct(mid, out_ch, 1, act=False)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return y + x if self.residual else y


@dataclass(frozen=True)
class _Stage:
    expand: int
    kernel: int
    stride: int
    channels: int
    repeats: int


# EfficientNet-B0 stages; the 40-channel stage keeps stride 1 so the local map is S/4 and
# the 112-channel stage uses stride 2 so the global map is S/32 rounded up (4x4 for 100).
_B0_ENCODER1 = (
    _Stage(1, 3, 1, 16, 1),
    _Stage(6, 3, 2, 24, 2),
    _Stage(6, 5, 1, 40, 2),
)
_B0_ENCODER2 = (
    _Stage(6, 3, 2, 80, 3),
    _Stage(6, 5, 2, 112, 3),
    _Stage(6, 5, 2, 192, 4),
    _Stage(6, 3, 1, 320, 1),
)


def _mbconv_stages(
    in_ch: int, stages: Sequence[_Stage], width: float, depth: float, se_ratio: float
) -> tuple[nn.Sequential, int]:
    blocks: list[nn.Module] = []
    for st in stages:
        out = _make_divisible(st.channels * width)
        for i in range(max(1, math.ceil(st.repeats * depth))):
            blocks.append(
                MBConv(
                    in_ch,
                    out,
                    expand=st.expand,
                    kernel=st.kernel,
                    stride=st.stride if i == 0 else 1,
                    se_ratio=se_ratio,
                )
            )
            in_ch = out
    return nn.Sequential(*blocks), in_ch


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _check_multiplier(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not 0 < value <= 8:
        raise ValueError(f"`{name}` must be a number in (0, 8], got {value!r}")


@register_encoder("efficientnet_b0")
def efficientnet_b0(
    *,
    in_channels: int,
    local_channels: int = 64,
    global_channels: int = 576,
    width: float = 1.0,
    depth: float = 1.0,
    se_ratio: float = 0.25,
) -> tuple[nn.Module, nn.Module]:
    """EfficientNet-B0 split in two, as in cytoself (no stochastic depth).

    ``encoder1``: stride-2 stem (32 ch), MBConv stages e1/k3/16×1, e6/k3/s2/24×2,
    e6/k5/40×2, then a 1×1 projection to ``local_channels`` (S/4 × S/4: 25×25 for 100).
    ``encoder2`` (no stem): e6 stages k3/s2/80×3, k5/s2/112×3, k5/s2/192×4, k3/320×1,
    then a 1×1 projection to ``global_channels`` (4×4 for 100). Every MBConv block has
    squeeze-excitation (``se_ratio`` of the block input channels).

    Parameters
    ----------
    in_channels, local_channels, global_channels : int
        Input image channels and representation channels.
    width, depth : float, default 1.0
        EfficientNet width and depth multipliers (channels rounded to multiples of 8,
        repeats rounded up).
    se_ratio : float, default 0.25
        Squeeze-excitation reduction; 0 disables it.

    Returns
    -------
    (encoder1, encoder2) : tuple of nn.Module
    """
    _check_multiplier("width", width)
    _check_multiplier("depth", depth)
    if not 0 <= se_ratio <= 1:
        raise ValueError(f"`se_ratio` must be in [0, 1], got {se_ratio!r}")
    stem = _make_divisible(32 * width)
    body1, ch1 = _mbconv_stages(stem, _B0_ENCODER1, width, depth, se_ratio)
    enc1 = nn.Sequential(
        ConvBNAct(in_channels, stem, 3, 2),
        body1,
        nn.Conv2d(ch1, local_channels, 1),
    )
    body2, ch2 = _mbconv_stages(local_channels, _B0_ENCODER2, width, depth, se_ratio)
    enc2 = nn.Sequential(body2, nn.Conv2d(ch2, global_channels, 1))
    _init_weights(enc1)
    _init_weights(enc2)
    return enc1, enc2


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convolutions) with a projection shortcut when needed."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_ch, out_ch, 3, stride)
        self.conv2 = ConvBNAct(out_ch, out_ch, 3, act=False)
        self.shortcut = (
            ConvBNAct(in_ch, out_ch, 1, stride, act=False)
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(
            self.conv2(self.conv1(x)) + self.shortcut(x), inplace=not torch.is_grad_enabled()
        )


def _resnet_stages(in_ch: int, spec: Sequence[tuple[int, int, int]]) -> tuple[nn.Sequential, int]:
    blocks: list[nn.Module] = []
    for channels, stride, repeats in spec:
        for i in range(repeats):
            blocks.append(BasicBlock(in_ch, channels, stride if i == 0 else 1))
            in_ch = channels
    return nn.Sequential(*blocks), in_ch


@register_encoder("resnet")
def resnet(
    *,
    in_channels: int,
    local_channels: int = 64,
    global_channels: int = 576,
    width: float = 1.0,
    blocks: int = 1,
) -> tuple[nn.Module, nn.Module]:
    """A ResNet-style pair with the same geometry as the EfficientNet split.

    ``encoder1``: stride-2 stem, basic-block stages of 32 (stride 1) and 64 (stride 2)
    channels, 1×1 projection (S/4). ``encoder2``: stages of 128, 256 and 256 channels,
    each stride 2, 1×1 projection (S/32 rounded up).

    Parameters
    ----------
    in_channels, local_channels, global_channels : int
        Input image channels and representation channels.
    width : float, default 1.0
        Channel multiplier.
    blocks : int, default 1
        Basic blocks per stage.

    Returns
    -------
    (encoder1, encoder2) : tuple of nn.Module
    """
    _check_multiplier("width", width)
    if not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"`blocks` must be a positive int, got {blocks!r}")

    def w(c: int) -> int:
        return _make_divisible(c * width)

    body1, ch1 = _resnet_stages(w(32), [(w(32), 1, blocks), (w(64), 2, blocks)])
    enc1 = nn.Sequential(
        ConvBNAct(in_channels, w(32), 3, 2), body1, nn.Conv2d(ch1, local_channels, 1)
    )
    body2, ch2 = _resnet_stages(
        local_channels, [(w(128), 2, blocks), (w(256), 2, blocks), (w(256), 2, blocks)]
    )
    enc2 = nn.Sequential(body2, nn.Conv2d(ch2, global_channels, 1))
    _init_weights(enc1)
    _init_weights(enc2)
    return enc1, enc2
