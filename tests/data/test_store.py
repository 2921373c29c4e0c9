"""The HDF5 crop store: round trip, atomic writes, rejection of foreign files."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from cyto.data import CropStore, write_crop_store


@pytest.fixture
def crops(rng: np.random.Generator) -> np.ndarray:
    return rng.random((7, 2, 10, 10), dtype=np.float32)


def _write(tmp_path, crops, **kw):
    pids = ["A", "A", "B", "B", "B", "Ç", "A"][: len(crops)]
    return write_crop_store(tmp_path / "c.h5", crops, pids, **kw)


def test_round_trip_float32(tmp_path, crops) -> None:
    centers = np.arange(14).reshape(7, 2)
    p = _write(
        tmp_path,
        crops,
        fov_ids=[f"f{i // 3}" for i in range(7)],
        centers=centers,
        nucleus_ids=np.arange(10, 17),
        params={"downsample": 2, "channels": ["protein", "distance"]},
    )
    with CropStore(p) as s:
        assert len(s) == 7
        assert s.channels == ("protein", "distance")
        assert s.crop_size == 10
        assert s.protein_ids.tolist() == ["A", "A", "B", "B", "B", "Ç", "A"]
        assert s.fov_ids.tolist()[:4] == ["f0", "f0", "f0", "f1"]
        np.testing.assert_array_equal(s.centers, centers)
        assert s.centers.dtype == np.int32
        np.testing.assert_array_equal(s.nucleus_ids, np.arange(10, 17))
        assert s.params == {"downsample": 2, "channels": ["protein", "distance"]}
        assert s.dtype == np.float32
        np.testing.assert_array_equal(s.read(slice(None)), crops)
        idx = np.array([5, 0, 3, 3, -1])
        out = s.read(idx)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, crops[[5, 0, 3, 3, 6]])
        # sparse access path (span much larger than the count)
        np.testing.assert_array_equal(s.read([6, 0]), crops[[6, 0]])
        assert s.read([]).shape == (0, 2, 10, 10)
        with pytest.raises(IndexError, match="out of range"):
            s.read([7])
        with pytest.raises(TypeError, match="indices"):
            s.read(np.array([0.5]))
    with h5py.File(p, "r") as f:
        assert f.attrs["format_version"] == 1
        assert f["crops"].chunks[0] >= 1 and f["crops"].compression is not None


def test_float16_kept_and_read_as_float32(tmp_path, crops) -> None:
    p = _write(tmp_path, crops.astype(np.float16))
    with CropStore(p) as s:
        assert s.dtype == np.float16
        x = s.read([1, 2])
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, crops[[1, 2]], atol=1e-3)


def test_empty_store(tmp_path) -> None:
    p = write_crop_store(
        tmp_path / "e.h5", np.zeros((0, 1, 8, 8), np.float32), [], channels=("protein",)
    )
    with CropStore(p) as s:
        assert len(s) == 0 and s.protein_ids.shape == (0,)
        assert s.read(slice(None)).shape == (0, 1, 8, 8)


def test_pickle_reopens(tmp_path, crops) -> None:
    p = _write(tmp_path, crops)
    s = CropStore(p)
    s2 = pickle.loads(pickle.dumps(s))
    s.close()
    np.testing.assert_array_equal(s2.read([2]), crops[[2]])
    s2.close()
    # reading after close re-opens transparently
    np.testing.assert_array_equal(s2.read([1]), crops[[1]])
    s2.close()


def test_write_is_atomic_and_replaces(tmp_path, crops) -> None:
    p = _write(tmp_path, crops)
    write_crop_store(p, crops[:2], ["X", "Y"])
    with CropStore(p) as s:
        assert len(s) == 2
    # a failing write leaves the old file untouched and no temp files behind
    with pytest.raises(TypeError, match="params"):
        write_crop_store(p, crops, ["A"] * 7, params={"bad": object()})
    with CropStore(p) as s:
        assert len(s) == 2
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.h5"]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"crops": np.zeros((2, 10, 10), np.float32)}, ValueError, "4-D"),
        ({"crops": np.zeros((2, 2, 10, 9), np.float32)}, ValueError, "square"),
        ({"crops": np.zeros((2, 2, 10, 10), np.uint8)}, TypeError, "floating"),
        ({"protein_ids": ["A"]}, ValueError, "protein_ids.*expected 2"),
        ({"channels": ("protein",)}, ValueError, "channels"),
        ({"channels": ("protein", "2nd")}, ValueError, r"channel names.*not names: \[.2nd.\]"),
        ({"channels": ("protein", "protein")}, ValueError, "duplicates"),
        ({"channels": "protein"}, TypeError, "channels"),
        ({"centers": np.zeros((2, 3))}, ValueError, "centers"),
        ({"nucleus_ids": np.zeros(3)}, ValueError, "nucleus_ids"),
        ({"fov_ids": ["a", "b", "c"]}, ValueError, "fov_ids"),
    ],
)
def test_write_rejects_bad_input(tmp_path, kwargs, exc, match) -> None:
    args = {"crops": np.zeros((2, 2, 10, 10), np.float32), "protein_ids": ["A", "B"]}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        write_crop_store(tmp_path / "x.h5", args.pop("crops"), args.pop("protein_ids"), **args)


def test_open_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        CropStore(tmp_path / "nope.h5")


def test_open_truncated(tmp_path, crops) -> None:
    p = _write(tmp_path, np.repeat(crops, 20, axis=0)[:7])
    data = p.read_bytes()
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable HDF5"):
        CropStore(bad)


def test_open_not_hdf5(tmp_path) -> None:
    bad = tmp_path / "text.h5"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        CropStore(bad)
    with pytest.raises(ValueError, match="folder"):
        CropStore(tmp_path)


def test_open_non_cyto_hdf5(tmp_path) -> None:
    bad = tmp_path / "other.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a cyto crop store"):
        CropStore(bad)


def test_open_wrong_version(tmp_path, crops) -> None:
    p = _write(tmp_path, crops)
    with h5py.File(p, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ValueError, match="format_version 99"):
        CropStore(p)


def test_open_inconsistent_lengths(tmp_path, crops) -> None:
    p = _write(tmp_path, crops)
    with h5py.File(p, "r+") as f:
        f["nucleus_id"].resize(3, axis=0)
    with pytest.raises(ValueError, match="damaged"):
        CropStore(p)


def test_sparse_reads_across_chunks(tmp_path, rng) -> None:
    crops = rng.random((300, 1, 64, 64), dtype=np.float32)  # 16 kB each: many chunks
    p = write_crop_store(tmp_path / "s.h5", crops, ["A"] * 300, channels=("protein",))
    with CropStore(p) as s, h5py.File(p, "r") as f:
        assert f["crops"].chunks[0] < 300
        idx = np.array([299, 3, 150, 151, 3, 40, 260, 0])  # unsorted, repeated, sparse
        np.testing.assert_array_equal(s.read(idx), crops[idx])
        np.testing.assert_array_equal(s.read(np.arange(0, 300, 37)), crops[::37])


def test_damaged_chunk_names_the_store_and_the_crops(tmp_path) -> None:
    import h5py

    rng = np.random.default_rng(0)
    crops = rng.random((64, 2, 16, 16)).astype(np.float32)
    path = write_crop_store(tmp_path / "c.h5", crops, np.repeat(["A", "B"], 32))
    with h5py.File(path, "r") as f:
        ds = f["crops"]
        if ds.compression is None:
            pytest.skip("uncompressed store: a flipped byte is not detectable")
        info = ds.id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    for k in range(info.byte_offset + 8, info.byte_offset + min(info.size, 64)):
        data[k] ^= 0xFF  # scramble the compressed chunk
    path.write_bytes(bytes(data))
    with CropStore(path) as store:
        with pytest.raises(OSError, match=r"crop store .*c\.h5: cannot read crops \[0, 1\]"):
            store.read([0, 1])


# ------------------------------------------------------------------ direct chunk reads
def _mixed_crops(n=40, seed=0):
    """Compressible crops (LZF applies) and noise (LZF skipped for that chunk)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 16, 16)).astype(np.float16)
    x[::2] = np.round(x[::2] * 2) / 8  # few distinct values: compresses
    return x


@pytest.mark.parametrize("compression", ["lzf", None])
def test_direct_chunk_reads_equal_hdf5_reads(tmp_path, compression):
    x = _mixed_crops()
    path = write_crop_store(tmp_path / "c.h5", x, "P", compression=compression)
    with h5py.File(path, "r") as f:
        assert f["crops"].chunks == (1, 2, 16, 16)
        assert f["crops"].compression == compression
    idx = np.array([39, 5, 3, 3, 0, 21, 11, 38, 1, 7, 30, 17])  # unsorted, repeated, sparse
    with CropStore(path) as s:
        reader = s._chunk_reader()
        assert reader is not None and reader.compressed == (compression is not None)
        if compression:  # some chunks were stored with LZF skipped: the HDF5 fallback
            assert reader.masks.any() and not reader.masks.all()
        np.testing.assert_array_equal(s.read(idx), x[idx].astype(np.float32))
        native = s.read(idx, dtype=None)
        assert native.dtype == np.float16
        np.testing.assert_array_equal(native, x[idx])
        np.testing.assert_array_equal(s.read(np.arange(10, 20)), x[10:20])  # dense: one read
        np.testing.assert_array_equal(s.read(slice(3, 9)), x[3:9])


def test_stores_of_several_crops_per_chunk_are_still_read(tmp_path):
    """Files written before one-crop chunks hold 6 crops per chunk: the HDF5 path."""
    x = _mixed_crops()
    path = write_crop_store(tmp_path / "c.h5", x, "P")
    with h5py.File(path, "a") as f:
        del f["crops"]
        f.create_dataset(
            "crops", data=x, chunks=(6, 2, 16, 16), maxshape=(None, 2, 16, 16),
            compression="lzf", shuffle=True,
        )  # fmt: skip
    idx = np.array([39, 5, 3, 3, 0, 21])
    with CropStore(path) as s:
        assert s._chunk_reader() is None
        np.testing.assert_array_equal(s.read(idx), x[idx].astype(np.float32))


def test_direct_reads_reopen_after_fork(tmp_path):
    """A pickled store (as DataLoader workers get it) opens its own file and offsets."""
    x = _mixed_crops()
    path = write_crop_store(tmp_path / "c.h5", x, "P")
    with CropStore(path) as s:
        s.read([1, 30])
        clone = pickle.loads(pickle.dumps(s))
        assert clone._chunks is None and clone._file is None
        np.testing.assert_array_equal(clone.read([30, 2]), x[[30, 2]].astype(np.float32))
        clone.close()


def test_bad_compression_is_named(tmp_path):
    with pytest.raises(ValueError, match="`compression` must be one of"):
        write_crop_store(tmp_path / "c.h5", _mixed_crops(4), "P", compression="gzip")


def test_lazy_rows_read_any_rows_in_order(tmp_path):
    """LazyRows: slices read those rows, in their order, repeats and all."""
    from cyto.data import LazyRows

    data = np.arange(60, dtype=np.int16).reshape(20, 3)
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f["local_indices"] = data
    lazy = LazyRows(tmp_path / "e.h5", "local_indices")
    assert lazy.shape == (20, 3) and len(lazy) == 20 and lazy.dtype == np.int16
    np.testing.assert_array_equal(lazy[2:5], data[2:5])
    rows = np.array([19, 0, 0, 7, *range(4, 20)])  # 20 rows, not 0..19
    sub = lazy[rows]
    assert isinstance(sub, LazyRows) and sub.shape == (20, 3)
    np.testing.assert_array_equal(sub[:], data[rows])
    np.testing.assert_array_equal(np.asarray(sub[[1, 3]]), data[rows[[1, 3]]])
    np.testing.assert_array_equal(np.asarray(lazy[data[:, 0] > 50]), data[data[:, 0] > 50])
    assert pickle.loads(pickle.dumps(sub))[0:2].tolist() == data[[19, 0]].tolist()
    with pytest.raises(
        KeyError, match=r"'local_idx' is not a dataset of e\.h5; it has \['local_indices'\]"
    ):
        LazyRows(tmp_path / "e.h5", "local_idx")


def test_without_imagecodecs_the_store_reads_through_hdf5(tmp_path, monkeypatch):
    """A GPU host may lack imagecodecs: the LZF store is then read through h5py."""
    import builtins

    real_import = builtins.__import__

    def no_imagecodecs(name, *args, **kwargs):
        if name.split(".")[0] == "imagecodecs":
            raise ModuleNotFoundError("No module named 'imagecodecs'")
        return real_import(name, *args, **kwargs)

    x = _mixed_crops()
    path = write_crop_store(tmp_path / "c.h5", x, "P")
    monkeypatch.setattr(builtins, "__import__", no_imagecodecs)
    with CropStore(path) as s:
        assert s._chunk_reader() is None
        np.testing.assert_array_equal(s.read([30, 2, 7]), x[[30, 2, 7]].astype(np.float32))


def test_a_damaged_chunk_on_the_direct_path_names_the_store_and_the_crops(tmp_path):
    """Sparse reads go through the direct chunk reader: a chunk LZF cannot decode is
    reported like any damaged chunk (an OSError naming the store and the crops)."""
    x = _mixed_crops()
    path = write_crop_store(tmp_path / "c.h5", x, "P")
    with CropStore(path) as s:
        info = s._chunk_reader()
        assert info.masks[0] == 0  # crop 0 is LZF-compressed
        offset, size = int(info.offsets[0]), int(info.sizes[0])
    data = bytearray(path.read_bytes())
    for k in range(offset, offset + size):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    with CropStore(path) as s:
        with pytest.raises(OSError, match=r"c\.h5: cannot read crops \[0, 39\].*does not decode"):
            s.read([0, 39])
