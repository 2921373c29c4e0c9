"""The documented layering, checked on the source: who may import whom.

::

    cyto._*  (shared helpers: atomic writes, locks, provenance, health, extras, CPUs)
    cyto.data        → cyto._*
    cyto.preprocess  → cyto.data, cyto._*
    cyto.analysis    → cyto.data, cyto._*
    cyto.nn          → cyto.data, cyto._*        (the only layer that imports torch)
    cyto.workflows, cyto.cli, cyto._commands  → anything (the glue)

and no module uses another subpackage's private names (``_name``). Every import counts,
also those inside functions (the lazy ones).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "cyto"
LAYERS = {"data", "preprocess", "analysis", "nn"}
ALLOWED = {
    "data": set(),
    "preprocess": {"data"},
    "analysis": {"data"},
    "nn": {"data"},
}
NO_TORCH = {"data", "preprocess", "analysis"}
HELPERS = {p.stem for p in ROOT.glob("_*.py") if p.stem != "__init__"}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path) -> list[tuple[str, list[str], int]]:
    """``(absolute module, imported names, line)`` of every import in ``path``."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "cyto" or len(parts) < 2:
        return None
    return parts[1]


def _violations(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        own = _layer(_module_name(path, root))
        if own not in LAYERS:
            continue
        where = f"{path.relative_to(root.parent)}"
        for module, names, line in _imports(path, root):
            if own in NO_TORCH and module.split(".")[0] in ("torch", "triton"):
                found.append(f"{where}:{line} imports {module} (this layer never imports torch)")
            target = _layer(module)
            if target is None or target == own:
                continue
            if target in HELPERS:
                continue
            if target in LAYERS and target not in ALLOWED[own]:
                found.append(f"{where}:{line} imports {module} ({own} may not import {target})")
            elif target not in LAYERS:
                found.append(f"{where}:{line} imports the glue {module}")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                found.append(f"{where}:{line} uses private {module}.{', '.join(private)}")
    return found


def test_layers_import_only_what_the_architecture_allows() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from cyto.nn import train\n", "analysis may not import nn"),
        ("import torch\n", "never imports torch"),
        ("from cyto.data._store import _StoreWriter\n", "uses private"),
        ("from cyto.workflows import run_demo\n", "imports the glue"),
    ],
)
def test_the_checker_catches_each_kind_of_violation(tmp_path, source, expected) -> None:
    pkg = tmp_path / "cyto"
    (pkg / "analysis").mkdir(parents=True)
    (pkg / "analysis" / "_bad.py").write_text(source)
    assert any(expected in v for v in _violations(pkg))


def _module_edges(root: Path = ROOT) -> dict[str, set[str]]:
    """Which cyto module imports which (every import, those inside functions too).

    ``from PKG import sub`` counts as importing the submodule ``PKG.sub``, not the
    package's ``__init__`` (which Python has imported already when a submodule runs).
    """
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for module, names, _ in _imports(path, root):
            subs = {f"{module}.{n}" for n in names} & modules.keys()
            targets = subs or ({module} & modules.keys())
            edges[name] |= targets - {name}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_cyto_modules() -> None:
    assert _cycles(_module_edges()) == []


def test_the_cycle_finder_sees_imports_inside_functions(tmp_path) -> None:
    pkg = tmp_path / "cyto"
    (pkg / "analysis").mkdir(parents=True)
    (pkg / "analysis" / "_a.py").write_text("from cyto.analysis._b import f\n")
    (pkg / "analysis" / "_b.py").write_text("def f():\n    from cyto.analysis._a import g\n")
    assert _cycles(_module_edges(pkg)) == [["cyto.analysis._a", "cyto.analysis._b"]]
