"""Feature interpretation (paper Fig. 5): ablate codes before decoding, arrays in and out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ._model import Cytoself

__all__ = ["ClusterAblation", "CodeAblation", "ablate_codes", "ablate_feature_clusters"]

_LEVELS = ("local", "global")


@dataclass
class CodeAblation:
    """Reconstructions with and without a set of codes.

    Attributes
    ----------
    reconstruction : (N, C, S, S) float32 ndarray
        Normal reconstruction.
    ablated : (N, C, S, S) float32 ndarray
        Reconstruction after zeroing the quantized vectors that use the codes.
    difference : (N, C, S, S) float32 ndarray
        ``reconstruction - ablated``: where and how much those codes contribute.
    mask : bool ndarray
        Positions that were zeroed: ``(N, h, w)`` for the local level,
        ``(N, split, h2, w2)`` for the global level.
    fraction : (N,) float64 ndarray
        Fraction of positions zeroed per crop.
    """

    reconstruction: np.ndarray
    ablated: np.ndarray
    difference: np.ndarray
    mask: np.ndarray
    fraction: np.ndarray


@dataclass
class ClusterAblation:
    """Difference maps of several feature clusters.

    Attributes
    ----------
    reconstruction : (N, C, S, S) float32 ndarray
        Normal reconstruction.
    difference : (n_clusters, N, C, S, S) float32 ndarray
        ``reconstruction`` minus the reconstruction with cluster ``i``'s codes zeroed.
    fraction : (n_clusters, N) float64 ndarray
        Fraction of positions zeroed per cluster and crop.
    clusters : list of ndarray
        The code indices of each cluster, in the order of ``difference``.
    """

    reconstruction: np.ndarray
    difference: np.ndarray
    fraction: np.ndarray
    clusters: list[np.ndarray]


def _check_model(model: Cytoself) -> None:
    if not isinstance(model, Cytoself):
        raise TypeError(f"`model` must be a Cytoself model, got {type(model).__name__}")
    if model.vq_local is None or model.vq_global is None:
        raise ValueError("`model` must quantize (config.quantize=True) to ablate codes")
    if model.decoder1 is None:
        raise ValueError("`model` must have decoders (config.decode=True) to ablate codes")


def _as_crops(crops: np.ndarray, model: Cytoself) -> np.ndarray:
    arr = np.asarray(crops)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"`crops` must be a real numeric array, got dtype {arr.dtype}")
    cfg = model.config
    if arr.ndim == 3:
        arr = arr[None]
    want = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if arr.ndim != 4 or arr.shape[1:] != want:
        raise ValueError(
            f"`crops` must have shape (N, {', '.join(map(str, want))}) or "
            f"({', '.join(map(str, want))}), got {arr.shape}"
        )
    return arr.astype(np.float32, copy=False)


def _as_codes(
    codes: int | Sequence[int] | np.ndarray, num_embeddings: int, name: str
) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype == bool:
        if arr.shape != (num_embeddings,):
            raise ValueError(
                f"boolean `{name}` must have shape ({num_embeddings},), got {arr.shape}"
            )
        arr = np.flatnonzero(arr)
    arr = arr.reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"`{name}` must hold integer code indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_embeddings):
        raise ValueError(
            f"`{name}` must lie in [0, {num_embeddings}), got values in [{arr.min()}, {arr.max()}]"
        )
    return np.unique(arr)


@contextmanager
def _eval_mode(model: Cytoself) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _encode(model: Cytoself, x: torch.Tensor):
    local, global_ = model.encode(x)
    vq_l, vq_g = model.quantize(local, global_)
    return vq_l, vq_g


def _ablate(
    model: Cytoself, vq_l, vq_g, codes: torch.Tensor, level: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantized representations with ``codes`` zeroed at ``level``, and the mask."""
    lq, gq = vq_l.quantized, vq_g.quantized
    if level == "local":
        mask = torch.isin(vq_l.indices[:, 0], codes)  # (B, h, w)
        return lq * ~mask[:, None], gq, mask
    mask = torch.isin(vq_g.indices, codes)  # (B, split, h2, w2)
    dim = gq.shape[1] // mask.shape[1]
    return lq, gq * ~mask.repeat_interleave(dim, dim=1), mask


def ablate_codes(
    model: Cytoself,
    crops: np.ndarray,
    codes: int | Sequence[int] | np.ndarray,
    *,
    level: str = "local",
    batch_size: int = 64,
) -> CodeAblation:
    """Zero the vectors quantized to ``codes`` before decoding and compare reconstructions.

    The paper's feature interpretation (Fig. 5): a code (or a feature cluster of codes)
    is removed from the quantized local representation, the image is decoded again and
    the difference to the normal reconstruction shows what the code encodes.

    Parameters
    ----------
    model : Cytoself
        A model with quantizers and decoders (run in eval mode, on its device).
    crops : (N, C, S, S) or (C, S, S) array
        Image crops as the model expects them.
    codes : int, sequence of int, or (K,) bool array
        Code indices to ablate.
    level : {"local", "global"}, default "local"
        Representation whose vectors are zeroed (the paper uses the local one).
    batch_size : int, default 64
        Crops per forward pass.

    Returns
    -------
    CodeAblation
        NumPy arrays: reconstructions, difference map, zeroed positions.

    Raises
    ------
    ValueError
        If the model lacks quantizers or decoders, ``crops`` has the wrong shape, a code
        is out of range or ``level`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from cyto.nn import Cytoself, CytoselfConfig
    >>> model = Cytoself(CytoselfConfig.preset("tiny"))
    >>> crops = np.random.default_rng(0).random((3, 2, 32, 32), dtype=np.float32)
    >>> res = ablate_codes(model, crops, [0, 1, 2])
    >>> res.difference.shape, res.mask.shape
    ((3, 2, 32, 32), (3, 8, 8))
    """
    _check_model(model)
    if level not in _LEVELS:
        raise ValueError(f"`level` must be one of {list(_LEVELS)}, got {level!r}")
    arr = _as_crops(crops, model)
    vq = model.vq_local if level == "local" else model.vq_global
    code_arr = _as_codes(codes, vq.num_embeddings, "codes")  # type: ignore[union-attr]
    device = next(model.parameters()).device
    code_t = torch.from_numpy(code_arr).to(device)
    recs, ablated, masks = [], [], []
    with _eval_mode(model):
        for sl in _batches(len(arr), batch_size):
            x = torch.from_numpy(arr[sl]).to(device)
            vq_l, vq_g = _encode(model, x)
            rec, _ = model.decode(vq_l.quantized, vq_g.quantized)
            lq, gq, mask = _ablate(model, vq_l, vq_g, code_t, level)
            rec_ablated, _ = model.decode(lq, gq)
            recs.append(rec.float().cpu().numpy())
            ablated.append(rec_ablated.float().cpu().numpy())
            masks.append(mask.cpu().numpy())
    reconstruction = np.concatenate(recs)
    ablated_arr = np.concatenate(ablated)
    mask_arr = np.concatenate(masks)
    return CodeAblation(
        reconstruction=reconstruction,
        ablated=ablated_arr,
        difference=reconstruction - ablated_arr,
        mask=mask_arr,
        fraction=mask_arr.reshape(len(mask_arr), -1).mean(axis=1),
    )


def ablate_feature_clusters(
    model: Cytoself,
    crops: np.ndarray,
    clusters: np.ndarray | Sequence[Sequence[int]],
    *,
    level: str = "local",
    batch_size: int = 64,
) -> ClusterAblation:
    """Difference maps for each feature cluster, encoding every crop only once.

    Parameters
    ----------
    model : Cytoself
        A model with quantizers and decoders.
    crops : (N, C, S, S) or (C, S, S) array
        Image crops.
    clusters : (K,) int ndarray or sequence of code lists
        Either a NumPy array with a cluster label per code (as from cutting the code
        biclustering tree; negative labels are ignored) or lists of code indices.
    level : {"local", "global"}, default "local"
        Representation whose vectors are zeroed.
    batch_size : int, default 64
        Crops per forward pass.

    Returns
    -------
    ClusterAblation
        Normal reconstruction and one difference map per cluster (sorted by label when
        labels are given).

    Raises
    ------
    ValueError
        As :func:`ablate_codes`, or if no cluster is given.

    Examples
    --------
    >>> import numpy as np
    >>> from cyto.nn import Cytoself, CytoselfConfig
    >>> model = Cytoself(CytoselfConfig.preset("tiny"))
    >>> labels = np.arange(32) % 4  # 4 clusters of the 32 local codes
    >>> crops = np.zeros((2, 2, 32, 32), dtype=np.float32)
    >>> ablate_feature_clusters(model, crops, labels).difference.shape
    (4, 2, 2, 32, 32)
    """
    _check_model(model)
    if level not in _LEVELS:
        raise ValueError(f"`level` must be one of {list(_LEVELS)}, got {level!r}")
    arr = _as_crops(crops, model)
    vq = model.vq_local if level == "local" else model.vq_global
    k = vq.num_embeddings  # type: ignore[union-attr]
    if isinstance(clusters, np.ndarray) and clusters.ndim == 1 and clusters.dtype != object:
        if clusters.shape != (k,) or not np.issubdtype(clusters.dtype, np.integer):
            raise ValueError(
                f"cluster labels must be an int array of shape ({k},), got "
                f"{clusters.dtype} {clusters.shape}"
            )
        groups = [np.flatnonzero(clusters == c) for c in np.unique(clusters[clusters >= 0])]
    else:
        groups = [_as_codes(c, k, f"clusters[{i}]") for i, c in enumerate(clusters)]
    if not groups:
        raise ValueError("`clusters` must define at least one cluster")
    device = next(model.parameters()).device
    codes_t = [torch.from_numpy(g.astype(np.int64)).to(device) for g in groups]
    recs: list[np.ndarray] = []
    diffs: list[list[np.ndarray]] = [[] for _ in groups]
    fracs: list[list[np.ndarray]] = [[] for _ in groups]
    with _eval_mode(model):
        for sl in _batches(len(arr), batch_size):
            x = torch.from_numpy(arr[sl]).to(device)
            vq_l, vq_g = _encode(model, x)
            rec, _ = model.decode(vq_l.quantized, vq_g.quantized)
            recs.append(rec.float().cpu().numpy())
            for i, codes in enumerate(codes_t):
                lq, gq, mask = _ablate(model, vq_l, vq_g, codes, level)
                rec_ablated, _ = model.decode(lq, gq)
                diffs[i].append((rec - rec_ablated).float().cpu().numpy())
                fracs[i].append(mask.flatten(1).double().mean(1).cpu().numpy())
    return ClusterAblation(
        reconstruction=np.concatenate(recs),
        difference=np.stack([np.concatenate(d) for d in diffs]),
        fraction=np.stack([np.concatenate(f) for f in fracs]),
        clusters=groups,
    )
