"""Speed of the synthetic atlas generator and agreement of its nuclei with segment_nuclei.

Measures

- generation of 100 default fields (512×512, 8 planes, 2 channels) in memory on one
  core (wall and CPU time), and through ``generate_atlas`` with TIFF writing, serial
  and with 2 worker processes (bytes identical either way);
- bytes per field on disk (uncompressed and zlib);
- F1 at IoU 0.5 between the true nuclear masks and ``cyto.preprocess.segment_nuclei``
  on the max projection, at the default scale (and at ``scale=2`` after the ×2
  block-mean downsampling the preprocess hint asks for). Nuclei cut by the field edge
  are ignored on both sides (they are never cropped either).

Usage::

    flock /tmp/cyto-bench.lock python benchmarks/bench_synthetic.py [--fields 100]

Writes ``benchmarks/results/synthetic_bench.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import machine_info

from cyto.data import SyntheticAtlasConfig, generate_atlas, make_catalog, make_field


def _relabel(lab: np.ndarray) -> np.ndarray:
    ids = np.unique(lab)
    ids = ids[ids > 0]
    lut = np.zeros(int(lab.max()) + 1, np.int64)
    lut[ids] = np.arange(1, ids.size + 1)
    return lut[lab]


def projected_truth(field, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic field's Hoechst max projection and true nuclei, ×k downsampled as
    ``cyto preprocess`` segments it (labels sampled at the block centres)."""
    from cyto.preprocess import downsample

    proj, true = field.image[0].max(0).astype(np.float32), field.nuclei
    if k > 1:
        proj = downsample(proj, k)
        true = _relabel(true[k // 2 :: k, k // 2 :: k][: proj.shape[0], : proj.shape[1]])
    return proj, true


def bench_speed(n_fields: int) -> dict:
    cfg = SyntheticAtlasConfig()
    cat = make_catalog(cfg)
    make_field(cat[0], config=cfg)  # warm-up (imports, caches)
    t0, c0 = time.perf_counter(), time.process_time()
    n_cells = 0
    for i in range(n_fields):
        f = make_field(cat[i % len(cat)], config=cfg, field_index=i // len(cat))
        n_cells += f.info["n_cells"]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "fields": n_fields,
        "field_shape": list(f.image.shape),
        "mean_cells_per_field": n_cells / n_fields,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_field": round(cpu / n_fields, 4),
    }


def bench_atlas(n_proteins_fields: int) -> dict:
    out = {}
    base = Path(tempfile.mkdtemp(prefix="cyto-synth-bench-"))
    try:
        cfg = SyntheticAtlasConfig(fields_per_protein=max(1, n_proteins_fields // 60))
        for jobs in (1, 2):
            d = base / f"j{jobs}"
            t0 = time.perf_counter()
            generate_atlas(d, cfg, n_jobs=jobs, progress=False)
            out[f"generate_atlas_n_jobs_{jobs}_wall_s"] = round(time.perf_counter() - t0, 2)
        files = sorted((base / "j1" / "images").rglob("*.tif"))
        out["fields_written"] = len(files)
        out["bytes_per_field_uncompressed"] = int(np.mean([p.stat().st_size for p in files]))
        same = all(
            p.read_bytes() == (base / "j2" / p.relative_to(base / "j1")).read_bytes() for p in files
        )
        out["serial_equals_parallel_bytes"] = bool(same)
        d = base / "zlib"
        small = SyntheticAtlasConfig(
            families=("er", "vesicles"),
            complexes_per_family=1,
            complex_size=(2, 2),
            n_proteins=None,
            fields_per_protein=2,
        )
        t0 = time.perf_counter()
        generate_atlas(d, small, compression="zlib", progress=False)
        zfiles = sorted((d / "images").rglob("*.tif"))
        out["bytes_per_field_zlib"] = int(np.mean([p.stat().st_size for p in zfiles]))
        out["zlib_wall_s_per_field"] = round((time.perf_counter() - t0) / len(zfiles), 3)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return out


def bench_segmentation(n_fields: int, scale: float) -> dict:
    from cyto.preprocess import segment_nuclei, segmentation_f1

    cfg = SyntheticAtlasConfig(seed=7, scale=scale)
    hint = cfg.preprocess_hint
    cat = make_catalog(cfg)
    tp = fp = fn = 0
    per_field = []
    t_seg = 0.0
    for i in range(n_fields):
        f = make_field(cat[(i * 7) % len(cat)], config=cfg, field_index=i)
        proj, true = projected_truth(f, hint["downsample_factor"])
        t0 = time.perf_counter()
        pred = segment_nuclei(proj)
        t_seg += time.perf_counter() - t0
        score = segmentation_f1(true, pred, ignore_border=True)
        per_field.append(round(score.f1, 4))
        tp, fp, fn = tp + score.tp, fp + score.fp, fn + score.fn
    return {
        "scale": scale,
        "fields": n_fields,
        "nuclei_true": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "f1_pooled": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
        "f1_per_field_min": min(per_field),
        "f1_per_field_mean": round(float(np.mean(per_field)), 4),
        "segment_s_per_field": round(t_seg / n_fields, 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fields", type=int, default=100)
    ap.add_argument("--seg-fields", type=int, default=40)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic_bench"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    res = {
        "machine": machine_info(
            packages=("numpy", "scipy"),
            load=True,
            note="2-core machine shared with other helpers' jobs; CPU time is the "
            "reliable number, wall time depends on the load",
        )
    }
    res["speed_in_memory"] = bench_speed(args.fields)
    print(res["speed_in_memory"])
    res["atlas_on_disk"] = bench_atlas(args.fields)
    print(res["atlas_on_disk"])
    res["segmentation"] = [
        bench_segmentation(args.seg_fields, 1.0),
        bench_segmentation(max(args.seg_fields // 4, 4), 2.0),
    ]
    print(res["segmentation"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    s = res["speed_in_memory"]
    a = res["atlas_on_disk"]
    lines = [
        "# Synthetic atlas benchmark",
        "",
        f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores, Python "
        f"{res['machine']['python']}, NumPy {res['machine']['numpy']}, SciPy "
        f"{res['machine']['scipy']}; load average at start "
        f"{res['machine']['load_average_at_start']} (shared machine: CPU time is the reliable "
        "figure).",
        "",
        f"- {s['fields']} fields {tuple(s['field_shape'])} in memory, one core: "
        f"**{s['cpu_s']} s CPU** ({s['wall_s']} s wall), {s['cpu_s_per_field']} s CPU per "
        f"field, {s['mean_cells_per_field']:.1f} cells per field on average.",
        f"- generate_atlas with TIFF writing, {a['fields_written']} fields: "
        f"{a['generate_atlas_n_jobs_1_wall_s']} s wall serial, "
        f"{a['generate_atlas_n_jobs_2_wall_s']} s with 2 processes; identical bytes: "
        f"{a['serial_equals_parallel_bytes']}.",
        f"- {a['bytes_per_field_uncompressed'] / 2**20:.1f} MiB per field uncompressed, "
        f"{a['bytes_per_field_zlib'] / 2**20:.1f} MiB with zlib "
        f"({a['zlib_wall_s_per_field']} s per field with zlib).",
        "",
        "| scale | fields | true nuclei | TP | FP | FN | F1 (pooled) | F1 per field (min / mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["segmentation"]:
        lines.append(
            f"| {r['scale']:g} | {r['fields']} | {r['nuclei_true']} | {r['tp']} | {r['fp']} | "
            f"{r['fn']} | {r['f1_pooled']:.3f} | {r['f1_per_field_min']:.3f} / "
            f"{r['f1_per_field_mean']:.3f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
