"""The fused Triton kernel agrees with the torch backend.

On CPU the kernel runs in Triton's interpreter. ``TRITON_INTERPRET=1`` must be set before
the kernel module is imported, so those checks run in a fresh subprocess.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from cyto.nn import VectorQuantizer

triton = pytest.importorskip("triton")

_INTERPRETED_CHECKS = textwrap.dedent(
    """
    import os
    assert os.environ["TRITON_INTERPRET"] == "1"
    import torch
    from cyto.nn.quantize import _triton
    from cyto.nn.quantize._reference import nearest_code_torch
    from cyto.nn import VectorQuantizer

    assert _triton.INTERPRET

    def full(z, cb, idx):
        return (z - cb[idx]).pow(2).sum(1)

    g = torch.Generator().manual_seed(0)
    # ragged shapes: N, K not multiples of the tiles, D not a power of two
    for n, k, d, bm, bk in [(37, 45, 20, 16, 16), (64, 32, 64, 32, 16), (5, 16, 3, 16, 32)]:
        z = torch.randn(n, d, generator=g)
        cb = torch.randn(k, d, generator=g)
        # near ties: a near-duplicate and an exact duplicate of existing codes
        cb[1] = cb[0] + 1e-7
        cb[2] = cb[3]
        z[0] = cb[2]
        idx, part = _triton.launch_nearest_kernel(
            z, cb, cb.pow(2).sum(1), block_m=bm, block_k=bk, precision="ieee", wrap=False
        )
        ref_idx, ref_part = nearest_code_torch(z, cb, chunk_size=7)
        assert idx.dtype == torch.int64 and idx.shape == (n,)
        assert 0 <= int(idx.min()) and int(idx.max()) < k
        # compare distances, not indices: ties may pick different (equally near) codes
        torch.testing.assert_close(full(z, cb, idx), full(z, cb, ref_idx), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(part, ref_part, rtol=1e-5, atol=1e-5)
        # where the nearest code is clearly nearest, the indices agree
        dist = torch.cdist(z.double(), cb.double()) ** 2
        top2 = dist.topk(2, largest=False).values
        clear = (top2[:, 1] - top2[:, 0]) > 1e-3
        assert torch.equal(idx[clear], ref_idx[clear])

    # through the registered op and the module (CPU kernel runs interpreted)
    vq_t = VectorQuantizer(48, 16, split=2, backend="triton")
    vq_r = VectorQuantizer(48, 16, split=2, backend="torch")
    vq_r.load_state_dict(vq_t.state_dict())
    assert vq_t.backend_ == "triton"
    x = torch.randn(2, 32, 3, 5, generator=g) * 0.05
    out_t, out_r = vq_t(x), vq_r(x)
    v = x.reshape(2, 2, 16, 3, 5).permute(0, 1, 3, 4, 2).reshape(-1, 16)
    cb = vq_t.codebook.detach()
    torch.testing.assert_close(
        full(v, cb, out_t.indices.flatten()), full(v, cb, out_r.indices.flatten()),
        rtol=1e-5, atol=1e-6,
    )
    torch.testing.assert_close(out_t.loss, out_r.loss, rtol=1e-5, atol=1e-7)
    idx, _ = torch.ops.cyto.vq_nearest(v, cb)
    assert idx.shape == (v.shape[0],)
    print("ok")
    """
)


@pytest.mark.slow
def test_interpreted_kernel_matches_torch_backend() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _INTERPRETED_CHECKS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")


def test_custom_op_cpu_fallback_matches_reference() -> None:
    from cyto.nn.quantize._reference import nearest_code_torch
    from cyto.nn.quantize._triton import nearest_code_triton

    g = torch.Generator().manual_seed(0)
    z, cb = torch.randn(300, 16, generator=g), torch.randn(128, 16, generator=g)
    idx, part = nearest_code_triton(z, cb)  # no interpreter here: the op's CPU kernel
    ref_idx, ref_part = nearest_code_torch(z, cb)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(part, ref_part)
    # torch.compile sees through the op (triton_op): one graph, no break
    compiled = torch.compile(
        lambda a, b: torch.ops.cyto.vq_nearest(a, b)[0], backend="aot_eager", fullgraph=True
    )
    assert torch.equal(compiled(z, cb), ref_idx)


def test_auto_backend_logs_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cyto.nn.quantize._module"):
        vq = VectorQuantizer(8, 4)
    expected = "triton" if torch.cuda.is_available() else "torch"
    assert vq.backend_ == expected
    assert any("backend" in r.getMessage() for r in caplog.records)
    if not torch.cuda.is_available():
        assert "CUDA is not available" in caplog.text


def test_forced_triton_without_triton_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from cyto.nn.quantize import _triton

    monkeypatch.setattr(_triton, "_IMPORT_ERROR", ImportError("no triton"))
    with pytest.raises(ImportError, match=r"cyto\[triton\]"):
        VectorQuantizer(8, 4, backend="triton")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_cuda_kernel_matches_torch_backend() -> None:
    from cyto.nn.quantize._reference import nearest_code_torch
    from cyto.nn.quantize._triton import nearest_code_triton

    g = torch.Generator(device="cuda").manual_seed(0)
    z = torch.randn(10_000, 64, device="cuda", generator=g)
    cb = torch.randn(2048, 64, device="cuda", generator=g)
    idx, _ = nearest_code_triton(z, cb)
    ref, _ = nearest_code_torch(z, cb)
    d = (z - cb[idx]).pow(2).sum(1)
    d_ref = (z - cb[ref]).pow(2).sum(1)
    torch.testing.assert_close(d, d_ref, rtol=1e-3, atol=1e-3)
    compiled = torch.compile(lambda a, b: torch.ops.cyto.vq_nearest(a, b)[0], fullgraph=True)
    assert torch.equal(compiled(z, cb), idx)
