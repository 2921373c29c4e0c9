"""Content hashes (what a file means, not its bytes) and recorded package versions."""

from __future__ import annotations

import hashlib
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from cyto._provenance import content_hash, output_hashes, package_versions


def _h5(path: Path, values: np.ndarray, *, attr: str, where: str = "a/x.tif") -> Path:
    with h5py.File(path, "w") as f:
        f["crops"] = values
        f["ids"] = np.array(["p1", "p2"], dtype=object)
        f["ids"].attrs["note"] = attr
        f.attrs["created"] = attr
        f["fovs/path"] = np.array([where], dtype=object)
        f["fovs/path"].attrs["location"] = True
    return path


def test_hdf5_hash_follows_values_not_attributes_or_input_locations(tmp_path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    a = content_hash(_h5(tmp_path / "a.h5", x, attr="monday", where="/data/a/x.tif"))
    b = content_hash(_h5(tmp_path / "b.h5", x, attr="tuesday", where="/moved/x.tif"))
    assert a == b
    y = x.copy()
    y[2, 3] += 1e-6
    assert content_hash(_h5(tmp_path / "c.h5", y, attr="monday")) != a
    assert content_hash(_h5(tmp_path / "d.h5", x.astype(np.float64), attr="monday")) != a
    assert content_hash(_h5(tmp_path / "e.h5", x.reshape(4, 3), attr="monday")) != a


def test_hdf5_hash_reads_big_datasets_in_blocks(tmp_path, monkeypatch) -> None:
    import cyto._provenance as prov

    x = np.random.default_rng(0).random((50, 7)).astype(np.float32)
    monkeypatch.setattr(prov, "_CHUNK_BYTES", 64)  # 2 rows per block
    a = content_hash(_h5(tmp_path / "a.h5", x, attr="one"))
    assert content_hash(_h5(tmp_path / "b.h5", x, attr="two")) == a
    y = x.copy()
    y[49, 6] = 0.5  # the last row of the last block
    assert content_hash(_h5(tmp_path / "c.h5", y, attr="one")) != a


def test_checkpoint_hash_is_its_tensors_not_its_metadata(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    w = torch.arange(6.0).reshape(2, 3)
    torch.save({"model": {"w": w}, "time": time.time(), "note": "a"}, tmp_path / "a.pt")
    torch.save({"model": {"w": w.clone()}, "time": 0.0, "note": "b"}, tmp_path / "b.pt")
    torch.save({"model": {"w": w + 1}, "time": 0.0, "note": "b"}, tmp_path / "c.pt")
    assert content_hash(tmp_path / "a.pt") == content_hash(tmp_path / "b.pt")
    assert content_hash(tmp_path / "a.pt") != content_hash(tmp_path / "c.pt")
    assert zipfile.is_zipfile(tmp_path / "a.pt")  # read as a zip: nothing is unpickled


def test_npz_hash_ignores_the_archive_timestamps(tmp_path) -> None:
    np.savez(tmp_path / "a.npz", x=np.arange(3), y=np.ones(2))
    time.sleep(2.1)  # zip timestamps have 2 s resolution
    np.savez(tmp_path / "b.npz", y=np.ones(2), x=np.arange(3))
    assert content_hash(tmp_path / "a.npz") == content_hash(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=np.arange(3), y=np.zeros(2))
    assert content_hash(tmp_path / "a.npz") != content_hash(tmp_path / "c.npz")


def test_folder_hash_covers_names_and_contents_but_not_temporaries(tmp_path) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "a.csv").write_text("x\n1\n")
    (d / "b.txt").write_text("b")
    h = content_hash(d)
    (d / "b.txt.tmp").write_text("half-written")
    (d / ".d.lock").write_text("pid 1")
    assert content_hash(d) == h
    (d / "b.txt").write_text("c")
    assert content_hash(d) != h
    (d / "b.txt").write_text("b")
    (d / "b.txt").rename(d / "renamed.txt")
    assert content_hash(d) != h


def test_plain_files_hash_their_bytes_and_missing_paths_are_named(tmp_path) -> None:
    (tmp_path / "s.json").write_text('{"a": 1}')
    assert content_hash(tmp_path / "s.json") == hashlib.sha256(b'{"a": 1}').hexdigest()
    with pytest.raises(FileNotFoundError, match=r"`path`: .*nope"):
        content_hash(tmp_path / "nope")
    hashes = output_hashes([tmp_path / "s.json", tmp_path / "nope"], tmp_path)
    assert list(hashes) == ["s.json"]


def test_package_versions_names_what_is_installed() -> None:
    v = package_versions()
    assert {"python", "platform", "numpy", "cyto", "h5py"} <= set(v)
    assert v["numpy"] == np.__version__
    assert "not-a-package-xyz" not in package_versions(["not-a-package-xyz"])


def test_every_output_records_the_versions_it_was_made_with(tmp_path) -> None:
    from cyto.data import CropStore, CropStoreWriter

    w = CropStoreWriter(
        tmp_path / "s.h5", channels=("protein",), crop_size=4, dtype=np.float16, params={}
    )
    w.close()
    with h5py.File(tmp_path / "s.h5", "r") as f:
        import json

        assert json.loads(f.attrs["versions"])["numpy"] == np.__version__
    with CropStore(tmp_path / "s.h5") as s:
        assert set(s.fingerprint()) == {"ids", "pixels"}
