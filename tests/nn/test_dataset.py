"""Lazy HDF5 dataset, dihedral augmentation, FOV-grouped split, block sampler."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cyto.data import write_crop_store
from cyto.nn import BlockShuffleSampler, CropDataset, DihedralAugment, encode_labels, split_crops

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    crops = rng.normal(size=(40, 2, 8, 8)).astype(np.float32)
    prot = np.repeat(["P1", "P2"], 20)
    fov = np.array([f"f{i // 4}" for i in range(40)])
    return write_crop_store(tmp_path / "s.h5", crops, prot, fov_ids=fov), crops


def _dihedral(x: np.ndarray) -> list[np.ndarray]:
    out = []
    for flip in (False, True):
        y = x[..., ::-1] if flip else x
        out.extend(np.rot90(y, k, axes=(-2, -1)) for k in range(4))
    return out


# ----------------------------------------------------------------------------- split
def test_split_groups_fields_and_hits_fractions():
    prot = np.repeat(["A", "B"], 200)
    fov = np.array([f"{p}-{i % 40}" for i, p in enumerate(prot)])  # 40 fields of 5 per protein
    split = split_crops(prot, fov, seed=3)
    for f in np.unique(fov):
        assert np.unique(split[fov == f]).size == 1, f"field {f} straddles splits"
    for p in ("A", "B"):
        counts = np.bincount(split[prot == p], minlength=3)
        np.testing.assert_array_equal(counts, [160, 20, 20])
    np.testing.assert_array_equal(split, split_crops(prot, fov, seed=3))


def test_split_largest_field_to_train_and_single_field_protein():
    prot = np.array(["A"] * 12 + ["B"] * 3)
    fov = np.array(["big"] * 8 + ["s1", "s2", "s3", "s4"] + ["only"] * 3)
    split = split_crops(prot, fov, fractions=(0.6, 0.2, 0.2))
    assert (split[:8] == 0).all()
    assert sorted(split[8:12].tolist()) == [1, 1, 2, 2]  # then filled up to 0.2 / 0.2
    assert (split[12:] == 0).all()  # a protein seen in one field trains only


def test_split_ungrouped_and_seed_dependence():
    prot = np.repeat(["A", "B"], 50)
    a = split_crops(prot, group_by_fov=False, seed=0)
    b = split_crops(prot, group_by_fov=False, seed=1)
    for p in ("A", "B"):
        np.testing.assert_array_equal(np.bincount(a[prot == p], minlength=3), [40, 5, 5])
    assert not np.array_equal(a, b)


def test_split_errors():
    with pytest.raises(ValueError, match="fractions"):
        split_crops(["a"], ["f"], fractions=(1, -1, 0))
    with pytest.raises(ValueError, match="fov_ids"):
        split_crops(["a", "b"])
    with pytest.raises(ValueError, match="one entry per crop"):
        split_crops(["a", "b"], ["f"])


def test_encode_labels_sorted_classes():
    labels, classes = encode_labels(np.array(["z", "a", "m", "a"]))
    assert classes.tolist() == ["a", "m", "z"]
    assert labels.tolist() == [2, 0, 1, 0]


# ----------------------------------------------------------------------------- augment
def test_augment_uses_all_eight_symmetries_deterministically():
    aug = DihedralAugment(seed=5)
    idx = np.arange(4000)
    codes = aug.codes(idx, epoch=0)
    counts = np.bincount(codes, minlength=8)
    assert counts.size == 8 and counts.min() > 400  # all four rotations, with and without flip
    np.testing.assert_array_equal(codes, aug.codes(idx, epoch=0))
    assert (codes != aug.codes(idx, epoch=1)).mean() > 0.8
    assert (codes != DihedralAugment(seed=6).codes(idx, epoch=0)).mean() > 0.8
    x = np.arange(16 * 2 * 3 * 3, dtype=np.float32).reshape(16, 2, 3, 3)
    y = aug(x, np.arange(16), epoch=2)
    for i in range(16):
        expect = _dihedral(x[i])[aug.codes(np.array([i]), epoch=2)[0]]
        np.testing.assert_array_equal(y[i], expect)
    assert pickle.loads(pickle.dumps(aug)).seed == 5


# ----------------------------------------------------------------------------- dataset
def test_dataset_reads_lazily_in_requested_order(store):
    path, crops = store
    labels = np.arange(40) % 3
    ds = CropDataset(path, indices=[30, 2, 17, 5], labels=labels)
    assert len(ds) == 4 and ds.indices.tolist() == [2, 5, 17, 30]
    items = ds.__getitems__([3, 0, 2])
    np.testing.assert_allclose(items[0][0].numpy(), crops[30])
    np.testing.assert_allclose(items[1][0].numpy(), crops[2])
    assert [int(y) for _, y in items] == [labels[30], labels[2], labels[17]]
    x, y = ds[1]
    assert x.dtype == torch.float32 and x.shape == (2, 8, 8) and int(y) == labels[5]
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_allclose(clone[0][0].numpy(), crops[2])
    ds.close()


def test_dataset_with_workers_matches_single_process(store):
    path, _ = store
    ds = CropDataset(path, augment=DihedralAugment(1))
    ds.set_epoch(3)
    sampler = BlockShuffleSampler(ds, seed=0)
    ref = torch.cat([x for x, _ in DataLoader(ds, batch_size=8, sampler=sampler)])
    got = torch.cat([x for x, _ in DataLoader(ds, batch_size=8, sampler=sampler, num_workers=2)])
    torch.testing.assert_close(got, ref)


def test_dataset_rejects_bad_input(store, tmp_path):
    path, _ = store
    with pytest.raises(ValueError, match="indices"):
        CropDataset(path, indices=[0, 40])
    with pytest.raises(ValueError, match="labels"):
        CropDataset(path, labels=np.zeros(3))
    with pytest.raises(FileNotFoundError):
        CropDataset(tmp_path / "missing.h5")


# ----------------------------------------------------------------------------- sampler
def test_sampler_shards_cover_everything_once():
    data = range(23)
    shards = [list(BlockShuffleSampler(data, num_replicas=3, rank=r, seed=1)) for r in range(3)]
    assert all(len(s) == 8 for s in shards)  # padded to equal length
    assert set(np.concatenate(shards).tolist()) == set(range(23))
    ev = [
        list(BlockShuffleSampler(data, num_replicas=3, rank=r, shuffle=False, even=False))
        for r in range(3)
    ]
    assert sorted(np.concatenate(ev).tolist()) == list(range(23))
    s = BlockShuffleSampler(data, seed=1)
    first = list(s)
    s.set_epoch(1)
    assert sorted(first) == sorted(s) and first != list(s)


def test_sampler_blocks_keep_neighbours_together_and_skip():
    s = BlockShuffleSampler(range(640), seed=0, block_size=8)
    order = np.array(list(s))
    assert sorted(order.tolist()) == list(range(640))
    # every 64 consecutive draws come from exactly 8 blocks of 8 neighbouring rows
    for lo in range(0, 640, 64):
        assert len(np.unique(order[lo : lo + 64] // 8)) == 8
    assert order[:64].tolist() != sorted(order[:64].tolist())  # but shuffled inside
    s.skip = 10
    assert list(s) == order[10:].tolist() and len(s) == 630
    with pytest.raises(ValueError, match="block_size"):
        BlockShuffleSampler(range(4), block_size=0)


def test_store_read_is_used_once_per_batch(store, monkeypatch):
    path, _ = store
    calls = []
    original = CropDataset._read_rows

    def spy(self, idx):
        calls.append(len(idx))
        return original(self, idx)

    monkeypatch.setattr(CropDataset, "_read_rows", spy)
    ds = CropDataset(path)
    list(DataLoader(ds, batch_size=16))
    assert calls == [16, 16, 8]
