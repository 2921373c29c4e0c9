"""`cyto demo` (small preset) before and after a change: wall time per stage and scores.

Runs the demo of an earlier commit ("before", from a ``git worktree`` of it, with that
tree first on ``PYTHONPATH``) and of the working tree ("after") one after the other on
this machine, then writes a table of the stages' seconds, the training speed and the
demo's score targets side by side::

    python benchmarks/bench_demo.py --before 53925f0 --work /tmp/cyto-bench-demo

Each demo folder is resumable (a finished demo is only read again), so a killed run
continues; ``--skip-run`` only tabulates folders that exist. Never run it beside other
heavy work: the times are the point. Writes ``benchmarks/results/demo.json`` and
``demo.md``.

The score targets are those of ``docs/demo.md``: complex-level Γ at least twice the
raw-pixel baseline's, and k-nearest-neighbour family accuracy (cosine) at least 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _machine import machine_info

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("synth", "preprocess", "train", "embed", "baselines", "analyze")


def run_demo(label: str, folder: Path, tree: Path) -> None:
    """``cyto demo -o folder`` with the package of ``tree`` (resumes a killed run)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "cyto", "demo", "-o", str(folder), "--quiet"]
    print(f"[{label}] {' '.join(cmd)} (PYTHONPATH={tree})", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, cwd=tree)
    print(f"[{label}] {time.perf_counter() - start:.0f} s", flush=True)


def worktree(commit: str, path: Path) -> Path:
    """A checkout of ``commit`` at ``path`` (made once)."""
    if not (path / "cyto").is_dir():
        subprocess.run(["git", "worktree", "add", "-f", str(path), commit], cwd=ROOT, check=True)
    return path


def read_demo(folder: Path) -> dict:
    """Stage seconds, training speed and scores of a finished demo folder."""
    summary = json.loads((folder / "summary.json").read_text())
    seconds = {s: summary["stages"][s]["seconds"] for s in STAGES}
    epochs = [
        json.loads(line)
        for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()
        if '"kind": "epoch"' in line
    ]
    pixels = summary["baselines"]["pixels"]["complex"]["mean"]
    return {
        "seconds": seconds,
        "total_s": sum(seconds.values()),
        "train_images_per_s": [round(e["train_images_per_s"], 1) for e in epochs],
        "train_summary": summary["stages"]["train"]["summary"],
        "gamma_organelle": summary["scores"]["organelle"]["mean"],
        "gamma_complex": summary["scores"]["complex"]["mean"],
        "pixels_complex": pixels,
        "complex_vs_pixels": summary["scores"]["complex"]["mean"] / pixels,
        "knn": summary["knn_family_accuracy"],
        "hidden_hit_rate": summary.get("hidden_hit_rate"),
    }


def write_markdown(results: dict, path: Path) -> None:
    before, after = results["before"], results["after"]
    lines = [
        "# `cyto demo` (small preset): before and after the training budget (#16)",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; "
        f"before = commit {results['before_commit']}, after = the working tree at "
        f"{results['after_commit']}. Run one after the other on this machine "
        "(`python benchmarks/bench_demo.py`).",
        "",
        "| stage | before (s) | after (s) |",
        "|---|---|---|",
    ]
    for s in STAGES:
        lines.append(f"| {s} | {before['seconds'][s]:.1f} | {after['seconds'][s]:.1f} |")
    lines.append(
        f"| **total** | **{before['total_s']:.0f} ({before['total_s'] / 60:.1f} min)** | "
        f"**{after['total_s']:.0f} ({after['total_s'] / 60:.1f} min)** |"
    )
    lines += ["", "| | before | after | target |", "|---|---|---|---|"]
    rows = [
        ("training images/s per epoch", "train_images_per_s", "{}", ""),
        ("Γ organelle", "gamma_organelle", "{:.2f}", ""),
        ("Γ complex", "gamma_complex", "{:.2f}", ""),
        ("Γ complex / pixel baseline", "complex_vs_pixels", "{:.1f}×", "≥ 2×"),
        ("hidden proteins localized", "hidden_hit_rate", "{:.0%}", ""),
    ]
    for name, key, fmt, target in rows:
        lines.append(
            f"| {name} | {fmt.format(before[key])} | {fmt.format(after[key])} | {target} |"
        )
    for metric in ("cosine", "euclidean"):
        target = "≥ 0.9" if metric == "cosine" else ""
        lines.append(
            f"| k-NN family accuracy ({metric}) | {before['knn'][metric]:.3f} | "
            f"{after['knn'][metric]:.3f} | {target} |"
        )
    lines += [
        "",
        f"Before, train: {before['train_summary']}",
        "",
        f"After, train: {after['train_summary']}",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="commit of the 'before' demo")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cyto-bench-demo"))
    parser.add_argument("--skip-run", action="store_true", help="only tabulate the folders")
    parser.add_argument("--out", type=Path, default=RESULTS / "demo.json")
    args = parser.parse_args()
    folders = {"before": args.work / "before", "after": args.work / "after"}
    if not args.skip_run:
        run_demo("before", folders["before"], worktree(args.before, args.work / "tree-before"))
        run_demo("after", folders["after"], ROOT)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    results = {
        "machine": machine_info(packages=("torch", "umap-learn", "h5py"), torch=True, load=True),
        "before_commit": args.before,
        "after_commit": head,
        "before": read_demo(folders["before"]),
        "after": read_demo(folders["after"]),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
