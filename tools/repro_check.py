"""Fresh-machine reproducibility check: two clean clones, two fresh venvs, one seed.

Clones the repository's committed HEAD twice, creates a fresh virtual environment for
each (``pip install torch==<installed version> -e "<clone>[plot]"``, the README's first
command: the same package
versions from the same registry), runs ``cyto demo --preset tiny`` in each (different
folders, same seed and thread count) and compares the content hashes every stage
recorded (:func:`cyto.workflows.stage_hashes`). With ``--small`` the first clone also
runs the default demo (``--preset small``), whose numbers are set beside those
documented in ``docs/demo.md``.

Writes ``benchmarks/results/reproducibility.md`` and ``.json``. Exit code 0 when every
stage hash agrees, 1 otherwise.

    python tools/repro_check.py [--work DIR] [--threads 2] [--small]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def _fresh(work: Path, name: str, torch_version: str, commit: str) -> Path:
    """Clone ``commit`` into work/name, make work/name-venv, install it; the venv's python."""
    clone, venv = work / name, work / f"{name}-venv"
    _run(["git", "clone", "-q", str(ROOT), str(clone)])
    _run(["git", "-C", str(clone), "checkout", "-q", commit])
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", f"torch=={torch_version}", "-e", f"{clone}[plot]"])
    return py


def _demo(py: Path, out: Path, preset: str, threads: int) -> float:
    t0 = time.perf_counter()
    cmd = [str(py), "-m", "cyto", "demo", "--preset", preset, "--threads", str(threads)]
    # full epochs whatever they take: a training budget cut would depend on the speed
    _run([*cmd, "--train-budget", "0", "-o", str(out), "-q"], cwd=out.parent)
    return time.perf_counter() - t0


def _versions(py: Path) -> dict[str, str]:
    code = "import json; from cyto._provenance import package_versions as v; print(json.dumps(v()))"
    return json.loads(subprocess.run([str(py), "-c", code], capture_output=True, text=True).stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="also run the default (small) demo")
    args = ap.parse_args()
    import torch

    from cyto.workflows import stage_hashes

    work = args.work or Path(tempfile.mkdtemp(prefix="cyto-repro-"))
    work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    tv = torch.__version__.split("+")[0]
    runs = {}
    for name in ("a", "b"):
        py = _fresh(work, f"clone-{name}", tv, commit)
        secs = _demo(py, work / f"demo-{name}", "tiny", args.threads)
        runs[name] = {
            "python": py,
            "seconds": round(secs, 1),
            "hashes": stage_hashes(work / f"demo-{name}"),
            "versions": _versions(py),
        }
    a, b = runs["a"]["hashes"], runs["b"]["hashes"]
    rows = []
    for stage in a:
        for out, h in a[stage].items():
            rows.append((stage, out, h[:16], b.get(stage, {}).get(out, "-")[:16]))
    same = a == b
    small = None
    if args.small:
        secs = _demo(runs["a"]["python"], work / "demo-small", "small", args.threads)
        summary = json.loads((work / "demo-small" / "summary.json").read_text())
        small = {
            "seconds": round(secs, 1),
            "scores": summary.get("scores"),
            **{k: summary.get(k) for k in ("knn_family_accuracy", "hidden_hit_rate", "baselines")},
        }

    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "commit": commit,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "threads": args.threads,
        "identical": same,
        "runs": {k: {kk: vv for kk, vv in v.items() if kk != "python"} for k, v in runs.items()},
        "small": small,
    }
    (RESULTS / "reproducibility.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Reproducibility: two fresh clones, two fresh venvs, one seed",
        "",
        f"`python tools/repro_check.py{' --small' if args.small else ''}` at commit {commit}, "
        f"{platform.platform()}, {os.cpu_count()} CPUs, `--threads {args.threads}`.",
        f'Each clone got its own virtual environment (`pip install torch=={tv} -e "clone[plot]"`) '
        "and ran `cyto demo --preset tiny` in its own folder.",
        "",
        f"**Stage hashes identical: {'yes' if same else 'NO'}** "
        f"(run a {runs['a']['seconds']} s, run b {runs['b']['seconds']} s).",
        "",
        "| stage | output | clone a | clone b |",
        "|---|---|---|---|",
        *(f"| {s} | `{o}` | `{x}` | `{y}`{'' if x == y else ' ≠'} |" for s, o, x, y in rows),
        "",
        "Package versions (both venvs): "
        + ", ".join(f"{k} {v}" for k, v in runs["a"]["versions"].items()),
        "",
    ]
    if runs["a"]["versions"] != runs["b"]["versions"]:
        lines.append("The two venvs' versions differ: " + json.dumps(runs["b"]["versions"]))
    if small is not None:
        lines += [
            f"## Default demo (`--preset small`) from clone a: {small['seconds']} s",
            "",
            "```json",
            json.dumps({k: v for k, v in small.items() if k != "seconds"}, indent=1),
            "```",
            "",
        ]
    (RESULTS / "reproducibility.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
