"""Benchmark cyto.analysis: feature spectra, code correlation, biclustering, clustering score.

Run under the shared lock so benchmarks do not overlap::

    flock /tmp/cyto-bench.lock python benchmarks/bench_analysis.py

Writes ``benchmarks/results/analysis.json`` and ``analysis.md`` with the machine
description. Sizes follow the paper: 10^5 crops × 625 local codes (25 × 25) with a
2048-code VQ1 codebook, ~1,300 proteins; the clustering score on 10^6 points in 10^3
classes. The reference cytoself computes the code correlation with one
``scipy.stats.pearsonr`` call per pair of codes; that loop is timed on a random subset of
pairs and extrapolated to all K(K-1)/2 pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _machine import machine_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cyto.analysis import (
    bicluster,
    clustering_score,
    code_correlation,
    feature_spectra,
)

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def synthetic_indices(n_images: int, n_proteins: int, k: int, positions: int, seed: int = 0):
    """Code maps with structure: each protein draws mostly from a few 'programs' of codes."""
    rng = np.random.default_rng(seed)
    n_programs = 40
    programs = rng.permutation(k)[: (k // n_programs) * n_programs].reshape(n_programs, -1)
    protein_of = rng.integers(0, n_proteins, size=n_images)
    mix = rng.dirichlet(np.full(n_programs, 0.2), size=n_proteins)  # protein -> programs
    # one program per image (sampled from its protein's mixture), codes from that program
    cum = np.cumsum(mix[protein_of], axis=1)
    prog = (rng.random((n_images, 1)) < cum).argmax(axis=1)
    within = rng.integers(0, programs.shape[1], size=(n_images, positions))
    idx = programs[prog[:, None], within]
    noise = rng.random((n_images, positions)) < 0.2
    idx[noise] = rng.integers(0, k, size=int(noise.sum()))
    return idx.astype(np.uint16), np.array([f"P{p:04d}" for p in protein_of], dtype=object)


def bench_spectra(n_images: int, n_proteins: int, k: int, positions: int, pairs: int) -> dict:
    from scipy.stats import pearsonr

    idx, groups = synthetic_indices(n_images, n_proteins, k, positions)
    t_spec, spec = best_of(lambda: feature_spectra(idx, groups, k))
    t_corr, corr = best_of(lambda: code_correlation(spec.spectra))
    t_bic, bic = best_of(lambda: bicluster(corr, n_clusters=11), repeat=1)

    # reference approach: one scipy.stats.pearsonr per pair of codes, on a subset of pairs
    H = spec.spectra
    used = np.flatnonzero(H.std(axis=0) > 0)
    rng = np.random.default_rng(1)
    ii = rng.choice(used, size=pairs)
    jj = rng.choice(used, size=pairs)
    t = time.perf_counter()
    ref = np.array([pearsonr(H[:, i], H[:, j])[0] for i, j in zip(ii, jj)])
    t_pairs = time.perf_counter() - t
    all_pairs = k * (k - 1) // 2
    t_ref = t_pairs / pairs * all_pairs
    max_err = float(np.max(np.abs(ref - corr[ii, jj])))
    return {
        "n_images": n_images,
        "n_proteins": int(spec.groups.size),
        "num_codes": k,
        "positions_per_image": positions,
        "feature_spectra_s": t_spec,
        "code_correlation_s": t_corr,
        "spectra_plus_correlation_s": t_spec + t_corr,
        "target_spectra_plus_correlation_s": 5.0,
        "bicluster_s": t_bic,
        "feature_clusters": bic.n_clusters,
        "reference_pearsonr_pairs_timed": pairs,
        "reference_pearsonr_per_pair_us": t_pairs / pairs * 1e6,
        "reference_pearsonr_all_pairs_s_extrapolated": t_ref,
        "speedup_correlation_vs_pearsonr_loop": t_ref / t_corr,
        "max_abs_difference_vs_pearsonr": max_err,
    }


def naive_clustering_score(X: np.ndarray, labels: np.ndarray) -> float:
    """One boolean mask over all points per class: the obvious (slow) implementation."""
    classes = np.unique(labels)
    cents, sizes = [], []
    for c in classes:
        pts = X[labels == c]
        mu = np.median(pts, axis=0)
        cents.append(mu)
        sizes.append(np.median(np.linalg.norm(pts - mu, axis=1)))
    cents = np.array(cents)
    spread = np.median(np.linalg.norm(cents - np.median(cents, axis=0), axis=1))
    return float(spread / np.median(sizes))


def bench_score(n_points: int, n_classes: int) -> dict:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_classes, size=n_points)
    centres = rng.normal(scale=10, size=(n_classes, 2))
    X = centres[labels] + rng.normal(size=(n_points, 2))
    t_fast, score = best_of(lambda: clustering_score(X, labels))
    t_naive, ref = best_of(lambda: naive_clustering_score(X, labels), repeat=1)
    str_labels = labels.astype(str)
    t_str, _ = best_of(lambda: clustering_score(X, str_labels), repeat=1)
    X10 = rng.normal(size=(n_points, 10)) + np.repeat(centres, 5, axis=1)[labels]
    t_10d, _ = best_of(lambda: clustering_score(X10, labels), repeat=1)
    return {
        "n_points": n_points,
        "n_classes": n_classes,
        "clustering_score_2d_int_labels_s": t_fast,
        "clustering_score_2d_str_labels_s": t_str,
        "clustering_score_10d_int_labels_s": t_10d,
        "naive_per_class_mask_loop_s": t_naive,
        "speedup_vs_naive": t_naive / t_fast,
        "score": score,
        "abs_difference_vs_naive": abs(score - ref),
    }


def to_markdown(res: dict) -> str:
    m, s, c = res["machine"], res["spectra"], res["score"]
    lines = [
        "# cyto.analysis benchmark",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores (affinity {m['affinity']}); python "
        f"{m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, torch {m['torch']} (not "
        f"imported). {m['note']}. Run: {res['date']}.",
        "",
        f"## Feature spectra ({s['n_images']:,} crops × {s['positions_per_image']} codes, "
        f"K = {s['num_codes']}, {s['n_proteins']:,} proteins)",
        "",
        "| step | time |",
        "|---|---|",
        f"| feature_spectra (per-protein mean histograms) | {s['feature_spectra_s']:.3f} s |",
        f"| code_correlation ({s['num_codes']}×{s['num_codes']}) | "
        f"{s['code_correlation_s']:.3f} s |",
        f"| **spectra + correlation** (target < 5 s) | "
        f"**{s['spectra_plus_correlation_s']:.3f} s** |",
        f"| bicluster (average linkage, 11 clusters) | {s['bicluster_s']:.3f} s |",
        f"| reference: one scipy.stats.pearsonr per pair, {s['reference_pearsonr_pairs_timed']} "
        f"pairs timed ({s['reference_pearsonr_per_pair_us']:.0f} µs/pair), extrapolated to all "
        f"K(K−1)/2 pairs | {s['reference_pearsonr_all_pairs_s_extrapolated']:.0f} s |",
        f"| **correlation speed-up vs the pearsonr loop** (target ≥ 100×) | "
        f"**{s['speedup_correlation_vs_pearsonr_loop']:,.0f}×** |",
        f"| max abs difference vs pearsonr on the timed pairs | "
        f"{s['max_abs_difference_vs_pearsonr']:.1e} |",
        "",
        f"## Clustering score ({c['n_points']:,} points, {c['n_classes']:,} classes)",
        "",
        "| variant | time |",
        "|---|---|",
        f"| 2-D, integer labels | {c['clustering_score_2d_int_labels_s']:.3f} s |",
        f"| 2-D, string labels | {c['clustering_score_2d_str_labels_s']:.3f} s |",
        f"| 10-D, integer labels | {c['clustering_score_10d_int_labels_s']:.3f} s |",
        f"| naive loop (one boolean mask per class) | {c['naive_per_class_mask_loop_s']:.3f} s |",
        f"| speed-up vs naive | {c['speedup_vs_naive']:.1f}× (same score, |Δ| = "
        f"{c['abs_difference_vs_naive']:.1e}) |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--proteins", type=int, default=1311)
    parser.add_argument("--codes", type=int, default=2048)
    parser.add_argument("--positions", type=int, default=625)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(
            packages=("numpy", "scipy", "torch"),
            note="2-core machine possibly shared with other jobs; ratios are measured "
            "side by side in one run",
        ),
        "spectra": bench_spectra(
            args.images, args.proteins, args.codes, args.positions, args.pairs
        ),
        "score": bench_score(args.points, args.classes),
    }
    md = to_markdown(res)
    print(md)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "analysis.json").write_text(json.dumps(res, indent=2) + "\n")
        (RESULTS / "analysis.md").write_text(md)


if __name__ == "__main__":
    main()
