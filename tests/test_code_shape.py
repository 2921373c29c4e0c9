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


# the rooms that train and embed a model: they know it only through its contract
# (cyto/nn/_protocol.py), never by asking what it is
CONTRACT_USERS = (
    "_train.py",
    "_trainer.py",
    "_loop.py",
    "_run_data.py",
    "_embed.py",
    "_budget.py",
)


def _attribute_probes(source: str) -> list[str]:
    """The ``hasattr(...)``/``getattr(...)`` calls of a module (its docstrings aside)."""
    import ast

    probes = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("hasattr", "getattr"):
                probes.append(ast.unparse(node))
    return probes


def test_training_and_embedding_never_ask_a_model_what_it_is() -> None:
    found = {
        name: _attribute_probes((ROOT / "cyto" / "nn" / name).read_text(encoding="utf-8"))
        for name in CONTRACT_USERS
    }
    # the one left compares two TrainConfigs field by field (not a model's config)
    allowed = {"getattr(saved, f.name)", "getattr(given, f.name)"}
    assert {n: [p for p in v if p not in allowed] for n, v in found.items()} == {
        n: [] for n in CONTRACT_USERS
    }
    assert _attribute_probes("hasattr(model, 'x')\ngetattr(out, 'y', None)") == [
        "hasattr(model, 'x')",
        "getattr(out, 'y', None)",
    ]


def test_no_file_under_cyto_is_longer_than_800_lines() -> None:
    lengths = {
        p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in (ROOT / "cyto").rglob("*.py")
    }
    assert {p: n for p, n in lengths.items() if n > 800} == {}
