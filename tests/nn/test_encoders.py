"""Encoder registry contract, the EfficientNet-B0 split, decoders and heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cyto.nn import (
    Cytoself,
    CytoselfConfig,
    EncoderPair,
    create_encoder,
    list_encoders,
    register_encoder,
)
from cyto.nn import _encoders as enc_mod
from cyto.nn._decoders import ResidualDecoder, upsampling_sizes
from cyto.nn._encoders import ConvBNAct, MBConv, SqueezeExcite
from cyto.nn._heads import MLPHead

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", list_encoders())
def test_registered_encoder_contract(name: str) -> None:
    torch.manual_seed(0)
    pair = create_encoder(name, in_channels=2, local_channels=16, global_channels=36)
    assert isinstance(pair, EncoderPair)
    x = torch.randn(3, 2, 32, 32)
    local, global_ = pair(x)
    assert local.shape == (3, 16, 8, 8)
    assert global_.shape == (3, 36, 1, 1)
    assert torch.isfinite(local).all() and torch.isfinite(global_).all()
    (local.square().mean() + global_.square().mean()).backward()
    for pname, p in pair.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    # 100x100 crops give the paper geometry for every registered pair
    with torch.no_grad():
        local, global_ = pair.eval()(torch.zeros(1, 2, 100, 100))
    assert local.shape[2:] == (25, 25) and global_.shape[2:] == (4, 4)


def test_efficientnet_b0_split_matches_the_paper() -> None:
    pair = create_encoder("efficientnet_b0", in_channels=2)
    enc1, enc2 = pair.encoder1, pair.encoder2
    stem = enc1[0][0]
    assert (stem.out_channels, stem.stride, stem.kernel_size) == (32, (2, 2), (3, 3))
    blocks1 = [m for m in enc1.modules() if isinstance(m, MBConv)]
    blocks2 = [m for m in enc2.modules() if isinstance(m, MBConv)]
    assert [b.project[0].out_channels for b in blocks1] == [16, 24, 24, 40, 40]
    assert [b.depthwise[0].kernel_size[0] for b in blocks1] == [3, 3, 3, 5, 5]
    assert [b.depthwise[0].stride[0] for b in blocks1] == [1, 2, 1, 1, 1]
    assert [b.project[0].out_channels for b in blocks2] == [80] * 3 + [112] * 3 + [192] * 4 + [320]
    assert [b.depthwise[0].stride[0] for b in blocks2] == [2, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1]
    assert all(isinstance(b.se, SqueezeExcite) for b in blocks1 + blocks2)
    # expansion 1 in the first block, 6 elsewhere; encoder2 has no stem
    assert isinstance(blocks1[0].expand, nn.Identity)
    assert blocks2[0].expand[0].in_channels == 64 and blocks2[0].expand[0].out_channels == 384
    assert not any(isinstance(m, nn.Dropout) for m in enc1.modules())
    # intermediate maps 100 -> 50 -> 25 (local) -> 13 -> 7 -> 4 (global)
    sizes = []
    x = torch.zeros(1, 2, 100, 100)
    with torch.no_grad():
        for module in [enc1[0], *enc1[1], enc1[2], *enc2[0], enc2[1]]:
            x = module.eval()(x)
            sizes.append(x.shape[-1])
    assert sizes == [50, 50, 25, 25, 25, 25, 25, 13, 13, 13, 7, 7, 7, 4, 4, 4, 4, 4, 4]


def test_width_and_depth_multipliers() -> None:
    full = create_encoder("efficientnet_b0", in_channels=1)
    half = create_encoder("efficientnet_b0", in_channels=1, width=0.5, depth=0.5)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(half) < n(full) / 2.5
    # ceil(repeats / 2) per stage: 1 + 1 + 1 | 2 + 2 + 2 + 1
    assert sum(isinstance(m, MBConv) for m in half.modules()) == 10


def test_create_encoder_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"unknown encoder 'nope'.*efficientnet_b0"):
        create_encoder("nope", in_channels=2)
    with pytest.raises(ValueError, match=r"does not accept option\(s\) \['wdth'\].*width"):
        create_encoder("efficientnet_b0", in_channels=2, wdth=0.5)
    with pytest.raises(ValueError, match="`width` must be a number"):
        create_encoder("efficientnet_b0", in_channels=2, width=-1)
    monkeypatch.setattr(enc_mod, "_REGISTRY", dict(enc_mod._REGISTRY))
    register_encoder("bad", lambda **kw: nn.Conv2d(2, 2, 1))
    with pytest.raises(ValueError, match="must return"):
        create_encoder("bad", in_channels=2)
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("bad", lambda **kw: None)
    register_encoder("bad", lambda **kw: (nn.Identity(), nn.Identity()), overwrite=True)
    with pytest.raises(TypeError, match="callable"):
        register_encoder("x", 3)  # type: ignore[arg-type]


class _Down(nn.Module):
    """A user's own module: strided conv + GELU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.conv(x))


def test_user_module_pair_plugs_into_cytoself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enc_mod, "_REGISTRY", dict(enc_mod._REGISTRY))

    @register_encoder("user_pair")
    def user_pair(*, in_channels, local_channels, global_channels, hidden=12):
        enc1 = nn.Sequential(
            _Down(in_channels, hidden, 2), nn.Conv2d(hidden, local_channels, 3, 2, 1)
        )
        enc2 = nn.Sequential(
            _Down(local_channels, hidden, 2), nn.Conv2d(hidden, global_channels, 1)
        )
        return enc1, enc2

    cfg = CytoselfConfig.preset("tiny", encoder="user_pair", encoder_options={"hidden": 10})
    model = Cytoself(cfg)
    assert model.local_shape == (8, 8, 8) and model.global_shape == (72, 4, 4)
    out = model(torch.randn(2, 2, 32, 32))
    assert out.reconstruction.shape == (2, 2, 32, 32)
    assert out.global_indices.shape == (2, 9, 4, 4)
    model.loss(torch.randn(2, 2, 32, 32), torch.tensor([0, 1]), out).total.backward()
    assert model.encoder1[0].conv.weight.grad is not None


def test_encoder_with_wrong_channels_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enc_mod, "_REGISTRY", dict(enc_mod._REGISTRY))
    register_encoder(
        "wrong",
        lambda *, in_channels, local_channels, global_channels: (
            nn.Conv2d(in_channels, local_channels + 1, 4, 4),
            nn.Conv2d(local_channels + 1, global_channels, 2, 2),
        ),
    )
    with pytest.raises(ValueError, match=r"local representation of shape \(9, 8, 8\).*expected"):
        Cytoself(CytoselfConfig.preset("tiny", encoder="wrong", encoder_options={}))


def test_upsampling_sizes() -> None:
    assert upsampling_sizes(4, 25) == [7, 13, 25]
    assert upsampling_sizes(25, 100) == [50, 100]
    assert upsampling_sizes(16, 64) == [32, 64]
    assert upsampling_sizes(5, 5) == []
    with pytest.raises(ValueError, match="source"):
        upsampling_sizes(30, 25)


def test_decoder_context_equals_concat_of_upsampled_context() -> None:
    torch.manual_seed(0)
    dec = ResidualDecoder(6, 2, [16], context_channels=10, channels=8, min_channels=4)
    x, ctx = torch.randn(2, 6, 8, 8), torch.randn(2, 10, 3, 3)
    # naive: concatenate the bilinearly resized context, then the first 1x1 convolution
    up = F.interpolate(ctx, size=(8, 8), mode="bilinear", align_corners=False)
    weight = torch.cat([dec.stem.weight, dec.context.weight], dim=1)
    h = F.conv2d(torch.cat([x, up], 1), weight, dec.stem.bias)
    h = dec.stages[0](h)
    h = dec.stages[1](F.interpolate(dec.reduce[0](h), size=(16, 16), mode="nearest"))
    naive = dec.head(F.relu(h))
    torch.testing.assert_close(dec(x, ctx), naive, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="context"):
        dec(x)


def test_decoder_widths_halve_to_minimum() -> None:
    dec = ResidualDecoder(64, 2, [50, 100], channels=64, min_channels=32)
    widths = [s[0].conv1.in_channels for s in dec.stages]
    assert widths == [64, 32, 32]
    assert dec(torch.zeros(1, 64, 25, 25)).shape == (1, 2, 100, 100)


def test_mlp_head_flattens_and_drops_out() -> None:
    head = MLPHead(4 * 3 * 3, 5, hidden=7, dropout=0.5)
    assert head.fc1.out_features == 7 and head.dropout.p == 0.5
    x = torch.randn(2, 4, 3, 3)
    out = head.eval()(x)
    assert out.shape == (2, 5)
    torch.testing.assert_close(head(x.contiguous(memory_format=torch.channels_last)), out)


@pytest.mark.parametrize(("groups", "act"), [(1, True), (16, False)])
def test_eval_batchnorm_folding_is_exact(groups: int, act: bool) -> None:
    torch.manual_seed(0)
    block = ConvBNAct(16, 16, 3, 2, groups=groups, act=act)
    for _ in range(3):  # non-trivial running statistics
        block(torch.randn(4, 16, 9, 9))
    block.eval()
    x = torch.randn(2, 16, 9, 9)
    unfused = block[1](block[0](x))
    if act:
        unfused = F.silu(unfused)
    torch.testing.assert_close(block(x), unfused, rtol=1e-5, atol=1e-5)
    block.train()
    assert block(x).shape == (2, 16, 5, 5)
