"""Scoring a nucleus segmentation against ground-truth instance labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cyto.preprocess._distance import _check_labels

__all__ = ["SegmentationScore", "segmentation_f1"]


@dataclass(frozen=True)
class SegmentationScore:
    """Instance-matching counts of a segmentation and their F1.

    Attributes
    ----------
    f1 : float
        ``2 tp / (2 tp + fp + fn)``; 1.0 when neither side has a nucleus.
    tp : int
        Predicted nuclei matched to a true nucleus (IoU above the threshold).
    fp : int
        Predicted nuclei left unmatched.
    fn : int
        True nuclei left unmatched.
    """

    f1: float
    tp: int
    fp: int
    fn: int


def _border_ids(labels: np.ndarray) -> np.ndarray:
    """Boolean lookup over label values: True for labels touching the image edge."""
    edge = np.zeros(labels.shape, bool)
    edge[0] = edge[-1] = True
    edge[:, 0] = edge[:, -1] = True
    flag = np.zeros(int(labels.max(initial=0)) + 1, bool)
    flag[np.unique(labels[edge])] = True
    flag[0] = False
    return flag


def segmentation_f1(
    true: np.ndarray, pred: np.ndarray, *, iou: float = 0.5, ignore_border: bool = False
) -> SegmentationScore:
    """F1 of matching predicted to true nuclei at an intersection-over-union threshold.

    A predicted and a true nucleus match when their IoU exceeds ``iou``. With
    ``iou >= 0.5`` a nucleus can overlap at most one other by more than half, so the
    matching is one-to-one without any assignment step (the usual "F1 at IoU 0.5" of
    nucleus segmentation benchmarks). Label values need not be consecutive.

    Parameters
    ----------
    true, pred : (M, N) int or bool ndarray
        Ground-truth and predicted instance labels (0 = background), same shape.
    iou : float, default 0.5
        Matching threshold, in [0.5, 1).
    ignore_border : bool, default False
        Leave out nuclei cut by the image edge: true nuclei touching it, and predicted
        nuclei touching it or lying mostly (more than half their pixels) on a true
        nucleus that touches it.

    Returns
    -------
    SegmentationScore
        ``f1``, ``tp``, ``fp`` and ``fn``.

    Raises
    ------
    TypeError
        If a label image is not of integer or bool dtype.
    ValueError
        If a label image is not 2-D or has negative labels, the shapes differ, or
        ``iou`` is outside [0.5, 1).

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((10, 10), np.int32)
    >>> true[1:4, 1:4], true[6:9, 6:9] = 1, 2
    >>> pred = np.zeros_like(true)
    >>> pred[1:4, 1:5] = 7             # IoU 9/12 with nucleus 1: a match
    >>> pred[6:7, 6:9] = 3             # IoU 3/9 with nucleus 2: no match
    >>> segmentation_f1(true, pred)
    SegmentationScore(f1=0.5, tp=1, fp=1, fn=1)
    """
    t = _check_labels(true, "true").astype(np.int64, copy=False)
    p = _check_labels(pred, "pred").astype(np.int64, copy=False)
    if t.shape != p.shape:
        raise ValueError(f"`pred` (shape {p.shape}) must have the shape of `true` ({t.shape})")
    if (
        isinstance(iou, bool)
        or not isinstance(iou, (int, float, np.integer, np.floating))
        or not 0.5 <= iou < 1
    ):
        raise ValueError(f"`iou` must be a number in [0.5, 1), got {iou!r}")
    if ignore_border and t.size:
        t_border, p_border = _border_ids(t), _border_ids(p)
        on_border_truth = (p > 0) & t_border[t]
        n_on = np.bincount(p[on_border_truth], minlength=p_border.size)
        n_all = np.bincount(p.ravel(), minlength=p_border.size)
        p_border |= n_on > 0.5 * n_all
        p_border[0] = False
        t, p = np.where(t_border[t], 0, t), np.where(p_border[p], 0, p)
    nt, npd = int(t.max(initial=0)), int(p.max(initial=0))
    both = (t > 0) & (p > 0)
    inter = np.bincount(t[both] * (npd + 1) + p[both], minlength=(nt + 1) * (npd + 1)).reshape(
        nt + 1, npd + 1
    )
    area_t = np.bincount(t.ravel(), minlength=nt + 1)
    area_p = np.bincount(p.ravel(), minlength=npd + 1)
    overlap = inter / np.maximum(area_t[:, None] + area_p[None, :] - inter, 1)
    tp = int((overlap[1:, 1:] > iou).sum())
    fp = int((area_p[1:] > 0).sum()) - tp
    fn = int((area_t[1:] > 0).sum()) - tp
    denom = 2 * tp + fp + fn
    return SegmentationScore(2 * tp / denom if denom else 1.0, tp, fp, fn)
