"""Cost of the CellProfiler baseline (cp-measure) per crop, beside cyto's own baselines.

5-stain crops of 100 × 100 px (Cell Painting: DNA, ER, RNA, AGP, Mito) with a centred
nucleus and textured cytoplasm; every baseline computed on the same crops in one run,
in one process (blocks of 500 crops, so memory stays flat):

- ``cellprofiler``: :func:`cyto.analysis.cellprofiler_features` (intensity, texture,
  granularity, radial distribution of every stain on the nucleus, and its shape);
- ``intensity``: :func:`cyto.analysis.baseline_features` (intensity statistics of one
  channel) and ``pixels`` (its raw pixels), for the ratio.

    python benchmarks/bench_cellprofiler.py [--n 10000] [--size 100]

Writes ``benchmarks/results/cellprofiler.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _machine import machine_info

from cyto.analysis import baseline_features, cellprofiler_features

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
STAINS = ("DNA", "ER", "RNA", "AGP", "Mito")


def _crops(n: int, size: int, seed: int) -> np.ndarray:
    """Nucleus disk of varying radius in DNA, smooth noise elsewhere in the other stains."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size // 2
    out = np.empty((n, len(STAINS), size, size), np.float32)
    for i in range(n):
        r = rng.uniform(0.12, 0.22) * size
        disk = (yy**2 + xx**2 < r * r).astype(np.float32)
        out[i, 0] = disk + 0.05 * rng.random((size, size))
        texture = ndi.gaussian_filter(rng.random((4, size, size)), (0, 2, 2))
        out[i, 1:] = texture * (1 - 0.7 * disk)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--block", type=int, default=500)
    args = ap.parse_args()
    seconds = {"cellprofiler": 0.0, "intensity+pixels": 0.0}
    n_features = 0
    for start in range(0, args.n, args.block):
        crops = _crops(min(args.block, args.n - start), args.size, seed=start)
        t0 = time.perf_counter()
        _, names = cellprofiler_features(crops, STAINS)
        seconds["cellprofiler"] += time.perf_counter() - t0
        n_features = len(names)
        t0 = time.perf_counter()
        baseline_features(crops[:, 1])
        seconds["intensity+pixels"] += time.perf_counter() - t0
        print(f"{start + len(crops)} crops: {seconds}", flush=True)
    per_crop = {k: 1000 * v / args.n for k, v in seconds.items()}
    record = {
        "n_crops": args.n,
        "crop": [len(STAINS), args.size, args.size],
        "cellprofiler_features": n_features,
        "seconds": seconds,
        "ms_per_crop": per_crop,
        "machine": machine_info(packages=("numpy", "cp-measure", "scikit-image"), load=True),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cellprofiler.json").write_text(json.dumps(record, indent=2) + "\n")
    hours = per_crop["cellprofiler"] * 1e6 / 1000 / 3600
    ratio = per_crop["cellprofiler"] / per_crop["intensity+pixels"]
    lines = [
        "# CellProfiler features (cp-measure): cost per crop",
        "",
        f"`python benchmarks/bench_cellprofiler.py --n {args.n}`: {args.n} crops of "
        f"{len(STAINS)} × {args.size} × {args.size} px, one process, one core.",
        "",
        "| baseline | features | total s | ms per crop |",
        "|---|---|---|---|",
        f"| CellProfiler (cp-measure) | {n_features} | {seconds['cellprofiler']:.0f} | "
        f"**{per_crop['cellprofiler']:.1f}** |",
        f"| intensity statistics + raw pixels (one channel) | – | "
        f"{seconds['intensity+pixels']:.1f} | {per_crop['intensity+pixels']:.2f} |",
        "",
        f"CellProfiler / intensity = {ratio:.0f}×. At this rate 10⁶ crops (an "
        f"OpenCell-sized screen) take {hours:.0f} core-hours.",
        "",
        "Machine, load and package versions: `cellprofiler.json`.",
        "",
    ]
    (RESULTS / "cellprofiler.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
