"""Real-image check: does ``cyto train``'s default path give useful encodings on real cells?

Builds crop stores from the real images in ``../shared/data`` (never shipped with cyto),
trains with the defaults of ``cyto train --preset small``, embeds with the default
checkpoint of ``cyto embed`` and scores the encodings of **held-out fields** against
model-free baselines computed on the same crops:

- ``fly``: CellProfiler ExampleFly, *Drosophila* Kc167 cells, 3 fields; identity = stain
  (FITC vs rhodamine), nucleus = DAPI; 32-px crops; split 0.5/0.25/0.25 by field, so each
  stain has one training, one validation and one test field.
- ``cellpainting``: Cell Painting NF1 plate, 5 wells; identity = stain (GFP: ER, RFP:
  actin), nucleus = DAPI; 64-px crops; split 0.6/0.2/0.2 by well (3/1/1 wells).

Three training recipes run side by side on each set: ``default`` (what ``cyto train``
does with no options: EMA codebooks, best checkpoint by validation ``task_loss`` among
epochs whose encodings are not degenerate), ``paper`` (``--codebook paper --monitor
loss``: the published recipe, still with the collapse gate) and ``before`` (the same
without the gate: cyto's defaults before this benchmark). Scores on the test-split
crops: kNN accuracy of the stain (k = 15, reference = training-split crops), clustering
score Γ of the stains on UMAPs of the test crops (mean ± s.e.m. over 3 UMAP seeds), and
the health of the encodings. Baselines:
raw pixels (pooled, PCA 50), intensity statistics, and hand-crafted features (intensity,
radial profile around the nucleus, Haralick texture, granularity).

Usage (about 8 minutes on 2 CPU cores)::

    python benchmarks/bench_real.py                     # writes benchmarks/results/real.{json,md}
    python benchmarks/bench_real.py --epochs 5 --sets fly --work /tmp/r  # quicker look

Finished stages are kept in ``--work`` (default ``/tmp/cyto-bench-real``) and skipped on a
rerun; ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
UMAP_SEEDS = (0, 1, 2)


def _fly_rows(data: Path) -> list[tuple[str, str, str, str]]:
    base = data / "cellprofiler" / "ExampleFly" / "01_POS"
    rows = []
    for pos in ("002", "076", "218"):
        for ch, name in (("F", "FITC"), ("R", "rhodamine")):
            rows.append((f"{base}{pos}_{ch}.TIF", f"{base}{pos}_D.TIF", name, f"POS{pos}-{ch}"))
    return rows


def _cellpainting_rows(data: Path) -> list[tuple[str, str, str, str]]:
    images = data / "cellpainting_nf1" / "images"
    rows = []
    for dapi in sorted(images.glob("*_DAPI_001.tif")):
        well = dapi.name.split("_")[0]
        for stain, name in (("GFP", "ER"), ("RFP", "actin")):
            (path,) = images.glob(f"{well}_*_{stain}_001.tif")
            rows.append((str(path), str(dapi), name, f"{well}-{name}"))
    return rows


SETS: dict[str, dict[str, Any]] = {
    "fly": {
        "rows": _fly_rows,
        "what": "Drosophila Kc167 (CellProfiler ExampleFly), FITC vs rhodamine, 3 fields",
        "crop_size": 32,
        "split": (0.5, 0.25, 0.25),
        "epochs": 15,  # 49 steps per epoch
    },
    "cellpainting": {
        "rows": _cellpainting_rows,
        "what": "Cell Painting NF1 (5 wells), ER (GFP) vs actin (RFP)",
        "crop_size": 64,
        "split": (0.6, 0.2, 0.2),
        "epochs": 60,  # 5 steps per epoch
    },
}

RECIPES: dict[str, dict[str, Any]] = {
    # `cyto train` with no options
    "default": {"model": {}, "train": {}},
    # the published recipe (--codebook paper --monitor loss), with the collapse gate
    "paper": {"model": {"codebook": "paper"}, "train": {"monitor": "loss"}},
    # cyto's defaults before this benchmark: the published recipe, no collapse gate
    "before": {
        "model": {"codebook": "paper"},
        "train": {"monitor": "loss", "skip_degenerate": False},
    },
}


def build_store(name: str, data: Path, work: Path) -> Path:
    """Manifest → ``preprocess_dataset`` → crop store (skipped when it exists)."""
    from cyto.preprocess import preprocess_dataset

    spec = SETS[name]
    store = work / f"{name}.h5"
    if store.exists():
        return store
    manifest = work / f"{name}.csv"
    lines = ["path,nucleus_path,protein_id,fov_id"]
    lines += [",".join(r) for r in spec["rows"](data)]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = preprocess_dataset(
        manifest, store, crop_size=spec["crop_size"], downsample_factor=1, progress=False
    )
    if report.failed:
        raise RuntimeError(f"{name}: fields failed: {report.failed}")
    return store


def train_and_embed(store: Path, run: Path, *, recipe: str, split: tuple, epochs: int) -> Path:
    """``cyto train --preset small`` (+ the recipe's options), then ``cyto embed``."""
    from cyto.nn import TrainConfig, embed, train

    spec = RECIPES[recipe]
    if not (run / "summary.json").exists():
        resume = (run / "checkpoints" / "last.pt").exists()
        config = TrainConfig(
            preset="small",
            max_epochs=epochs,
            split=split,
            device="cpu",
            progress=False,
            **spec["train"],
        )
        train(
            store,
            run,
            config=None if resume else config,
            model_overrides=spec["model"],
            resume=resume,
        )
    emb = run / "embeddings.h5"
    if not emb.exists():
        # the benchmark reports degenerate encodings instead of stopping on them
        embed(run, store, emb, device="cpu", progress=False, allow_degenerate=True)
    return emb


# A loss term "grows" when, over the last _TAIL epochs, its least-squares slope exceeds
# _GROWS of its mean per epoch (the first epochs are a warm-up in which every
# feature-space term rises with the encoders' output scale).
_TAIL = 5
_GROWS = 0.05


def _loss_trends(run: Path) -> dict[str, Any]:
    epochs = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if '"epoch"' in line and json.loads(line).get("kind") == "epoch"
    ]
    out: dict[str, Any] = {}
    for term in ("vq_local", "vq_global", "loss", "task_loss", "local_reconstruction"):
        values = [e.get(f"val_{term}") for e in epochs if e.get(f"val_{term}") is not None]
        if values:
            tail = np.asarray(values[-_TAIL:], dtype=float)
            slope = (
                np.polyfit(np.arange(tail.size), tail, 1)[0] / tail.mean() if tail.size > 1 else 0.0
            )
            out[term] = {
                "first": values[0],
                "max": max(values),
                "last": values[-1],
                # relative change per epoch over the last epochs (least squares)
                "tail_slope": float(slope),
                "grows": bool(slope > _GROWS),
            }
    out["val_accuracy_global"] = [e.get("val_accuracy_global") for e in epochs]
    # training seconds: images of each epoch / its images per second (validation excluded)
    steps = np.diff([0] + [e["step"] for e in epochs])
    batch = json.loads((run / "config.json").read_text())["train"]["batch_size"]
    out["train_seconds"] = float(
        sum(n * batch / max(e.get("train_images_per_s", 0), 1e-9) for n, e in zip(steps, epochs))
    )
    return out


def _gamma(X: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from cyto.analysis import clustering_score, umap_embed

    values = [clustering_score(umap_embed(X, random_state=s), labels) for s in UMAP_SEEDS]
    v = np.asarray(values)
    return {"mean": float(v.mean()), "sem": float(v.std(ddof=1) / np.sqrt(v.size))}


def score(emb: Path, store: Path) -> dict[str, Any]:
    """kNN accuracy and Γ on the test-split crops: the model and the baselines."""
    import h5py

    from cyto.analysis import HealthAccumulator, baseline_features, handcrafted_features
    from cyto.data import CropStore
    from cyto.workflows import knn_family_accuracy

    with h5py.File(emb, "r") as f:
        X = f["global"][()]
        idx = f["global_indices"][()] if "global_indices" in f else None
        split = f["split"][()].astype(str)
        proteins = f["protein_id"][()].astype(str)
        rows = f["crop_index"][()]
        num_codes = int(f.attrs["num_embeddings_global"])
    health = HealthAccumulator(num_codes=num_codes)
    health.update(X, idx)
    with CropStore(store) as s:
        crops = s.read(rows).astype(np.float32)
    feats = {"cyto": X.astype(np.float64)}
    base = baseline_features(crops[:, 0])
    feats["pixels"], feats["intensity"] = base["pixels"], base["intensity"]
    feats["handcrafted"] = handcrafted_features(crops)
    tr, te = split == "train", split == "test"
    out: dict[str, Any] = {
        "n_train": int(tr.sum()),
        "n_val": int((split == "val").sum()),
        "n_test": int(te.sum()),
        "health": health.result().to_dict(),
    }
    for name, F in feats.items():
        out[name] = {
            "knn": knn_family_accuracy(F[tr], proteins[tr], F[te], proteins[te]),
            "gamma": _gamma(F[te], proteins[te]),
        }
    return out


def _arrow(t: dict[str, Any]) -> str:
    return f"{t.get('first', 0):.3g} → {t.get('max', 0):.3g} → {t.get('last', 0):.3g}"


def _trend(t: dict[str, Any]) -> str:
    return f"{100 * t.get('tail_slope', 0):+.0f} %"


def _warnings(summary: dict[str, Any]) -> str:
    terms = [w["term"].removeprefix("val_") for w in summary.get("warnings", [])]
    return ", ".join(terms) or "none"


def _row(name: str, d: dict[str, Any]) -> str:
    g = d["gamma"]
    return f"| {name} | {d['knn']:.3f} | {g['mean']:.2f} ± {g['sem']:.2f} |"


def write_markdown(result: dict[str, Any], path: Path) -> None:
    """``results/real.md`` from the JSON result."""
    lines = [
        "# Real images: the default training path on held-out fields",
        "",
        "`python benchmarks/bench_real.py` (see its docstring). Images: `../shared/data` "
        "(CellProfiler ExampleFly, BSD-3; Cell Painting NF1 from WayScience/CytoDataFrame, "
        "BSD-3). `small` preset, seed 0, CPU. Machine: "
        f"{result['machine']['cpu']}, {result['machine'].get('cores')} cores; torch "
        f"{result['machine'].get('torch')}, cyto {result['machine'].get('cyto')}. Training "
        "time per run (from the epoch records) is in the tables; a rerun reuses finished "
        "runs and scores.",
        "",
        "`default` = `cyto train` with no options (EMA codebooks with k-means start and "
        "dead-code restarts; best checkpoint by validation `task_loss`, never a degenerate "
        "epoch). `paper` = `--codebook paper --monitor loss` (the published recipe, with "
        "the same collapse gate). `before` = the published recipe without the gate "
        "(`skip_degenerate = false`): cyto's defaults before this change. Scores on the "
        "test-split crops (fields never seen in training): kNN accuracy of the stain "
        "(k = 15 against the training crops) and Γ "
        "(clustering score of the stains on UMAPs of the test crops, mean ± s.e.m. over 3 "
        "seeds). Baselines on the same crops.",
        "",
    ]
    for set_name, per in result["sets"].items():
        spec = SETS[set_name]
        first = next(iter(per.values()))["scores"]
        lines += [
            f"## {set_name}: {spec['what']}",
            "",
            f"{first['n_train']} training / {first['n_val']} validation / {first['n_test']} "
            f"test crops, {spec['crop_size']} px, {next(iter(per.values()))['epochs']} epochs.",
            "",
            "| encoding | kNN accuracy | Γ |",
            "|---|---|---|",
        ]
        for recipe, rec in per.items():
            h = rec["scores"]["health"]
            flag = ", DEGENERATE" if h["degenerate"] else ""
            label = (
                f"cyto `{recipe}` (best epoch {rec['summary']['best_epoch'] + 1}, trained "
                f"{rec['trends']['train_seconds']:.0f} s{flag})"
            )
            lines.append(_row(label, rec["scores"]["cyto"]))
        for base in ("pixels", "intensity", "handcrafted"):
            lines.append(_row(f"baseline: {base}", first[base]))
        lines += [
            "",
            "Validation quantizer losses per epoch: first → max → last, and their trend over "
            f"the last {_TAIL} epochs (least-squares slope, % of the mean per epoch; "
            f"'grows' above +{100 * _GROWS:.0f} %). Distinct global code maps of all crops; "
            "the loss terms that gave a training warning.",
            "",
            "| recipe | vq_global | trend | vq_local | trend | grows | distinct maps | "
            "training warnings |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for recipe, rec in per.items():
            t, h = rec["trends"], rec["scores"]["health"]
            vg, vl = t.get("vq_global", {}), t.get("vq_local", {})
            grows = [k for k in ("vq_global", "vq_local") if t.get(k, {}).get("grows")]
            lines.append(
                f"| {recipe} | {_arrow(vg)} | {_trend(vg)} | {_arrow(vl)} | {_trend(vl)} | "
                f"{', '.join(grows) or 'no'} | {h['distinct_maps']} of {h['n']} | "
                f"{_warnings(rec['summary'])} |"
            )
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cyto-bench-real"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--epochs", type=int, help="override every set's epochs (15 / 60)")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--fresh", action="store_true", help="forget finished runs in --work")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"real data not found at {args.data}; nothing to do", file=sys.stderr)
        return 1
    sys.path.insert(0, str(Path(__file__).parent))
    from _machine import machine_info

    if args.fresh:
        shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"sets": {}}
    for set_name in args.sets.split(","):
        store = build_store(set_name, args.data, args.work)
        per: dict[str, Any] = {}
        for recipe in args.recipes.split(","):
            epochs = args.epochs or SETS[set_name]["epochs"]
            run = args.work / f"{set_name}-{recipe}-e{epochs}"
            t = time.perf_counter()
            emb = train_and_embed(
                store, run, recipe=recipe, split=SETS[set_name]["split"], epochs=epochs
            )
            cached = run / "bench_scores.json"
            if not cached.exists():
                cached.write_text(json.dumps(score(emb, store)), encoding="utf-8")
            per[recipe] = {
                "epochs": epochs,
                "seconds_train_embed": time.perf_counter() - t,
                "summary": json.loads((run / "summary.json").read_text()),
                "trends": _loss_trends(run),
                "scores": json.loads(cached.read_text(encoding="utf-8")),
            }
            print(f"{set_name} {recipe}: {json.dumps(per[recipe]['scores'])}", file=sys.stderr)
        result["sets"][set_name] = per
    result["seconds"] = time.perf_counter() - t0
    result["machine"] = machine_info(
        packages=("torch", "numpy", "umap-learn", "scikit-learn", "cyto"), torch=True
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_markdown(result, args.out / "real.md")
    print(f"wrote {args.out / 'real.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
