"""The Cytoself model: shapes, gradients, ablation switches, loss, config validation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from cyto.nn import Cytoself, CytoselfConfig, CytoselfLoss, CytoselfOutput, register_encoder
from cyto.nn import _encoders as enc_mod

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = CytoselfConfig.preset("tiny")


def _batch(cfg: CytoselfConfig, n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
    y = torch.randint(0, cfg.num_classes, (n,), generator=g)
    return x, y


@pytest.fixture
def tiny() -> Cytoself:
    torch.manual_seed(0)
    return Cytoself(TINY)


def test_paper_preset_shapes_of_every_intermediate() -> None:
    torch.manual_seed(0)
    cfg = CytoselfConfig.preset("paper")
    model = Cytoself(cfg)
    assert model.local_shape == (64, 25, 25) and model.global_shape == (576, 4, 4)
    x, y = _batch(cfg, n=2)
    out = model(x)
    assert out.local.shape == (2, 64, 25, 25)
    assert out.global_.shape == (2, 576, 4, 4)
    assert out.local_quantized.shape == (2, 64, 25, 25)
    assert out.global_quantized.shape == (2, 576, 4, 4)
    assert out.local_indices.shape == (2, 1, 25, 25)
    assert out.local_indices[0].numel() == 625
    assert out.global_indices.shape == (2, 9, 4, 4)
    assert out.global_indices[0].numel() == 144
    assert out.reconstruction.shape == (2, 2, 100, 100)
    assert out.local_reconstruction.shape == (2, 64, 25, 25)
    assert out.logits_local.shape == (2, 1311) and out.logits_global.shape == (2, 1311)
    assert model.vq_local.codebook.shape == (2048, 64)
    assert model.vq_global.codebook.shape == (2048, 64) and model.vq_global.split == 9
    assert model.fc1.fc1.in_features == 25 * 25 * 64 and model.fc1.fc1.out_features == 1000
    assert model.fc2.fc1.in_features == 4 * 4 * 576 and model.fc1.dropout.p == 0.5
    loss = model.loss(x, y, out)
    assert torch.isfinite(loss.total)
    counts = model.num_parameters()
    # the default EMA codebooks are moving averages, not gradient-trained parameters
    assert counts["vq_local"] == counts["vq_global"] == 0
    paper = Cytoself(cfg.replace(codebook="paper")).num_parameters()
    assert paper["vq_local"] == paper["vq_global"] == 2048 * 64
    # the encoders are ~3.8 M parameters, fc1 alone 40 M (40,000 x 1,000)
    assert 3e6 < counts["encoder1"] + counts["encoder2"] < 5e6
    assert counts["fc1"] == 40_000 * 1000 + 1000 + 1000 * 1311 + 1311


def test_forward_returns_every_field(tiny: Cytoself) -> None:
    x, _ = _batch(TINY)
    out = tiny(x)
    assert isinstance(out, CytoselfOutput)
    assert out.local.shape == (4, 8, 8, 8) and out.global_.shape == (4, 72, 1, 1)
    assert out.local_indices.shape == (4, 1, 8, 8) and out.global_indices.shape == (4, 9, 1, 1)
    assert out.local_indices.dtype == torch.int64
    assert out.reconstruction.shape == x.shape
    assert out.local_reconstruction.shape == out.local.shape
    assert out.logits_local.shape == (4, TINY.num_classes)
    for name in ("reconstruction", "local_reconstruction", "logits_local", "logits_global"):
        assert torch.isfinite(getattr(out, name)).all(), name


@pytest.mark.parametrize("codebook", ["ema", "paper"])
def test_gradients_reach_encoders_codebooks_decoders_and_heads(codebook: str) -> None:
    model = Cytoself(TINY.replace(codebook=codebook)).train()
    x, y = _batch(TINY)
    loss = model.loss(x, y, model(x))
    assert isinstance(loss, CytoselfLoss)
    loss.total.backward()
    for name, p in model.named_parameters():
        if codebook == "ema" and name.endswith("codebook"):
            # moving averages of the encoder outputs, not gradient-trained
            assert not p.requires_grad and p.grad is None, name
            continue
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    parts = ["encoder1", "encoder2", "decoder1", "decoder2", "fc1"]
    if codebook == "paper":
        parts += ["vq_local", "vq_global"]
    for part in parts:
        grads = [p.grad.abs().sum() for p in getattr(model, part).parameters()]
        assert sum(grads) > 0, part


def test_split_quantization_equals_quantizing_the_sub_vectors(tiny: Cytoself) -> None:
    x, _ = _batch(TINY)
    out = tiny.eval()(x)
    d = TINY.embedding_dim
    b, _, h, w = out.global_.shape
    sub = out.global_.reshape(b, 9, d, h, w).permute(0, 1, 3, 4, 2).reshape(-1, d)
    codebook = tiny.vq_global.codebook.detach()
    expected = torch.cdist(sub, codebook).argmin(1).reshape(b, 9, h, w)
    torch.testing.assert_close(out.global_indices, expected)
    q = codebook[expected].permute(0, 1, 4, 2, 3).reshape(b, 9 * d, h, w)
    torch.testing.assert_close(out.global_quantized, q)


def test_loss_is_the_weighted_sum_of_its_terms(tiny: Cytoself) -> None:
    x, y = _batch(TINY)
    out = tiny(x)
    base = tiny.loss(x, y, out)
    assert set(base.terms) == {
        "reconstruction",
        "local_reconstruction",
        "vq_local",
        "vq_global",
        "cls_local",
        "cls_global",
    }
    torch.testing.assert_close(base.total, sum(base.terms.values()))
    torch.testing.assert_close(base.terms["reconstruction"], F.mse_loss(out.reconstruction, x))
    torch.testing.assert_close(base.terms["cls_global"], F.cross_entropy(out.logits_global, y))
    scaled = tiny.loss(x, y, out, reconstruction_scale=4.0)
    torch.testing.assert_close(scaled.terms["reconstruction"] * 4, base.terms["reconstruction"])
    assert (
        0 <= base.accuracy_local <= 1 and 1 <= base.perplexity_global <= TINY.num_embeddings_global
    )
    weighted = Cytoself(TINY.replace(w_reconstruction=0.0, w_vq=2.0, w_classification=0.5))
    weighted.load_state_dict(tiny.state_dict())
    t = weighted.loss(x, y, out).terms
    expected = 2 * (t["vq_local"] + t["vq_global"]) + 0.5 * (t["cls_local"] + t["cls_global"])
    torch.testing.assert_close(weighted.loss(x, y, out).total, expected)
    with pytest.raises(ValueError, match="labels"):
        tiny.loss(x, None, out)
    with pytest.raises(ValueError, match="reconstruction_scale"):
        tiny.loss(x, y, out, reconstruction_scale=0.0)


ABLATIONS = {
    "quantize": (
        {
            "local_quantized",
            "global_quantized",
            "local_indices",
            "global_indices",
            "vq_local",
            "vq_global",
        },
        {"vq_local", "vq_global"},
        {"vq_local", "vq_global"},
    ),
    "classify": ({"logits_local", "logits_global"}, {"cls_local", "cls_global"}, {"fc1", "fc2"}),
    "decode": (
        {"reconstruction", "local_reconstruction"},
        {"reconstruction", "local_reconstruction"},
        {"decoder1", "decoder2"},
    ),
}


@pytest.mark.parametrize("switch", sorted(ABLATIONS))
def test_each_ablation_switch_removes_exactly_its_part(tiny: Cytoself, switch: str) -> None:
    fields_gone, terms_gone, modules_gone = ABLATIONS[switch]
    torch.manual_seed(0)
    model = Cytoself(TINY.replace(**{switch: False}))
    x, y = _batch(TINY)
    out = model(x)
    full = tiny(x)
    for name in CytoselfOutput.__dataclass_fields__:
        if name in fields_gone:
            assert getattr(out, name) is None, name
        else:
            assert getattr(full, name) is not None
            assert getattr(out, name) is not None, name
    loss = model.loss(x, y if switch != "classify" else None, out)
    assert set(loss.terms) == set(tiny.loss(x, y, full).terms) - terms_gone
    loss.total.backward()
    assert set(model.num_parameters()) == set(tiny.num_parameters()) - modules_gone
    for name in modules_gone:
        assert getattr(model, name) is None
    kept = {n for n, _ in model.named_parameters()}
    assert kept == {n for n, _ in tiny.named_parameters() if n.split(".")[0] not in modules_gone}


def test_no_split_quantization_quantizes_whole_vectors() -> None:
    model = Cytoself(TINY.replace(split_quantization=False))
    assert model.vq_global.split == 1 and model.vq_global.embedding_dim == 72
    assert model.vq_global.codebook.shape == (TINY.num_embeddings_global, 72)
    out = model(_batch(TINY)[0])
    assert out.global_indices.shape == (4, 1, 1, 1)
    assert out.local_indices.shape == (4, 1, 8, 8)


def test_ablated_stages_raise_when_called() -> None:
    x, _ = _batch(TINY)
    no_dec = Cytoself(TINY.replace(decode=False))
    local, global_ = no_dec.encode(x)
    with pytest.raises(ValueError, match="decode=False"):
        no_dec.decode(local, global_)
    no_cls = Cytoself(TINY.replace(classify=False, num_classes=1))
    with pytest.raises(ValueError, match="classify=False"):
        no_cls.classify(local, global_)
    continuous = Cytoself(TINY.replace(quantize=False))
    assert continuous.quantize(local, global_) == (None, None)
    g, idx = continuous.encode_global(x)
    assert idx is None and g.shape == (4, 72, 1, 1)


def test_stage_methods_compose_to_forward(tiny: Cytoself) -> None:
    tiny.eval()
    x, _ = _batch(TINY)
    out = tiny(x)
    local, global_ = tiny.encode(x)
    vq_l, vq_g = tiny.quantize(local, global_)
    rec, local_rec = tiny.decode(vq_l.quantized, vq_g.quantized)
    logits_l, _ = tiny.classify(vq_l.quantized, vq_g.quantized)
    torch.testing.assert_close(rec, out.reconstruction)
    torch.testing.assert_close(local_rec, out.local_reconstruction)
    torch.testing.assert_close(logits_l, out.logits_local)
    with torch.inference_mode():
        g, idx = tiny.encode_global(x)
    torch.testing.assert_close(g, out.global_quantized)
    torch.testing.assert_close(idx, out.global_indices)


def test_shape_errors(tiny: Cytoself) -> None:
    with pytest.raises(
        ValueError, match=r"`x` must have shape \(B, 2, 32, 32\), got \(4, 1, 32, 32\)"
    ):
        tiny(torch.zeros(4, 1, 32, 32))
    with pytest.raises(ValueError, match="`x` must have shape"):
        tiny(torch.zeros(2, 32, 32))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        tiny(torch.zeros(1, 2, 32, 32).numpy())
    local, global_ = tiny.encode(torch.zeros(2, 2, 32, 32))
    with pytest.raises(ValueError, match=r"`global_q` must have shape \(B, 72, 1, 1\)"):
        tiny.decode(local, torch.zeros(2, 72, 2, 2))
    with pytest.raises(ValueError, match="`local` must have shape"):
        tiny.quantize(global_, global_)
    with pytest.raises(TypeError, match="CytoselfConfig"):
        Cytoself({"in_channels": 2})  # type: ignore[arg-type]


def test_other_image_sizes_compute_their_geometry() -> None:
    model = Cytoself(TINY.replace(image_size=64, in_channels=1))
    assert model.local_shape == (8, 16, 16) and model.global_shape == (72, 2, 2)
    out = model(torch.rand(2, 1, 64, 64))
    assert out.reconstruction.shape == (2, 1, 64, 64)
    assert out.global_indices.shape == (2, 9, 2, 2)
    odd = Cytoself(TINY.replace(image_size=40))
    assert odd.local_shape[1:] == (10, 10) and odd.global_shape[1:] == (2, 2)
    assert odd(torch.rand(1, 2, 40, 40)).reconstruction.shape == (1, 2, 40, 40)


def test_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enc_mod, "_REGISTRY", dict(enc_mod._REGISTRY))
    register_encoder(
        "valid_conv",  # unpadded convolutions cannot encode small images
        lambda *, in_channels, local_channels, global_channels: (
            torch.nn.Conv2d(in_channels, local_channels, 12),
            torch.nn.Conv2d(local_channels, global_channels, 3),
        ),
    )
    with pytest.raises(
        ValueError, match=r"unknown encoder 'vit'; valid choices are \[.*'efficientnet_b0'"
    ):
        CytoselfConfig(encoder="vit")
    with pytest.raises(
        ValueError, match=r"`global_channels` \(100\) must be divisible by `global_split` \(9\)"
    ):
        CytoselfConfig(global_channels=100)
    with pytest.raises(
        ValueError, match=r"unknown preset 'huge'; valid choices are \['paper', 'small', 'tiny'\]"
    ):
        CytoselfConfig.preset("huge")
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['embed_dim'\]"):
        CytoselfConfig.preset("paper", embed_dim=32)
    with pytest.raises(ValueError, match="`in_channels` must be a positive int"):
        CytoselfConfig(in_channels=0)
    with pytest.raises(ValueError, match="`fc_dropout` must be in"):
        CytoselfConfig(fc_dropout=1.0)
    with pytest.raises(ValueError, match="`quantizer_backend` must be one of"):
        CytoselfConfig(quantizer_backend="cuda")
    with pytest.raises(ValueError, match="`w_vq` must be a finite number"):
        CytoselfConfig(w_vq=float("nan"))
    with pytest.raises(ValueError, match="`num_classes` must be >= 2"):
        CytoselfConfig(num_classes=1)
    with pytest.raises(ValueError, match="`decoder_min_channels`"):
        CytoselfConfig(decoder_channels=16, decoder_min_channels=32)
    with pytest.raises(ValueError, match="JSON"):
        CytoselfConfig(encoder_options={"width": object()})
    with pytest.raises(ValueError, match=r"cannot encode 2x8x8 images"):
        Cytoself(TINY.replace(image_size=8, encoder="valid_conv", encoder_options={}))


def test_config_round_trip_and_presets() -> None:
    for name in CytoselfConfig.PRESETS:
        cfg = CytoselfConfig.preset(name, in_channels=1)
        text = json.dumps(cfg.to_dict())
        assert CytoselfConfig.from_dict(json.loads(text)) == cfg
        assert hash(CytoselfConfig.from_dict(json.loads(text))) == hash(cfg)
    cfg = CytoselfConfig.preset("small")
    assert cfg.encoder_options == {"width": 0.5, "depth": 0.5}
    changed = cfg.replace(embedding_dim=16)
    assert changed.global_channels == 16 * 9 and changed.global_embedding_dim == 16
    assert CytoselfConfig().global_channels == 576
    assert CytoselfConfig(split_quantization=False).global_embedding_dim == 576
    # the config keeps its own copy of mutable options
    opts = {"width": 0.5}
    cfg = CytoselfConfig(encoder_options=opts)
    opts["width"] = 2.0
    assert cfg.encoder_options == {"width": 0.5}
    with pytest.raises(AttributeError):
        cfg.in_channels = 3  # type: ignore[misc]


def test_loss_is_float32_under_autocast(tiny: Cytoself) -> None:
    x, y = _batch(TINY)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny(x)
    assert out.reconstruction.dtype == torch.bfloat16
    loss = tiny.loss(x, y, out)
    assert loss.total.dtype == torch.float32 and torch.isfinite(loss.total)
    loss.total.backward()


def test_quantizer_options_reach_both_quantizers() -> None:
    cfg = TINY.replace(quantizer_options={"update": "ema", "kmeans_init": True}, beta=0.5)
    model = Cytoself(cfg)
    for vq in (model.vq_local, model.vq_global):
        assert vq.update == "ema" and vq.beta == 0.5
        assert not vq.codebook.requires_grad
    x, y = _batch(TINY)
    before = model.vq_local.codebook.detach().clone()
    model.loss(x, y, model(x)).total.backward()
    assert not torch.equal(before, model.vq_local.codebook)  # k-means init + EMA update
