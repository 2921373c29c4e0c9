"""segmentation_f1: hand-counted cases, a brute-force oracle, edge-cut nuclei, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from cyto.preprocess import SegmentationScore, segmentation_f1


def _brute_force(true: np.ndarray, pred: np.ndarray, thr: float) -> tuple[int, int, int]:
    t_ids = [i for i in np.unique(true) if i]
    p_ids = [j for j in np.unique(pred) if j]
    tp = 0
    for i in t_ids:
        for j in p_ids:
            a, b = true == i, pred == j
            tp += (a & b).sum() / (a | b).sum() > thr
    return tp, len(p_ids) - tp, len(t_ids) - tp


def test_identical_labels_with_other_ids_score_one() -> None:
    true = np.zeros((12, 12), np.int32)
    true[1:4, 1:4], true[6:10, 2:5], true[5:9, 7:11] = 1, 2, 3
    pred = np.select([true == 1, true == 2, true == 3], [40, 7, 1000], 0)
    assert segmentation_f1(true, pred) == SegmentationScore(1.0, 3, 0, 0)


def test_threshold_is_strict_and_configurable() -> None:
    true = np.zeros((8, 8), np.uint16)
    true[2:4, 2:4] = 5  # 4 px
    half = np.zeros_like(true)
    half[2:4, 2:6] = 1  # 8 px covering it: IoU exactly 0.5
    assert segmentation_f1(true, half) == SegmentationScore(0.0, 0, 1, 1)
    two_thirds = np.zeros_like(true)
    two_thirds[2:4, 2:5] = 1  # IoU 4/6
    assert segmentation_f1(true, two_thirds, iou=0.6).tp == 1
    assert segmentation_f1(true, two_thirds, iou=0.7).tp == 0


def test_empty_sides() -> None:
    empty = np.zeros((5, 5), np.int32)
    one = empty.copy()
    one[1:3, 1:3] = 1
    assert segmentation_f1(empty, empty) == SegmentationScore(1.0, 0, 0, 0)
    assert segmentation_f1(one, empty) == SegmentationScore(0.0, 0, 0, 1)
    assert segmentation_f1(empty, one.astype(bool)) == SegmentationScore(0.0, 0, 1, 0)


def test_matches_brute_force_on_random_rectangles() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        true = np.zeros((40, 40), np.int32)
        pred = np.zeros((40, 40), np.int32)
        for k in range(1, 9):
            r, c = rng.integers(0, 32, size=2)
            h, w = rng.integers(3, 9, size=2)
            true[r : r + h, c : c + w] = k
            dr, dc = rng.integers(-2, 3, size=2)
            pred[max(r + dr, 0) : r + dr + h, max(c + dc, 0) : c + dc + w] = 3 * k + 1
        for thr in (0.5, 0.75):
            got = segmentation_f1(true, pred, iou=thr)
            tp, fp, fn = _brute_force(true, pred, thr)
            assert (got.tp, got.fp, got.fn) == (tp, fp, fn)
            assert got.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_ignore_border_drops_edge_cut_nuclei_on_both_sides() -> None:
    true = np.zeros((20, 20), np.int32)
    true[0:4, 5:9] = 1  # touches the top edge
    true[8:12, 8:12] = 2  # inside
    pred = np.zeros_like(true)
    pred[1:4, 5:9] = 3  # misses the edge row but lies on true nucleus 1
    pred[8:12, 8:12] = 4  # matches nucleus 2
    pred[15:20, 0:3] = 5  # a false positive cut by the edge
    pred[14:17, 14:17] = 6  # false positives inside
    pred[14:17, 3:6] = 7
    assert segmentation_f1(true, pred) == SegmentationScore(4 / 7, 2, 3, 0)
    assert segmentation_f1(true, pred, ignore_border=True) == SegmentationScore(0.5, 1, 2, 0)


@pytest.mark.parametrize(
    ("true", "pred", "kwargs", "exc", "match"),
    [
        (np.zeros((4, 4), int), np.zeros((4, 5), int), {}, ValueError, r"`pred` \(shape"),
        (np.zeros((4, 4), int), np.zeros((4, 4)), {}, TypeError, "`pred` must be an integer"),
        (np.zeros((2, 4, 4), int), np.zeros((4, 4), int), {}, ValueError, "`true` must be 2-D"),
        (np.full((4, 4), -1), np.zeros((4, 4), int), {}, ValueError, "non-negative"),
        (np.zeros((4, 4), int), np.zeros((4, 4), int), {"iou": 0.4}, ValueError, r"\[0.5, 1\)"),
        (np.zeros((4, 4), int), np.zeros((4, 4), int), {"iou": True}, ValueError, "`iou`"),
    ],
)
def test_bad_input(true, pred, kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        segmentation_f1(true, pred, **kwargs)
