"""cyto._health: the one definition of a degenerate encoding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cyto.analysis import THRESHOLDS, DegenerateEncodingError, EncodingHealth, HealthAccumulator


def _health(x, idx=None, k=None):
    acc = HealthAccumulator(num_codes=k)
    acc.update(x, idx)
    return acc.result()


def test_constant_encodings_are_degenerate_with_reasons():
    h = _health(np.full((50, 8), 0.3), np.zeros((50, 4), dtype=int), k=16)
    assert h.degenerate
    assert h.distinct_maps == 1 and h.top_map_fraction == 1.0 and h.codes_used == 1
    assert h.relative_variance == 0.0 and h.perplexity == pytest.approx(1.0)
    text = " ".join(h.reasons)
    assert "barely vary" in text and "same code map" in text and "perplexity" in text


def test_varied_encodings_are_healthy():
    rng = np.random.default_rng(0)
    h = _health(rng.normal(size=(200, 8)), rng.integers(0, 16, size=(200, 4)), k=16)
    assert not h.degenerate and h.reasons == []
    assert h.distinct_maps > 150 and h.codes_used == 16 and h.perplexity > 15


def test_one_map_shared_by_nine_in_ten_crops_is_degenerate():
    rng = np.random.default_rng(1)
    idx = np.zeros((100, 3), dtype=int)
    idx[:9] = rng.integers(1, 8, size=(9, 3))  # 91 % share map 0
    h = _health(rng.normal(size=(100, 4)), idx, k=8)
    assert h.degenerate and h.top_map_fraction == pytest.approx(0.91)
    idx[:20] = rng.integers(1, 8, size=(20, 3))  # 80 %: a weak but not a collapsed model
    assert not _health(rng.normal(size=(100, 4)), idx, k=8).degenerate


def test_near_constant_continuous_encodings_are_degenerate():
    rng = np.random.default_rng(2)
    x = 5.0 + 1e-5 * rng.normal(size=(30, 6))
    h = _health(x)
    assert h.degenerate and h.distinct_maps is None and h.relative_variance < 1e-6
    assert not _health(x + rng.normal(size=(30, 6))).degenerate


def test_non_finite_encodings_are_degenerate():
    x = np.random.default_rng(3).normal(size=(10, 4))
    x[3, 1] = np.nan
    h = _health(x)
    assert h.degenerate and h.non_finite == 1 and math.isnan(h.relative_variance)
    assert "NaN" in h.reasons[0]


def test_streaming_in_blocks_equals_one_block():
    rng = np.random.default_rng(4)
    x, idx = rng.normal(size=(97, 5)), rng.integers(0, 6, size=(97, 2))
    acc = HealthAccumulator(num_codes=6)
    for lo in range(0, 97, 10):
        acc.update(x[lo : lo + 10], idx[lo : lo + 10])
    a, b = acc.result().to_dict(), _health(x, idx, k=6).to_dict()
    # pytest >= 9.2's approx() takes no nested containers: numbers approx, the rest equal
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, float):
            assert value == pytest.approx(b[key], nan_ok=True), key
        else:
            assert value == b[key], key


def test_describe_and_dict_and_error():
    h = _health(np.ones((12, 2)), np.zeros((12, 1), dtype=int), k=4)
    assert "12 crops" in h.describe() and "1 distinct code maps" in h.describe()
    assert h.to_dict()["degenerate"] is True
    err = DegenerateEncodingError("bad", h)
    assert isinstance(err, ValueError) and err.health is h
    assert isinstance(h, EncodingHealth) and set(THRESHOLDS) >= {"min_perplexity"}


def test_single_crop_is_not_judged():
    assert not _health(np.ones((1, 3)), np.zeros((1, 2), dtype=int), k=4).degenerate


def test_a_handful_of_maps_for_many_crops_is_degenerate():
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 3, size=(1000, 1))  # 3 maps, none above 90 %
    h = _health(rng.normal(size=(1000, 4)), idx, k=8)
    assert h.degenerate and "only 3 distinct code maps" in h.reasons[0]
    assert not _health(rng.normal(size=(100, 4)), idx[:100], k=8).degenerate  # 3 of 100


def test_bad_input_is_a_sentence():
    acc = HealthAccumulator(num_codes=4)
    with pytest.raises(ValueError, match=r"`indices` must have one row per encoding \(5\), got 3"):
        acc.update(np.ones((5, 2)), np.zeros((3, 1), dtype=int))
    with pytest.raises(ValueError, match=r"`encodings` must be \(n, d\)"):
        acc.update(np.float64(1.0))


def test_update_holds_one_block_not_a_float64_copy_of_everything():
    """10⁵ crops x 4,608 dims would take 3.7 GB per float64 copy: update walks blocks."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 1024)).astype(np.float32)  # 80 MB; float64 copy: 160 MB
    tracemalloc.start()
    acc = HealthAccumulator()
    acc.update(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"
    whole = HealthAccumulator()
    whole._update_block(x, None)
    assert acc.result().relative_variance == pytest.approx(whole.result().relative_variance)
