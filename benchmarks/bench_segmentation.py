"""Nucleus segmentation on every image set with reference masks we can read, before and
after a change: F1 at IoU 0.5 per image set, and time per 1024² field.

Image sets (``../shared/data``, see its README; a missing set is skipped):

* ``dsb2018``: the Data Science Bowl 2018 image shipped in the stardist wheel, with
  hand-drawn instance masks (512², 125 nuclei ≈ 24 px, many touching);
* ``nf1_cellprofiler``: five Cell Painting DAPI fields (904×1224, 16-bit) of the NF1
  project with the nucleus masks CellProfiler made for them (binary masks, one nucleus
  per connected component) — agreement with a screening pipeline, not hand truth, so
  nuclei cut by the field edge are left out on both sides (CellProfiler drops them);
* ``synthetic``: fields of cyto's synthetic atlas with their true nuclei (our own
  generator: a check, not evidence of generalization);
* ``opencell_qc``: the OpenCell QC snaps (no masks): nuclei found per field class, and
  the empty field must give none.

Speed: ``segment_nuclei`` on the OpenCell Hoechst projection FOV_00076 (1024²), one
thread, median of repeated calls, before and after in the same run.

Run on an otherwise idle machine::

    python benchmarks/bench_segmentation.py --before 138e5bd

Writes ``benchmarks/results/segmentation.json`` and ``segmentation.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _machine import machine_info, module_at, write_section
from scipy import ndimage as ndi

from cyto.preprocess import segment_nuclei, segmentation_f1

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT.parent.parent / "shared" / "data"
Segmenter = Callable[[np.ndarray], np.ndarray]


def load_before(rev: str) -> Segmenter:
    """``segment_nuclei`` as it was at commit ``rev``."""
    return module_at(rev, "cyto/preprocess/_nuclei.py")["segment_nuclei"]


def opencell_pipeline(img: np.ndarray) -> np.ndarray:
    """The OpenCell pipeline's nucleus segmentation, rewritten from its description
    (``../shared/REFERENCE.md``; tuned on 1024² fields with nuclei ≈ 65 px), with every
    length scaled by s = d / 65 for the field's estimated nucleus diameter ``d``.

    Left out: the "Laplacian minima" step, whose use the description leaves open, and
    the removal of nuclei touching the border (every column is scored alike).
    """
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_li
    from skimage.morphology import disk
    from skimage.segmentation import watershed

    from cyto.preprocess import estimate_nucleus_diameter

    img = img.astype(np.float32)
    d = estimate_nucleus_diameter(img)
    if d is None:
        return np.zeros(img.shape, np.int32)
    s = d / 65.0
    smooth = ndi.gaussian_filter(img, 5 * s)
    mask = ndi.binary_erosion(smooth > threshold_li(smooth))
    lap = ndi.laplace(ndi.gaussian_filter(img, 4 * s))
    refined = ndi.binary_closing(mask & (lap < 0), disk(max(1, round(5 * s))))
    holes = ndi.binary_fill_holes(refined) & ~refined
    lab, n = ndi.label(holes)
    small = np.bincount(lab.ravel(), minlength=n + 1) < 10_000 * s * s
    small[0] = False
    refined = (refined | small[lab]) & mask
    lab, n = ndi.label(refined)
    big = np.bincount(lab.ravel(), minlength=n + 1) >= 1_000 * s * s
    big[0] = False
    refined = big[lab]
    dist = ndi.gaussian_filter(ndi.distance_transform_edt(refined), 1.0)
    peaks = peak_local_max(dist, min_distance=max(1, round(15 * s)), labels=refined)
    markers = np.zeros(img.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=refined, watershed_line=True).astype(np.int32)


def image_sets(data: Path) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, bool]]]:
    """Name → [(field, image, true labels, ignore_border)] of every set found."""
    import tifffile

    sets: dict[str, list] = {}
    dsb = data / "nuclei_gt" / "stardist_dsb2018"
    if dsb.is_dir():
        img, true = tifffile.imread(dsb / "img2d.tif"), tifffile.imread(dsb / "mask2d.tif")
        sets["dsb2018"] = [("img2d", img, true, False)]
    nf1 = data / "cellpainting_nf1"
    if nf1.is_dir():
        rows = []
        for img in sorted((nf1 / "images").glob("*_DAPI_001.tif")):
            mask = nf1 / "masks" / f"{img.stem}_MaskNuclei.tiff"
            if mask.is_file():
                true, _ = ndi.label(tifffile.imread(mask) > 0)
                rows.append((img.stem.split("_")[0], tifffile.imread(img), true, True))
        sets["nf1_cellprofiler"] = rows
    sets["synthetic"] = synthetic_fields(8)
    return sets


def synthetic_fields(n: int) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    from bench_synthetic import projected_truth

    from cyto.data import SyntheticAtlasConfig, make_catalog, make_field

    cfg = SyntheticAtlasConfig(seed=7)
    k = cfg.preprocess_hint["downsample_factor"]
    cat = make_catalog(cfg)
    rows = []
    for i in range(n):
        f = make_field(cat[(i * 7) % len(cat)], config=cfg, field_index=i)
        rows.append((f"field{i}", *projected_truth(f, k), True))
    return rows


def score_set(seg: Segmenter, rows: list) -> dict:
    tp = fp = fn = 0
    per_field = {}
    for name, img, true, border in rows:
        s = segmentation_f1(true, seg(img), ignore_border=border)
        tp, fp, fn = tp + s.tp, fp + s.fp, fn + s.fn
        per_field[name] = round(s.f1, 4)
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    return {"f1": round(f1, 4), "tp": tp, "fp": fp, "fn": fn, "per_field": per_field}


def opencell_counts(seg: Segmenter, data: Path) -> dict[str, list[int]]:
    import tifffile

    folder = data / "opencell" / "hoechst_fov_qc_snaps"
    counts: dict[str, list[int]] = {}
    for p in sorted(folder.glob("*.tif")):
        counts.setdefault(p.stem.rsplit("-", 1)[0], []).append(int(seg(tifffile.imread(p)).max()))
    return counts


def speed(segs: dict[str, Segmenter], data: Path, repeats: int) -> dict[str, dict]:
    """ms per call of each segmenter on the 1024² field and on its ×2 block mean (what
    ``cyto preprocess`` segments with the paper's defaults), interleaved so machine
    drift hits both alike."""
    import tifffile

    from cyto.preprocess import downsample

    full = tifffile.imread(data / "opencell" / "hoechst_zprojections" / "FOV_00076_RAW.tif")
    images = {"1024² field": full.astype(np.float32)}
    images["×2 downsampled (pipeline)"] = downsample(images["1024² field"], 2)
    out: dict[str, dict] = {k: {} for k in segs}
    for where, img in images.items():
        times: dict[str, list[float]] = {k: [] for k in segs}
        for seg in segs.values():
            seg(img)  # warm-up
        for _ in range(repeats):
            for k, seg in segs.items():
                t = time.perf_counter()
                seg(img)
                times[k].append(1000 * (time.perf_counter() - t))
        for k, v in times.items():
            out[k][where] = {"median_ms": float(np.median(v)), "min_ms": float(np.min(v))}
    return out


def to_markdown(res: dict) -> str:
    m = res["machine"]
    cols = list(res["speed"])
    lines = [
        "# Nucleus segmentation: F1 at IoU 0.5 per image set, before and after",
        "",
        f"{res['date']}; {m.get('cpu')}, {m.get('cores')} cores; before = commit "
        f"{res['before_commit']}, after = the working tree; `python "
        f"benchmarks/bench_segmentation.py --before {res['before_commit']}`.",
        "",
        "| image set | reference | fields | reference nuclei | "
        + " | ".join(f"F1 {c} (TP/FP/FN)" for c in cols)
        + " |",
        "|---|---|---|---|" + "---|" * len(cols),
    ]
    for name, by in res["sets"].items():
        first = by[cols[0]]
        cells = [f"{by[c]['f1']:.3f} ({by[c]['tp']}/{by[c]['fp']}/{by[c]['fn']})" for c in cols]
        lines.append(
            f"| {name} | {REFERENCE.get(name, '')} | {len(first['per_field'])} | "
            f"{first['tp'] + first['fn']} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "OpenCell pipeline: rewritten here from its description (`../shared/REFERENCE.md`),",
        "lengths scaled by the field's estimated nucleus diameter ÷ 65 px; its Laplacian-minima",
        "step (use left open by the description) and its removal of border nuclei are left",
        "out. The original finds 2 nuclei on the empty QC field; this rewrite, whose scale",
        "comes from cyto's empty-field-aware diameter estimate, finds none.",
    ]
    lines += ["", "Per field:", "", "| image set | field | " + " | ".join(cols) + " |"]
    lines.append("|---|---|" + "---|" * len(cols))
    for name, by in res["sets"].items():
        for field in by[cols[0]]["per_field"]:
            vals = " | ".join(f"{by[c]['per_field'][field]:.3f}" for c in cols)
            lines.append(f"| {name} | {field} | {vals} |")
    lines += ["", "OpenCell QC snaps (no masks): nuclei found per field", ""]
    lines += ["| field class | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    qc = res["opencell_qc"]
    for cls in qc[cols[0]]:
        lines.append(f"| {cls} | " + " | ".join(str(qc[c][cls]) for c in cols) + " |")
    lines += ["", "Speed on the OpenCell field FOV_00076, one call, ms (median / min):", ""]
    lines += ["| image | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for where in res["speed"][cols[0]]:
        cells = [
            f"{res['speed'][c][where]['median_ms']:.1f} / {res['speed'][c][where]['min_ms']:.1f}"
            for c in cols
        ]
        lines.append(f"| {where} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _summary(res: dict) -> str:
    """The per-set F1 table for ``preprocess.md``."""
    cols = list(res["speed"])
    lines = [
        "## Nucleus segmentation: F1 at IoU 0.5 per image set",
        "",
        f"From `benchmarks/bench_segmentation.py --before {res['before_commit']}` "
        f"({res['date']}; details per field in `segmentation.md`).",
        "",
        "| image set | reference | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for name, by in res["sets"].items():
        f1s = " | ".join(f"{by[c]['f1']:.3f}" for c in cols)
        lines.append(f"| {name} | {REFERENCE.get(name, '')} | {f1s} |")
    pipe = "×2 downsampled (pipeline)"
    ms = " | ".join(f"{res['speed'][c][pipe]['median_ms']:.0f}" for c in cols)
    lines += ["", f"segment_nuclei on the ×2-downsampled 1024² field, median ms: {ms}."]
    return "\n".join(lines)


REFERENCE = {
    "dsb2018": "hand-drawn",
    "nf1_cellprofiler": "CellProfiler masks",
    "synthetic": "generator truth",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="commit to compare against")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    segs = {
        "OpenCell pipeline": opencell_pipeline,
        "before": load_before(args.before),
        "after": segment_nuclei,
    }
    sets = image_sets(args.data)
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(packages=("numpy", "scipy", "scikit-image"), load=True),
        "before_commit": args.before,
        "sets": {n: {k: score_set(s, rows) for k, s in segs.items()} for n, rows in sets.items()},
        "opencell_qc": {k: opencell_counts(s, args.data) for k, s in segs.items()},
        "speed": speed(segs, args.data, args.repeats),
    }
    md = to_markdown(res)
    print(md)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "segmentation.json").write_text(json.dumps(res, indent=2) + "\n")
        (RESULTS / "segmentation.md").write_text(md)
        write_section(RESULTS / "preprocess.md", "segmentation", _summary(res))


if __name__ == "__main__":
    main()
