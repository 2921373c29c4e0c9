"""Fused Triton kernel for the nearest-code search (distance GEMM + running argmin).

Each program loads a tile of ``BLOCK_M`` input vectors once, then walks over the codebook
in tiles of ``BLOCK_K`` codes: one ``tl.dot`` gives the tile of ``||e||² - 2 z·e`` and a
running ``(min, argmin)`` pair is kept in registers, so no ``N x K`` matrix is ever
written. The kernel is registered as the custom op ``cyto::vq_nearest`` with
:func:`torch.library.triton_op`, so ``torch.compile`` traces into it; on CPU the op runs
the torch reference (or runs the kernel in Triton's interpreter when
``TRITON_INTERPRET=1`` was set before this module was imported).

Importing this module imports Triton; :mod:`cyto.nn.quantize` imports it lazily.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ._reference import nearest_code_torch

__all__ = ["launch_nearest_kernel", "nearest_code_triton", "require_triton"]

triton = None
tl = None
_IMPORT_ERROR: ImportError | None = None
try:
    import triton
    import triton.language as tl
except ImportError as _err:  # pragma: no cover - triton is a declared extra
    _IMPORT_ERROR = _err

#: Whether Triton's interpreter was requested when this module was imported.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def require_triton() -> None:
    """Raise ImportError naming the ``[triton]`` extra when Triton is unavailable."""
    if _IMPORT_ERROR is not None:
        raise ImportError(
            "'triton' is needed for VectorQuantizer(backend=\"triton\") but could not be "
            f'imported ({_IMPORT_ERROR}); install it with `pip install "cyto[triton]"` '
            'or use backend="torch"'
        ) from _IMPORT_ERROR


if _IMPORT_ERROR is None:

    @triton.jit
    def _vq_nearest_kernel(
        z_ptr,
        e_ptr,
        esq_ptr,
        idx_ptr,
        dist_ptr,
        n_rows,
        n_codes,
        dim,
        stride_z,
        stride_e,
        BLOCK_M: tl.constexpr,
        BLOCK_K: tl.constexpr,
        BLOCK_D: tl.constexpr,
        PRECISION: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.arange(0, BLOCK_D)
        row_ok = rows < n_rows
        col_ok = cols < dim
        z = tl.load(
            z_ptr + rows[:, None] * stride_z + cols[None, :],
            mask=row_ok[:, None] & col_ok[None, :],
            other=0.0,
        )
        best = tl.full((BLOCK_M,), float("inf"), tl.float32)
        best_idx = tl.zeros((BLOCK_M,), tl.int32)
        for start in range(0, n_codes, BLOCK_K):
            codes = start + tl.arange(0, BLOCK_K)
            code_ok = codes < n_codes
            e = tl.load(
                e_ptr + codes[:, None] * stride_e + cols[None, :],
                mask=code_ok[:, None] & col_ok[None, :],
                other=0.0,
            )
            esq = tl.load(esq_ptr + codes, mask=code_ok, other=float("inf"))
            dot = tl.dot(z, tl.trans(e), input_precision=PRECISION)
            dist = esq[None, :] - 2.0 * dot
            tile_best, tile_idx = tl.min(dist, axis=1, return_indices=True)
            # Strict < keeps the lowest index on exact ties, like torch.min.
            better = tile_best < best
            best = tl.where(better, tile_best, best)
            best_idx = tl.where(better, tile_idx + start, best_idx)
        tl.store(idx_ptr + rows, best_idx.to(tl.int64), mask=row_ok)
        tl.store(dist_ptr + rows, best, mask=row_ok)


def _precision() -> str:
    """Follow torch's matmul precision so both backends agree (TF32 only when allowed)."""
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


def launch_nearest_kernel(
    z: Tensor,
    codebook: Tensor,
    codebook_sqnorm: Tensor,
    *,
    block_m: int = 64,
    block_k: int = 64,
    precision: str | None = None,
    wrap: bool = True,
) -> tuple[Tensor, Tensor]:
    """Launch the fused kernel (on CUDA, or on CPU under ``TRITON_INTERPRET=1``).

    Parameters
    ----------
    z : (N, D) float32 Tensor
        Contiguous input vectors.
    codebook : (K, D) float32 Tensor
        Contiguous codes.
    codebook_sqnorm : (K,) float32 Tensor
        ``(codebook ** 2).sum(1)``.
    block_m, block_k : int, default 64
        Tile sizes (powers of two, at least 16).
    precision : {"ieee", "tf32"}, optional
        ``tl.dot`` precision; default follows ``torch.backends.cuda.matmul.allow_tf32``.
    wrap : bool, default True
        Launch through :func:`torch.library.wrap_triton` (needed inside the custom op).

    Returns
    -------
    indices : (N,) int64 Tensor
    partial_distance : (N,) float32 Tensor
        ``||e||² - 2 z·e`` of the chosen code.
    """
    require_triton()
    n, d = z.shape
    k = codebook.shape[0]
    indices = torch.empty(n, dtype=torch.int64, device=z.device)
    dist = torch.empty(n, dtype=torch.float32, device=z.device)
    if n == 0:
        return indices, dist
    block_d = max(16, triton.next_power_of_2(d))
    kernel = torch.library.wrap_triton(_vq_nearest_kernel) if wrap else _vq_nearest_kernel
    grid = (triton.cdiv(n, block_m),)
    kernel[grid](
        z,
        codebook,
        codebook_sqnorm,
        indices,
        dist,
        n,
        k,
        d,
        z.stride(0),
        codebook.stride(0),
        BLOCK_M=block_m,
        BLOCK_K=block_k,
        BLOCK_D=block_d,
        PRECISION=precision or _precision(),
    )
    return indices, dist


if _IMPORT_ERROR is None:

    @torch.library.triton_op("cyto::vq_nearest", mutates_args=())
    def _vq_nearest_op(z: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
        # torch.compile traces this body: the kernel on CUDA, plain torch ops elsewhere
        # (or the interpreted kernel under TRITON_INTERPRET=1).
        codebook_sqnorm = codebook.pow(2).sum(1)
        if z.device.type == "cuda":
            return launch_nearest_kernel(z, codebook, codebook_sqnorm)
        if INTERPRET:
            return launch_nearest_kernel(z, codebook, codebook_sqnorm, wrap=False)
        return nearest_code_torch(z, codebook, codebook_sqnorm=codebook_sqnorm)


def nearest_code_triton(z: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest code of each row of ``z`` with the fused kernel (op ``cyto::vq_nearest``).

    Parameters
    ----------
    z : (N, D) float32 Tensor
        Input vectors (CUDA; on CPU the op runs the torch reference, or the interpreted
        kernel under ``TRITON_INTERPRET=1``).
    codebook : (K, D) float32 Tensor
        Codes.

    Returns
    -------
    indices : (N,) int64 Tensor
    partial_distance : (N,) float32 Tensor
        ``||e||² - 2 z·e`` of the chosen code.

    Raises
    ------
    ImportError
        If Triton is not installed (names the ``[triton]`` extra).
    """
    require_triton()
    return _vq_nearest_op(z.float().contiguous(), codebook.float().contiguous())
