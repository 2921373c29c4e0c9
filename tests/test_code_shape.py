"""The shape the code keeps: short functions, file formats opened only by their owners."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the owners of HDF5 files (cyto.data) and the content hasher, which reads any HDF5 file
# the crop store, the embeddings file, content hashes, and the output guard (which reads
# a file's attributes to tell what kind of file cyto wrote there)
H5_OWNERS = {
    "cyto/data/_store.py",
    "cyto/data/_embeddings.py",
    "cyto/_provenance.py",
    "cyto/data/_outputs.py",
}


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_function_is_longer_than_80_lines_of_code() -> None:
    lengths = _tool("longest_functions").function_lengths()
    assert lengths, "the measuring script found no function"
    assert [w for n, w in lengths if n > 80] == []


def test_hdf5_files_are_opened_only_by_their_owners() -> None:
    openers = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "cyto").rglob("*.py")
        if re.search(r"h5py\.File\(", p.read_text(encoding="utf-8"))
    }
    assert openers <= H5_OWNERS, sorted(openers - H5_OWNERS)
