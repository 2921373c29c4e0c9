"""The longest functions in ``cyto/``, in lines of code (docstrings and blank lines excluded).

    python tools/longest_functions.py [-n 10] [--limit 80]

Prints a table of the ``n`` longest functions and methods (nested functions counted
inside their parent and on their own); exit code 1 when one is longer than ``--limit``.
"""

from __future__ import annotations

import argparse
import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _code_lines(source: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of ``node`` holding code: no blank lines, comments or docstrings."""
    skip: set[int] = set()
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    segment = "\n".join(source.splitlines()[node.lineno - 1 : node.end_lineno])
    for tok in tokenize.generate_tokens(io.StringIO(segment).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT):
            continue
        if tok.type in (tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        for line in range(tok.start[0], tok.end[0] + 1):
            lines.add(line + node.lineno - 1)
    return len(lines - skip)


def function_lengths(package: Path = ROOT / "cyto") -> list[tuple[int, str]]:
    """``(lines of code, "path:line name")`` for every function under ``package``."""
    out = []
    for path in sorted(package.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                out.append((_code_lines(source, node), where))
    return sorted(out, reverse=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--limit", type=int, default=80)
    args = ap.parse_args()
    lengths = function_lengths()
    print("| lines of code | function |\n|---|---|")
    for n, where in lengths[: args.n]:
        print(f"| {n} | `{where}` |")
    over = [w for n, w in lengths if n > args.limit]
    print(f"\n{len(over)} function(s) longer than {args.limit} lines of code")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
