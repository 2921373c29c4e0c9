"""Tests of the vector quantizer (torch backend, codebook care, registry)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cyto.nn import VectorQuantizer, VQOutput
from cyto.nn.quantize._reference import nearest_code_torch, perplexity_from_counts


def _dense_vq(z: torch.Tensor, codebook: torch.Tensor, split: int, beta: float):
    """Naive dense quantizer: full N x K distances, one-hot, matmul (as in VQ-VAE papers)."""
    b, c, h, w = z.shape
    d = c // split
    v = z.reshape(b, split, d, h, w).permute(0, 1, 3, 4, 2).reshape(-1, d)
    dist = torch.cdist(v.double(), codebook.double()) ** 2
    idx = dist.argmin(1)
    one_hot = F.one_hot(idx, codebook.shape[0]).to(v.dtype)
    q = one_hot @ codebook
    codebook_loss = F.mse_loss(q, v.detach())
    commitment = F.mse_loss(v, q.detach())
    q_st = v + (q - v).detach()
    quantized = q_st.reshape(b, split, h, w, d).permute(0, 1, 4, 2, 3).reshape(b, c, h, w)
    avg = one_hot.mean(0)
    perplexity = torch.exp(-(avg * torch.log(avg + 1e-30)).sum())
    return quantized, idx.reshape(b, split, h, w), codebook_loss + beta * commitment, perplexity


@pytest.fixture
def z() -> torch.Tensor:
    return torch.randn(3, 12, 5, 4, generator=torch.Generator().manual_seed(0))


def test_output_shapes_and_types(z: torch.Tensor) -> None:
    vq = VectorQuantizer(32, 4, split=3, backend="torch")
    out = vq(z)
    assert isinstance(out, VQOutput)
    assert out.quantized.shape == z.shape
    assert out.indices.shape == (3, 3, 5, 4) and out.indices.dtype == torch.int64
    assert out.counts.shape == (32,) and int(out.counts.sum()) == 3 * 3 * 5 * 4
    for name in ("loss", "codebook_loss", "commitment_loss", "perplexity"):
        assert getattr(out, name).shape == ()
    assert vq.backend_ == "torch"


def test_default_init_is_uniform_005() -> None:
    vq = VectorQuantizer(512, 16, backend="torch")
    cb = vq.codebook.detach()
    assert cb.abs().max() <= 0.05 and cb.abs().max() > 0.045
    assert abs(float(cb.mean())) < 0.005


@pytest.mark.parametrize("split", [1, 3])
def test_matches_naive_dense_implementation(z: torch.Tensor, split: int) -> None:
    torch.manual_seed(1)
    vq = VectorQuantizer(64, 12 // split, split=split, beta=0.3, backend="torch", chunk_size=7)
    with torch.no_grad():
        vq.codebook.normal_()
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    cb2 = vq.codebook.detach().clone().requires_grad_(True)
    out = vq(z1)
    q, idx, loss, perp = _dense_vq(z2, cb2, split, 0.3)
    torch.testing.assert_close(out.indices, idx, rtol=0, atol=0)
    assert torch.equal(out.quantized, vq.lookup(idx))
    torch.testing.assert_close(out.quantized, q)
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(out.perplexity, perp)
    w = torch.randn_like(z)
    ((out.quantized * w).sum() + out.loss).backward()
    ((q * w).sum() + loss).backward()
    torch.testing.assert_close(z1.grad, z2.grad)
    torch.testing.assert_close(vq.codebook.grad, cb2.grad)


def test_split_equals_quantizing_reshaped_subvectors(z: torch.Tensor) -> None:
    split, d = 3, 4
    vq_split = VectorQuantizer(16, d, split=split, backend="torch")
    vq_one = VectorQuantizer(16, d, split=1, backend="torch")
    vq_one.load_state_dict(vq_split.state_dict())
    out = vq_split(z)
    b, _, h, w = z.shape
    # sub-vector s of position (h, w) is channels [s*d, (s+1)*d): fold splits into the batch
    z_sub = z.reshape(b, split, d, h, w).reshape(b * split, d, h, w)
    ref = vq_one(z_sub)
    assert torch.equal(out.indices.reshape(b * split, 1, h, w), ref.indices)
    assert torch.equal(out.quantized, ref.quantized.reshape(b, split * d, h, w))
    torch.testing.assert_close(out.loss, ref.loss)
    assert torch.equal(out.counts, ref.counts)


def test_gradients_straight_through_and_codebook(z: torch.Tensor) -> None:
    vq = VectorQuantizer(16, 4, split=3, beta=0.25, backend="torch")
    x = z.clone().requires_grad_(True)
    out = vq(x)
    out.quantized.sum().backward()
    # straight-through: d(sum quantized)/dz is exactly one, and no codebook gradient
    assert torch.equal(x.grad, torch.ones_like(x))
    assert vq.codebook.grad is None or not vq.codebook.grad.any()
    x.grad = None
    vq.zero_grad()
    vq(x).codebook_loss.backward()
    assert x.grad is None or not x.grad.any()
    assert vq.codebook.grad.abs().sum() > 0
    vq.zero_grad()
    vq(x).commitment_loss.backward()
    assert x.grad.abs().sum() > 0
    assert vq.codebook.grad is None or not vq.codebook.grad.any()


def test_autocast_does_not_lower_search_precision(z: torch.Tensor) -> None:
    vq = VectorQuantizer(256, 4, split=3, backend="torch")
    with torch.no_grad():
        vq.codebook.normal_(generator=torch.Generator().manual_seed(5))  # dense codes
    ref = vq(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(z)
    assert torch.equal(out.indices, ref.indices)
    assert out.quantized.dtype == z.dtype


@pytest.mark.parametrize("k", [50, 256])  # 256 takes the grouped two-stage argmin
def test_chunking_does_not_change_result(k: int) -> None:
    g = torch.Generator().manual_seed(3)
    v, cb = torch.randn(1000, 8, generator=g), torch.randn(k, 8, generator=g)
    ref_idx, ref_val = nearest_code_torch(v, cb, chunk_size=1000)
    for chunk in (1, 7, 64, 999):
        idx, val = nearest_code_torch(v, cb, chunk_size=chunk)
        assert torch.equal(idx, ref_idx)
        torch.testing.assert_close(val, ref_val)
    exact = torch.cdist(v.double(), cb.double()) ** 2
    torch.testing.assert_close(
        (ref_val + v.pow(2).sum(1)).double(), exact.min(1).values, rtol=1e-5, atol=1e-4
    )


def test_exact_ties_pick_lowest_index_like_torch_min() -> None:
    g = torch.Generator().manual_seed(4)
    cb = torch.randn(256, 4, generator=g)
    cb[200] = cb[3]  # duplicated codes: exact ties across groups
    cb[7] = cb[5]  # and within a group
    v = torch.cat([cb[[3, 5, 200, 7]], torch.randn(50, 4, generator=g)])
    idx, _ = nearest_code_torch(v, cb, chunk_size=16)
    assert idx[:4].tolist() == [3, 5, 3, 5]
    dense = torch.addmm(cb.pow(2).sum(1), v, cb.t(), beta=1, alpha=-2)
    assert torch.equal(idx, dense.min(1).indices)


def test_perplexity_formula() -> None:
    assert float(perplexity_from_counts(torch.tensor([4, 0, 0]))) == pytest.approx(1.0)
    assert float(perplexity_from_counts(torch.tensor([1, 1, 1, 1]))) == pytest.approx(4.0)
    counts = torch.tensor([1, 3, 0, 6])
    p = torch.tensor([0.1, 0.3, 0.6])
    expected = math.exp(-float((p * p.log()).sum()))
    assert float(perplexity_from_counts(counts)) == pytest.approx(expected, rel=1e-6)


def test_lookup_roundtrip_and_errors(z: torch.Tensor) -> None:
    vq = VectorQuantizer(16, 4, split=3, backend="torch")
    out = vq(z)
    assert torch.equal(vq.lookup(out.indices), out.quantized)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        vq.lookup(torch.full((1, 3, 2, 2), 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        vq.lookup(torch.zeros(1, 2, 2, 2, dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_embeddings": 0}, ValueError, "num_embeddings"),
        ({"embedding_dim": 2.5}, TypeError, "embedding_dim"),
        ({"split": 0}, ValueError, "split"),
        ({"beta": -1.0}, ValueError, "beta"),
        ({"backend": "cuda"}, ValueError, r"backend.*\['auto', 'torch', 'triton'\].*'cuda'"),
        ({"update": "adam"}, ValueError, r"update.*\['loss', 'ema'\]"),
        ({"decay": 1.0}, ValueError, "decay"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"dead_code_threshold": -1}, ValueError, "dead_code_threshold"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, error: type, match: str) -> None:
    args = {"num_embeddings": 8, "embedding_dim": 4, **kwargs}
    with pytest.raises(error, match=match):
        VectorQuantizer(args.pop("num_embeddings"), args.pop("embedding_dim"), **args)


def test_bad_input_channels_raise() -> None:
    vq = VectorQuantizer(8, 4, split=3, backend="torch")
    with pytest.raises(ValueError, match=r"\(B, 12, H, W\).*split=3.*got \(2, 10, 3, 3\)"):
        vq(torch.randn(2, 10, 3, 3))
    with pytest.raises(ValueError, match="shape"):
        vq(torch.randn(12, 3, 3))


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_quantizer_contract(update: str, z: torch.Tensor) -> None:
    vq = VectorQuantizer(16, 4, split=3, backend="torch", update=update)
    vq.train()
    x = z.clone().requires_grad_(True)
    out = vq(x)
    assert isinstance(out, VQOutput)
    assert out.quantized.shape == z.shape and out.indices.shape == (3, 3, 5, 4)
    assert torch.isfinite(out.quantized).all() and torch.isfinite(out.loss)
    (out.quantized.square().mean() + out.loss).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    vq.eval()  # training may move the codes (EMA, restarts); eval must not
    out = vq(z)
    assert torch.equal(vq.lookup(out.indices), out.quantized)


def _clusters(n_per: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0, 0, 0], [-3, 0, 0, 0], [0, 3, 0, 0], [0, 0, -3, 0]])
    pts = centres.repeat_interleave(n_per, 0) + 0.1 * torch.randn(4 * n_per, 4, generator=g)
    return pts[torch.randperm(len(pts), generator=g)], centres


def _as_image(vectors: torch.Tensor) -> torch.Tensor:
    # (N, D) -> (N, D, 1, 1): one vector per image
    return vectors[:, :, None, None]


def test_kmeans_init_finds_clusters() -> None:
    torch.manual_seed(0)
    pts, _ = _clusters()
    vq = VectorQuantizer(32, 4, backend="torch", kmeans_init=True)
    plain = VectorQuantizer(32, 4, backend="torch")
    out = vq(_as_image(pts))
    assert bool(vq.initialized)
    assert (
        float(out.commitment_loss.detach())
        < 0.02
        < float(plain(_as_image(pts)).commitment_loss.detach())
    )
    before = vq.codebook.detach().clone()
    vq(_as_image(pts + 1.0))  # initialised once only
    assert torch.equal(vq.codebook.detach(), before)


def test_state_dict_roundtrip_keeps_initialisation() -> None:
    torch.manual_seed(0)
    pts, _ = _clusters()
    trained = VectorQuantizer(32, 4, backend="torch", kmeans_init=True, update="ema")
    trained(_as_image(pts))
    fresh = VectorQuantizer(32, 4, backend="torch", kmeans_init=True, update="ema")
    fresh(_as_image(pts * 0 + 5.0))  # initialised on other data ...
    fresh.load_state_dict(trained.state_dict())  # ... then replaced by the checkpoint
    fresh.eval()
    trained.eval()
    assert torch.equal(fresh(_as_image(pts)).indices, trained(_as_image(pts)).indices)
    untrained = VectorQuantizer(32, 4, backend="torch", kmeans_init=True)
    fresh.load_state_dict(untrained.state_dict())  # not initialised: k-means runs again
    fresh.train()
    fresh(_as_image(pts))
    assert bool(fresh.initialized)
    assert not torch.equal(fresh.codebook.detach(), untrained.codebook.detach())


def test_ema_update_formula() -> None:
    torch.manual_seed(0)
    decay, eps = 0.5, 1e-5
    vq = VectorQuantizer(6, 2, backend="torch", update="ema", decay=decay, epsilon=eps)
    assert not vq.codebook.requires_grad
    x = torch.randn(10, 2)
    cb0 = vq.codebook.detach().clone()
    idx = (torch.cdist(x, cb0)).argmin(1)
    out = vq(_as_image(x))
    assert float(out.codebook_loss.detach()) == 0.0
    torch.testing.assert_close(out.loss, 0.25 * out.commitment_loss)
    counts = torch.bincount(idx, minlength=6).float()
    sums = torch.zeros(6, 2).index_add_(0, idx, x)
    size = torch.full((6,), 10 / 6) * decay + (1 - decay) * counts
    embed = cb0 * (10 / 6) * decay + (1 - decay) * sums
    n = size.sum()
    expected = embed / ((size + eps) / (n + 6 * eps) * n)[:, None]
    torch.testing.assert_close(vq.codebook.detach(), expected)
    torch.testing.assert_close(vq.cluster_size, size)
    # eval mode leaves the codebook alone
    vq.eval()
    vq(_as_image(x))
    torch.testing.assert_close(vq.codebook.detach(), expected)


def test_ema_converges_to_cluster_means() -> None:
    torch.manual_seed(0)
    pts, centres = _clusters()
    vq = VectorQuantizer(4, 4, backend="torch", update="ema", decay=0.8, kmeans_init=True)
    for _ in range(30):
        vq(_as_image(pts))
    dist = torch.cdist(centres, vq.codebook.detach())
    assert float(dist.min(1).values.max()) < 0.1


def test_dead_codes_restart_from_batch() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, backend="torch", dead_code_threshold=1.0, decay=0.5)
    with torch.no_grad():
        vq.codebook.fill_(100.0)
        vq.codebook[0] = 0.0  # the only live code
    x = torch.randn(64, 4)
    for _ in range(4):
        out = vq(_as_image(x))
    # restarted codes are batch vectors and now get used
    cb = vq.codebook.detach()
    restarted = cb[1:]
    assert (restarted[:, None, :] == x[None]).all(-1).any(1).all()
    assert int((out.counts > 0).sum()) > 1
    assert float(out.perplexity) > 2.0


# PyTorch's own tracing of any autograd.Function emits this deprecation internally.
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_torch_compile_traces_without_graph_breaks(z: torch.Tensor) -> None:
    vq = VectorQuantizer(64, 4, split=3, backend="torch")
    vq(z)  # first training step: lazy initialisation (eager, may run collectives)
    explanation = torch._dynamo.explain(vq)(z)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(vq, backend="aot_eager")
    x = z.clone().requires_grad_(True)
    out = compiled(x)
    (out.loss + out.quantized.sum()).backward()
    assert torch.equal(out.indices, vq(z).indices)
    assert x.grad is not None
