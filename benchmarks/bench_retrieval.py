"""Speed and accuracy of the retrieval metrics: cyto's average precision next to copairs,
next to the previous implementation, exact as the number of profiles grows, and sampled.

For each size n: n profiles × d features in ``groups`` groups (Gaussian clusters whose
separation ``--signal`` gives a middling mAP, as real profiles have), the AP of every
profile as a query (positives: same group; negatives: the others; cosine).

* ``side by side``: cyto and ``copairs.map.average_precision`` on the same data, same
  run (copairs builds its pair table, which grows with n², so only small n);
* ``before``: the implementation of an earlier commit (``--before``, loaded from git)
  on the same data, same run;
* ``exact``: wall time and peak memory of the AP of every query, and of the mAP with
  1,000-sample permutation nulls, from 10³ up to ``--max-n`` profiles;
* ``sampled``: at the largest n, the AP of ``k`` random queries per group
  (:func:`cyto.analysis.sample_queries`) and the mAP with its standard error, against
  the exact mAP of the same data.

Run on an otherwise idle machine::

    python benchmarks/bench_retrieval.py --max-n 100000 --before 138e5bd

Writes ``benchmarks/results/retrieval.json`` and ``retrieval.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings
from pathlib import Path

import numpy as np
from _machine import machine_info, module_at

from cyto.analysis import average_precision, mean_average_precision, sample_queries

RESULTS = Path(__file__).resolve().parent / "results"
NULL = 1000


def profiles(
    n: int, d: int, groups: int, signal: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, groups, n)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X += (signal * rng.normal(size=(groups, d))).astype(np.float32)[lab]
    return X, lab.astype(str)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def side_by_side(X: np.ndarray, lab: np.ndarray) -> dict[str, float]:
    import pandas as pd
    from copairs.map import average_precision as copairs_ap

    ours, t_ours = timed(average_precision, X, lab)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, t_theirs = timed(
            copairs_ap,
            pd.DataFrame({"g": lab}),
            X,
            pos_sameby=["g"],
            pos_diffby=[],
            neg_sameby=[],
            neg_diffby=["g"],
            progress_bar=False,
        )
    diff = float(np.nanmax(np.abs(ours.ap - theirs["average_precision"].to_numpy())))
    return {"n": len(X), "cyto_s": t_ours, "copairs_s": t_theirs, "max_abs_diff": diff}


def before_after(X: np.ndarray, lab: np.ndarray, rev: str) -> dict[str, float]:
    old = module_at(rev, "cyto/analysis/_retrieval.py")
    theirs, t_before = timed(old["average_precision"], X, lab)
    ours, t_after = timed(average_precision, X, lab)
    _, t_map_before = timed(old["mean_average_precision"], theirs, null_size=NULL)
    _, t_map_after = timed(mean_average_precision, ours, null_size=NULL)
    return {
        "n": len(X),
        "before_s": t_before,
        "after_s": t_after,
        "map_before_s": t_map_before,
        "map_after_s": t_map_after,
        "max_abs_diff": float(np.nanmax(np.abs(ours.ap - theirs.ap))),
    }


def exact(X: np.ndarray, lab: np.ndarray) -> tuple[dict, dict]:
    r, t_ap = timed(average_precision, X, lab)
    m, t_map = timed(mean_average_precision, r, null_size=NULL)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"n": len(X), "ap_s": t_ap, "map_s": t_map, "map": m["map"], "peak_rss_mib": peak}
    return row, m


def sampled(X: np.ndarray, lab: np.ndarray, per_group: int, truth: dict) -> dict[str, float]:
    t = time.perf_counter()
    rows = sample_queries(lab, per_group, seed=0)
    r = average_precision(X, lab, queries=rows)
    m = mean_average_precision(r, null_size=NULL)
    seconds = time.perf_counter() - t
    exact_by = {g["label"]: g for g in truth["groups"]}
    err = np.array([g["map"] - exact_by[g["label"]]["map"] for g in m["groups"]])
    sig = np.array([g["q_value"] < 0.05 for g in m["groups"]])
    sig_exact = np.array([exact_by[g["label"]]["q_value"] < 0.05 for g in m["groups"]])
    return {
        "per_group": per_group,
        "queries": int(rows.size),
        "seconds": seconds,
        "map": m["map"],
        "map_sem": m["map_sem"],
        "error": m["map"] - truth["map"],
        "group_rmse": float(np.sqrt((err**2).mean())),
        "group_sem_median": _median([g["sem"] for g in m["groups"]]),
        "fraction_significant": m["fraction_significant"],
        "agree_significant": float((sig == sig_exact).mean()),
    }


def _median(values: list[float]) -> float:
    """Median of the finite values (NaN when there are none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


def _head(res: dict) -> list[str]:
    m = res["machine"]
    return [
        "# Retrieval metrics: speed and accuracy",
        "",
        f"{res['date']}; {m.get('cpu')}, {m.get('cores')} cores; d = {res['d']} features, "
        f"{res['groups']} groups, signal {res['signal']} (Gaussian groups); cosine; "
        f"permutation nulls of {NULL}; `python benchmarks/bench_retrieval.py "
        f"--before {res.get('before_commit')}`.",
        "",
        "## cyto and copairs side by side (same data, same run)",
        "",
        "| n | cyto AP (s) | copairs AP (s) | copairs / cyto | max abs. AP difference |",
        "|---|---|---|---|---|",
    ] + [
        f"| {r['n']} | {r['cyto_s']:.3f} | {r['copairs_s']:.3f} | "
        f"{r['copairs_s'] / r['cyto_s']:.0f} | {r['max_abs_diff']:.1e} |"
        for r in res["side_by_side"]
    ]


def to_markdown(res: dict) -> str:
    lines = _head(res)
    if res.get("before"):
        lines += [
            "",
            f"## Before ({res['before_commit']}) and after, same data, same run",
            "",
            "| n | AP before (s) | AP after (s) | speed-up | mAP + nulls before (s) "
            "| after (s) | max abs. AP difference |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in res["before"]:
            lines.append(
                f"| {r['n']} | {r['before_s']:.2f} | {r['after_s']:.2f} | "
                f"{r['before_s'] / r['after_s']:.1f}× | {r['map_before_s']:.2f} | "
                f"{r['map_after_s']:.2f} | {r['max_abs_diff']:.1e} |"
            )
    lines += [
        "",
        "## Exact: every profile a query",
        "",
        "| n | AP of every query (s) | mAP + nulls (s) | mAP | process peak RSS (MiB) |",
        "|---|---|---|---|---|",
    ]
    for r in res["exact"]:
        lines.append(
            f"| {r['n']} | {r['ap_s']:.2f} | {r['map_s']:.2f} | {r['map']:.4f} | "
            f"{r['peak_rss_mib']:.0f} |"
        )
    n = res["exact"][-1]["n"]
    lines += [
        "",
        f"## Sampled queries at n = {n}, against the exact mAP above",
        "",
        "| queries per group | queries | AP + mAP + nulls (s) | mAP ± s.e. | error vs exact "
        "| per-group RMS error | median per-group s.e. | groups q < 0.05 "
        "| same call as exact |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["sampled"]:
        lines.append(
            f"| {r['per_group']} | {r['queries']} | {r['seconds']:.2f} | "
            f"{r['map']:.4f} ± {r['map_sem']:.4f} | {r['error']:+.4f} | "
            f"{r['group_rmse']:.3f} | {r['group_sem_median']:.3f} | "
            f"{r['fraction_significant']:.3f} | {r['agree_significant']:.3f} |"
        )
    lines += [
        "",
        "Exact AP ranks every query against every profile: time grows as n² × d (the",
        "matrix product alone is n² × d multiply-adds). Sampled queries keep each AP exact",
        "and cost (queries × n × d); the group mAP is then the mean of the sampled APs,",
        "with its standard error, and its p-value tests the sampled queries.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--signal", type=float, default=0.4)
    parser.add_argument("--max-n", type=int, default=100_000)
    parser.add_argument("--before", help="commit whose implementation to time beside")
    parser.add_argument("--per-group", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    data = lambda n: profiles(n, args.d, args.groups, args.signal)  # noqa: E731
    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(packages=("numpy", "copairs"), load=True),
        "d": args.d,
        "groups": args.groups,
        "signal": args.signal,
        "before_commit": args.before,
        "side_by_side": [side_by_side(*data(n)) for n in (1_000, 3_000)],
        "before": [before_after(*data(n), args.before) for n in (10_000, 30_000)]
        if args.before
        else [],
        "exact": [],
    }
    sizes = [n for n in (1_000, 3_000, 10_000, 30_000, 100_000) if n <= args.max_n]
    for n in sizes:
        row, truth = exact(*data(n))
        res["exact"].append(row)
        print(row, flush=True)
    res["sampled"] = [sampled(*data(sizes[-1]), k, truth) for k in args.per_group]
    md = to_markdown(res)
    print(md)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "retrieval.json").write_text(json.dumps(res, indent=2) + "\n")
        (RESULTS / "retrieval.md").write_text(md)


if __name__ == "__main__":
    main()
