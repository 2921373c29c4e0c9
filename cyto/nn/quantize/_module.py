"""The :class:`VectorQuantizer` module and its :class:`VQOutput`."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ._distributed import all_reduce_sum, sample_rows_rank0
from ._reference import (
    code_usage,
    default_chunk_size,
    nearest_code_torch,
    perplexity_from_counts,
    quantize_straight_through,
)

__all__ = ["BACKENDS", "VQOutput", "VectorQuantizer", "resolve_backend"]

logger = logging.getLogger(__name__)

#: Valid values of ``backend``.
BACKENDS = ("auto", "torch", "triton")
_UPDATES = ("loss", "ema")


@dataclass
class VQOutput:
    """Result of :meth:`VectorQuantizer.forward`.

    Attributes
    ----------
    quantized : (B, C, H, W) Tensor
        Quantized input; in the backward pass its gradient flows to the input unchanged
        (straight-through estimator).
    indices : (B, split, H, W) int64 Tensor
        Code index of every sub-vector.
    loss : scalar Tensor
        ``codebook_loss + beta * commitment_loss`` (the codebook loss is 0 with EMA updates).
    codebook_loss : scalar Tensor
        ``mean((sg(z) - e)²)``, moves the codes toward the encoder outputs.
    commitment_loss : scalar Tensor
        ``mean((z - sg(e))²)``, keeps the encoder outputs near their codes.
    perplexity : scalar Tensor
        ``exp`` of the entropy of the mean one-hot code assignment over the batch.
    counts : (K,) int64 Tensor
        How often each code was chosen in this batch (this process only).
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor
    counts: Tensor


def _triton_module():
    """Import the Triton backend (raises ImportError naming the ``[triton]`` extra)."""
    from . import _triton

    _triton.require_triton()
    return _triton


def resolve_backend(backend: str) -> tuple[str, str]:
    """Resolve ``"auto"`` to a concrete backend and give the reason.

    Parameters
    ----------
    backend : {"auto", "torch", "triton"}
        Requested backend.

    Returns
    -------
    backend : str
        ``"torch"`` or ``"triton"``.
    reason : str
        Why this backend was chosen.

    Raises
    ------
    ValueError
        If ``backend`` is not one of :data:`BACKENDS`.
    ImportError
        If ``backend="triton"`` but Triton is not installed.

    Examples
    --------
    >>> resolve_backend("torch")
    ('torch', 'requested explicitly')
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return "torch", "requested explicitly"
    if backend == "triton":
        _triton_module()
        if not torch.cuda.is_available():
            return (
                "triton",
                "requested explicitly; no CUDA device, so CPU inputs use the torch search",
            )
        return "triton", "requested explicitly"
    if not torch.cuda.is_available():
        return "torch", "CUDA is not available (the Triton kernel needs a GPU)"
    try:
        _triton_module()
    except ImportError as err:
        return "torch", f"Triton could not be imported ({err})"
    return "triton", "CUDA and Triton are available"


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__} ({value!r})")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value}")
    return value


def _check_float(name: str, value: object, low: float, high: float, *, closed: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`{name}` must be a float, got {type(value).__name__} ({value!r})")
    value = float(value)
    ok = (low <= value <= high) if closed else (low < value < high)
    if not ok or math.isnan(value):
        brackets = "[]" if closed else "()"
        raise ValueError(
            f"`{name}` must be in {brackets[0]}{low}, {high}{brackets[1]}, got {value}"
        )
    return value


class VectorQuantizer(nn.Module):
    """Vector quantizer (VQ-VAE) with split quantization, fused backends and codebook care.

    Each input position is split into ``split`` sub-vectors of ``embedding_dim`` channels
    (sub-vector ``s`` is channels ``[s*D, (s+1)*D)``), each replaced by its nearest code in
    one shared codebook of ``num_embeddings`` rows (split quantization of cytoself).

    Parameters
    ----------
    num_embeddings : int
        Codebook size ``K``.
    embedding_dim : int
        Code dimension ``D``.
    split : int, default 1
        Sub-vectors per position; inputs must have ``split * embedding_dim`` channels.
    beta : float, default 0.25
        Weight of the commitment loss.
    backend : {"auto", "torch", "triton"}, default "auto"
        Nearest-code search: ``"torch"`` (chunked ``addmm`` + ``argmin``), ``"triton"``
        (fused GEMM + running argmin, CUDA) or ``"auto"`` (Triton when CUDA and Triton
        are available, else torch; the reason is logged). The result is ``backend_``.
    chunk_size : int, optional
        Input vectors per distance block of the torch backend; peak extra memory is
        ``chunk_size * K`` floats. Default: a block of about 16 MiB.
    init_scale : float, default 0.05
        Codes start uniform in ``[-init_scale, init_scale]`` (as in the published model).
    update : {"loss", "ema"}, default "loss"
        ``"loss"``: codes are parameters trained by the codebook loss. ``"ema"``: codes are
        exponential moving averages of their assigned encoder outputs (no codebook loss).
    decay : float, default 0.99
        EMA decay of the code statistics (EMA updates and dead-code tracking).
    epsilon : float, default 1e-5
        Laplace smoothing of the EMA cluster sizes.
    kmeans_init : bool, default False
        Initialise the codebook by k-means on the first training batch.
    kmeans_iters : int, default 10
        Lloyd iterations of the k-means initialisation.
    dead_code_threshold : float, default 0.0
        Restart codes whose EMA usage (assignments per step, summed over ranks) falls
        below this value with encoder outputs of the current batch; 0 disables restarts.

    Attributes
    ----------
    backend_ : str
        The resolved backend, ``"torch"`` or ``"triton"``.
    codebook : (K, D) Parameter
        The code vectors (``requires_grad=False`` with EMA updates).

    Raises
    ------
    ValueError
        For out-of-range arguments or an unknown ``backend`` / ``update`` (the message
        lists the valid choices).
    TypeError
        For arguments of the wrong type.
    ImportError
        If ``backend="triton"`` and Triton is not installed.

    Notes
    -----
    Under ``torch.distributed``, k-means, EMA and usage statistics are all-reduced and
    every random choice is made on rank 0 and broadcast, so all ranks keep identical
    codebooks.

    References
    ----------
    .. [1] van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation
       Learning", NeurIPS 2017. https://doi.org/10.48550/arXiv.1711.00937
    .. [2] Kobayashi et al., "Self-supervised deep learning encodes high-resolution
       features of protein subcellular localization", Nat. Methods 19, 995-1003 (2022).
       https://doi.org/10.1038/s41592-022-01541-z

    Examples
    --------
    >>> vq = VectorQuantizer(16, 4, split=2, backend="torch")
    >>> out = vq(torch.randn(2, 8, 3, 3))
    >>> out.quantized.shape, out.indices.shape
    (torch.Size([2, 8, 3, 3]), torch.Size([2, 2, 3, 3]))
    >>> bool(torch.equal(vq.lookup(out.indices), out.quantized))
    True
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        split: int = 1,
        beta: float = 0.25,
        backend: Literal["auto", "torch", "triton"] = "auto",
        chunk_size: int | None = None,
        init_scale: float = 0.05,
        update: Literal["loss", "ema"] = "loss",
        decay: float = 0.99,
        epsilon: float = 1e-5,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_embeddings = _check_positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = _check_positive_int("embedding_dim", embedding_dim)
        self.split = _check_positive_int("split", split)
        self.beta = _check_float("beta", beta, 0.0, math.inf, closed=True)
        if chunk_size is not None:
            _check_positive_int("chunk_size", chunk_size)
        self.chunk_size = (
            chunk_size if chunk_size is not None else default_chunk_size(num_embeddings)
        )
        self.init_scale = _check_float("init_scale", init_scale, 0.0, math.inf, closed=True)
        if update not in _UPDATES:
            raise ValueError(f"`update` must be one of {list(_UPDATES)}, got {update!r}")
        self.update = update
        self.decay = _check_float("decay", decay, 0.0, 1.0, closed=False)
        self.epsilon = _check_float("epsilon", epsilon, 0.0, math.inf, closed=False)
        if not isinstance(kmeans_init, bool):
            raise TypeError(f"`kmeans_init` must be a bool, got {type(kmeans_init).__name__}")
        self.kmeans_init = kmeans_init
        self.kmeans_iters = _check_positive_int("kmeans_iters", kmeans_iters)
        self.dead_code_threshold = _check_float(
            "dead_code_threshold", dead_code_threshold, 0.0, math.inf, closed=True
        )
        self.backend = backend
        self.backend_, reason = resolve_backend(backend)
        logger.info("VectorQuantizer backend %r: %s", self.backend_, reason)

        self.codebook = nn.Parameter(
            torch.empty(num_embeddings, embedding_dim), requires_grad=update == "loss"
        )
        # Statistics for EMA updates and dead-code tracking (all-reduced under DDP).
        self.register_buffer("cluster_size", torch.zeros(num_embeddings))
        self.register_buffer("embed_sum", torch.zeros(num_embeddings, embedding_dim))
        self.register_buffer("initialized", torch.tensor(False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the codes uniformly in ``±init_scale`` and forget all statistics."""
        with torch.no_grad():
            self.codebook.uniform_(-self.init_scale, self.init_scale)
            self.cluster_size.zero_()
            self.embed_sum.zero_()
            self.initialized.fill_(False)
        self._init_checked = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # A loaded ``initialized`` flag must be re-read by the next training step.
        self._init_checked = False
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, split={self.split}, "
            f"beta={self.beta}, backend={self.backend_!r}, update={self.update!r}"
        )

    # ------------------------------------------------------------------ layout
    def _check_input(self, z: Tensor) -> None:
        if not isinstance(z, Tensor):
            raise TypeError(f"`z` must be a torch.Tensor, got {type(z).__name__}")
        expected = self.split * self.embedding_dim
        if z.dim() != 4 or z.shape[1] != expected:
            raise ValueError(
                f"`z` must have shape (B, {expected}, H, W) (split={self.split} x "
                f"embedding_dim={self.embedding_dim} channels), got {tuple(z.shape)}"
            )
        if not z.is_floating_point():
            raise TypeError(f"`z` must be a floating point tensor, got {z.dtype}")

    def _to_vectors(self, z: Tensor) -> Tensor:
        b, _, h, w = z.shape
        z = z.to(self.codebook.dtype)
        v = z.reshape(b, self.split, self.embedding_dim, h, w).permute(0, 1, 3, 4, 2)
        return v.reshape(-1, self.embedding_dim)

    def _from_vectors(self, v: Tensor, shape: torch.Size) -> Tensor:
        b, c, h, w = shape
        v = v.reshape(b, self.split, h, w, self.embedding_dim).permute(0, 1, 4, 2, 3)
        return v.reshape(b, c, h, w)

    # ------------------------------------------------------------------ search
    def nearest(self, vectors: Tensor, codebook: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Nearest code of each row with the resolved backend.

        Parameters
        ----------
        vectors : (N, D) Tensor
            Vectors to assign.
        codebook : (K', D) Tensor, optional
            Codes to search (default: this module's codebook).

        Returns
        -------
        indices : (N,) int64 Tensor
        partial_distance : (N,) Tensor
            ``||e||² - 2 z·e`` of the chosen code (add ``||z||²`` for the distance).
        """
        if codebook is None:
            codebook = self.codebook
        codebook = codebook.detach()
        vectors = vectors.detach()
        if self.backend_ == "triton" and vectors.is_cuda:
            from . import _triton

            return _triton.nearest_code_triton(vectors.contiguous(), codebook.contiguous())
        return nearest_code_torch(vectors, codebook, chunk_size=self.chunk_size)

    # ------------------------------------------------------------------ forward
    def forward(self, z: Tensor) -> VQOutput:
        """Quantize ``z``.

        Parameters
        ----------
        z : (B, split * embedding_dim, H, W) Tensor
            Encoder output.

        Returns
        -------
        VQOutput
            Quantized tensor, indices, losses, perplexity and code counts.

        Raises
        ------
        ValueError
            If ``z`` does not have ``split * embedding_dim`` channels or is not 4-D.
        """
        self._check_input(z)
        # Distances and losses in the codebook's precision, even under autocast: bf16/fp16
        # distances would pick wrong codes at near ties.
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._forward(z)

    def _forward(self, z: Tensor) -> VQOutput:
        vectors = self._to_vectors(z)
        tracking = self.training and (self.update == "ema" or self.dead_code_threshold > 0)
        if self.training and not self._init_checked:
            # Checked once per module (a buffer read synchronises CUDA).
            if not bool(self.initialized):
                self._lazy_init(vectors.detach())
            self._init_checked = True
        indices, _ = self.nearest(vectors)
        counts = code_usage(indices, self.num_embeddings)

        codebook = self.codebook if self.update == "loss" else self.codebook.detach()
        q, codebook_loss, commitment_loss = quantize_straight_through(vectors, codebook, indices)
        if self.update == "ema":
            codebook_loss = torch.zeros_like(commitment_loss)
            loss = self.beta * commitment_loss
        else:
            loss = codebook_loss + self.beta * commitment_loss

        if tracking:
            self._update_statistics(vectors.detach(), indices, counts)
        quantized = self._from_vectors(q, z.shape).to(z.dtype)
        b, _, h, w = z.shape
        return VQOutput(
            quantized=quantized,
            indices=indices.reshape(b, self.split, h, w),
            loss=loss,
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=perplexity_from_counts(counts),
            counts=counts,
        )

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors of given indices, laid out like :meth:`forward`'s ``quantized``.

        Parameters
        ----------
        indices : (B, split, H, W) integer Tensor
            Code indices in ``[0, num_embeddings)``.

        Returns
        -------
        quantized : (B, split * embedding_dim, H, W) Tensor

        Raises
        ------
        ValueError
            If ``indices`` has the wrong shape or values out of range.
        """
        if not isinstance(indices, Tensor) or indices.is_floating_point():
            raise TypeError("`indices` must be an integer torch.Tensor")
        if indices.dim() != 4 or indices.shape[1] != self.split:
            raise ValueError(
                f"`indices` must have shape (B, {self.split}, H, W), got {tuple(indices.shape)}"
            )
        if indices.numel() and (
            int(indices.min()) < 0 or int(indices.max()) >= self.num_embeddings
        ):
            raise ValueError(
                f"`indices` must lie in [0, {self.num_embeddings}), got values in "
                f"[{int(indices.min())}, {int(indices.max())}]"
            )
        b, s, h, w = indices.shape
        q = self.codebook.index_select(0, indices.reshape(-1).long())
        return self._from_vectors(q, torch.Size((b, s * self.embedding_dim, h, w)))

    # ------------------------------------------------------------------ codebook care
    @torch.compiler.disable  # one-off / data-dependent, with collectives
    @torch.no_grad()
    def _lazy_init(self, vectors: Tensor) -> None:
        """First training step: optional k-means, then the code statistics."""
        if self.kmeans_init:
            self.codebook.data.copy_(self._kmeans(vectors))
        total = all_reduce_sum(torch.tensor(float(vectors.shape[0]), device=vectors.device))
        # Prior: every code used equally, at its current position.
        self.cluster_size.fill_(float(total) / self.num_embeddings)
        self.embed_sum.copy_(self.codebook.detach() * self.cluster_size[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def _kmeans(self, vectors: Tensor) -> Tensor:
        """Lloyd's k-means over the vectors of all ranks, seeded from rank 0's vectors."""
        centroids = sample_rows_rank0(vectors, self.num_embeddings)
        for _ in range(self.kmeans_iters):
            idx, _ = self.nearest(vectors, centroids)
            sums = torch.zeros_like(centroids).index_add_(0, idx, vectors)
            counts = code_usage(idx, self.num_embeddings).to(vectors.dtype)
            all_reduce_sum(sums)
            all_reduce_sum(counts)
            used = counts > 0
            centroids[used] = sums[used] / counts[used, None]
        return centroids

    @torch.no_grad()
    def _update_statistics(self, vectors: Tensor, indices: Tensor, counts: Tensor) -> None:
        counts = all_reduce_sum(counts.to(self.cluster_size.dtype))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.update == "ema":
            sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, vectors)
            all_reduce_sum(sums)
            self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.cluster_size.sum()
            smoothed = (
                (self.cluster_size + self.epsilon) / (n + self.num_embeddings * self.epsilon) * n
            )
            self.codebook.data.copy_(self.embed_sum / smoothed[:, None])
        if self.dead_code_threshold > 0:
            self._restart_dead_codes(vectors)

    @torch.no_grad()
    def _restart_dead_codes(self, vectors: Tensor) -> None:
        """Move codes used less than ``dead_code_threshold`` onto random encoder outputs.

        Branch-free (``torch.where`` over all codes, one candidate row drawn per code every
        step), so the training step never waits for the device to say whether a code died
        and ``torch.compile`` captures it in one graph. ``cluster_size`` is identical on all
        ranks and the candidates come from rank 0, so every rank makes the same moves.
        """
        dead = self.cluster_size < self.dead_code_threshold
        candidates = sample_rows_rank0(vectors, self.num_embeddings)
        # A fresh code gets the average usage as a grace period before it can die again.
        grace = self.cluster_size.mean().clamp_min(self.dead_code_threshold)
        self.codebook.data.copy_(torch.where(dead[:, None], candidates, self.codebook))
        self.cluster_size.copy_(torch.where(dead, grace, self.cluster_size))
        self.embed_sum.copy_(torch.where(dead[:, None], candidates * grace, self.embed_sum))
