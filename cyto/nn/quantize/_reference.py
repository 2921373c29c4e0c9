"""Pure-PyTorch reference backend of the vector quantizer.

The nearest-code search streams over chunks of the input so that at most one
``(chunk_size, K)`` block of the ``(N, K)`` distance matrix exists at any time, and
the straight-through estimator, codebook loss and commitment loss share one custom
autograd function whose backward needs neither the distances nor a one-hot matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "code_usage",
    "default_chunk_size",
    "nearest_code_torch",
    "perplexity_from_counts",
    "quantize_straight_through",
]

#: Bytes of one distance block (``chunk_size * K * 4``): 16 MiB stays in a typical L3
#: cache while keeping the number of per-chunk kernel launches (and thread-pool barriers,
#: which hurt on a busy machine) low.
_CHUNK_BYTES = 16 * 1024 * 1024


def default_chunk_size(num_embeddings: int) -> int:
    """Rows per distance block so that one block takes about 16 MiB (at least 64 rows).

    Parameters
    ----------
    num_embeddings : int
        Codebook size ``K``.

    Returns
    -------
    chunk_size : int
        Number of input vectors searched at once.

    Examples
    --------
    >>> default_chunk_size(2048)
    2048
    """
    return max(64, _CHUNK_BYTES // (4 * max(int(num_embeddings), 1)))


@torch.no_grad()
def nearest_code_torch(
    z: Tensor,
    codebook: Tensor,
    *,
    chunk_size: int | None = None,
    codebook_sqnorm: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Index of the nearest codebook row for every input row (chunked, no ``N x K`` matrix).

    Distances are ranked by ``||e||² - 2 z·e`` (the ``||z||²`` term does not change the
    argmin), computed chunk by chunk with one fused ``addmm`` into a reused buffer.

    Parameters
    ----------
    z : (N, D) Tensor
        Input vectors.
    codebook : (K, D) Tensor
        Code vectors, same dtype and device as ``z``.
    chunk_size : int, optional
        Rows of ``z`` per block; default :func:`default_chunk_size`.
    codebook_sqnorm : (K,) Tensor, optional
        Precomputed ``(codebook ** 2).sum(1)``.

    Returns
    -------
    indices : (N,) int64 Tensor
        Index of the nearest code (the lowest index on exact ties).
    partial_distance : (N,) Tensor
        ``||e||² - 2 z·e`` of the chosen code; add ``||z||²`` for the squared distance.

    Examples
    --------
    >>> codebook = torch.eye(3)
    >>> idx, _ = nearest_code_torch(torch.tensor([[0.0, 0.9, 0.1]]), codebook)
    >>> idx.tolist()
    [1]
    """
    n = z.shape[0]
    k = codebook.shape[0]
    if chunk_size is None:
        chunk_size = default_chunk_size(k)
    if codebook_sqnorm is None:
        codebook_sqnorm = codebook.pow(2).sum(1)
    codebook_t = codebook.t()
    indices = torch.empty(n, dtype=torch.int64, device=z.device)
    values = torch.empty(n, dtype=z.dtype, device=z.device)
    if n == 0:
        return indices, values
    rows = min(chunk_size, n)
    buf = torch.empty(rows, k, dtype=z.dtype, device=z.device)
    group = _argmin_group(k) if z.device.type == "cpu" else 0
    row_base = torch.arange(rows, device=z.device).mul_(k // group) if group else None
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = buf[: stop - start]
        torch.addmm(codebook_sqnorm, z[start:stop], codebook_t, beta=1, alpha=-2, out=block)
        if group:
            _row_min_grouped(
                block, group, row_base[: stop - start], values[start:stop], indices[start:stop]
            )
        else:
            torch.min(block, dim=1, out=(values[start:stop], indices[start:stop]))
    return indices, values


def _argmin_group(k: int) -> int:
    """Group width for the two-stage row argmin (0: use ``torch.min`` directly)."""
    for g in (64, 32):
        if k % g == 0 and k >= 4 * g:
            return g
    return 0


def _row_min_grouped(
    block: Tensor, group: int, row_base: Tensor, values: Tensor, indices: Tensor
) -> None:
    """Row-wise ``(min, argmin)`` of ``block`` in two stages, written into the outputs.

    On CPU, ``torch.min(dim=1)`` with indices is a scalar loop about 10x slower than the
    vectorised ``amin``. Here ``amin`` runs over contiguous groups of ``group`` columns,
    the (short) argmin picks each row's best group, and the exact min/argmin is taken inside
    that group only. Ties resolve to the lowest index, as with ``torch.min``.
    ``row_base`` is ``arange(rows) * (K // group)``.
    """
    r, k = block.shape
    n_groups = k // group
    grouped = block.view(r, n_groups, group)
    best_group = grouped.amin(2).argmin(1)
    flat_rows = row_base.add(best_group)
    candidates = grouped.reshape(r * n_groups, group).index_select(0, flat_rows)
    torch.min(candidates, dim=1, out=(values, indices))
    indices.add_(best_group.mul_(group))


class _StraightThroughVQ(torch.autograd.Function):
    """Embedding lookup with straight-through gradient, codebook and commitment losses.

    Forward returns ``(codebook[indices], mse, mse)`` where ``mse = mean((z - q)²)``;
    the two loss outputs carry different gradients: the first (codebook loss) only to the
    codebook, the second (commitment loss) only to ``z``. The backward is a scatter-add
    of ``(q - z)`` into the codebook rows plus one fused multiply-add for ``z``.
    """

    @staticmethod
    def forward(ctx, z: Tensor, codebook: Tensor, indices: Tensor):  # type: ignore[override]
        quantized = codebook.index_select(0, indices)
        diff = quantized - z
        flat = diff.reshape(-1)
        mse = torch.dot(flat, flat) / max(flat.numel(), 1)
        ctx.save_for_backward(diff, indices)
        ctx.num_embeddings = codebook.shape[0]
        return quantized, mse, mse.clone()

    @staticmethod
    def backward(ctx, grad_q: Tensor, grad_codebook_loss: Tensor, grad_commitment: Tensor):  # type: ignore[override]
        diff, indices = ctx.saved_tensors
        scale = 2.0 / max(diff.numel(), 1)
        grad_z = grad_codebook = None
        if ctx.needs_input_grad[0]:
            # d/dz mean((z - q)²) = -2 (q - z) / n ; the quantized output passes straight.
            grad_z = torch.addcmul(grad_q, diff, grad_commitment * -scale)
        if ctx.needs_input_grad[1]:
            # d/de_k mean((z - e_k)²) = 2 Σ_{i: idx_i = k} (e_k - z_i) / n
            grad_codebook = torch.zeros(
                ctx.num_embeddings, diff.shape[1], dtype=diff.dtype, device=diff.device
            )
            grad_codebook.index_add_(0, indices, diff)
            grad_codebook.mul_(grad_codebook_loss * scale)
        return grad_z, grad_codebook, None


def quantize_straight_through(
    z: Tensor, codebook: Tensor, indices: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Quantize ``z`` to ``codebook[indices]`` with the VQ-VAE gradients.

    Parameters
    ----------
    z : (N, D) Tensor
        Encoder outputs.
    codebook : (K, D) Tensor
        Code vectors.
    indices : (N,) int64 Tensor
        Chosen code per row.

    Returns
    -------
    quantized : (N, D) Tensor
        ``codebook[indices]`` in the forward pass; its gradient flows to ``z`` unchanged.
    codebook_loss : scalar Tensor
        ``mean((sg(z) - e)²)``; its gradient reaches only the codebook.
    commitment_loss : scalar Tensor
        ``mean((z - sg(e))²)``; its gradient reaches only ``z``.

    Examples
    --------
    >>> z = torch.tensor([[0.2, 0.0]], requires_grad=True)
    >>> q, cb, commit = quantize_straight_through(z, torch.eye(2), torch.tensor([0]))
    >>> q.tolist(), round(cb.item(), 2)
    ([[1.0, 0.0]], 0.32)
    """
    return _StraightThroughVQ.apply(z, codebook, indices)


def code_usage(indices: Tensor, num_embeddings: int) -> Tensor:
    """Number of times each code is used, ``(K,)`` int64.

    A scatter-add rather than ``torch.bincount``, whose data-dependent output shape would
    break ``torch.compile`` graphs.

    Examples
    --------
    >>> code_usage(torch.tensor([0, 2, 2]), 4).tolist()
    [1, 0, 2, 0]
    """
    flat = indices.reshape(-1)
    counts = torch.zeros(num_embeddings, dtype=torch.int64, device=flat.device)
    return counts.index_add_(0, flat, torch.ones_like(flat))


def perplexity_from_counts(counts: Tensor) -> Tensor:
    """``exp`` of the entropy of the code-usage distribution ``counts / counts.sum()``.

    Equals the exponentiated entropy of the mean one-hot assignment; 1 when a single code
    is used, ``K`` when all codes are used equally.

    Examples
    --------
    >>> float(perplexity_from_counts(torch.tensor([5, 5, 0, 0])))
    2.0
    """
    total = counts.sum().clamp_min(1)
    p = counts.to(torch.float32) / total
    return torch.exp(-torch.special.xlogy(p, p).sum())
