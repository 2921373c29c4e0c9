"""Feature spectra, code correlation, biclustering and localize against naive loops."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr

from cyto.analysis import (
    bicluster,
    code_correlation,
    code_histograms,
    feature_spectra,
    localize,
    mean_by_label,
    representative_images,
)


def test_histograms_and_spectra_match_loops(rng: np.random.Generator) -> None:
    k = 13
    idx = rng.integers(0, k, size=(40, 2, 5, 5))
    groups = rng.choice(["A", "B", "C", "D"], size=40)
    hist = code_histograms(idx, k)
    naive = np.zeros((40, k), dtype=int)
    for i in range(40):
        for code in idx[i].ravel():
            naive[i, code] += 1
    np.testing.assert_array_equal(hist, naive)
    spec = feature_spectra(idx, groups, k)
    assert spec.groups.tolist() == ["A", "B", "C", "D"]
    for j, g in enumerate(spec.groups):
        np.testing.assert_allclose(spec.spectra[j], naive[groups == g].mean(axis=0))
        assert spec.n_images[j] == (groups == g).sum()
    np.testing.assert_allclose(spec["C"], naive[groups == "C"].mean(axis=0))
    assert np.allclose(spec.spectra.sum(axis=1), 50)


def test_spectra_skip_unlabelled_and_chunking(rng, monkeypatch) -> None:
    import cyto.analysis._spectra as sp

    monkeypatch.setattr(sp, "_CHUNK", 7)  # force many chunks
    idx = rng.integers(0, 6, size=(30, 9))
    groups = np.array([None, *rng.choice(["x", "y"], size=29)], dtype=object)
    spec = feature_spectra(idx, groups, 6)
    for j, g in enumerate(spec.groups):
        rows = idx[groups == g]
        np.testing.assert_allclose(spec.spectra[j], code_histograms(rows, 6).mean(axis=0))
    np.testing.assert_array_equal(
        code_histograms(idx, 6), [np.bincount(r, minlength=6) for r in idx]
    )


def test_correlation_matches_pearsonr(rng: np.random.Generator) -> None:
    hist = rng.poisson(3.0, size=(25, 8)).astype(float)
    hist[:, 3] = 2.0  # constant column (unused code)
    corr = code_correlation(hist)
    for i in range(8):
        for j in range(8):
            if 3 in (i, j):
                assert corr[i, j] == (1.0 if i == j else 0.0)
            else:
                assert corr[i, j] == pytest.approx(pearsonr(hist[:, i], hist[:, j])[0], abs=1e-12)
    nan_corr = code_correlation(hist, constant="nan")
    assert np.isnan(nan_corr[3]).all() and np.isnan(nan_corr[:, 3]).all()
    assert not np.isnan(np.delete(np.delete(nan_corr, 3, 0), 3, 1)).any()


def test_bicluster_groups_planted_codes(rng: np.random.Generator) -> None:
    # 60 proteins, 24 codes in 4 planted groups of 6 co-occurring codes
    k, planted = 24, rng.permutation(24).reshape(4, 6)
    program = rng.gamma(1.0, size=(60, 4))
    hist = np.zeros((60, k))
    for grp, codes in enumerate(planted):
        hist[:, codes] = program[:, [grp]] * rng.uniform(0.5, 2.0, size=6)
    hist += rng.normal(scale=0.05, size=hist.shape)
    result = bicluster(code_correlation(hist), n_clusters=4)
    assert result.n_clusters == 4
    assert sorted(result.order.tolist()) == list(range(k))
    for codes in planted:
        assert len(set(result.labels[codes])) == 1  # each planted group in one cluster
    assert len({result.labels[c[0]] for c in planted}) == 4
    # clusters numbered left to right along the leaf order, members contiguous there
    seq = result.labels[result.order]
    assert seq[0] == 0 and np.all(np.diff(seq) >= 0)
    np.testing.assert_array_equal(result.members(0), result.order[:6])


def test_localize_ranks_planted_family_first(rng: np.random.Generator) -> None:
    fams = ["er", "golgi", "nucleolus", "mitochondria", "chromatin"]
    spectra = rng.gamma(0.5, size=(5, 64))
    query = spectra[0] * rng.uniform(0.7, 1.3, size=64) + rng.normal(scale=0.02, size=64)
    ranking = localize(query, dict(zip(fams, spectra)))
    assert ranking[0][0] == "er"
    assert [r for _, r in ranking] == sorted((r for _, r in ranking), reverse=True)
    assert localize(query, spectra, families=fams)[0][0] == "er"
    with pytest.raises(ValueError, match="`families`"):
        localize(query, spectra)
    with pytest.raises(ValueError, match=r"has 10 codes but family spectra have shape \(5, 64\)"):
        localize(query[:10], spectra, families=fams)


def test_mean_by_label_and_representatives() -> None:
    classes, means = mean_by_label([[0.0, 2.0], [2.0, 4.0], [9.0, 9.0]], ["a", "a", "b"])
    assert classes.tolist() == ["a", "b"]
    np.testing.assert_allclose(means, [[1.0, 3.0], [9.0, 9.0]])
    idx = np.array([[0, 0, 0, 1], [1, 1, 2, 2], [2, 2, 2, 2], [0, 0, 1, 2]])
    labels = [0, 0, 1]  # codes 0, 1 -> cluster 0; code 2 -> cluster 1
    assert representative_images(idx, labels, n=2).tolist() == [[0, 3], [2, 1]]
    picks = representative_images(idx, labels, n=2, groups=["P", "P", "P", "Q"])
    # crop 3 (the only one of Q) already represents cluster 0: not again for cluster 1
    assert picks.tolist() == [[0, 3], [2, -1]]
    picks = representative_images(idx, labels, n=2, groups=["P", "P", "P", "Q"], distinct=False)
    assert picks.tolist() == [[0, 3], [2, 3]]
    assert representative_images(idx, labels, n=5)[0, -1] == -1


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: feature_spectra([[0, 5]], ["a"], 5), r"\[0, num_codes=5\)"),
        (lambda: feature_spectra([[0, 1]], ["a", "b"], 5), "`groups` has 2 entries"),
        (lambda: feature_spectra([[0.5, 1]], ["a"], 5), "integers"),
        (lambda: code_histograms([[0, 1]], 0), "`num_codes` must be a positive"),
        (lambda: code_correlation(np.ones((1, 3))), "at least 2 rows"),
        (lambda: code_correlation(np.ones((3, 3)), constant="x"), "`constant`"),
        (
            lambda: bicluster(np.eye(3), n_clusters=4),
            r"`n_clusters` must be an integer in \[1, 3\]",
        ),
        (lambda: bicluster(np.eye(3), method="ward"), "`method` must be one of"),
        (lambda: bicluster(np.ones((2, 3))), "square"),
    ],
)
def test_bad_input(call, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_spectra_and_shares_stream_lazily_read_code_maps(tmp_path, monkeypatch):
    """10⁶ code maps must never sit in memory: lazily read rows are walked in blocks."""
    import h5py

    import cyto.analysis._spectra as spectra_module
    from cyto.analysis import cluster_shares
    from cyto.data import LazyRows

    rng = np.random.default_rng(0)
    idx = rng.integers(0, 16, size=(500, 1, 5, 5)).astype(np.int16)
    groups = np.array([f"P{i % 7}" for i in range(500)], dtype=object)
    groups[::50] = ""  # unlabelled rows are skipped
    path = tmp_path / "emb.h5"
    with h5py.File(path, "w") as f:
        f["local_indices"] = idx
    monkeypatch.setattr(spectra_module, "_CHUNK", 25 * 64)  # 64 maps per block
    reads = []
    original = LazyRows._read
    monkeypatch.setattr(
        LazyRows, "_read", lambda self, rows: reads.append(rows.size) or original(self, rows)
    )
    lazy = LazyRows(path, "local_indices")
    want = feature_spectra(idx, groups, 16)
    got = feature_spectra(lazy, groups, 16)
    np.testing.assert_array_equal(got.groups, want.groups)
    np.testing.assert_allclose(got.spectra, want.spectra)
    np.testing.assert_array_equal(got.n_images, want.n_images)
    assert max(reads) == 64 and sum(reads) == 500
    lut = rng.integers(0, 3, 16)
    rows = np.array([400, 3, 250, 3])  # a subset in any order, as the explorer takes
    np.testing.assert_allclose(
        cluster_shares(lazy[rows], lut, 3), cluster_shares(idx[rows], lut, 3)
    )
    np.testing.assert_array_equal(
        representative_images(lazy, lut, n=3), representative_images(idx, lut, n=3)
    )
    bad = idx.copy()
    bad[499, 0, 0, 0] = 16
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["local_indices"] = bad
    with pytest.raises(ValueError, match=r"must lie in \[0, num_codes=16\)"):
        feature_spectra(LazyRows(tmp_path / "bad.h5", "local_indices"), groups, 16)


def test_mean_by_label_walks_blocks_without_copying_the_rows():
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 1024)).astype(np.float32)  # 80 MB
    labels = np.array([f"P{i % 37}" for i in range(20_000)], dtype=object)
    labels[::11] = None
    tracemalloc.start()
    classes, means = mean_by_label(x, labels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"
    keep = np.array([v is not None for v in labels])
    want = np.stack([x[keep & (labels == c)].astype(np.float64).mean(axis=0) for c in classes])
    np.testing.assert_allclose(means, want, rtol=1e-10, atol=1e-12)
