"""Training throughput before and after a code change, side by side in one run.

Checks out ``--before`` (a git revision) into a temporary worktree and measures, in
alternating fresh processes (before, after, before, after, ...), the images/s of
``cyto.nn.train_one_epoch`` with the ``small`` model preset on an in-memory-sized crop
store (augmentation on, CPU, fixed threads). Alternating cancels slow drifts of the
machine's load; the table gives every repeat and the medians.

    python benchmarks/bench_refactor.py --before b9e1dfc [--repeats 3] [--steps 30]

Writes ``benchmarks/results/refactor.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

MEASURE = r"""
import json, sys, time, tempfile
from pathlib import Path
import numpy as np, torch
from cyto.data import write_crop_store
from cyto.nn import Cytoself, CytoselfConfig, CropDataset, train_one_epoch
torch.set_num_threads(int(sys.argv[1]))
steps, batch, size = int(sys.argv[2]), 32, 100
rng = np.random.default_rng(0)
n = steps * batch
crops = rng.normal(size=(n, 2, size, size)).astype(np.float16)
prot = np.array([f"P{i % 16:02d}" for i in range(n)])
store = write_crop_store(Path(tempfile.mkdtemp()) / "c.h5", crops, prot)
torch.manual_seed(0)
cfg = CytoselfConfig.preset("small", in_channels=2, num_classes=16, image_size=size)
model = Cytoself(cfg)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
labels = np.array([int(p[1:]) for p in prot])
from cyto.nn import DihedralAugment
ds = CropDataset(store, np.arange(n), labels=labels, augment=DihedralAugment(0))
loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False, drop_last=True)
dev = torch.device("cpu")
train_one_epoch(model, [next(iter(loader))], opt, device=dev, reconstruction_scale=1.0,
                epoch=0, step=0)  # warm-up (oneDNN kernels, k-means init)
t0 = time.perf_counter()
m, _ = train_one_epoch(model, loader, opt, device=dev, reconstruction_scale=1.0, epoch=0,
                       step=0, log_every=10)
print(json.dumps({"images_per_s": n / (time.perf_counter() - t0)}))
"""


def _measure(pythonpath: Path, threads: int, steps: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(threads), str(steps)],
        env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision of the 'before' code")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    after = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="cyto-before-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(work), args.before],
        check=True,
        capture_output=True,
    )
    try:
        runs: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.repeats):
            runs["before"].append(_measure(work, args.threads, args.steps))
            runs["after"].append(_measure(ROOT, args.threads, args.steps))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work)])
    med = {k: statistics.median(v) for k, v in runs.items()}
    record = {
        "before": args.before,
        "after": after,
        "threads": args.threads,
        "steps": args.steps,
        "images_per_s": runs,
        "median": med,
        "ratio_after_before": med["after"] / med["before"],
        "machine": machine_info(packages=("numpy", "torch"), load=True),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "refactor.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# Training throughput before ({args.before}) and after ({after}) a code change",
        "",
        f"`python benchmarks/bench_refactor.py --before {args.before}` (after = {after}): "
        f"`train_one_epoch`, `small` preset, batch 32, {args.steps} steps, CPU, "
        f"{args.threads} threads; fresh processes alternating before/after.",
        "",
        "| code | images/s per repeat | median |",
        "|---|---|---|",
        *(
            f"| {k} | {', '.join(f'{x:.1f}' for x in v)} | **{med[k]:.1f}** |"
            for k, v in runs.items()
        ),
        "",
        f"after / before = **{record['ratio_after_before']:.3f}**; paired ratios per "
        "repeat: " + ", ".join(f"{a / b:.2f}" for a, b in zip(runs["after"], runs["before"])),
        "",
        "Machine, load and package versions: `refactor.json`.",
        "",
    ]
    (RESULTS / "refactor.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
