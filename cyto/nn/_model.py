"""The cytoself model: two encoders, two vector quantizers, two decoders, two heads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._config import CytoselfConfig
from ._decoders import ResidualDecoder, upsampling_sizes
from ._encoders import create_encoder
from ._heads import MLPHead
from ._protocol import ModelLoss
from .quantize import VectorQuantizer, VQOutput

__all__ = ["Cytoself", "CytoselfLoss", "CytoselfOutput"]


@dataclass
class CytoselfOutput:
    """Everything one forward pass produces; fields of ablated parts are ``None``.

    Attributes
    ----------
    reconstruction : (B, C, S, S) Tensor or None
        decoder1's reconstruction of the input image.
    local_reconstruction : (B, D, h, w) Tensor or None
        decoder2's reconstruction of encoder1's (unquantized) output.
    local : (B, D, h, w) Tensor
        Unquantized local representation (25×25×64 for the paper model).
    global_ : (B, G, h2, w2) Tensor
        Unquantized global representation (4×4×576).
    local_quantized, global_quantized : Tensor or None
        Quantized representations (straight-through gradients).
    local_indices : (B, 1, h, w) int64 Tensor or None
        VQ1 code indices (625 per image for the paper model).
    global_indices : (B, split, h2, w2) int64 Tensor or None
        VQ2 code indices (9×4×4 = 144 per image for the paper model).
    vq_local, vq_global : VQOutput or None
        Full quantizer outputs (losses, perplexity, code counts).
    logits_local, logits_global : (B, num_classes) Tensor or None
        Identification logits of fc1 and fc2.
    """

    local: torch.Tensor
    global_: torch.Tensor
    reconstruction: torch.Tensor | None = None
    local_reconstruction: torch.Tensor | None = None
    local_quantized: torch.Tensor | None = None
    global_quantized: torch.Tensor | None = None
    local_indices: torch.Tensor | None = None
    global_indices: torch.Tensor | None = None
    vq_local: VQOutput | None = None
    vq_global: VQOutput | None = None
    logits_local: torch.Tensor | None = None
    logits_global: torch.Tensor | None = None


class CytoselfLoss(ModelLoss):
    """The weighted training loss and its parts (a :class:`~cyto.nn._protocol.ModelLoss`).

    Attributes
    ----------
    total : scalar Tensor
        ``w_reconstruction * (reconstruction + local_reconstruction)
        + w_vq * (vq_local + vq_global) + w_classification * (cls_local + cls_global)``
        over the terms that exist.
    terms : dict of str to scalar Tensor
        Unweighted terms: ``"reconstruction"``, ``"local_reconstruction"``,
        ``"vq_local"``, ``"vq_global"``, ``"cls_local"``, ``"cls_global"`` where present.
    task : scalar Tensor
        ``w_reconstruction * reconstruction + w_classification * (cls_local +
        cls_global)``: the total without the feature-space terms (``local_reconstruction``,
        ``vq_*``), whose scale follows the encoders' output and can grow while the
        model improves. The default criterion of the best checkpoint (``task_loss``).
    metrics : dict of str to scalar Tensor
        ``perplexity_local``, ``perplexity_global`` (codebook perplexities of the batch)
        and ``accuracy_local``, ``accuracy_global`` (identification accuracies), detached,
        where the model has the parts; also readable as attributes of those names.

    Every value stays a tensor on the model's device: nothing here waits for the GPU;
    the training loop reads them at its logging steps only.
    """

    @property
    def perplexity_local(self) -> torch.Tensor | None:
        return self.metrics.get("perplexity_local")

    @property
    def perplexity_global(self) -> torch.Tensor | None:
        return self.metrics.get("perplexity_global")

    @property
    def accuracy_local(self) -> torch.Tensor | None:
        return self.metrics.get("accuracy_local")

    @property
    def accuracy_global(self) -> torch.Tensor | None:
        return self.metrics.get("accuracy_global")


# Loss terms whose scale is fixed by the data, not by the encoders' output.
_TASK_TERMS = frozenset({"reconstruction", "cls_local", "cls_global"})


def _cpu_channels_last(x: torch.Tensor) -> torch.Tensor:
    """On CPU, channels-last activations make oneDNN's convolutions ~20% faster here."""
    if x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _index_dtype(k: int) -> np.dtype:
    """The smallest integer dtype of code indices below ``k``."""
    return np.dtype(np.int16) if k <= np.iinfo(np.int16).max else np.dtype(np.int32)


def _count_dtype(max_count: int) -> np.dtype:
    """The smallest dtype of per-crop code counts up to ``max_count``."""
    return np.dtype(np.uint16) if max_count <= np.iinfo(np.uint16).max else np.dtype(np.int32)


def _bincount_rows(indices: torch.Tensor, k: int) -> torch.Tensor:
    """Per-row histograms of ``indices`` (n, m) into ``k`` bins, one bincount call."""
    n = indices.shape[0]
    offsets = torch.arange(n, device=indices.device).unsqueeze(1) * k
    return torch.bincount((indices + offsets).reshape(-1), minlength=n * k).reshape(n, k)


class Cytoself(nn.Module):
    """The cytoself model (Kobayashi et al. 2022), built from a :class:`CytoselfConfig`.

    encoder1 maps the image to the local representation, encoder2 maps the unquantized
    local representation to the global one; VQ1 and VQ2 (split quantization) quantize
    them; decoder2 reconstructs encoder1's output from the quantized global
    representation, decoder1 reconstructs the image from the quantized local
    representation concatenated with the bilinearly resized quantized global one; fc1
    and fc2 identify the protein from the flattened quantized representations.

    Parameters
    ----------
    config : CytoselfConfig
        The configuration (kept as ``self.config``).

    Attributes
    ----------
    local_shape, global_shape : tuple of int
        ``(C, h, w)`` of the local and global representations (probed once).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`CytoselfConfig`.
    ValueError
        If the encoder pair does not produce the configured shapes.

    References
    ----------
    .. [1] Kobayashi, H., Cheveralls, K. C., Leonetti, M. D. & Royer, L. A.
       Self-supervised deep learning encodes high-resolution features of protein
       subcellular localization. Nat. Methods 19, 995–1003 (2022).
       :doi:`10.1038/s41592-022-01541-z`

    Examples
    --------
    >>> import torch
    >>> model = Cytoself(CytoselfConfig.preset("tiny", in_channels=2))
    >>> out = model(torch.zeros(2, 2, 32, 32))
    >>> tuple(out.local_indices.shape), tuple(out.global_indices.shape)
    ((2, 1, 8, 8), (2, 9, 1, 1))
    >>> loss = model.loss(torch.zeros(2, 2, 32, 32), torch.tensor([0, 1]), out)
    >>> sorted(loss.terms)
    ['cls_global', 'cls_local', 'local_reconstruction', 'reconstruction', 'vq_global', 'vq_local']
    """

    #: learns from single crops (not pairs)
    paired: ClassVar[bool] = False

    def __init__(self, config: CytoselfConfig) -> None:
        super().__init__()
        if not isinstance(config, CytoselfConfig):
            raise TypeError(f"`config` must be a CytoselfConfig, got {type(config).__name__}")
        self.config = config
        gc = int(config.global_channels)  # type: ignore[arg-type]
        pair = create_encoder(
            config.encoder,
            in_channels=config.in_channels,
            local_channels=config.embedding_dim,
            global_channels=gc,
            **config.encoder_options,
        )
        self.encoder1 = pair.encoder1
        self.encoder2 = pair.encoder2
        self.local_shape, self.global_shape = self._probe_shapes()
        _, lh, lw = self.local_shape
        _, gh, gw = self.global_shape

        self.vq_local: VectorQuantizer | None = None
        self.vq_global: VectorQuantizer | None = None
        if config.quantize:
            opts: dict[str, Any] = config.vq_options
            self.vq_local = VectorQuantizer(
                config.num_embeddings_local,
                config.embedding_dim,
                split=1,
                beta=config.beta,
                backend=config.quantizer_backend,
                **opts,
            )
            self.vq_global = VectorQuantizer(
                config.num_embeddings_global,
                config.global_embedding_dim,
                split=config.global_vq_split,
                beta=config.beta,
                backend=config.quantizer_backend,
                **opts,
            )
        self.decoder1: ResidualDecoder | None = None
        self.decoder2: ResidualDecoder | None = None
        if config.decode:
            dec = dict(
                channels=config.decoder_channels,
                min_channels=config.decoder_min_channels,
                blocks=config.decoder_blocks,
            )
            self.decoder1 = ResidualDecoder(
                config.embedding_dim,
                config.in_channels,
                upsampling_sizes(lh, config.image_size),
                context_channels=gc,
                **dec,
            )
            self.decoder2 = ResidualDecoder(
                gc, config.embedding_dim, upsampling_sizes(gh, lh), **dec
            )
        self.fc1: MLPHead | None = None
        self.fc2: MLPHead | None = None
        if config.classify:
            head = dict(hidden=config.fc_hidden, dropout=config.fc_dropout)
            self.fc1 = MLPHead(config.embedding_dim * lh * lw, config.num_classes, **head)
            self.fc2 = MLPHead(gc * gh * gw, config.num_classes, **head)

    @classmethod
    def from_config(cls, config: CytoselfConfig) -> Cytoself:
        """Build a model from a config (same as ``Cytoself(config)``).

        Parameters
        ----------
        config : CytoselfConfig

        Returns
        -------
        Cytoself

        Examples
        --------
        >>> Cytoself.from_config(CytoselfConfig.preset("tiny")).local_shape
        (8, 8, 8)
        """
        return cls(config)

    # ------------------------------------------------------------------ helpers
    @torch.no_grad()
    def _probe_shapes(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        cfg = self.config
        modes = [(m, m.training) for m in (self.encoder1, self.encoder2)]
        try:
            for m, _ in modes:
                m.eval()
            x = torch.zeros(1, cfg.in_channels, cfg.image_size, cfg.image_size)
            local = self.encoder1(x)
            global_ = self.encoder2(local)
        except RuntimeError as err:
            raise ValueError(
                f"encoder {cfg.encoder!r} cannot encode {cfg.in_channels}x{cfg.image_size}x"
                f"{cfg.image_size} images: {err}"
            ) from err
        finally:
            for m, mode in modes:
                m.train(mode)
        want_local = cfg.embedding_dim
        want_global = cfg.global_channels
        if local.ndim != 4 or local.shape[1] != want_local:
            raise ValueError(
                f"encoder1 of {cfg.encoder!r} gives local representation of shape "
                f"{_shape(local)[1:]}, expected ({want_local}, h, w) (embedding_dim)"
            )
        if global_.ndim != 4 or global_.shape[1] != want_global:
            raise ValueError(
                f"encoder2 of {cfg.encoder!r} gives global representation of shape "
                f"{_shape(global_)[1:]}, expected ({want_global}, h, w) (global_channels)"
            )
        lh, lw = local.shape[2:]
        gh, gw = global_.shape[2:]
        if lh != lw or gh != gw or not (1 <= gh <= lh <= cfg.image_size):
            raise ValueError(
                f"mismatched shapes for image_size={cfg.image_size}: local map {lh}x{lw} and "
                f"global map {gh}x{gw} must be square with 1 <= global <= local <= image_size"
            )
        return (want_local, int(lh), int(lw)), (int(want_global), int(gh), int(gw))

    def _check_input(self, x: torch.Tensor) -> None:
        cfg = self.config
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}")
        want = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"`x` must have shape (B, {', '.join(map(str, want))}), got {_shape(x)}"
            )

    @staticmethod
    def _check_rep(name: str, t: torch.Tensor, shape: tuple[int, ...]) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or tuple(t.shape[1:]) != shape:
            raise ValueError(
                f"`{name}` must have shape (B, {', '.join(map(str, shape))}), got {_shape(t)}"
            )

    # ------------------------------------------------------------------ stages
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode images into the unquantized local and global representations.

        Parameters
        ----------
        x : (B, C, S, S) Tensor
            Images.

        Returns
        -------
        local : (B, D, h, w) Tensor
        global_ : (B, G, h2, w2) Tensor
            encoder2 applied to the *unquantized* local representation.

        Raises
        ------
        ValueError
            If ``x`` does not have the configured channels and size.
        """
        self._check_input(x)
        local = self.encoder1(_cpu_channels_last(x))
        return local, self.encoder2(local)

    def quantize(
        self, local: torch.Tensor, global_: torch.Tensor
    ) -> tuple[VQOutput | None, VQOutput | None]:
        """Quantize both representations (``(None, None)`` when ``quantize=False``).

        Parameters
        ----------
        local : (B, D, h, w) Tensor
        global_ : (B, G, h2, w2) Tensor

        Returns
        -------
        vq_local, vq_global : VQOutput or None
        """
        self._check_rep("local", local, self.local_shape)
        self._check_rep("global_", global_, self.global_shape)
        if self.vq_local is None or self.vq_global is None:
            return None, None
        return self.vq_local(local), self.vq_global(global_)

    def decode(
        self, local_q: torch.Tensor, global_q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct the image (decoder1) and encoder1's output (decoder2).

        Parameters
        ----------
        local_q : (B, D, h, w) Tensor
            (Quantized) local representation.
        global_q : (B, G, h2, w2) Tensor
            (Quantized) global representation.

        Returns
        -------
        reconstruction : (B, C, S, S) Tensor
        local_reconstruction : (B, D, h, w) Tensor

        Raises
        ------
        ValueError
            If the model was built with ``decode=False`` or the shapes do not match.
        """
        if self.decoder1 is None or self.decoder2 is None:
            raise ValueError("this model has no decoders (config.decode=False)")
        self._check_rep("local_q", local_q, self.local_shape)
        self._check_rep("global_q", global_q, self.global_shape)
        # decoder1 sees cat(local_q, bilinear(global_q)) through its first 1x1 conv
        reconstruction = self.decoder1(local_q, global_q)
        return reconstruction, self.decoder2(global_q)

    def classify(
        self, local_q: torch.Tensor, global_q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Identification logits of fc1 (local) and fc2 (global).

        Parameters
        ----------
        local_q : (B, D, h, w) Tensor
        global_q : (B, G, h2, w2) Tensor

        Returns
        -------
        logits_local, logits_global : (B, num_classes) Tensor

        Raises
        ------
        ValueError
            If the model was built with ``classify=False`` or the shapes do not match.
        """
        if self.fc1 is None or self.fc2 is None:
            raise ValueError("this model has no identification heads (config.classify=False)")
        self._check_rep("local_q", local_q, self.local_shape)
        self._check_rep("global_q", global_q, self.global_shape)
        return self.fc1(local_q), self.fc2(global_q)

    def forward(self, x: torch.Tensor) -> CytoselfOutput:
        """Run every part of the model that the configuration enables.

        Parameters
        ----------
        x : (B, C, S, S) Tensor
            Images.

        Returns
        -------
        CytoselfOutput
        """
        local, global_ = self.encode(x)
        out = CytoselfOutput(local=local, global_=global_)
        vq_l, vq_g = self.quantize(local, global_)
        local_q, global_q = local, global_
        if vq_l is not None and vq_g is not None:
            out.vq_local, out.vq_global = vq_l, vq_g
            out.local_quantized = local_q = vq_l.quantized
            out.global_quantized = global_q = vq_g.quantized
            out.local_indices, out.global_indices = vq_l.indices, vq_g.indices
        if self.decoder1 is not None:
            out.reconstruction, out.local_reconstruction = self.decode(local_q, global_q)
        if self.fc1 is not None:
            out.logits_local, out.logits_global = self.classify(local_q, global_q)
        return out

    def encode_global(
        self, x: torch.Tensor, *, quantized: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fast path to the global representation: skips VQ1, decoders and heads.

        Wrap the call in ``torch.inference_mode()`` (and ``model.eval()``) for extraction.

        Parameters
        ----------
        x : (B, C, S, S) Tensor
            Images.
        quantized : bool, default True
            Return the quantized representation (when the model quantizes).

        Returns
        -------
        global_ : (B, G, h2, w2) Tensor
            Quantized (or continuous) global representation.
        indices : (B, split, h2, w2) int64 Tensor or None
            VQ2 indices, None when not quantized.

        Examples
        --------
        >>> import torch
        >>> model = Cytoself(CytoselfConfig.preset("tiny")).eval()
        >>> with torch.inference_mode():
        ...     g, idx = model.encode_global(torch.zeros(3, 2, 32, 32))
        >>> tuple(g.shape), tuple(idx.shape)
        ((3, 72, 1, 1), (3, 9, 1, 1))
        """
        self._check_input(x)
        global_ = self.encoder2(self.encoder1(_cpu_channels_last(x)))
        if not quantized or self.vq_global is None:
            return global_, None
        vq = self.vq_global(global_)
        return vq.quantized, vq.indices

    # ------------------------------------------------------------------ loss
    def loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        output: CytoselfOutput,
        *,
        reconstruction_scale: float = 1.0,
    ) -> CytoselfLoss:
        """The weighted training loss of one forward pass.

        Parameters
        ----------
        x : (B, C, S, S) Tensor
            The images given to :meth:`forward`.
        labels : (B,) int64 Tensor or None
            Class indices; required when the model classifies.
        output : CytoselfOutput
            ``self(x)``.
        reconstruction_scale : float, default 1.0
            The image reconstruction MSE is divided by it (the paper uses the training
            set's pixel variance). The local reconstruction compares features, not
            pixels, and is not scaled.

        Returns
        -------
        CytoselfLoss

        Raises
        ------
        ValueError
            If ``labels`` is missing or has the wrong shape, or the scale is not positive.
        """
        cfg = self.config
        scale = reconstruction_scale
        if isinstance(scale, torch.Tensor) and scale.numel() == 1:
            pass  # a tensor scale is trusted (it may live on the GPU)
        elif (
            not isinstance(scale, int | float)
            or isinstance(scale, bool)
            or not math.isfinite(scale)
            or scale <= 0
        ):
            raise ValueError(f"`reconstruction_scale` must be a finite number > 0, got {scale!r}")
        terms: dict[str, torch.Tensor] = {}
        result = CytoselfLoss(total=x.new_zeros(()))
        if output.reconstruction is not None:
            # losses in float32 even when the forward ran under bf16/fp16 autocast
            terms["reconstruction"] = F.mse_loss(output.reconstruction.float(), x.float()) / scale
        if output.local_reconstruction is not None:
            target = output.local.detach() if cfg.detach_local_target else output.local
            terms["local_reconstruction"] = F.mse_loss(
                output.local_reconstruction.float(), target.float()
            )
        if output.vq_local is not None and output.vq_global is not None:
            terms["vq_local"] = output.vq_local.loss
            terms["vq_global"] = output.vq_global.loss
            # tensors, not floats: reading a number here would wait for the GPU every step
            result.metrics["perplexity_local"] = output.vq_local.perplexity.detach()
            result.metrics["perplexity_global"] = output.vq_global.perplexity.detach()
        if output.logits_local is not None and output.logits_global is not None:
            if not isinstance(labels, torch.Tensor) or labels.shape != (x.shape[0],):
                got = _shape(labels) if isinstance(labels, torch.Tensor) else repr(labels)
                raise ValueError(
                    f"`labels` must be an int64 Tensor of shape ({x.shape[0]},), got {got}"
                )
            terms["cls_local"] = F.cross_entropy(output.logits_local.float(), labels)
            terms["cls_global"] = F.cross_entropy(output.logits_global.float(), labels)
            with torch.no_grad():
                for part, logits in (
                    ("local", output.logits_local),
                    ("global", output.logits_global),
                ):
                    hits = logits.argmax(1) == labels
                    result.metrics[f"accuracy_{part}"] = hits.float().mean()
        weights = {
            "reconstruction": cfg.w_reconstruction,
            "local_reconstruction": cfg.w_reconstruction,
            "vq_local": cfg.w_vq,
            "vq_global": cfg.w_vq,
            "cls_local": cfg.w_classification,
            "cls_global": cfg.w_classification,
        }
        total = task = None
        for name, value in terms.items():
            term = weights[name] * value
            total = term if total is None else total + term
            if name in _TASK_TERMS:
                task = term if task is None else task + term
        if total is not None:
            result.total = total
        result.task = task if task is not None else result.total
        result.terms = terms
        return result

    # ------------------------------------------------------------------ what embed writes
    def health_arrays(self, output: CytoselfOutput) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The flattened global encodings of a forward pass (quantized when the model
        quantizes) and VQ2's code indices (None without codebooks)."""
        encodings = output.global_quantized
        if encodings is None:
            encodings = output.global_
        indices = output.global_indices
        return encodings.flatten(1), None if indices is None else indices.flatten(1)

    def embed_layout(
        self, *, logits: bool = False, local: bool = False, global_only: bool = False
    ) -> dict[str, tuple[int, np.dtype]]:
        """The datasets ``cyto embed`` writes, name to (row width, dtype).

        ``global`` always; ``local`` on request; the code indices and per-crop code
        histograms of both codebooks when the model quantizes; the identification
        logits of both heads on request. ``global_only`` leaves out everything of the
        local path (the fast path of :meth:`encode_global`).
        """
        cfg = self.config
        d, lh, lw = self.local_shape
        g, gh, gw = self.global_shape
        layout: dict[str, tuple[int, np.dtype]] = {"global": (g * gh * gw, np.dtype(np.float32))}
        if local and not global_only:
            layout["local"] = (d * lh * lw, np.dtype(np.float32))
        if self.vq_local is not None and self.vq_global is not None:
            kl, kg = cfg.num_embeddings_local, cfg.num_embeddings_global
            if not global_only:
                layout["local_indices"] = (lh * lw, _index_dtype(kl))
            layout["global_indices"] = (cfg.global_vq_split * gh * gw, _index_dtype(kg))
            if not global_only:
                layout["local_hist"] = (kl, _count_dtype(lh * lw))
            layout["global_hist"] = (kg, _count_dtype(cfg.global_vq_split * gh * gw))
        if logits and self.fc1 is not None:
            layout["logits"] = (cfg.num_classes, np.dtype(np.float32))
            if not global_only:
                layout["logits_local"] = (cfg.num_classes, np.dtype(np.float32))
        return layout

    def embed_arrays(
        self,
        x: torch.Tensor,
        *,
        logits: bool = False,
        local: bool = False,
        global_only: bool = False,
    ) -> dict[str, np.ndarray]:
        """The rows of :meth:`embed_layout` for a batch of crops ``(B, C, S, S)``.

        Call it under ``torch.inference_mode()`` on a model in eval mode.
        """
        out = self._embed_global(x, logits) if global_only else self._embed_all(x, logits, local)
        return {
            k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
            for k, v in out.items()
        }

    def _embed_global(self, x: torch.Tensor, logits: bool) -> dict[str, torch.Tensor]:
        """encoder1 -> encoder2 -> VQ2 only: no VQ1, decoders or local head."""
        global_q, gidx = self.encode_global(x)
        out = {"global": global_q.flatten(1)}
        if gidx is not None:
            out["global_indices"] = gi = gidx.flatten(1)
            out["global_hist"] = _bincount_rows(gi, self.config.num_embeddings_global)
        if logits and self.fc2 is not None:
            out["logits"] = self.fc2(global_q)
        return out

    def _embed_all(self, x: torch.Tensor, logits: bool, local: bool) -> dict[str, torch.Tensor]:
        local_c, global_c = self.encode(x)
        vq_l, vq_g = self.quantize(local_c, global_c)
        local_q = vq_l.quantized if vq_l is not None else local_c
        global_q = vq_g.quantized if vq_g is not None else global_c
        out = {"global": global_q.flatten(1)}
        if local:
            out["local"] = local_q.flatten(1)
        if vq_l is not None and vq_g is not None:
            li, gi = vq_l.indices.flatten(1), vq_g.indices.flatten(1)
            out["local_indices"] = li
            out["global_indices"] = gi
            out["local_hist"] = _bincount_rows(li, self.config.num_embeddings_local)
            out["global_hist"] = _bincount_rows(gi, self.config.num_embeddings_global)
        if logits and self.fc1 is not None:
            out["logits_local"], out["logits"] = self.classify(local_q, global_q)
        return out

    # ------------------------------------------------------------------ reporting
    def num_parameters(self) -> dict[str, int]:
        """Trainable parameter counts per part (absent parts are left out).

        Returns
        -------
        dict of str to int
            Keys among ``encoder1``, ``encoder2``, ``vq_local``, ``vq_global``,
            ``decoder1``, ``decoder2``, ``fc1``, ``fc2`` and ``total``.

        Examples
        --------
        >>> counts = Cytoself(CytoselfConfig.preset("tiny")).num_parameters()
        >>> counts["total"] == sum(v for k, v in counts.items() if k != "total")
        True
        """
        counts: dict[str, int] = {}
        for name in (
            "encoder1",
            "encoder2",
            "vq_local",
            "vq_global",
            "decoder1",
            "decoder2",
            "fc1",
            "fc2",
        ):
            module = getattr(self, name)
            if module is not None:
                counts[name] = sum(p.numel() for p in module.parameters() if p.requires_grad)
        counts["total"] = sum(counts.values())
        return counts

    def extra_repr(self) -> str:
        return f"local_shape={self.local_shape}, global_shape={self.global_shape}"
