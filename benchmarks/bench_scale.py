"""Every stage of cyto at screen scale: 10⁴ and 10⁵ crops, 10⁶ encodings (issue 16).

A rehearsal of a whole screen on this machine, stage by stage, each in a fresh process so
that its wall time, CPU time and peak resident memory are its own:

crop level, for each size in ``--sizes`` (default 10⁴ and 10⁵ crops):

1. ``synth``       the synthetic screen (``cyto synth``; setup, not a cyto stage a user runs);
2. ``preprocess``  ``preprocess_dataset`` on a Dask ``LocalCluster`` (the same call runs on
                   a ``dask-jobqueue`` Slurm cluster: pass its ``Client``; docs/scale.md);
3. ``loader``      training loader, random order over the whole store, one core, cold cache;
4. ``embed``       ``cyto.nn.embed`` with a trained run (``--run``) into one file;
5. ``analyze``     ``analyze_embeddings``: UMAP, Γ, spectra, figures, report, explorer;

encoding level, for 10⁴, 10⁵ and ``--big`` (default 10⁶) encodings. The encodings are
**synthesised by sampling**: the largest embed's global encodings reduced to 64 PCA
components, rows drawn with replacement (plus Gaussian noise of 10% of each component's
spread, so no two points coincide), their local code maps copied with them:

6. ``umap_fast``   UMAP fitted on a stratified sample of 50,000, every other point placed at
                   the mean position of its nearest fitted points (``placement="neighbors"``);
7. ``umap_transform`` the same fit, the rest placed by umap-learn's ``transform`` (up to
                   10⁵: about 30 minutes at 10⁶ here);
8. ``umap_full``   UMAP fitted on everything (up to 10⁵), to measure what the fast paths
                   cost in Γ;
9. ``scores``      Γ (family) on the three UMAPs, k-NN family accuracy;
10. ``spectra``    feature spectra streamed from the code maps, code clusters;
11. ``retrieval``  per-protein profiles, family mAP with permutation p-values;
12. ``explorer``   the explorer page (no thumbnails: the encodings have no store).

Resumable: results are kept per stage in ``WORK/results.json`` and a rerun skips what is
done (delete an entry, or the folder, to measure it again). Progress goes to stderr.
Run it alone on the machine, in the background::

    python benchmarks/bench_scale.py --work /tmp/cyto-scale --run /path/to/trained/run &

Writes ``benchmarks/results/scale.json``, ``scale.md`` and ``scale.png`` (log-log).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
CROP_STAGES = ("synth", "preprocess", "loader", "embed", "analyze")
ENC_STAGES = (
    "umap_fast", "umap_transform", "umap_full", "scores", "spectra", "retrieval", "explorer",
)  # fmt: skip
#: (proteins, fields per protein, complexes per family) of the synthetic screens
SCREENS = {10_000: (120, 3, 3), 100_000: (400, 9, 8)}
FIT_SAMPLE = 50_000


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _peak_rss_mib() -> float:
    own = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _size_mib(*paths: Path) -> float:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total / 2**20


# ------------------------------------------------------------------ crop-level stages
def _screen(n: int) -> tuple[int, int, int]:
    """Proteins, fields per protein and complexes per family for about ``n`` crops (~28
    crops per 512x512 synthetic field)."""
    return SCREENS.get(n, (60, max(1, round(n / 28 / 60)), 2))


def stage_synth(work: Path, n: int) -> dict:
    proteins, fields, complexes = _screen(n)
    out = work / f"atlas_{n}"
    cmd = [sys.executable, "-m", "cyto", "synth", "-o", str(out), "--proteins", str(proteins)]
    cmd += ["--fields", str(fields), "--complexes-per-family", str(complexes)]
    cmd += ["--compress", "-j", str(os.cpu_count()), "-q"]
    subprocess.run(cmd, check=True)
    return {"disk_mib": _size_mib(out), "fields": proteins * fields, "proteins": proteins}


def stage_preprocess(work: Path, n: int) -> dict:
    from dask.distributed import Client, LocalCluster

    from cyto.preprocess import preprocess_dataset

    atlas = work / f"atlas_{n}"
    hint = json.loads((atlas / "synth.json").read_text())["preprocess_hint"]
    store = work / f"crops_{n}.h5"
    with LocalCluster(n_workers=os.cpu_count(), threads_per_worker=1, processes=True) as cluster:
        with Client(cluster) as client:
            report = preprocess_dataset(
                atlas / "manifest.csv", store, scheduler=client, progress=False, **hint
            )
    return {"disk_mib": _size_mib(store), "crops": report.n_crops, "failed": len(report.failed)}


def stage_loader(work: Path, n: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from cyto.nn import BlockShuffleSampler, CropDataset, DihedralAugment
    from cyto.nn._dataset import collate_crops

    torch.set_num_threads(1)
    store = work / f"crops_{n}.h5"
    fd = os.open(store, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    ds = CropDataset(store, augment=DihedralAugment(0))
    loader = DataLoader(
        ds, batch_size=256, sampler=BlockShuffleSampler(ds, seed=0), collate_fn=collate_crops
    )
    start, done = time.perf_counter(), 0
    for x, _ in loader:
        done += int(x.shape[0])
        if time.perf_counter() - start > 30:
            break
    return {"crops_per_s_one_core": done / (time.perf_counter() - start), "crops_read": done}


def stage_embed(work: Path, n: int, run: Path) -> dict:
    from cyto.nn import embed

    out = work / f"emb_{n}.h5"
    embed(run, work / f"crops_{n}.h5", out, progress=False, allow_degenerate=True, overwrite=True)
    return {"disk_mib": _size_mib(out)}


def stage_analyze(work: Path, n: int) -> dict:
    from cyto.analysis import analyze_embeddings

    out = work / f"analysis_{n}"
    analyze_embeddings(
        work / f"emb_{n}.h5", out, ground_truth=work / f"atlas_{n}" / "ground_truth.csv",
        split=None, verbose=False, allow_degenerate=True,
    )  # fmt: skip
    scores = json.loads((out / "scores.json").read_text())
    gamma = {f"gamma_{s['level']}": s["mean"] for s in scores["scores"]}
    return {"disk_mib": _size_mib(out), **gamma}


# ------------------------------------------------------------------ encoding level
def _encodings_file(work: Path, m: int, source_n: int) -> Path:
    """``m`` encodings sampled from the largest embed (64 PCA components + noise)."""
    import h5py
    from sklearn.decomposition import PCA

    path = work / f"enc_{m}.h5"
    if path.exists():
        return path
    from cyto.data import Embeddings

    with Embeddings(work / f"emb_{source_n}.h5") as emb:
        rng = np.random.default_rng(0)
        n = emb.n
        fit_rows = np.sort(rng.choice(n, size=min(n, 20_000), replace=False))
        pca = PCA(64, random_state=0).fit(emb.read("global", fit_rows).reshape(fit_rows.size, -1))
        reduced = np.concatenate(
            [
                pca.transform(
                    emb.read("global", np.arange(a, min(a + 8192, n))).reshape(
                        -1, pca.n_features_in_
                    )
                )
                for a in range(0, n, 8192)
            ]
        ).astype(np.float32)
        pids = emb.protein_ids.astype(str)
        rows = np.sort(rng.integers(0, n, m)) if m != n else np.arange(n)
        tmp = path.with_suffix(".tmp")
        with h5py.File(tmp, "w") as f:
            noise = 0.1 * reduced.std(axis=0)
            f["global"] = reduced[rows] + rng.normal(size=(m, 64)).astype(np.float32) * noise
            f["protein_id"] = pids[rows].astype(object)
            local = f.create_dataset("local_indices", (m, 625), dtype=np.int16, chunks=(4096, 625))
            for a in range(0, m, 65536):
                part = rows[a : a + 65536]
                local[a : a + part.size] = emb.read("local_indices", np.unique(part))[
                    np.searchsorted(np.unique(part), part)
                ].reshape(part.size, -1)
            f.attrs["num_codes"] = emb.shape("local_hist")[1]
        tmp.rename(path)
    return path


def _load(work: Path, m: int) -> tuple[np.ndarray, np.ndarray, dict]:
    import h5py

    with h5py.File(work / f"enc_{m}.h5", "r") as f:
        return f["global"][()], f["protein_id"].asstr()[()], dict(f.attrs)


def _families(work: Path, source_n: int) -> dict[str, str]:
    import pandas as pd

    gt = pd.read_csv(work / f"atlas_{source_n}" / "ground_truth.csv")
    return dict(zip(gt["protein_id"].astype(str), gt["family"].astype(str)))


def _umap_sampled(work: Path, m: int, placement: str, name: str) -> dict:
    from cyto.analysis import sample_per_group, umap_embed

    X, pids, _ = _load(work, m)
    fit = X[sample_per_group(pids, FIT_SAMPLE, seed=0)] if m > FIT_SAMPLE else None
    xy = umap_embed(X, random_state=0, fit_on=fit, placement=placement)
    np.save(work / f"umap_{name}_{m}.npy", xy)
    return {"fit_on": int(fit.shape[0]) if fit is not None else m}


def stage_umap_fast(work: Path, m: int) -> dict:
    return _umap_sampled(work, m, "neighbors", "fast")


def stage_umap_transform(work: Path, m: int) -> dict:
    return _umap_sampled(work, m, "transform", "transform")


def stage_umap_full(work: Path, m: int) -> dict:
    from cyto.analysis import umap_embed

    X, _, _ = _load(work, m)
    np.save(work / f"umap_full_{m}.npy", umap_embed(X, random_state=0))
    return {}


def stage_scores(work: Path, m: int, source_n: int) -> dict:
    from cyto.analysis import clustering_score, knn_family_accuracy, labels_for

    X, pids, _ = _load(work, m)
    fam = labels_for(pids, _families(work, source_n))
    out = {}
    for kind in ("fast", "transform", "full"):
        path = work / f"umap_{kind}_{m}.npy"
        if path.exists():
            out[f"gamma_family_{kind}"] = clustering_score(np.load(path), fam)
    rng = np.random.default_rng(0)
    half = rng.random(m) < 0.5
    test = np.flatnonzero(~half)[:20_000]
    out["knn_family_accuracy"] = knn_family_accuracy(X[half], fam[half], X[test], fam[test])
    return out


def stage_spectra(work: Path, m: int) -> dict:
    from cyto.analysis import code_clusters, feature_spectra
    from cyto.data import LazyRows

    path = work / f"enc_{m}.h5"
    _, pids, attrs = _load(work, m)
    spectra = feature_spectra(LazyRows(path, "local_indices"), pids, int(attrs["num_codes"]))
    clusters = code_clusters(spectra, 11)
    return {"proteins": int(spectra.groups.size), "clusters": clusters is not None}


def stage_retrieval(work: Path, m: int, source_n: int) -> dict:
    from cyto.analysis import aggregate, average_precision, labels_for, mean_average_precision

    X, pids, _ = _load(work, m)
    proteins, profiles = aggregate(X, pids)
    fam = labels_for(proteins, _families(work, source_n))
    result = mean_average_precision(average_precision(profiles, fam), null_size=1000)
    return {"family_map": result["map"], "significant": result["fraction_significant"]}


def stage_explorer(work: Path, m: int, source_n: int) -> dict:
    from cyto.analysis import GroundTruth, explorer_data, write_explorer

    X, pids, _ = _load(work, m)
    xy = np.load(work / f"umap_fast_{m}.npy")
    gt = GroundTruth.read(work / f"atlas_{source_n}" / "ground_truth.csv")
    data = explorer_data(xy, pids, X, gt=gt, crop_index=np.arange(m))
    out = write_explorer(work / f"explorer_{m}.html", data)
    return {"disk_mib": _size_mib(out)}


# ------------------------------------------------------------------ driver
def run_stage(name: str, size: int, work: Path, args: argparse.Namespace) -> dict:
    """Run one stage here (in the child process) and measure it."""
    start, cpu = time.perf_counter(), _cpu_s()
    source_n = max(args.sizes)
    if name in ENC_STAGES:
        _encodings_file(work, size, source_n)
        start, cpu = time.perf_counter(), _cpu_s()  # the sampling is setup
    fn = globals()[f"stage_{name}"]
    extra = {"run": args.run} if name == "embed" else {}
    if name in ("scores", "retrieval", "explorer"):
        extra = {"source_n": source_n}
    info = fn(work, size, **{k: Path(v) if k == "run" else v for k, v in extra.items()})
    return {
        "stage": name,
        "size": size,
        "wall_s": time.perf_counter() - start,
        "cpu_s": _cpu_s() - cpu,
        "peak_rss_mib": _peak_rss_mib(),
        **info,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder (resumable)")
    parser.add_argument("--run", help="trained run for the embed stage")
    parser.add_argument("--sizes", default="10000,100000", help="crop-level sizes")
    parser.add_argument("--big", type=int, default=1_000_000, help="largest encoding level")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true", help="rewrite the results only")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage:  # child: one stage
        print(json.dumps(run_stage(args.stage, args.size, args.work, args)))
        return 0
    results_file = args.work / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    plan = [(s, n) for n in args.sizes for s in CROP_STAGES]
    enc_sizes = sorted({s for s in (10_000, 100_000) if s < args.big} | {args.big})
    slow = ("umap_full", "umap_transform")
    plan += [(s, m) for m in enc_sizes for s in ENC_STAGES if not (s in slow and m > 100_000)]
    if not args.report_only:
        for i, (stage, size) in enumerate(plan, 1):
            key = f"{stage}@{size}"
            if key in results:
                continue
            if stage == "embed" and not args.run:
                _log(f"{key}: skipped (no --run)")
                continue
            _log(f"[{i}/{len(plan)}] {key} ...")
            cmd = [sys.executable, __file__, "--stage", stage, "--size", str(size)]
            cmd += ["--work", str(args.work), "--sizes", ",".join(map(str, args.sizes))]
            cmd += ["--big", str(args.big)] + (["--run", args.run] if args.run else [])
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                _log(f"{key} FAILED:\n{res.stderr[-3000:]}")
                results[key] = {"stage": stage, "size": size, "error": res.stderr[-500:]}
            else:
                results[key] = json.loads(res.stdout.strip().splitlines()[-1])
                r = results[key]
                _log(f"{key}: {r['wall_s']:.1f} s wall, {r['peak_rss_mib']:.0f} MiB peak")
            results_file.write_text(json.dumps(results, indent=1))
    write_report(results, args)
    return 0


def write_report(results: dict, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from _machine import machine_info

    info = machine_info(packages=("numpy", "umap-learn", "h5py", "dask"), torch=True)
    rows = [r for r in results.values() if "wall_s" in r]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps({"machine": info, "results": results}, indent=1))
    lines = [
        "# cyto at screen scale: every stage at 10⁴–10⁶",
        "",
        "`python benchmarks/bench_scale.py --work DIR --run RUN` (see its docstring). "
        f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        f"torch {info.get('torch')}, umap-learn {info.get('umap-learn')}. Each stage runs in "
        "a fresh process; peak RSS includes its worker processes. Encoding-level stages "
        "(umap_* to explorer) use encodings synthesised by sampling (64 PCA components of "
        "the 10⁵ embedding, rows drawn with replacement plus noise); their k-NN accuracy "
        "at 10⁶ is optimistic (a query's neighbours include noisy copies of its own source "
        "crop). `umap_fast`: fit on a stratified sample of 50,000, the rest placed at the "
        "mean of their nearest fitted points; `umap_transform`: the same fit, the rest "
        "placed by umap-learn's `transform`; `umap_full`: fit on everything.",
        "",
        "| stage | size | wall | CPU | peak RSS | disk | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    skip = {"stage", "size", "wall_s", "cpu_s", "peak_rss_mib", "disk_mib"}
    for r in sorted(rows, key=lambda r: (_order(r["stage"]), r["size"])):
        note = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r.items()
            if k not in skip
        )
        disk = f"{r['disk_mib']:.0f} MiB" if "disk_mib" in r else ""
        lines.append(
            f"| {r['stage']} | {r['size']:,} | {r['wall_s']:.1f} s | {r['cpu_s']:.0f} s | "
            f"{r['peak_rss_mib']:.0f} MiB | {disk} | {note} |"
        )
    failed = [k for k, r in results.items() if "error" in r]
    if failed:
        lines += ["", f"Failed: {', '.join(failed)} (see scale.json)."]
    lines += ["", "![wall time per stage against size, log-log](scale.png)"]
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")
    _plot(rows)


def _order(stage: str) -> int:
    return (CROP_STAGES + ENC_STAGES).index(stage)


def _plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cyto.analysis._palette import categorical_colors

    stages = CROP_STAGES + ENC_STAGES
    colors = categorical_colors(len(stages))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for stage, color in zip(stages, colors):
        pts = sorted((r["size"], r["wall_s"]) for r in rows if r["stage"] == stage)
        style = "-" if stage in CROP_STAGES else "--"  # crops vs (sampled) encodings
        if pts:
            ax.loglog(*zip(*pts), style, marker="o", color=color, label=stage)
    ax.set_xlabel("crops / encodings")
    ax.set_ylabel("wall time (s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(RESULTS / "scale.png", dpi=120)


if __name__ == "__main__":
    sys.exit(main())
