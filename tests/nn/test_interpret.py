"""Feature interpretation: zeroing codes before decoding (paper Fig. 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cyto.nn import (
    Cytoself,
    CytoselfConfig,
    ablate_codes,
    ablate_feature_clusters,
)

CFG = CytoselfConfig.preset("tiny")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> Cytoself:
    torch.manual_seed(0)
    m = Cytoself(CFG)
    return m.train()


@pytest.fixture
def crops() -> np.ndarray:
    return np.random.default_rng(0).random((5, 2, 32, 32), dtype=np.float32)


def _reference(model: Cytoself, crops: np.ndarray, codes: list[int]) -> tuple[np.ndarray, ...]:
    """Naive version: loop over positions, zero the vectors whose code is in ``codes``."""
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(crops)
        vq_l, vq_g = model.quantize(*model.encode(x))
        lq = vq_l.quantized.clone()
        idx = vq_l.indices[:, 0]
        for n in range(lq.shape[0]):
            for i in range(lq.shape[2]):
                for j in range(lq.shape[3]):
                    if int(idx[n, i, j]) in codes:
                        lq[n, :, i, j] = 0
        rec = model.decode(vq_l.quantized, vq_g.quantized)[0].numpy()
        abl = model.decode(lq, vq_g.quantized)[0].numpy()
    return rec, abl, idx.numpy()


def test_ablate_codes_matches_a_naive_loop(model: Cytoself, crops: np.ndarray) -> None:
    with torch.no_grad():
        used = model.eval().quantize(*model.encode(torch.from_numpy(crops)))[0].indices
    codes = [int(c) for c in torch.unique(used)[:2]]
    model.train()
    res = ablate_codes(model, crops, codes, batch_size=2)
    assert model.training  # the model's mode is restored
    rec, abl, idx = _reference(model, crops, codes)
    for arr in (res.reconstruction, res.ablated, res.difference):
        assert isinstance(arr, np.ndarray) and arr.dtype == np.float32 and arr.shape == crops.shape
    np.testing.assert_allclose(res.reconstruction, rec, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.ablated, abl, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.difference, rec - abl, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(res.mask, np.isin(idx, codes))
    np.testing.assert_allclose(res.fraction, np.isin(idx, codes).mean(axis=(1, 2)))
    assert np.abs(res.difference).max() > 0


def test_unused_codes_change_nothing_and_all_codes_zero_everything(
    model: Cytoself, crops: np.ndarray
) -> None:
    with torch.no_grad():
        used = set(
            model.eval()
            .quantize(*model.encode(torch.from_numpy(crops)))[0]
            .indices.unique()
            .tolist()
        )
    unused = [c for c in range(CFG.num_embeddings_local) if c not in used]
    res = ablate_codes(model, crops, unused)
    assert not res.mask.any()
    np.testing.assert_array_equal(res.difference, 0)
    everything = np.ones(CFG.num_embeddings_local, dtype=bool)
    res = ablate_codes(model, crops[0], everything)  # a single (C, S, S) crop
    assert res.mask.all() and res.fraction.tolist() == [1.0]
    with torch.no_grad():
        _, vq_g = model.eval().quantize(*model.encode(torch.from_numpy(crops[:1])))
        expected = model.decode(torch.zeros(1, *model.local_shape), vq_g.quantized)[0]
    np.testing.assert_allclose(res.ablated, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_global_level_ablation(model: Cytoself, crops: np.ndarray) -> None:
    res = ablate_codes(model, crops, np.arange(CFG.num_embeddings_global), level="global")
    assert res.mask.shape == (5, 9, 1, 1) and res.mask.all()
    with torch.no_grad():
        vq_l, _ = model.eval().quantize(*model.encode(torch.from_numpy(crops)))
        expected = model.decode(vq_l.quantized, torch.zeros(5, *model.global_shape))[0]
    np.testing.assert_allclose(res.ablated, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_feature_clusters_equal_one_ablation_per_cluster(
    model: Cytoself, crops: np.ndarray
) -> None:

    labels = np.arange(CFG.num_embeddings_local) % 3
    labels[:2] = -1  # unassigned codes are skipped
    res = ablate_feature_clusters(model, crops, labels, batch_size=3)
    assert res.difference.shape == (3, 5, 2, 32, 32) and res.fraction.shape == (3, 5)
    for k in range(3):
        single = ablate_codes(model, crops, np.flatnonzero(labels == k))
        np.testing.assert_allclose(res.difference[k], single.difference, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(res.fraction[k], single.fraction)
    lists = ablate_feature_clusters(model, crops, [[0, 1], [2]])
    assert [c.tolist() for c in lists.clusters] == [[0, 1], [2]]


def test_interpretation_errors(model: Cytoself, crops: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"`crops` must have shape \(N, 2, 32, 32\)"):
        ablate_codes(model, crops[:, :1], [0])
    with pytest.raises(ValueError, match=r"`codes` must lie in \[0, 32\)"):
        ablate_codes(model, crops, [32])
    with pytest.raises(ValueError, match="boolean `codes` must have shape"):
        ablate_codes(model, crops, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="`level` must be one of"):
        ablate_codes(model, crops, [0], level="both")
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        ablate_codes(model, crops, [0], batch_size=0)
    with pytest.raises(ValueError, match=r"cluster labels must be an int array of shape \(32,\)"):
        ablate_feature_clusters(model, crops, np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="at least one cluster"):
        ablate_feature_clusters(model, crops, np.full(32, -1))
    with pytest.raises(ValueError, match="decode=True"):
        ablate_codes(Cytoself(CFG.replace(decode=False)), crops, [0])
    with pytest.raises(ValueError, match="quantize=True"):
        ablate_codes(Cytoself(CFG.replace(quantize=False)), crops, [0])
    with pytest.raises(TypeError, match="Cytoself"):
        ablate_codes(torch.nn.Linear(2, 2), crops, [0])  # type: ignore[arg-type]
